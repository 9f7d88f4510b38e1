import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where one virtual cluster's data is.
package enum QCOW2ClusterMapping: Equatable, Sendable {
    /// No data: reads as zeros (no backing files here).
    case unallocated
    /// Marked as reading zeros (v3 zero flag).
    case zero
    /// Stored as it is at this host offset.
    case data(hostOffset: UInt64)
    /// Compressed, starting at this byte offset and spanning at most `maximumSize` bytes.
    case compressed(hostOffset: UInt64, maximumSize: Int)
}

/// What `QCOW2Reader.convert(toRaw:)` wrote.
package struct QCOW2RawSummary: Sendable, Equatable {
    /// The raw file or device written.
    package var path: String
    /// Size of the disk written.
    package var virtualSize: Int64
    /// Bytes written (data); the rest of the disk was left as holes or zeroed.
    package var bytesWritten: Int64
    /// Wall-clock duration.
    package var seconds: Double
}

/// The bytes of an image: a file read with pread, or an array (tests, fuzzing). Reading is
/// safe from several threads at once.
private enum ImageSource: Sendable {
    case file(ImageFile)
    case memory([UInt8])

    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws -> Int {
        switch self {
        case .file(let file):
            return try file.read(into: buffer, count: count, at: offset)
        case .memory(let bytes):
            guard offset < Int64(bytes.count), count > 0 else { return 0 }
            let available = min(count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress { buffer.copyMemory(from: base + Int(offset), byteCount: available) }
            }
            return available
        }
    }

    func readBytes(count: Int, at offset: Int64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return try read(into: base, count: count, at: offset)
        }
        bytes.removeSubrange(got...)
        return bytes
    }
}

