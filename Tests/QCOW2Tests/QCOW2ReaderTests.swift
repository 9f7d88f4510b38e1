import Foundation
@testable import QCOW2
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A raw image with text, random data, explicit zeros and holes.
private func makeSource(_ path: String, size: Int64 = 20 << 20) throws {
    try makeRawImage(path, size: size, writes: [
        (0, TestData.text(200_000, seed: 71)),
        (1 << 20, TestData.mixed(1 << 20, seed: 72)),
        (3 << 20, [UInt8](repeating: 0, count: 1 << 20)),
        ((6 << 20) + 777, TestData.random(150_000, seed: 73)),
        (size - 5000, TestData.text(5000, seed: 74)),
    ])
}

/// Our own small zlib image with 4 KiB clusters, in memory, for the malformed-image tests.
private func smallImage(_ scratch: Scratch, compression: QCOW2Compression = .zlib) throws -> [UInt8] {
    let raw = scratch.appending("small-\(compression).raw")
    try makeRawImage(raw, size: 256 << 10, writes: [(0, TestData.text(40_000)), (100_000, TestData.random(9000, seed: 5))])
    let qcow2 = scratch.appending("small-\(compression).qcow2")
    try QCOW2Writer.convert(raw: raw, to: qcow2, options: QCOW2Options(compression: compression, clusterSize: 4096, durable: false))
    return try Files.read(qcow2)
}

private extension Array where Element == UInt8 {
    func settingBE64(_ value: UInt64, at offset: Int) -> [UInt8] {
        var copy = self
        copy.storeBE(value, at: offset)
        return copy
    }

    func settingBE32(_ value: UInt32, at offset: Int) -> [UInt8] {
        var copy = self
        copy.storeBE(value, at: offset)
        return copy
    }
}

/// Opens `bytes` and reads the whole virtual disk; returns the error.
private func failure(_ bytes: [UInt8]) -> QCOW2Error? {
    do {
        let reader = try QCOW2Reader(bytes: bytes)
        _ = try reader.read(at: 0, count: Int(reader.virtualSize))
        return nil
    } catch let error as QCOW2Error {
        return error
    } catch {
        Issue.record("expected a QCOW2Error, got \(type(of: error)): \(error)")
        return nil
    }
}

/// A damaged image: what was damaged, its bytes, and the error that reading it must give
/// (`field` nil: an error that names no field).
private typealias MalformedImage = (name: String, bytes: [UInt8], kind: QCOW2Error.Kind, field: String?)

/// Every image fails to read with its kind of error, naming its field.
private func expectFailures(_ cases: [MalformedImage], sourceLocation: SourceLocation = #_sourceLocation) {
    for (name, bytes, kind, field) in cases {
        let error = failure(bytes)
        #expect(error?.kind == kind, "\(name): \(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.field == field, "\(name): \(String(describing: error))", sourceLocation: sourceLocation)
    }
}

@Suite("QCOW2 reader")
struct QCOW2ReaderTests {
    @Test("images written by qemu-img convert read back byte-identical",
          arguments: QCOW2Compression.allCases, [4096, 65536])
    func qemuImages(compression: QCOW2Compression, clusterSize: Int) throws {
        try Require.programs("qemu-img", "cmp")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("source.raw")
        try makeSource(raw)
        let qcow2 = scratch.appending("qemu.qcow2")
        try QEMU.convert(raw: raw, to: qcow2, compression: compression, extraOptions: ["cluster_size=\(clusterSize)"])

        let reader = try QCOW2Reader(path: qcow2)
        #expect(reader.version == 3)
        #expect(reader.clusterSize == clusterSize)
        #expect(reader.compression == (compression == .zstd ? .zstd : .zlib))
        #expect(reader.virtualSize == 20 << 20)
        if compression != .none, case .compressed = try reader.mapping(ofCluster: 0) {} else if compression != .none {
            Issue.record("cluster 0 (text) should be compressed")
        }
        #expect(try reader.mapping(ofCluster: Int64((10 << 20) / clusterSize)) == .unallocated)

        let back = scratch.appending("back.raw")
        let summary = try reader.convert(toRaw: back, durable: false)
        try Command("cmp", [raw, back]).run()
        #expect(summary.virtualSize == 20 << 20)
        // Sparse output: the holes of the disk are holes in the file.
        var st = stat()
        stat(back, &st)
        #expect(Int64(st.st_blocks) * 512 < 8 << 20)

        var random = SeededRandom(seed: UInt64(clusterSize) &+ 7)
        for _ in 0..<40 {
            let offset = Int64(random.next(below: (20 << 20) - 300_000))
            let count = random.next(below: 300_000)
            #expect(try reader.read(at: offset, count: count) == (try readFile(raw, offset: offset, count: count)))
        }
    }

