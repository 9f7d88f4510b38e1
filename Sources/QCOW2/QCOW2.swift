// QCOW2: a writer (QCOW2Writer, from raw images and block devices, with parallel zlib or
// zstd compression) and a reader (QCOW2Reader) of QEMU's copy-on-write disk image format.
//
// QCOW2 (version 3) on disk, as this module writes and reads it.
//
// Every number is big-endian. The file is an array of clusters (2^cluster_bits bytes, 512 B to
// 2 MiB; 64 KiB by default). The guest sees a virtual disk of `size` bytes, cut into clusters
// of the same size and mapped through a two-level table:
//
//   virtual offset ──► l1_index = offset / (cluster_size * l2_entries)
//                      l2_index = (offset / cluster_size) % l2_entries     l2_entries = cluster_size / 8
//                      in-cluster = offset % cluster_size
//
//   cluster 0                                     the writer's layout (metadata at the end, so
//   ┌──────────────────────────────────────────┐  data streams out in one pass)
//   │ header (112 bytes)                        │
//   │   0 magic "QFI\xfb"      4 version = 3    │  ┌──────────────┐
//   │   8 backing_file_offset 16 backing_size  │  │ header       │ cluster 0
//   │  20 cluster_bits        24 size (virtual) │  ├──────────────┤
//   │  32 crypt_method        36 l1_size        │  │ data         │ clusters 1 ... in guest order:
//   │  40 l1_table_offset                       │  │ clusters     │ raw clusters are cluster-aligned;
//   │  48 refcount_table_offset                 │  │              │ compressed ones are packed
//   │  56 refcount_table_clusters               │  │              │ byte by byte between them
//   │  60 nb_snapshots        64 snapshots_off  │  ├──────────────┤
//   │  72 incompatible_features (bit 0 dirty,   │  │ L2 tables    │ only those with entries
//   │     1 corrupt, 2 external data, 3 compres-│  ├──────────────┤
//   │     sion type, 4 extended L2)             │  │ L1 table     │ l1_size entries, contiguous
//   │  80 compatible_features                   │  ├──────────────┤
//   │  88 autoclear_features                    │  │ refcount     │ 16-bit counts, one per cluster
//   │  96 refcount_order (4: 16-bit counts)     │  │ blocks       │ of the file (themselves included)
//   │ 100 header_length (112)                   │  ├──────────────┤
//   │ 104 compression_type (0 zlib, 1 zstd)     │  │ refcount     │ refcount_table_clusters
//   │ 105 padding to 112                        │  │ table        │
//   ├──────────────────────────────────────────┤  └──────────────┘
//   │ header extensions: u32 type, u32 length,  │
//   │ data padded to 8; type 0 ends the list.   │
//   │ 0xe2792aca backing format, 0x6803f857     │
//   │ feature names, 0x23852875 bitmaps,        │
//   │ 0x0537be77 encryption, 0x44415441 data    │
//   │ file. Nothing past the header cluster.    │
//   └──────────────────────────────────────────┘
//
// L1 entry (u64):  bits 9-55 offset of an L2 table (cluster-aligned; 0 = none)
//                  bit 63 COPIED (refcount is exactly 1); other bits reserved (0)
// L2 entry (u64), standard cluster:
//                  bit 0 reads as zeros (v3), bits 9-55 host cluster offset (0 = unallocated,
//                  reads as zeros without a backing file), bit 62 = 0, bit 63 COPIED
// L2 entry, compressed cluster (bit 62 = 1), with x = 62 - (cluster_bits - 8):
//                  bits 0..x-1   byte offset of the compressed data (not aligned)
//                  bits x..61    number of 512-byte sectors it touches, minus one
//                  The data holds one complete stream that inflates to exactly one cluster:
//                  raw deflate whose matches reach back at most 4 KiB (QEMU inflates with
//                  windowBits -12) or one zstd frame. A cluster whose compressed form is not
//                  smaller than the cluster is stored as a standard cluster instead.
// Refcount table:  u64 entries, bits 9-63 offset of a refcount block (0 = none).
// Refcount block:  one cluster of 2^refcount_order-bit counts, entry i of block j counting how
//                  many references point into host cluster j * entries_per_block + i. A
//                  compressed cluster adds one to every host cluster its sectors touch.
import Foundation

/// Layout constants and the header of a QCOW2 file.
enum QCOW2Format {
    static let magic: UInt32 = 0x5146_49FB  // "QFI\xfb"
    static let version: UInt32 = 3
    static let headerLength = 112
    static let v2HeaderLength = 72
    static let v3MinimumHeaderLength = 104
    static let minClusterBits = 9
    static let maxClusterBits = 21
    static let sectorSize = 512
    /// QEMU refuses larger tables when it opens an image (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE).
    static let maxL1Bytes = 32 << 20
    static let maxRefcountTableBytes = 8 << 20
    /// The refcount order the writer uses: 16-bit counts, as QEMU's default.
    static let refcountOrder = 4

