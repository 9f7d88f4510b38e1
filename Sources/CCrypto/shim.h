#pragma once
// OpenSSL's libcrypto: SHA-256 (hardware-accelerated where the CPU has SHA extensions),
// HMAC, AES-256-GCM, scrypt and random bytes.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/err.h>