    @Test("zero-flag clusters, version 2 images and qemu-io writes")
    func zeroClustersAndVersion2() throws {
        try Require.programs("qemu-img", "qemu-io", "cmp")
        let scratch = try Scratch("rast-qcow2")
        let image = scratch.appending("zero.qcow2")
        try Command("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", image, "8M"]).run()
        try Command("qemu-io", ["-c", "write -P 0xab 0 2M", "-c", "write -z 1M 512k", "-c", "write -P 0xcd 5M 70k", image]).run()
        let reader = try QCOW2Reader(path: image)
        #expect(try reader.mapping(ofCluster: 16) == .zero)
        if case .data = try reader.mapping(ofCluster: 0) {} else { Issue.record("cluster 0 should hold data") }
        #expect(try reader.mapping(ofCluster: 40) == .unallocated)
        var expected = [UInt8](repeating: 0, count: 8 << 20)
        for index in 0..<(2 << 20) { expected[index] = 0xAB }
        for index in (1 << 20)..<((1 << 20) + (512 << 10)) { expected[index] = 0 }
        for index in (5 << 20)..<((5 << 20) + (70 << 10)) { expected[index] = 0xCD }
        #expect(try reader.read(at: 0, count: 8 << 20) == expected)

        // The same disk as a version 2 image (no zero flag there; qemu-img writes zeros).
        let raw = scratch.appending("zero.raw")
        try reader.convert(toRaw: raw, durable: false)
        let v2 = scratch.appending("v2.qcow2")
        try Command("qemu-img", ["convert", "-c", "-O", "qcow2", "-o", "compat=0.10", raw, v2]).run()
        let old = try QCOW2Reader(path: v2)
        #expect(old.version == 2)
        let back = scratch.appending("v2.raw")
        try old.convert(toRaw: back, durable: false)
        try Command("cmp", [raw, back]).run()
    }

    /// Clusters that are allocated but hold zeros (qemu-img's preallocation modes) stay holes
    /// in the raw output, as `qemu-img convert` leaves them: a 256 MiB disk with 16 MiB of data
    /// allocates about 16 MiB, and reads back as the image (`qemu-img compare`).
    @Test("preallocated zero clusters stay holes in raw output", arguments: ["metadata", "falloc", "full"])
    func preallocatedImagesKeepHoles(preallocation: String) throws {
        try Require.programs("qemu-img", "qemu-io")
        let scratch = try Scratch("rast-qcow2")
        let image = scratch.appending("\(preallocation).qcow2")
        try Command("qemu-img", ["create", "-q", "-f", "qcow2", "-o", "preallocation=\(preallocation)", image, "256M"]).run()
        try Command("qemu-io", ["-c", "write -P 0xab 0 8M", "-c", "write -P 0xcd 100M 4M", "-c", "write -P 0x11 200M 4M", image]).run()
        if case .data = try QCOW2Reader(path: image).mapping(ofCluster: 1000) {} else {
            Issue.record("qemu-img's preallocation=\(preallocation) allocates the clusters that hold no data")
        }
        let raw = scratch.appending("\(preallocation).raw")
        let summary = try QCOW2Reader(path: image).convert(toRaw: raw, durable: false)
        try Command("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", image, raw]).run()
        #expect(try Files.size(raw) == 256 << 20)
        #expect(summary.bytesWritten == 16 << 20, "only the data is written")
        let allocated = try allocatedBytes(raw)
        #expect(allocated <= 18 << 20, "\(allocated) bytes allocated for 16 MiB of data")

        // The same through `rast-build convert`.
        let program = ProjectPaths.root + "/.build/debug/rast-build"
        try Require.file(program, hint: "swift build builds it")
        let cli = scratch.appending("\(preallocation)-cli.raw")
        try Command(program, ["convert", image, cli, "--no-sync"]).run()
        try Command("qemu-img", ["compare", "-f", "qcow2", "-F", "raw", image, cli]).run()
        let cliAllocated = try allocatedBytes(cli)
        #expect(cliAllocated <= 18 << 20, "rast-build convert: \(cliAllocated) bytes allocated")
    }

    /// QEMU counts a virtual disk in whole 512-byte sectors; so does the reader.
    @Test("a virtual size that is not a multiple of 512 is rounded down as QEMU does")
    func oddVirtualSizeIsRoundedDown() throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let image = scratch.appending("odd.qcow2")
        try Command("qemu-img", ["create", "-q", "-f", "qcow2", image, "1M"]).run()
        let bytes = try Files.read(image).settingBE64((1 << 20) + 100, at: 24)
        try Files.writeAtomically(image, bytes: bytes)
        let info = try Command("qemu-img", ["info", "--output=json", image]).output()
        #expect(info.contains("\"virtual-size\": 1048576"), "qemu-img reads 1 MiB: \(info)")
        let reader = try QCOW2Reader(path: image)
        #expect(reader.virtualSize == 1 << 20)
        let raw = scratch.appending("odd.raw")
        try reader.convert(toRaw: raw, durable: false)
        #expect(try Files.size(raw) == 1 << 20)
    }

    @Test("raw output onto a block device overwrites every byte")
    func blockDeviceOutput() throws {
        try Require.loopDevices()
        try Require.programs("cmp")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("source.raw")
        try makeSource(raw, size: 8 << 20)
        let qcow2 = scratch.appending("source.qcow2")
        try QCOW2Writer.convert(raw: raw, to: qcow2, options: QCOW2Options(compression: .zstd, durable: false))
        // A "disk" full of 0xff, bigger than the image: the holes must come out as zeros.
        let disk = scratch.appending("disk.img")
        try makeRawImage(disk, size: 10 << 20, writes: [(0, [UInt8](repeating: 0xFF, count: 10 << 20))])
        let loop = try LoopDevice(file: disk)
        defer { loop.detach() }
        try QCOW2Reader(path: qcow2).convert(toRaw: loop.path, durable: true)
        try Command("cmp", ["-n", String(8 << 20), raw, loop.path]).run()
        // Past the virtual disk the device is untouched.
        #expect(try readFile(disk, offset: 9 << 20, count: 16) == [UInt8](repeating: 0xFF, count: 16))

        let tooSmall = scratch.appending("small.img")
        try makeRawImage(tooSmall, size: 1 << 20, writes: [])
        let smallLoop = try LoopDevice(file: tooSmall)
        defer { smallLoop.detach() }
        #expect(throws: UserError.self) { try QCOW2Reader(path: qcow2).convert(toRaw: smallLoop.path) }
    }

    @Test("malformed headers fail with errors that name the field")
    func malformedHeaders() throws {
        let scratch = try Scratch("rast-qcow2")
        let good = try smallImage(scratch)
        #expect(failure(good) == nil)

        let cases: [MalformedImage] = [
            ("empty file", [], .truncated, "header"),
            ("cut inside the header", Array(good.prefix(50)), .truncated, "header"),
            ("bad magic", good.settingBE32(0x1234_5678, at: 0), .badMagic, "magic"),
            ("version 1", good.settingBE32(1, at: 4), .unsupported, "version"),
            ("version 4", good.settingBE32(4, at: 4), .unsupported, "version"),
            ("backing file", good.settingBE64(0x200, at: 8), .unsupported, "backing_file_offset"),
            ("tiny clusters", good.settingBE32(8, at: 20), .invalidField, "cluster_bits"),
            ("huge clusters", good.settingBE32(40, at: 20), .invalidField, "cluster_bits"),
            ("encrypted", good.settingBE32(1, at: 32), .unsupported, "crypt_method"),
            ("L1 too small for the disk", good.settingBE32(0, at: 36), .invalidField, "l1_size"),
            ("L1 too large for QEMU", good.settingBE32(0xFFFF_FFFF, at: 36), .limitExceeded, "l1_size"),
            ("virtual size beyond Int64", good.settingBE64(1 << 63, at: 24), .invalidField, "size"),
            ("virtual size needing a bigger L1", good.settingBE64(1 << 40, at: 24), .invalidField, "l1_size"),
            ("L1 past the end", good.settingBE64(1 << 30, at: 40), .outOfBounds, "l1_table_offset"),
            ("L1 misaligned", good.settingBE64(4096 + 8, at: 40), .invalidField, "l1_table_offset"),
            ("refcount table past the end", good.settingBE64(1 << 30, at: 48), .outOfBounds, "refcount_table_offset"),
            ("refcount table too large", good.settingBE32(1 << 20, at: 56), .limitExceeded, "refcount_table_clusters"),
            ("too many snapshots", good.settingBE32(1 << 20, at: 60), .limitExceeded, "nb_snapshots"),
            ("unknown incompatible feature", good.settingBE64(1 << 9, at: 72), .unsupported, "incompatible_features"),
            ("marked corrupt", good.settingBE64(1 << 1, at: 72), .invalidField, "incompatible_features"),
            ("external data file", good.settingBE64(1 << 2, at: 72), .unsupported, "incompatible_features"),
            ("extended L2", good.settingBE64(1 << 4, at: 72), .unsupported, "incompatible_features"),
            ("refcount order 7", good.settingBE32(7, at: 96), .invalidField, "refcount_order"),
            ("header length 100", good.settingBE32(100, at: 100), .invalidField, "header_length"),
            ("header length past the cluster", good.settingBE32(8192, at: 100), .invalidField, "header_length"),
            ("zstd without the feature bit", { var bytes = good; bytes[104] = 1; return bytes }(), .invalidField, "compression_type"),
            ("unknown compression type", { var bytes = good; bytes[104] = 9; return bytes.settingBE64(1 << 3, at: 72) }(), .unsupported, "compression_type"),
            ("header extension running past the cluster", good.settingBE32(0x1234, at: 112).settingBE32(0xFFFF_FFF0, at: 116), .invalidField, "header extension 0x1234"),
            ("external data file extension", good.settingBE32(0x4441_5441, at: 112).settingBE32(8, at: 116), .unsupported, "header extension 0x44415441"),
        ]
        expectFailures(cases)
    }

    @Test("malformed tables and clusters fail with errors that name the entry")
    func malformedTables() throws {
        let scratch = try Scratch("rast-qcow2")
        let good = try smallImage(scratch)
        let reader = try QCOW2Reader(bytes: good)
        let l1Offset = Int(reader.header.l1TableOffset)
        let l2Offset = Int(good.loadBE64(at: l1Offset) & QCOW2Format.offsetMask)
        #expect(l2Offset > 0)
        // Cluster 0 (text) is compressed; cluster 25 (random, at 100 KiB) is stored raw.
        let compressedEntry = good.loadBE64(at: l2Offset)
        #expect(compressedEntry & QCOW2Format.compressedFlag != 0)
        let rawEntry = good.loadBE64(at: l2Offset + 25 * 8)
        #expect(rawEntry & QCOW2Format.copiedFlag != 0 && rawEntry & QCOW2Format.compressedFlag == 0)
        let end = UInt64(good.count)

        let cases: [MalformedImage] = [
            ("L1 entry past the end", good.settingBE64(QCOW2Format.copiedFlag | (end + 4096) / 4096 * 4096, at: l1Offset), .outOfBounds, "L1 entry 0"),
            ("L1 entry misaligned", good.settingBE64(QCOW2Format.copiedFlag | UInt64(l2Offset + 512), at: l1Offset), .invalidField, "L1 entry 0"),
            ("L1 entry reserved bits", good.settingBE64(QCOW2Format.copiedFlag | UInt64(l2Offset) | 1, at: l1Offset), .invalidField, "L1 entry 0"),
            ("L2 entry past the end", good.settingBE64(QCOW2Format.copiedFlag | (end + 8192) / 4096 * 4096, at: l2Offset + 25 * 8), .outOfBounds, "L2 entry"),
            ("L2 entry misaligned", good.settingBE64(rawEntry + 512, at: l2Offset + 25 * 8), .invalidField, "L2 entry"),
            ("L2 entry reserved bits", good.settingBE64(rawEntry | 2, at: l2Offset + 25 * 8), .invalidField, "L2 entry"),
            ("compressed and copied", good.settingBE64(compressedEntry | QCOW2Format.copiedFlag, at: l2Offset), .invalidField, "L2 entry"),
            ("compressed data past the end", good.settingBE64(QCOW2Format.compressedFlag | (end + 100), at: l2Offset), .outOfBounds, "L2 entry"),
            ("compressed data overwritten", {
                var bytes = good
                let start = Int(compressedEntry & ((1 << 58) - 1))
                for index in start..<(start + 64) { bytes[index] = 0xFF }
                return bytes
            }(), .corruptData, nil),
            ("compressed data cut short (one sector)", good.settingBE64(compressedEntry & ~(UInt64(0xF) << 58), at: l2Offset), .corruptData, nil),
            ("file truncated inside the data", Array(good.prefix(4096 * 3)), .outOfBounds, "l1_table_offset"),
        ]
        expectFailures(cases)
    }

    @Test("zstd clusters: corrupt frames are errors")
    func corruptZstd() throws {
        let scratch = try Scratch("rast-qcow2")
        let good = try smallImage(scratch, compression: .zstd)
        let reader = try QCOW2Reader(bytes: good)
        #expect(reader.compression == .zstd)
        let l2Offset = Int(good.loadBE64(at: Int(reader.header.l1TableOffset)) & QCOW2Format.offsetMask)
        let entry = good.loadBE64(at: l2Offset)
        var bytes = good
        let start = Int(entry & ((1 << 58) - 1))
        bytes[start + 1] ^= 0xFF  // the frame magic
        let error = failure(bytes)
        #expect(error?.kind == .corruptData)
        #expect(error?.description.contains("zstd") == true)
    }

    @Test("errors from files name the file; reads past the disk are refused")
    func errorContext() throws {
        let scratch = try Scratch("rast-qcow2")
        let notQCOW = scratch.appending("plain.raw")
        try makeRawImage(notQCOW, size: 4096, writes: [(0, Array("hello".utf8))])
        let error = #expect(throws: QCOW2Error.self) { try QCOW2Reader(path: notQCOW) }
        #expect(error?.description.hasPrefix(notQCOW + ": not a QCOW2 image") == true)
        #expect(!QCOW2Reader.isQCOW2(path: notQCOW))

        let image = scratch.appending("good.qcow2")
        try Files.writeAtomically(image, bytes: try smallImage(scratch))
        #expect(QCOW2Reader.isQCOW2(path: image))
        let reader = try QCOW2Reader(path: image)
        let pastEnd = #expect(throws: QCOW2Error.self) { try reader.read(at: reader.virtualSize - 10, count: 11) }
        #expect(pastEnd?.kind == .invalidArgument)
        #expect(throws: QCOW2Error.self) { try reader.read(at: -1, count: 1) }
        #expect(throws: QCOW2Error.self) { try reader.mapping(ofCluster: 1 << 40) }
        #expect(try reader.read(at: reader.virtualSize, count: 0).isEmpty)
    }
}

/// Bytes a file takes on disk (its blocks), holes excluded.
private func allocatedBytes(_ path: String) throws -> Int64 {
    var st = stat()
    try SystemError.check("stat", path: path) { stat(path, &st) }
    return Int64(st.st_blocks) * 512
}
