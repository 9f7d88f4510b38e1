import Foundation
@testable import QCOW2
import SystemSupport
import Testing
import TestSupport

/// A valid image to mutate and where its metadata lives, so mutations can aim at it.
private struct FuzzBase {
    let name: String
    let bytes: [UInt8]
    /// File ranges holding header, tables and compressed data.
    let hotRanges: [Range<Int>]
    /// Offsets of 8-byte table entries (L1, L2, refcount table).
    let tableWords: [Int]
}

private func makeBase(_ name: String, bytes: [UInt8]) throws -> FuzzBase {
    let reader = try QCOW2Reader(bytes: bytes)
    let header = reader.header
    let clusterSize = reader.clusterSize
    var hot: [Range<Int>] = [0..<QCOW2Format.headerLength]
    var words: [Int] = []
    let l1Start = Int(header.l1TableOffset)
    let l1End = l1Start + Int(header.l1Size) * 8
    hot.append(l1Start..<l1End)
    words += stride(from: l1Start, to: l1End, by: 8)
    for l1Index in 0..<Int(header.l1Size) {
        let l2 = Int(bytes.loadBE64(at: l1Start + l1Index * 8) & QCOW2Format.offsetMask)
        guard l2 > 0 else { continue }
        hot.append(l2..<(l2 + clusterSize))
        words += stride(from: l2, to: l2 + clusterSize, by: 8)
    }
    let refcountTable = Int(header.refcountTableOffset)
    hot.append(refcountTable..<(refcountTable + Int(header.refcountTableClusters) * clusterSize))
    words += stride(from: refcountTable, to: refcountTable + 64, by: 8)
    return FuzzBase(name: name, bytes: bytes, hotRanges: hot, tableWords: words)
}

/// Values that probe edges: zero, all ones, the file size, sign bits, flag bits.
private func interestingWord(_ random: inout SeededRandom, fileSize: Int, clusterSize: Int) -> UInt64 {
    let choices: [UInt64] = [
        0, 1, UInt64.max, UInt64(Int64.max), 1 << 63, 1 << 62, (1 << 63) | (1 << 62),
        UInt64(fileSize), UInt64(fileSize / clusterSize * clusterSize), UInt64(fileSize + clusterSize),
        QCOW2Format.copiedFlag | UInt64(clusterSize), QCOW2Format.compressedFlag | UInt64(random.next(below: fileSize + 1)),
        UInt64(random.next(below: fileSize + 1)) & QCOW2Format.offsetMask, random.next(),
        QCOW2Format.copiedFlag | (UInt64(random.next(below: max(fileSize / clusterSize, 1))) * UInt64(clusterSize)),
    ]
    return choices[random.next(below: choices.count)]
}

/// One to four mutations of a base image.
private func mutate(_ base: FuzzBase, clusterSize: Int, random: inout SeededRandom) -> [UInt8] {
    var bytes = base.bytes
    for _ in 0..<(1 + random.next(below: 4)) {
        guard !bytes.isEmpty else { break }
        switch random.next(below: 10) {
        case 0:
            // A bit anywhere.
            let index = random.next(below: bytes.count)
            bytes[index] ^= UInt8(1 << random.next(below: 8))
        case 1, 2:
            // A byte in the header or a table.
            let range = base.hotRanges[random.next(below: base.hotRanges.count)]
            let index = range.lowerBound + random.next(below: max(range.count, 1))
            if index < bytes.count { bytes[index] = UInt8(truncatingIfNeeded: random.next()) }
        case 3, 4:
            // A table entry set to an edge value.
            let offset = base.tableWords[random.next(below: base.tableWords.count)]
            if offset + 8 <= bytes.count {
                bytes.storeBE(interestingWord(&random, fileSize: bytes.count, clusterSize: clusterSize), at: offset)
            }
        case 5, 6:
            // A header field set to an edge value.
            let fields: [(offset: Int, width: Int)] = [(8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4), (40, 8),
                                                       (48, 8), (56, 4), (60, 4), (64, 8), (72, 8), (96, 4), (100, 4)]
            let field = fields[random.next(below: fields.count)]
            let value = interestingWord(&random, fileSize: bytes.count, clusterSize: clusterSize)
            if field.offset + field.width > bytes.count {
                break
            } else if field.width == 8 {
                bytes.storeBE(value, at: field.offset)
            } else {
                let small: [UInt32] = [0, 1, 7, 8, 9, 12, 16, 21, 22, 31, 64, 104, 112, 0xFFFF_FFFF, UInt32(truncatingIfNeeded: value)]
                bytes.storeBE(small[random.next(below: small.count)], at: field.offset)
            }
        case 7:
            // The compression type byte.
            if bytes.count > 104 { bytes[104] = UInt8(random.next(below: 4)) }
        case 8:
            // Truncation.
            bytes.removeSubrange(random.next(below: bytes.count)...)
        default:
            // Random bytes over a stretch of data.
            let start = random.next(below: bytes.count)
            for index in start..<min(bytes.count, start + 1 + random.next(below: 64)) {
                bytes[index] = UInt8(truncatingIfNeeded: random.next())
            }
        }
    }
    return bytes
}