/// Reads QCOW2 images (versions 2 and 3): header validation, L1/L2 lookup, uncompressed,
/// compressed (zlib, zstd), zero and unallocated clusters. Malformed images throw
/// `QCOW2Error`s that name the field or offset at fault; every table and buffer the reader
/// allocates is bounded by the file size and QEMU's own limits. Not thread-safe.
package final class QCOW2Reader {
    /// The image file (nil for an image read from memory).
    package let path: String?
    /// Size of the virtual disk in bytes.
    package let virtualSize: Int64
    /// Cluster size in bytes.
    package let clusterSize: Int
    /// Compression type of the compressed clusters (zlib also for images without any).
    package let compression: QCOW2Compression
    /// Format version: 2 or 3.
    package let version: Int
    /// Size of the image file.
    package let fileSize: Int64

    let header: QCOW2Header
    private let source: ImageSource
    private let clusterBits: Int
    private let l2Entries: Int
    private let l1: [UInt64]
    private var l2Cache: [UInt64: [UInt64]] = [:]
    private var l2CacheOrder: [UInt64] = []
    private static let l2CacheLimit = 32
    private var decompressor: ClusterDecompressor?
    private let compressedBuffer: AlignedBuffer
    private let clusterBuffer: AlignedBuffer
    /// The compressed cluster (offset, size) that `clusterBuffer` holds, decompressed.
    private var cachedCompressed: (offset: UInt64, size: Int)?

    /// Opens and validates the image at `path`.
    package convenience init(path: String) throws {
        let file = try ImageFile(path: path, mode: .readOnly)
        try self.init(source: .file(file), fileSize: try file.size(), path: path)
    }

    /// Validates an image held in memory.
    package convenience init(bytes: [UInt8]) throws {
        try self.init(source: .memory(bytes), fileSize: Int64(bytes.count), path: nil)
    }

    private init(source: ImageSource, fileSize: Int64, path: String?) throws {
        self.source = source
        self.fileSize = fileSize
        self.path = path
        do {
            let header = try QCOW2Reader.readHeader(source: source, fileSize: fileSize)
            self.header = header
            clusterBits = Int(header.clusterBits)
            clusterSize = 1 << clusterBits
            l2Entries = clusterSize / 8
            // QEMU counts whole 512-byte sectors: a size that is not a multiple of 512 is
            // rounded down (`total_sectors = size / 512`), and so is it here.
            virtualSize = Int64(header.size) / Int64(QCOW2Format.sectorSize) * Int64(QCOW2Format.sectorSize)
            version = Int(header.version)
            compression = header.compressionType == 1 ? .zstd : .zlib
            let l1Bytes = try source.readBytes(count: Int(header.l1Size) * 8, at: Int64(header.l1TableOffset))
            l1 = (0..<Int(header.l1Size)).map { l1Bytes.loadBE64(at: $0 * 8) }
            // A compressed cluster spans at most 2^(cluster_bits - 8) sectors.
            compressedBuffer = AlignedBuffer(count: (1 << (clusterBits - 8)) * QCOW2Format.sectorSize)
            clusterBuffer = AlignedBuffer(count: clusterSize)
        } catch let error as QCOW2Error {
            throw error.with(path: path)
        }
    }

    // MARK: Header

    private static func readHeader(source: ImageSource, fileSize: Int64) throws -> QCOW2Header {
        let prefix = try source.readBytes(count: QCOW2Format.headerLength, at: 0)
        guard prefix.count >= 8 else {
            throw QCOW2Error(.truncated, field: "header", offset: 0,
                             "the file is \(fileSize) bytes long, too short for a QCOW2 header")
        }
        let magic = prefix.loadBE32(at: 0)
        guard magic == QCOW2Format.magic else {
            throw QCOW2Error(.badMagic, field: "magic", offset: 0,
                             "not a QCOW2 image (magic \(hex(magic)), expected 0x514649fb \"QFI\\xfb\")")
        }
        var header = QCOW2Header()
        header.version = prefix.loadBE32(at: 4)
        guard header.version == 2 || header.version == 3 else {
            throw QCOW2Error(.unsupported, field: "version", offset: 4,
                             "QCOW2 version \(header.version) is not supported (only 2 and 3)")
        }
        let minimum = header.version == 2 ? QCOW2Format.v2HeaderLength : QCOW2Format.v3MinimumHeaderLength
        guard prefix.count >= minimum else {
            throw QCOW2Error(.truncated, field: "header", offset: 0,
                             "the file is \(fileSize) bytes long; a version \(header.version) header needs \(minimum)")
        }
        header.backingFileOffset = prefix.loadBE64(at: 8)
        header.backingFileSize = prefix.loadBE32(at: 16)
        header.clusterBits = prefix.loadBE32(at: 20)
        header.size = prefix.loadBE64(at: 24)
        header.cryptMethod = prefix.loadBE32(at: 32)
        header.l1Size = prefix.loadBE32(at: 36)
        header.l1TableOffset = prefix.loadBE64(at: 40)
        header.refcountTableOffset = prefix.loadBE64(at: 48)
        header.refcountTableClusters = prefix.loadBE32(at: 56)
        header.nbSnapshots = prefix.loadBE32(at: 60)
        header.snapshotsOffset = prefix.loadBE64(at: 64)
        if header.version == 3 {
            header.incompatibleFeatures = prefix.loadBE64(at: 72)
            header.compatibleFeatures = prefix.loadBE64(at: 80)
            header.autoclearFeatures = prefix.loadBE64(at: 88)
            header.refcountOrder = prefix.loadBE32(at: 96)
            header.headerLength = prefix.loadBE32(at: 100)
        } else {
            header.incompatibleFeatures = 0
            header.refcountOrder = 4
            header.headerLength = UInt32(QCOW2Format.v2HeaderLength)
        }

        guard (UInt32(QCOW2Format.minClusterBits)...UInt32(QCOW2Format.maxClusterBits)).contains(header.clusterBits) else {
            throw QCOW2Error(.invalidField, field: "cluster_bits", offset: 20,
                             "cluster_bits is \(header.clusterBits); QCOW2 clusters are 2^9 to 2^21 bytes")
        }
        let clusterSize = UInt64(1) << UInt64(header.clusterBits)
        if header.version == 3 {
            guard header.headerLength >= UInt32(QCOW2Format.v3MinimumHeaderLength),
                  header.headerLength % 8 == 0, UInt64(header.headerLength) <= clusterSize else {
                throw QCOW2Error(.invalidField, field: "header_length", offset: 100,
                                 "header_length is \(header.headerLength); it must be a multiple of 8 from 104 to the cluster size")
            }
            if header.headerLength > 104, prefix.count > 104 {
                header.compressionType = prefix[104]
            }
        }
        guard header.cryptMethod == 0 else {
            throw QCOW2Error(.unsupported, field: "crypt_method", offset: 32,
                             "the image is encrypted (crypt_method \(header.cryptMethod)); encrypted images are not supported")
        }
        guard header.backingFileOffset == 0 else {
            throw QCOW2Error(.unsupported, field: "backing_file_offset", offset: 8,
                             "the image has a backing file; images with backing files are not supported (flatten it with qemu-img convert)")
        }

        // Features.
        let known = QCOW2Format.incompatibleDirty | QCOW2Format.incompatibleCorrupt | QCOW2Format.incompatibleExternalData
            | QCOW2Format.incompatibleCompressionType | QCOW2Format.incompatibleExtendedL2
        let incompatible = header.incompatibleFeatures
        if incompatible & ~known != 0 {
            throw QCOW2Error(.unsupported, field: "incompatible_features", offset: 72,
                             "unknown incompatible feature bits \(hex(incompatible & ~known))")
        }
        if incompatible & QCOW2Format.incompatibleCorrupt != 0 {
            throw QCOW2Error(.invalidField, field: "incompatible_features", offset: 72,
                             "the image is marked corrupt; repair it with qemu-img check -r all")
        }
        if incompatible & QCOW2Format.incompatibleExternalData != 0 {
            throw QCOW2Error(.unsupported, field: "incompatible_features", offset: 72, "images with an external data file are not supported")
        }
        if incompatible & QCOW2Format.incompatibleExtendedL2 != 0 {
            throw QCOW2Error(.unsupported, field: "incompatible_features", offset: 72, "images with extended L2 entries (subclusters) are not supported")
        }
        let typeBit = incompatible & QCOW2Format.incompatibleCompressionType != 0
        switch header.compressionType {
        case 0:
            break
        case 1:
            guard typeBit else {
                throw QCOW2Error(.invalidField, field: "compression_type", offset: 104,
                                 "compression_type is zstd but the compression type feature bit (incompatible bit 3) is not set")
            }
        default:
            throw QCOW2Error(.unsupported, field: "compression_type", offset: 104,
                             "unknown compression_type \(header.compressionType) (0 is zlib, 1 is zstd)")
        }
        guard header.refcountOrder <= 6 else {
            throw QCOW2Error(.invalidField, field: "refcount_order", offset: 96,
                             "refcount_order is \(header.refcountOrder); at most 6 (64-bit counts) is allowed")
        }

        // Tables.
        guard header.size <= UInt64(Int64.max) else {
            throw QCOW2Error(.invalidField, field: "size", offset: 24, "the virtual size \(header.size) is too large")
        }
        let l2Entries = clusterSize / 8
        let clusters = header.size / clusterSize + (header.size % clusterSize == 0 ? 0 : 1)
        let l1Needed = clusters / l2Entries + (clusters % l2Entries == 0 ? 0 : 1)
        guard UInt64(header.l1Size) * 8 <= UInt64(QCOW2Format.maxL1Bytes) else {
            throw QCOW2Error(.limitExceeded, field: "l1_size", offset: 36,
                             "l1_size is \(header.l1Size) entries; QEMU accepts at most \(QCOW2Format.maxL1Bytes / 8)")
        }
        guard UInt64(header.l1Size) >= l1Needed else {
            throw QCOW2Error(.invalidField, field: "l1_size", offset: 36,
                             "l1_size is \(header.l1Size) but a virtual size of \(header.size) bytes needs \(l1Needed) L1 entries")
        }
        try checkTable("l1_table_offset", fieldOffset: 40, offset: header.l1TableOffset,
                       length: UInt64(header.l1Size) * 8, clusterSize: clusterSize, fileSize: fileSize)
        guard UInt64(header.refcountTableClusters) * clusterSize <= UInt64(QCOW2Format.maxRefcountTableBytes) else {
            throw QCOW2Error(.limitExceeded, field: "refcount_table_clusters", offset: 56,
                             "refcount_table_clusters is \(header.refcountTableClusters); QEMU accepts at most \(QCOW2Format.maxRefcountTableBytes) bytes of refcount table")
        }
        try checkTable("refcount_table_offset", fieldOffset: 48, offset: header.refcountTableOffset,
                       length: UInt64(header.refcountTableClusters) * clusterSize, clusterSize: clusterSize, fileSize: fileSize)
        if header.nbSnapshots > 0 {
            guard header.nbSnapshots <= 65536 else {
                throw QCOW2Error(.limitExceeded, field: "nb_snapshots", offset: 60,
                                 "nb_snapshots is \(header.nbSnapshots); QEMU accepts at most 65536")
            }
            try checkTable("snapshots_offset", fieldOffset: 64, offset: header.snapshotsOffset,
                           length: 1, clusterSize: clusterSize, fileSize: fileSize)
        }

        // Header extensions: a bounded walk through the rest of the header cluster.
        if header.version == 3 {
            let areaEnd = Int(min(Int64(clusterSize), fileSize))
            let area = try source.readBytes(count: max(0, areaEnd - Int(header.headerLength)), at: Int64(header.headerLength))
            var position = 0
            while position + 8 <= area.count {
                let type = area.loadBE32(at: position)
                let length = Int(area.loadBE32(at: position + 4))
                if type == QCOW2Format.extensionEnd { break }
                let fileOffset = UInt64(Int(header.headerLength) + position)
                guard length <= area.count - position - 8 else {
                    throw QCOW2Error(.invalidField, field: "header extension \(hex(type))", offset: fileOffset,
                                     "header extension \(hex(type)) at \(hex(fileOffset)) is \(length) bytes long and runs past the header cluster")
                }
                if type == QCOW2Format.extensionDataFile {
                    throw QCOW2Error(.unsupported, field: "header extension \(hex(type))", offset: fileOffset,
                                     "images with an external data file are not supported")
                }
                position += 8 + (length + 7) / 8 * 8
            }
        }
        return header
    }

    /// A table must start on a cluster boundary (but not at the header) and lie in the file.
    private static func checkTable(_ field: String, fieldOffset: UInt64, offset: UInt64, length: UInt64,
                                   clusterSize: UInt64, fileSize: Int64) throws {
        guard offset % clusterSize == 0, offset != 0 || length == 0 else {
            throw QCOW2Error(.invalidField, field: field, offset: fieldOffset,
                             "\(field) is \(hex(offset)), which is not a cluster boundary after the header")
        }
        guard offset < UInt64(Int64.max), length == 0 || offset + length <= UInt64(fileSize) else {
            throw QCOW2Error(offset >= UInt64(fileSize) ? .outOfBounds : .truncated, field: field, offset: fieldOffset,
                             "\(field) points at \(hex(offset)) (\(length) bytes), past the end of the file (\(fileSize) bytes)")
        }
    }

    // MARK: Lookup

    /// The L2 table for L1 index `l1Index`, nil when none is allocated.
    private func l2Table(_ l1Index: Int) throws -> [UInt64]? {
        let entry = l1[l1Index]
        let fileOffset = header.l1TableOffset + UInt64(l1Index) * 8
        if entry & QCOW2Format.l1ReservedMask != 0 {
            throw QCOW2Error(.invalidField, field: "L1 entry \(l1Index)", offset: fileOffset,
                             "L1 entry \(l1Index) (\(hex(entry))) at \(hex(fileOffset)) has reserved bits set")
        }
        let tableOffset = entry & QCOW2Format.offsetMask
        if tableOffset == 0 { return nil }
        if let cached = l2Cache[tableOffset] { return cached }
        guard tableOffset % UInt64(clusterSize) == 0 else {
            throw QCOW2Error(.invalidField, field: "L1 entry \(l1Index)", offset: fileOffset,
                             "L1 entry \(l1Index) points at an L2 table at \(hex(tableOffset)), which is not cluster-aligned")
        }
        guard tableOffset + UInt64(clusterSize) <= UInt64(fileSize) else {
            throw QCOW2Error(tableOffset >= UInt64(fileSize) ? .outOfBounds : .truncated, field: "L1 entry \(l1Index)", offset: fileOffset,
                             "L1 entry \(l1Index) points at an L2 table at \(hex(tableOffset)), past the end of the file (\(fileSize) bytes)")
        }
        let bytes = try source.readBytes(count: clusterSize, at: Int64(tableOffset))
        guard bytes.count == clusterSize else {
            throw QCOW2Error(.truncated, field: "L1 entry \(l1Index)", offset: tableOffset,
                             "the L2 table at \(hex(tableOffset)) is cut short by the end of the file")
        }
        let table = (0..<l2Entries).map { bytes.loadBE64(at: $0 * 8) }
        if l2CacheOrder.count >= QCOW2Reader.l2CacheLimit {
            l2Cache[l2CacheOrder.removeFirst()] = nil
        }
        l2Cache[tableOffset] = table
        l2CacheOrder.append(tableOffset)
        return table
    }

    /// Where virtual cluster `index` is stored.
    package func mapping(ofCluster index: Int64) throws -> QCOW2ClusterMapping {
        guard index >= 0, index < (virtualSize + Int64(clusterSize) - 1) / Int64(clusterSize) else {
            throw QCOW2Error(.invalidArgument, "cluster \(index) is outside the virtual disk", path: path)
        }
        do {
            let l1Index = Int(index / Int64(l2Entries))
            guard let table = try l2Table(l1Index) else { return .unallocated }
            let l2Index = Int(index % Int64(l2Entries))
            let entryOffset = (l1[l1Index] & QCOW2Format.offsetMask) + UInt64(l2Index) * 8
            return try decode(table[l2Index], at: entryOffset)
        } catch let error as QCOW2Error {
            throw error.with(path: path)
        }
    }

    private func decode(_ entry: UInt64, at entryOffset: UInt64) throws -> QCOW2ClusterMapping {
        let field = "L2 entry"
        if entry & QCOW2Format.compressedFlag != 0 {
            if entry & QCOW2Format.copiedFlag != 0 {
                throw QCOW2Error(.invalidField, field: field, offset: entryOffset,
                                 "the L2 entry at \(hex(entryOffset)) (\(hex(entry))) is marked both compressed and COPIED")
            }
            let shift = UInt64(QCOW2Format.compressedSizeShift(clusterBits: clusterBits))
            let host = entry & ((UInt64(1) << shift) - 1)
            let sectors = ((entry >> shift) & ((UInt64(1) << UInt64(clusterBits - 8)) - 1)) + 1
            let size = Int(sectors) * QCOW2Format.sectorSize - Int(host % UInt64(QCOW2Format.sectorSize))
            guard host < UInt64(fileSize), host != 0 else {
                throw QCOW2Error(.outOfBounds, field: field, offset: entryOffset,
                                 "the compressed cluster of the L2 entry at \(hex(entryOffset)) starts at \(hex(host)), outside the data area of the file (\(fileSize) bytes)")
            }
            return .compressed(hostOffset: host, maximumSize: size)
        }
        if entry & QCOW2Format.l2ReservedMask != 0 || (version == 2 && entry & QCOW2Format.zeroFlag != 0) {
            throw QCOW2Error(.invalidField, field: field, offset: entryOffset,
                             "the L2 entry at \(hex(entryOffset)) (\(hex(entry))) has reserved bits set")
        }
        if entry & QCOW2Format.zeroFlag != 0 { return .zero }
        let host = entry & QCOW2Format.offsetMask
        if host == 0 { return .unallocated }
        guard host % UInt64(clusterSize) == 0 else {
            throw QCOW2Error(.invalidField, field: field, offset: entryOffset,
                             "the L2 entry at \(hex(entryOffset)) points at \(hex(host)), which is not cluster-aligned")
        }
        guard host < UInt64(fileSize) else {
            throw QCOW2Error(.outOfBounds, field: field, offset: entryOffset,
                             "the L2 entry at \(hex(entryOffset)) points at \(hex(host)), past the end of the file (\(fileSize) bytes)")
        }
        return .data(hostOffset: host)
    }

    // MARK: Reading

    /// Decompresses the cluster of a compressed mapping into `clusterBuffer`.
    private func loadCompressed(hostOffset: UInt64, maximumSize: Int, virtualCluster: Int64) throws {
        if let cached = cachedCompressed, cached.offset == hostOffset, cached.size == maximumSize { return }
        cachedCompressed = nil
        let available = min(maximumSize, Int(fileSize - Int64(hostOffset)), compressedBuffer.count)
        let got = try source.read(into: compressedBuffer.base, count: available, at: Int64(hostOffset))
        if decompressor == nil {
            decompressor = try ClusterDecompressor(compression: compression, clusterBits: clusterBits)
        }
        guard let decompressor else { return }
        if let problem = decompressor.decompress(compressedBuffer.bytes(at: 0, count: got),
                                                 into: clusterBuffer.mutableBytes(at: 0, count: clusterSize)) {
            throw QCOW2Error(.corruptData, offset: hostOffset,
                             "the \(compression) cluster at \(hex(hostOffset)) (virtual offset \(hex(virtualCluster * Int64(clusterSize)))) is corrupt: \(problem)",
                             path: path)
        }
        cachedCompressed = (hostOffset, maximumSize)
    }

    /// Reads `count` bytes of the virtual disk at `offset` into `buffer`.
    package func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws {
        let count = buffer.count
        guard offset >= 0, count >= 0, offset <= virtualSize, Int64(count) <= virtualSize - offset else {
            throw QCOW2Error(.invalidArgument, "cannot read \(count) bytes at \(offset) from a virtual disk of \(virtualSize) bytes", path: path)
        }
        guard let base = buffer.baseAddress else { return }
        var done = 0
        while done < count {
            let position = offset + Int64(done)
            let virtualCluster = position / Int64(clusterSize)
            let within = Int(position % Int64(clusterSize))
            let length = min(clusterSize - within, count - done)
            let target = base + done
            switch try mapping(ofCluster: virtualCluster) {
            case .unallocated, .zero:
                target.initializeMemory(as: UInt8.self, repeating: 0, count: length)
            case .data(let host):
                let got = try source.read(into: target, count: length, at: Int64(host) + Int64(within))
                // QEMU reads past the end of the file as zeros too.
                if got < length { (target + got).initializeMemory(as: UInt8.self, repeating: 0, count: length - got) }
            case .compressed(let host, let size):
                try loadCompressed(hostOffset: host, maximumSize: size, virtualCluster: virtualCluster)
                target.copyMemory(from: clusterBuffer.base + within, byteCount: length)
            }
            done += length
        }
    }

    /// Reads `count` bytes of the virtual disk at `offset`.
    package func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard count >= 0, Int64(count) <= virtualSize else {
            throw QCOW2Error(.invalidArgument, "cannot read \(count) bytes from a virtual disk of \(virtualSize) bytes", path: path)
        }
        var bytes = [UInt8](repeating: 0, count: count)
        try bytes.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        return bytes
    }

    // MARK: Conversion

    /// Writes the virtual disk to `destination`: a regular file (written under a temporary
    /// name, sparse: zero and unallocated clusters, and 4 KiB blocks of zeros in allocated
    /// ones, stay holes) or an existing block device
    /// (written in place, zero ranges written as zeros). Clusters are read and decompressed
    /// on `threads` threads (nil: one per core) and written in order.
    @discardableResult
    package func convert(toRaw destination: String, progress: any ProgressReporter = SilentProgress(),
                        durable: Bool = true, threads: Int? = nil) throws -> QCOW2RawSummary {
        let stopwatch = Stopwatch()
        let type = fileType(destination)
        let isDevice = type == S_IFBLK
        if let type, type != S_IFREG, type != S_IFBLK {
            throw QCOW2Error(.invalidArgument, "\(destination) exists and is neither a regular file nor a block device")
        }
        let temporary: TemporaryOutput?
        let output: ImageFile
        if isDevice {
            output = try ImageFile(path: destination, mode: .writeOnly)
            let capacity = try output.size()
            guard capacity >= virtualSize else {
                throw UserError("\(destination) holds \(ByteCount.format(capacity)), less than the \(ByteCount.format(virtualSize)) virtual disk of \(path ?? "the image")")
            }
            temporary = nil
        } else {
            let file = try TemporaryOutput(finalPath: destination)
            try file.handle.truncate(to: virtualSize)
            output = file.handle
            temporary = file
        }

        progress.begin("Writing \(destination): raw disk from \(path ?? "QCOW2 image")")
        let written: Int64
        do {
            written = try streamClusters(to: CoalescingWriter(handle: output, maximumGap: 0), zeroRanges: isDevice,
                                         threads: threads ?? ProcessInfo.processInfo.activeProcessorCount, progress: progress)
        } catch let error as QCOW2Error {
            throw error.with(path: path)
        }
        if let temporary {
            try temporary.commit(durable: durable)
        } else {
            if durable { try output.sync() }
            try output.close()
        }
        progress.end("Writing \(destination)", summary: "\(ByteCount.format(virtualSize)) disk in \(stopwatch.formatted)")
        RastLog.logger.debug("qcow2: \(path ?? "image") -> \(destination): \(written) data bytes in \(stopwatch.formatted)")
        return QCOW2RawSummary(path: destination, virtualSize: virtualSize, bytesWritten: written, seconds: stopwatch.elapsed)
    }

    /// Walks the tables on this thread, has workers read and decompress the clusters, and
    /// writes them in order. Returns the data bytes written.
    private func streamClusters(to writer: CoalescingWriter, zeroRanges: Bool, threads: Int,
                                progress: any ProgressReporter) throws -> Int64 {
        let slotCapacity = max(clusterSize, 4 << 20)
        let pipeline = WorkerPool(slots: (0..<max(4, threads * 3)).map { _ in ReadSlot(capacity: slotCapacity) },
                                  work: "decompression")
        let zeros = AlignedBuffer(count: min(clusterSize, 1 << 20), zeroed: true)
        let cluster = Int64(clusterSize)
        let totalClusters = (virtualSize + cluster - 1) / cluster
        var written: Int64 = 0
        var items: [ReadItem] = []
        var used = 0

        func writeZeros(at offset: Int64, count: Int) throws {
            var done = 0
            while done < count {
                let piece = min(zeros.count, count - done)
                try writer.write(zeros.base, count: piece, at: offset + Int64(done))
                done += piece
            }
        }
        func consumeOne() throws {
            let index = pipeline.consumedCount
            let slot = try pipeline.waitForUnit(index)
            for item in slot.items {
                let bytes = slot.buffer.base + item.bufferOffset
                switch item.source {
                case .zeros:
                    try writeZeros(at: item.virtualOffset, count: item.length)
                case .data, .compressed:
                    if zeroRanges {
                        try writer.write(bytes, count: item.length, at: item.virtualOffset)
                        written += Int64(item.length)
                    } else {
                        // Zeros stay holes in a new file, also in allocated clusters (images
                        // made with preallocation=metadata, falloc or full hold nothing else).
                        for run in ZeroBlocks.dataRuns(bytes, count: item.length, start: item.virtualOffset) {
                            try writer.write(bytes + run.lowerBound, count: run.count, at: item.virtualOffset + Int64(run.lowerBound))
                            written += Int64(run.count)
                        }
                    }
                }
            }
            pipeline.release(index)
        }
        func submitPending() throws {
            guard !items.isEmpty else { return }
            if pipeline.submittedCount - pipeline.consumedCount >= pipeline.slots.count { try consumeOne() }
            pipeline.slotForNextUnit().items = items
            pipeline.submit()
            items = []
            used = 0
        }
        func add(_ source: ReadItem.Source, virtual: Int64, length: Int, reserve: Int) throws {
            if used + reserve > slotCapacity { try submitPending() }
            // Extend the previous run of uncompressed clusters when this one follows it on disk.
            if case .data(let host) = source, let last = items.last, case .data(let lastHost) = last.source,
               lastHost + UInt64(last.length) == host, last.virtualOffset + Int64(last.length) == virtual,
               last.length % clusterSize == 0 {
                items[items.count - 1] = ReadItem(source: last.source, virtualOffset: last.virtualOffset,
                                                  length: last.length + length, bufferOffset: last.bufferOffset)
            } else {
                items.append(ReadItem(source: source, virtualOffset: virtual, length: length, bufferOffset: used))
            }
            used += reserve
        }
        func addZeros(virtual: Int64, length: Int) throws {
            guard zeroRanges, length > 0 else { return }
            if let last = items.last, case .zeros = last.source, last.virtualOffset + Int64(last.length) == virtual {
                items[items.count - 1] = ReadItem(source: .zeros, virtualOffset: last.virtualOffset,
                                                  length: last.length + length, bufferOffset: 0)
            } else {
                items.append(ReadItem(source: .zeros, virtualOffset: virtual, length: length, bufferOffset: 0))
            }
        }

        let (source, fileSize, clusterSize, clusterBits, compression) = (source, fileSize, clusterSize, clusterBits, compression)
        pipeline.start(workers: threads, threadName: "qcow2-decompress") {
            let decompressor = try ClusterDecompressor(compression: compression, clusterBits: clusterBits)
            let compressed = AlignedBuffer(count: (1 << (clusterBits - 8)) * QCOW2Format.sectorSize)
            return { _, slot in
                try slot.fill(fileSize: fileSize, clusterSize: clusterSize, compression: compression, decompressor: decompressor,
                              compressed: compressed) { try source.read(into: $0, count: $1, at: $2) }
            }
        }
        defer { pipeline.stop() }
        var index: Int64 = 0
        while index < totalClusters {
            if index % 256 == 0 {
                try checkCancelled()
                progress.update(ProgressUpdate(task: "raw", completed: min(index * cluster, virtualSize), total: virtualSize, unit: .bytes))
            }
            let l1Index = Int(index / Int64(l2Entries))
            let tableEnd = min(totalClusters, Int64(l1Index + 1) * Int64(l2Entries))
            if try l2Table(l1Index) == nil {
                try addZeros(virtual: index * cluster, length: Int(min(tableEnd * cluster, virtualSize) - index * cluster))
                index = tableEnd
                continue
            }
            let virtual = index * cluster
            let length = Int(min(cluster, virtualSize - virtual))
            switch try mapping(ofCluster: index) {
            case .unallocated, .zero:
                try addZeros(virtual: virtual, length: length)
            case .data(let host):
                try add(.data(hostOffset: host), virtual: virtual, length: length, reserve: length)
            case .compressed(let host, let size):
                try add(.compressed(hostOffset: host, maximumSize: size), virtual: virtual, length: length, reserve: clusterSize)
            }
            index += 1
        }
        try submitPending()
        while pipeline.consumedCount < pipeline.submittedCount { try consumeOne() }
        try writer.flush()
        progress.update(ProgressUpdate(task: "raw", completed: virtualSize, total: virtualSize, unit: .bytes))
        return written
    }

    /// True when the file at `path` starts with the QCOW2 magic number.
    package static func isQCOW2(path: String) -> Bool {
        guard let file = try? ImageFile(path: path, mode: .readOnly) else { return false }
        var magic = [UInt8](repeating: 0, count: 4)
        let got = (try? magic.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return try file.read(into: base, count: 4, at: 0)
        }) ?? 0
        return got == 4 && magic.loadBE32(at: 0) == QCOW2Format.magic
    }
}
