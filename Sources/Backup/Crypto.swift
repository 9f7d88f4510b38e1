// Authenticated encryption of backup objects with AES-256-GCM (libcrypto), in chunks, so that
// a stream of any length is encrypted and checked piece by piece:
//
//   object  = header || chunk_0 || ... || chunk_n
//   header  = "RASTBK01" (8) | chunk size, u32 big-endian (4) | 0 (4) | salt (32 random bytes)
//   chunk_i = AES-256-GCM(key, nonce_i, plaintext_i, aad_i) ciphertext || tag (16)
//   key     = HKDF-SHA256(master key, salt, "rast-backup object v1" 0x00 object name)
//   nonce_i = i as 12 bytes big-endian
//   aad_i   = header || 0x01 for the last chunk, 0x00 for the others
//
// Every chunk but the last holds exactly `chunk size` bytes of plaintext; the last holds
// 0...chunk size. A key per object (fresh salt, the object's name bound in) lets the nonce
// be a counter; the name in the key means an object copied to another name fails to open;
// the last-chunk flag makes a truncated object fail instead of ending early; the header in
// the AAD makes a changed header fail.
import CCrypto
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Failures of encryption and of opening what was encrypted.
package enum BackupCryptoError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A chunk's tag did not match: the object was changed, damaged, or made with another key.
    case authentication(object: String, chunk: Int)
    /// The object is not in our format or is cut short.
    case format(object: String, reason: String)
    case library(function: String, message: String)
    case keyFile(path: String, reason: String)

    package var description: String {
        switch self {
        case .authentication(let object, let chunk):
            return "\(object) failed authentication at chunk \(chunk): it was changed or damaged after it was written"
        case .format(let object, let reason):
            return "\(object) is not a rast backup object: \(reason)"
        case .library(let function, let message):
            return "libcrypto: \(function) failed: \(message)"
        case .keyFile(let path, let reason):
            return "key file \(path): \(reason)"
        }
    }
}

/// The 32-byte key every object key is derived from.
package struct MasterKey: Sendable, Equatable {
    package let bytes: [UInt8]

    package init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw BackupCryptoError.library(function: "MasterKey", message: "a key has 32 bytes, not \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// A new random key.
    package static func generate() throws -> MasterKey {
        try MasterKey(bytes: try Random.bytes(32))
    }

    /// Reads a key file: 64 hexadecimal digits (what `backup init` writes), or 32 raw bytes.
    package static func read(keyFile path: String) throws -> MasterKey {
        let contents: [UInt8]
        do { contents = try Files.read(path) } catch {
            throw BackupCryptoError.keyFile(path: path, reason: "\(error)")
        }
        let text = String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.count == 64, let bytes = Hex.decode(text) { return try MasterKey(bytes: bytes) }
        if contents.count == 32 { return try MasterKey(bytes: contents) }
        throw BackupCryptoError.keyFile(path: path, reason: "holds \(contents.count) bytes; a key file holds 64 hexadecimal digits or 32 raw bytes")
    }

    /// Writes a new key file (mode 0600, atomically); refuses to replace an existing file.
    package func write(keyFile path: String) throws {
        guard !Files.exists(path) else { throw BackupCryptoError.keyFile(path: path, reason: "exists already; refusing to replace a key") }
        try Files.writeAtomically(path, string: Hex.encode(bytes) + "\n", mode: 0o600)
    }

    /// scrypt (RFC 7914) of a passphrase.
    package static func derive(passphrase: String, salt: [UInt8], n: UInt64, r: UInt64, p: UInt64) throws -> MasterKey {
        var key = [UInt8](repeating: 0, count: 32)
        let pass = Array(passphrase.utf8)
        let maxMemory: UInt64 = 2 << 30
        let result = pass.withUnsafeBytes { passBytes in
            salt.withUnsafeBufferPointer { saltBytes in
                EVP_PBE_scrypt(passBytes.baseAddress?.assumingMemoryBound(to: CChar.self), pass.count,
                               saltBytes.baseAddress, salt.count, n, r, p, maxMemory, &key, 32)
            }
        }
        guard result == 1 else { throw BackupCryptoError.library(function: "EVP_PBE_scrypt", message: Random.lastError()) }
        return try MasterKey(bytes: key)
    }

    /// A value that tells whether a key is the repository's, without revealing the key.
    package var check: String {
        Hex.encode(HMACSHA256.authenticate("rast-backup key check v1", key: bytes))
    }

    /// HKDF-SHA256 (RFC 5869) of this key: 32 bytes for `info` under `salt`.
    func derive(salt: [UInt8], info: [UInt8]) -> [UInt8] {
        let pseudoRandomKey = HMACSHA256.authenticate(bytes, key: salt)
        return HMACSHA256.authenticate(info + [1], key: pseudoRandomKey)
    }
}

enum Random {
    static func bytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw BackupCryptoError.library(function: "RAND_bytes", message: lastError()) }
        return out
    }

    static func lastError() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "no detail" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An AES-256-GCM context (EVP_CIPHER_CTX), freed in `deinit`.