@Suite("QCOW2 fuzzing")
struct QCOW2FuzzTests {
    @Test("the reader survives 12,000 mutated images: each one reads or fails with a QCOW2Error")
    func mutatedImages() throws {
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-qcow2-fuzz")
        let raw = scratch.appending("base.raw")
        try makeRawImage(raw, size: 96 << 10, writes: [
            (0, TestData.text(20_000, seed: 81)),
            (24_576, TestData.random(6000, seed: 82)),
            (40_000, TestData.mixed(20_000, seed: 83)),
            (90_000, TestData.text(3000, seed: 84)),
        ])
        var bases: [FuzzBase] = []
        for (compression, clusterSize) in [(QCOW2Compression.zlib, 4096), (.zstd, 4096), (.zlib, 512), (.none, 1024)] {
            let image = scratch.appending("ours-\(compression)-\(clusterSize).qcow2")
            try QCOW2Writer.convert(raw: raw, to: image, options: QCOW2Options(compression: compression, clusterSize: clusterSize, durable: false))
            bases.append(try makeBase("ours \(compression) \(clusterSize)", bytes: try Files.read(image)))
        }
        for compression in [QCOW2Compression.zlib, .zstd] {
            let image = scratch.appending("qemu-\(compression).qcow2")
            try QEMU.convert(raw: raw, to: image, compression: compression, extraOptions: ["cluster_size=4096"])
            bases.append(try makeBase("qemu-img \(compression)", bytes: try Files.read(image)))
        }

        // RAST_FUZZ_ITERATIONS and RAST_FUZZ_SEED make longer local runs; CI uses the defaults.
        let environment = ProcessInfo.processInfo.environment
        var random = SeededRandom(seed: environment["RAST_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_240_601)
        let iterations = max(12_000, environment["RAST_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 0)
        var readable = 0
        var rejected: [QCOW2Error.Kind: Int] = [:]
        let stopwatch = Stopwatch()
        for iteration in 0..<iterations {
            let base = bases[iteration % bases.count]
            let clusterSize = (try? QCOW2Reader(bytes: base.bytes).clusterSize) ?? 4096
            let bytes = mutate(base, clusterSize: clusterSize, random: &random)
            do {
                let reader = try QCOW2Reader(bytes: bytes)
                // The start of the disk, then clusters anywhere in it (a mutated size can make
                // the disk huge; reading stays bounded by what is asked for).
                _ = try reader.read(at: 0, count: Int(min(reader.virtualSize, 128 << 10)))
                let clusters = (reader.virtualSize + Int64(reader.clusterSize) - 1) / Int64(reader.clusterSize)
                for _ in 0..<4 where clusters > 0 {
                    let index = Int64(random.next() % UInt64(clusters))
                    let start = index * Int64(reader.clusterSize)
                    _ = try reader.read(at: start, count: Int(min(Int64(reader.clusterSize), reader.virtualSize - start)))
                }
                readable += 1
            } catch let error as QCOW2Error {
                rejected[error.kind, default: 0] += 1
                #expect(!error.message.isEmpty)
            } catch {
                Issue.record("iteration \(iteration) (\(base.name)): \(type(of: error)) instead of a QCOW2Error: \(error)")
            }
        }
        let rejectedTotal = rejected.values.reduce(0, +)
        #expect(readable + rejectedTotal == iterations)
        // The mutations must reach both outcomes and many kinds of errors, or they prove little.
        #expect(readable > iterations / 20)
        #expect(rejectedTotal > iterations / 5)
        #expect(rejected.count >= 6, "error kinds seen: \(rejected)")
        print("fuzz: \(iterations) images in \(stopwatch.formatted): \(readable) readable, rejected \(rejected)")
    }
}