    // Feature bits.
    static let incompatibleDirty: UInt64 = 1 << 0
    static let incompatibleCorrupt: UInt64 = 1 << 1
    static let incompatibleExternalData: UInt64 = 1 << 2
    static let incompatibleCompressionType: UInt64 = 1 << 3
    static let incompatibleExtendedL2: UInt64 = 1 << 4

    // Table entry fields.
    static let copiedFlag: UInt64 = 1 << 63
    static let compressedFlag: UInt64 = 1 << 62
    static let zeroFlag: UInt64 = 1
    static let offsetMask: UInt64 = 0x00FF_FFFF_FFFF_FE00  // bits 9-55
    static let l1ReservedMask: UInt64 = 0x7F00_0000_0000_01FF  // bits 0-8, 56-62
    static let l2ReservedMask: UInt64 = 0x3F00_0000_0000_01FE  // bits 1-8, 56-61
    static let refcountTableReservedMask: UInt64 = 0x1FF

    // Header extension types.
    static let extensionEnd: UInt32 = 0
    static let extensionBackingFormat: UInt32 = 0xE279_2ACA
    static let extensionFeatureNames: UInt32 = 0x6803_F857
    static let extensionBitmaps: UInt32 = 0x2385_2875
    static let extensionEncryption: UInt32 = 0x0537_BE77
    static let extensionDataFile: UInt32 = 0x4441_5441

    /// Bit position where a compressed L2 entry's sector count starts.
    static func compressedSizeShift(clusterBits: Int) -> Int { 62 - (clusterBits - 8) }

    /// The L2 entry of compressed data of `length` bytes at byte offset `offset`.
    static func compressedEntry(offset: UInt64, length: Int, clusterBits: Int) -> UInt64 {
        let sector = UInt64(sectorSize)
        let additionalSectors = (offset + UInt64(length) - 1) / sector - offset / sector
        return compressedFlag | (additionalSectors << UInt64(compressedSizeShift(clusterBits: clusterBits))) | offset
    }
}

/// The fields of a QCOW2 header this module reads and writes.
struct QCOW2Header: Equatable {
    var version: UInt32 = QCOW2Format.version
    var backingFileOffset: UInt64 = 0
    var backingFileSize: UInt32 = 0
    var clusterBits: UInt32 = 16
    var size: UInt64 = 0
    var cryptMethod: UInt32 = 0
    var l1Size: UInt32 = 0
    var l1TableOffset: UInt64 = 0
    var refcountTableOffset: UInt64 = 0
    var refcountTableClusters: UInt32 = 0
    var nbSnapshots: UInt32 = 0
    var snapshotsOffset: UInt64 = 0
    var incompatibleFeatures: UInt64 = 0
    var compatibleFeatures: UInt64 = 0
    var autoclearFeatures: UInt64 = 0
    var refcountOrder: UInt32 = UInt32(QCOW2Format.refcountOrder)
    var headerLength: UInt32 = UInt32(QCOW2Format.headerLength)
    var compressionType: UInt8 = 0

    var clusterSize: Int { 1 << Int(clusterBits) }

    /// The header cluster: fields, then an empty extension list (the end marker).
    func encoded(clusterSize: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: clusterSize)
        bytes.storeBE(QCOW2Format.magic, at: 0)
        bytes.storeBE(version, at: 4)
        bytes.storeBE(backingFileOffset, at: 8)
        bytes.storeBE(backingFileSize, at: 16)
        bytes.storeBE(clusterBits, at: 20)
        bytes.storeBE(size, at: 24)
        bytes.storeBE(cryptMethod, at: 32)
        bytes.storeBE(l1Size, at: 36)
        bytes.storeBE(l1TableOffset, at: 40)
        bytes.storeBE(refcountTableOffset, at: 48)
        bytes.storeBE(refcountTableClusters, at: 56)
        bytes.storeBE(nbSnapshots, at: 60)
        bytes.storeBE(snapshotsOffset, at: 64)
        bytes.storeBE(incompatibleFeatures, at: 72)
        bytes.storeBE(compatibleFeatures, at: 80)
        bytes.storeBE(autoclearFeatures, at: 88)
        bytes.storeBE(refcountOrder, at: 96)
        bytes.storeBE(headerLength, at: 100)
        bytes[104] = compressionType
        // Header extension area: the end-of-extensions marker (type 0, length 0) is already
        // there as zero bytes at `headerLength`.
        return bytes
    }
}

extension Array where Element == UInt8 {
    mutating func storeBE(_ value: UInt64, at offset: Int) {
        for index in 0..<8 { self[offset + index] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(index))) }
    }

    mutating func storeBE(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { self[offset + index] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(index))) }
    }

    mutating func storeBE(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    func loadBE64(at offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value = value << 8 | UInt64(self[offset + index]) }
        return value
    }

    func loadBE32(at offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value = value << 8 | UInt32(self[offset + index]) }
        return value
    }
}

/// Hexadecimal for offsets in messages.
func hex<T: BinaryInteger>(_ value: T) -> String {
    "0x" + String(value, radix: 16)
}