final class GCMCipher {
    private let context: OpaquePointer
    static let tagSize = 16

    init() throws {
        guard let context = EVP_CIPHER_CTX_new() else { throw BackupCryptoError.library(function: "EVP_CIPHER_CTX_new", message: "out of memory") }
        self.context = context
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Encrypts `plaintext` and appends ciphertext and tag to `output`.
    func seal(key: [UInt8], nonce: [UInt8], aad: [UInt8], plaintext: UnsafeRawBufferPointer, into output: inout [UInt8]) throws {
        try check("EVP_EncryptInit_ex", EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce))
        var length: Int32 = 0
        try check("EVP_EncryptUpdate(aad)", EVP_EncryptUpdate(context, nil, &length, aad, Int32(aad.count)))
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: plaintext.count + GCMCipher.tagSize))
        try output.withUnsafeMutableBufferPointer { buffer in
            let out = buffer.baseAddress! + start
            if plaintext.count > 0 {
                try check("EVP_EncryptUpdate", EVP_EncryptUpdate(context, out, &length, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                                 Int32(plaintext.count)))
            }
            var final: Int32 = 0
            try check("EVP_EncryptFinal_ex", EVP_EncryptFinal_ex(context, out + Int(length), &final))
            try check("EVP_CIPHER_CTX_ctrl(get tag)",
                      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(GCMCipher.tagSize), out + plaintext.count))
        }
    }

    /// Decrypts ciphertext || tag into `output` (appending); false when the tag does not match.
    func open(key: [UInt8], nonce: [UInt8], aad: [UInt8], sealed: UnsafeRawBufferPointer, into output: inout [UInt8]) throws -> Bool {
        guard sealed.count >= GCMCipher.tagSize else { return false }
        let count = sealed.count - GCMCipher.tagSize
        try check("EVP_DecryptInit_ex", EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce))
        var length: Int32 = 0
        try check("EVP_DecryptUpdate(aad)", EVP_DecryptUpdate(context, nil, &length, aad, Int32(aad.count)))
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count))
        let input = sealed.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var tag = Array(UnsafeBufferPointer(start: input + count, count: GCMCipher.tagSize))
        let authentic = try output.withUnsafeMutableBufferPointer { buffer -> Bool in
            let out = buffer.baseAddress! + start
            if count > 0 {
                try check("EVP_DecryptUpdate", EVP_DecryptUpdate(context, out, &length, input, Int32(count)))
            }
            try check("EVP_CIPHER_CTX_ctrl(set tag)", EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(GCMCipher.tagSize), &tag))
            var final: Int32 = 0
            return EVP_DecryptFinal_ex(context, out + Int(length), &final) == 1
        }
        if !authentic {
            output.removeSubrange(start...)
            ERR_clear_error()
        }
        return authentic
    }

    private func check(_ function: String, _ result: Int32) throws {
        guard result == 1 else { throw BackupCryptoError.library(function: function, message: Random.lastError()) }
    }
}

/// The fixed part at the start of every encrypted object.
struct ObjectHeader {
    static let magic = Array("RASTBK01".utf8)
    static let size = 48
    let chunkSize: Int
    let salt: [UInt8]

    var bytes: [UInt8] {
        let size = UInt32(chunkSize)
        return ObjectHeader.magic + [UInt8(size >> 24), UInt8(size >> 16 & 0xff), UInt8(size >> 8 & 0xff), UInt8(size & 0xff), 0, 0, 0, 0] + salt
    }

    init(chunkSize: Int, salt: [UInt8]) {
        self.chunkSize = chunkSize
        self.salt = salt
    }

    init(parsing bytes: [UInt8], object: String) throws {
        guard bytes.count >= ObjectHeader.size, Array(bytes[0..<8]) == ObjectHeader.magic else {
            throw BackupCryptoError.format(object: object, reason: "it does not start with the RASTBK01 header")
        }
        chunkSize = Int(bytes[8]) << 24 | Int(bytes[9]) << 16 | Int(bytes[10]) << 8 | Int(bytes[11])
        guard chunkSize >= 4096, chunkSize <= 64 << 20 else {
            throw BackupCryptoError.format(object: object, reason: "its header names a chunk size of \(chunkSize) bytes")
        }
        salt = Array(bytes[16..<48])
    }

    static func key(_ master: MasterKey, salt: [UInt8], object: String) -> [UInt8] {
        master.derive(salt: salt, info: Array("rast-backup object v1".utf8) + [0] + Array(object.utf8))
    }

    static func nonce(_ index: Int) -> [UInt8] {
        (0..<12).map { UInt8(truncatingIfNeeded: UInt64(index) >> (8 * UInt64(11 - $0))) }
    }
}

/// What ObjectSealer and ObjectOpener share: bytes go in through `write`, `finish` ends the
/// object, and what comes out goes to the output the stream was created with.
protocol ObjectStream: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func finish() throws
}

