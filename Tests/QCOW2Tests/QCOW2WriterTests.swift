import Foundation
@testable import QCOW2
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Names of files in `directory` that start with a dot (our temporary outputs do).
private func hiddenFiles(in directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }
}

@Suite("QCOW2 writer")
struct QCOW2WriterTests {
    @Test("sparse raw with holes and zero runs passes qemu-img check and compare", arguments: QCOW2Compression.allCases)
    func sparseImage(compression: QCOW2Compression) throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("sparse.raw")
        let size: Int64 = 48 << 20
        try makeRawImage(raw, size: size, writes: [
            (0, TestData.text(70_000)),                                   // crosses a cluster boundary
            ((1 << 20) + 123, TestData.mixed(300_000, seed: 2)),          // starts mid-cluster
            (5 << 20, [UInt8](repeating: 0, count: 2 << 20)),             // zeros written as data
            (9 << 20, TestData.random(200_000, seed: 3)),
            ((20 << 20) - 10, Array(1...20)),                             // straddles two clusters
            (size - 4, [0xDE, 0xAD, 0xBE, 0xEF]),                         // the very end
        ])
        let qcow2 = scratch.appending("sparse.qcow2")
        let progress = RecordingProgress()
        let summary = try QCOW2Writer.convert(raw: raw, to: qcow2,
                                              options: QCOW2Options(compression: compression, durable: false),
                                              progress: progress)
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch, probes: [
            (0, 70_000), ((1 << 20) + 100, 300_100), ((20 << 20) - 64, 128), (size - 100, 100), ((30 << 20), 65536),
        ])

        #expect(summary.virtualSize == size)
        #expect(summary.fileSize == (try Files.size(qcow2)))
        #expect(summary.zeroClusters >= 32, "the 2 MiB of written zeros must not be stored")
        // Only data extents were read: 48 MiB of disk, about 3 MiB of extents.
        #expect(summary.bytesRead < 4 << 20)
        if compression == .none {
            #expect(summary.compressedClusters == 0)
        } else {
            #expect(summary.compressedClusters > 0)
            #expect(summary.uncompressedClusters > 0, "the random stripes and block do not compress")
        }
        #expect(summary.fileSize < 2 << 20)
        #expect(try hiddenFiles(in: scratch.path).isEmpty, "no temporary file may stay behind")
        let last = try #require(progress.updates.last)
        #expect(last.completed == last.total)
        #expect(progress.began.count == 1 && progress.ended.count == 1)
    }

    @Test("random clusters are stored uncompressed, text clusters compressed", arguments: [QCOW2Compression.zlib, .zstd])
    func compressionDecisions(compression: QCOW2Compression) throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("mixed.raw")
        try makeRawImage(raw, size: 8 << 20, writes: [(0, TestData.random(4 << 20, seed: 9)), (4 << 20, TestData.text(4 << 20))])
        let qcow2 = scratch.appending("mixed.qcow2")
        let summary = try QCOW2Writer.convert(raw: raw, to: qcow2, options: QCOW2Options(compression: compression, durable: false))
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch, probes: [(0, 100_000), ((4 << 20) - 1000, 70_000)])
        #expect(summary.uncompressedClusters == 64)
        #expect(summary.compressedClusters == 64)
        // The text half shrinks to a fraction.
        #expect(summary.fileSize < (4 << 20) + (2 << 20))
        let info = try Command("qemu-img", ["info", "--output=json", qcow2]).output()
        #expect(info.contains("\"compression-type\": \"\(compression)\""), "qemu-img info: \(info)")
    }

    @Test("tables cross L2-table and refcount-block boundaries",
          arguments: [512, 4096], QCOW2Compression.allCases)
    func tableBoundaries(clusterSize: Int, compression: QCOW2Compression) throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("dense.raw")
        // 512 B clusters: an L2 table maps 32 KiB and a refcount block counts 128 KiB of file,
        // so 14 MiB of data needs hundreds of L2 tables, over a hundred refcount blocks, a
        // refcount table and an L1 table of several clusters. 4 KiB clusters: 2 MiB per L2
        // table, 8 MiB per refcount block.
        let dataSize = clusterSize == 512 ? 14 << 20 : 40 << 20
        let size = Int64(dataSize) + (3 << 20)
        try makeRawImage(raw, size: size, writes: [
            (0, TestData.mixed(dataSize / 2, seed: 21)),
            (Int64(dataSize / 2) + (1 << 20), TestData.random(dataSize / 4, seed: 22)),
            (Int64(dataSize / 2 + dataSize / 4) + (2 << 20), TestData.text(dataSize / 4, seed: 23)),
        ])
        let qcow2 = scratch.appending("dense.qcow2")
        let summary = try QCOW2Writer.convert(raw: raw, to: qcow2,
                                              options: QCOW2Options(compression: compression, clusterSize: clusterSize, durable: false))
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch, probes: [(Int64(dataSize / 2) - 5000, 1 << 20)])

        let reader = try QCOW2Reader(path: qcow2)
        let l2Entries = clusterSize / 8
        let refcountsPerBlock = clusterSize / 2
        let dataClusters = summary.compressedClusters + summary.uncompressedClusters
        #expect(dataClusters > 4 * l2Entries, "data must span several L2 tables")
        #expect(Int(summary.fileSize) / clusterSize > 2 * refcountsPerBlock, "the file must need several refcount blocks")
        if clusterSize == 512 {
            #expect(reader.header.refcountTableClusters > 1)
            #expect(Int(reader.header.l1Size) * 8 > clusterSize, "the L1 table spans clusters")
        }
    }

    @Test("the largest clusters (2 MiB)", arguments: QCOW2Compression.allCases)
    func largestClusters(compression: QCOW2Compression) throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("big-clusters.raw")
        try makeRawImage(raw, size: 9 << 20, writes: [(100, TestData.mixed(3 << 20, seed: 91)), (7 << 20, TestData.random(1 << 20, seed: 92))])
        let qcow2 = scratch.appending("big-clusters.qcow2")
        let summary = try QCOW2Writer.convert(raw: raw, to: qcow2,
                                              options: QCOW2Options(compression: compression, clusterSize: 2 << 20, durable: false))
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch, probes: [(0, 4 << 20), ((7 << 20) - 100, 1 << 20)])
        // Clusters 0 and 1 hold the mixed data, cluster 3 the random block; cluster 2 is a
        // hole and never read.
        #expect(summary.compressedClusters + summary.uncompressedClusters == 3)
        #expect(summary.zeroClusters == 0)
        #expect(summary.bytesRead == 6 << 20)
    }

    @Test("a sparse virtual disk over 4 GiB", arguments: QCOW2Compression.allCases)
    func largeVirtualDisk(compression: QCOW2Compression) throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("large.raw")
        let size: Int64 = (6 << 30) + 1536  // not a multiple of the cluster size
        let fourGiB: Int64 = 4 << 30
        try makeRawImage(raw, size: size, writes: [
            (0, TestData.text(100_000)),
            (fourGiB - 70_000, TestData.mixed(140_000, seed: 31)),        // across 4 GiB
            ((5 << 30) + 12345, TestData.random(300_000, seed: 32)),
            (size - 1000, TestData.text(1000, seed: 33)),                 // partial last cluster
        ])
        let qcow2 = scratch.appending("large.qcow2")
        let summary = try QCOW2Writer.convert(raw: raw, to: qcow2, options: QCOW2Options(compression: compression, durable: false))
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch, probes: [
            (fourGiB - 70_010, 140_020), ((5 << 30) + 12000, 301_000), (size - 1536, 1536),
        ])
        #expect(summary.virtualSize == size)
        #expect(summary.fileSize < 2 << 20)
        let reader = try QCOW2Reader(path: qcow2)
        #expect(try reader.mapping(ofCluster: fourGiB / 65536) != .unallocated)
        #expect(try reader.mapping(ofCluster: (3 << 30) / 65536) == .unallocated)
    }

    @Test("a block device as the source")
    func blockDeviceSource() throws {
        try Require.loopDevices()
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("disk.raw")
        try makeRawImage(raw, size: 16 << 20, writes: [(4096, TestData.mixed(1 << 20, seed: 41)), (10 << 20, TestData.random(70_000, seed: 42))])
        let loop = try LoopDevice(file: raw, readOnly: true)
        defer { loop.detach() }
        let qcow2 = scratch.appending("disk.qcow2")
        let summary = try QCOW2Writer.convert(raw: loop.path, to: qcow2, options: QCOW2Options(compression: .zstd, durable: false))
        #expect(summary.virtualSize == 16 << 20)
        // A device has no holes: every cluster was read, and the zero ones were skipped.
        #expect(summary.bytesRead == 16 << 20)
        #expect(summary.zeroClusters > 200)
        try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch)
    }

    @Test("a failed write leaves the old file and no temporary file behind")
    func failureCleansUp() throws {
        let scratch = try Scratch("rast-qcow2")
        let small = try scratch.smallDisk("small", size: "1m")
        defer { try? Mounts.unmount(small) }
        let raw = scratch.appending("random.raw")
        try makeRawImage(raw, size: 4 << 20, writes: [(0, TestData.random(4 << 20, seed: 51))])
        let destination = small + "/out.qcow2"
        try Files.write(destination, string: "old image")

        let error = #expect(throws: SystemError.self) {
            try QCOW2Writer.convert(raw: raw, to: destination, options: QCOW2Options(compression: .zlib, durable: false))
        }
        #expect(error?.errno == ENOSPC)
        #expect(try Files.readString(destination) == "old image")
        #expect(try hiddenFiles(in: small).isEmpty)
    }

    @Test("empty sources and sizes that are not sector multiples")
    func oddSizes() throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let cases: [(size: Int64, writes: [(offset: Int64, bytes: [UInt8])])] = [
            (0, []), (1000, [(0, TestData.text(1000))]), (70_001, [(65530, TestData.random(10, seed: 61))]),
        ]
        for (size, writes) in cases {
            let raw = scratch.appending("odd-\(size).raw")
            try makeRawImage(raw, size: size, writes: writes)
            let qcow2 = scratch.appending("odd-\(size).qcow2")
            let summary = try QCOW2Writer.convert(raw: raw, to: qcow2, options: QCOW2Options(compression: .zlib, durable: false))
            #expect(summary.virtualSize == (size + 511) / 512 * 512)
            try QEMU.check(qcow2)
            let reader = try QCOW2Reader(path: qcow2)
            let content = try reader.read(at: 0, count: Int(reader.virtualSize))
            var expected = try readFile(raw, offset: 0, count: Int(size))
            expected += [UInt8](repeating: 0, count: content.count - expected.count)
            #expect(content == expected)
        }
    }

    @Test("impossible options are rejected before anything is written")
    func badOptions() throws {
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("tiny.raw")
        try makeRawImage(raw, size: 65536, writes: [(0, [1])])
        let cases: [(QCOW2Options, String)] = [
            (QCOW2Options(clusterSize: 1000), "cluster_size"),
            (QCOW2Options(clusterSize: 4 << 20), "cluster_size"),
            (QCOW2Options(clusterSize: 256), "cluster_size"),
        ]
        for (options, field) in cases {
            let error = #expect(throws: QCOW2Error.self) { try QCOW2Writer.convert(raw: raw, to: scratch.appending("x.qcow2"), options: options) }
            #expect(error?.kind == .invalidArgument)
            #expect(error?.field == field)
        }
        #expect(throws: QCOW2Error.self) {
            try QCOW2Writer.convert(raw: raw, to: scratch.appending("x.qcow2"), options: QCOW2Options(compression: .zlib, level: 12))
        }
        #expect(throws: QCOW2Error.self) {
            try QCOW2Writer.convert(raw: raw, to: scratch.appending("x.qcow2"), options: QCOW2Options(compression: .zstd, threads: 0))
        }
        #expect(throws: SystemError.self) {
            try QCOW2Writer.convert(raw: scratch.appending("missing.raw"), to: scratch.appending("x.qcow2"))
        }
        #expect(!Files.exists(scratch.appending("x.qcow2")))
        #expect(try hiddenFiles(in: scratch.path).isEmpty)
        // Never a temporary file renamed over a device node or a directory.
        for target in ["/dev/null", scratch.path] {
            let error = #expect(throws: QCOW2Error.self) { try QCOW2Writer.convert(raw: raw, to: target) }
            #expect(error?.description.contains("not a regular file") == true)
        }
        #expect(try hiddenFiles(in: "/dev").filter { $0.contains(".tmp-") }.isEmpty)
    }

    @Test("refcounts of packed compressed clusters match what QEMU counts")
    func packedRefcounts() throws {
        // Compressed clusters of a few hundred bytes each: many share one host cluster, and
        // some run on into the next one. qemu-img check recounts every reference.
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2")
        let raw = scratch.appending("packed.raw")
        var writes: [(offset: Int64, bytes: [UInt8])] = []
        for index in 0..<400 {
            // Text clusters interleaved with incompressible ones, so raw clusters are
            // allocated between partly filled compressed clusters.
            let bytes = index % 7 == 3 ? TestData.random(4096, seed: UInt64(index)) : TestData.text(4096, seed: UInt64(index))
            writes.append((Int64(index) * 4096, bytes))
        }
        try makeRawImage(raw, size: 400 * 4096, writes: writes)
        for compression in [QCOW2Compression.zlib, .zstd] {
            let qcow2 = scratch.appending("packed-\(compression).qcow2")
            let summary = try QCOW2Writer.convert(raw: raw, to: qcow2,
                                                  options: QCOW2Options(compression: compression, clusterSize: 4096, durable: false))
            #expect(summary.uncompressedClusters == 57)
            #expect(summary.compressedClusters == 343)
            try verifyImage(raw: raw, qcow2: qcow2, scratch: scratch)
        }
    }
}
