#pragma once
#include <blkid/blkid.h>

// The flag macros as constants, so Swift sees them whatever their spelling in blkid.h.
// What `blkid -p` (low-level probing) asks for: everything the superblock says, and the
// partition entry that holds the device when it is a partition.
static const int RAST_BLKID_SUPERBLOCK_FLAGS = BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID | BLKID_SUBLKS_TYPE
    | BLKID_SUBLKS_SECTYPE | BLKID_SUBLKS_USAGE | BLKID_SUBLKS_VERSION;
static const int RAST_BLKID_PARTITION_FLAGS = BLKID_PARTS_ENTRY_DETAILS;