extension ObjectStream {
    /// All of `bytes` through a stream that `make` creates with the output it is given; the
    /// whole output (for small objects).
    static func whole(_ bytes: [UInt8], _ make: (@escaping (UnsafeRawBufferPointer) throws -> Void) throws -> Self) throws -> [UInt8] {
        var out: [UInt8] = []
        let stream = try make { out.append(contentsOf: $0) }
        try bytes.withUnsafeBytes { try stream.write($0) }
        try stream.finish()
        return out
    }
}

/// Encrypts a stream into an object: `write` plaintext, `finish` at the end; `output` gets
/// the encrypted bytes as they are ready.
final class ObjectSealer: ObjectStream {
    private let cipher: GCMCipher
    private let key: [UInt8]
    private let header: ObjectHeader
    private let headerBytes: [UInt8]
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var pending: [UInt8] = []
    private var index = 0
    private var sealed: [UInt8] = []

    init(master: MasterKey, object: String, chunkSize: Int = 1 << 20, output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        cipher = try GCMCipher()
        header = ObjectHeader(chunkSize: chunkSize, salt: try Random.bytes(32))
        headerBytes = header.bytes
        key = ObjectHeader.key(master, salt: header.salt, object: object)
        self.output = output
        pending.reserveCapacity(chunkSize * 2)
        try headerBytes.withUnsafeBytes { try output($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        // A chunk goes out once more follows it, so that the last one can be marked as such.
        var consumed = 0
        while pending.count - consumed > header.chunkSize {
            try pending.withUnsafeBytes { try seal(UnsafeRawBufferPointer(rebasing: $0[consumed..<consumed + header.chunkSize]), final: false) }
            consumed += header.chunkSize
        }
        if consumed > 0 { pending.removeFirst(consumed) }
    }

    func finish() throws {
        try pending.withUnsafeBytes { try seal($0, final: true) }
        pending = []
    }

    private func seal(_ plaintext: UnsafeRawBufferPointer, final: Bool) throws {
        sealed.removeAll(keepingCapacity: true)
        try cipher.seal(key: key, nonce: ObjectHeader.nonce(index), aad: headerBytes + [final ? 1 : 0], plaintext: plaintext, into: &sealed)
        index += 1
        try sealed.withUnsafeBytes { try output($0) }
    }

    /// Encrypts a small object whole.
    static func seal(_ bytes: [UInt8], master: MasterKey, object: String) throws -> [UInt8] {
        try whole(bytes) { try ObjectSealer(master: master, object: object, output: $0) }
    }
}

/// Decrypts an object as its bytes arrive; `output` gets only authenticated plaintext.
final class ObjectOpener: ObjectStream {
    private let cipher: GCMCipher
    private let master: MasterKey
    private let object: String
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var header: ObjectHeader?
    private var headerBytes: [UInt8] = []
    private var key: [UInt8] = []
    private var pending: [UInt8] = []
    private var index = 0
    private var opened: [UInt8] = []
    private(set) var plaintextBytes: Int64 = 0

    init(master: MasterKey, object: String, output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        cipher = try GCMCipher()
        self.master = master
        self.object = object
        self.output = output
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        pending.append(contentsOf: bytes)
        if header == nil {
            guard pending.count >= ObjectHeader.size else { return }
            let parsed = try ObjectHeader(parsing: Array(pending[0..<ObjectHeader.size]), object: object)
            header = parsed
            headerBytes = parsed.bytes
            key = ObjectHeader.key(master, salt: parsed.salt, object: object)
            pending.removeFirst(ObjectHeader.size)
        }
        guard let header else { return }
        let sealedSize = header.chunkSize + GCMCipher.tagSize
        var consumed = 0
        while pending.count - consumed > sealedSize {
            try pending.withUnsafeBytes { try open(UnsafeRawBufferPointer(rebasing: $0[consumed..<consumed + sealedSize]), final: false) }
            consumed += sealedSize
        }
        if consumed > 0 { pending.removeFirst(consumed) }
    }

    /// The end of the object: opens the last chunk. An object cut short fails here.
    func finish() throws {
        guard header != nil else { throw BackupCryptoError.format(object: object, reason: "it ends within its header (\(pending.count) bytes)") }
        guard pending.count >= GCMCipher.tagSize else {
            throw BackupCryptoError.format(object: object, reason: "it ends within chunk \(index) (cut short)")
        }
        try pending.withUnsafeBytes { try open($0, final: true) }
        pending = []
    }

    private func open(_ sealed: UnsafeRawBufferPointer, final: Bool) throws {
        opened.removeAll(keepingCapacity: true)
        guard try cipher.open(key: key, nonce: ObjectHeader.nonce(index), aad: headerBytes + [final ? 1 : 0], sealed: sealed, into: &opened) else {
            throw BackupCryptoError.authentication(object: object, chunk: index)
        }
        index += 1
        plaintextBytes += Int64(opened.count)
        try opened.withUnsafeBytes { try output($0) }
    }

    /// Decrypts a small object whole.
    static func open(_ bytes: [UInt8], master: MasterKey, object: String) throws -> [UInt8] {
        try whole(bytes) { try ObjectOpener(master: master, object: object, output: $0) }
    }
}
