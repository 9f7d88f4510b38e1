import Foundation
import QCOW2
import Synchronization
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
struct SeededRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for _ in 0..<8 where index < count {
                result[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return result
    }
}

enum TestData {
    static func random(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededRandom(seed: seed)
        return generator.bytes(count)
    }

    /// Compressible, text-like bytes.
    static func text(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        let words = ["qcow2", "cluster", "refcount", "table", "deflate", "window", "snapshot", "btrfs",
                     "rast", "image", "zero", "sector", "\n", "l1", "l2", "header"]
        var generator = SeededRandom(seed: seed)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 16)
        while bytes.count < count {
            bytes.append(contentsOf: words[generator.next(below: words.count)].utf8)
            bytes.append(UInt8(ascii: " "))
        }
        return Array(bytes.prefix(count))
    }

    /// Half random, half text, in 3000-byte stripes: some clusters compress, some do not.
    static func mixed(_ count: Int, seed: UInt64) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        var stripe = 0
        while result.count < count {
            let length = min(3000, count - result.count)
            result += stripe % 2 == 0 ? text(length, seed: seed &+ UInt64(stripe)) : random(length, seed: seed &+ UInt64(stripe))
            stripe += 1
        }
        return result
    }
}

/// A sparse raw image: `size` bytes, holes except where `writes` put data (zeros written
/// explicitly are data as far as SEEK_DATA is concerned, which is what the tests want).
func makeRawImage(_ path: String, size: Int64, writes: [(offset: Int64, bytes: [UInt8])]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw SystemError("open", path: path) }
    defer { close(fd) }
    try SystemError.check("truncate", path: path) { ftruncate(fd, off_t(size)) }
    for write in writes {
        let written = write.bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(write.offset)) }
        if written != write.bytes.count { throw SystemError("write", path: path) }
    }
}

/// Reads `count` bytes at `offset` of a file.
func readFile(_ path: String, offset: Int64, count: Int) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw SystemError("open", path: path) }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: count)
    let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    if got < 0 { throw SystemError("read", path: path) }
    bytes.removeSubrange(got...)
    return bytes
}

enum QEMU {
    /// `qemu-img check`: throws with its output when it finds any problem.
    static func check(_ image: String) throws {
        let output = try Command("qemu-img", ["check", image]).output()
        #expect(output.contains("No errors were found"), "qemu-img check \(image): \(output)")
    }

    /// `qemu-img compare` of a raw image and a QCOW2 image: throws unless identical.
    static func compare(raw: String, qcow2: String) throws {
        try Command("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, qcow2]).run()
    }

    /// `qemu-img compare` of two raw images (skips holes, so cheap for huge sparse files).
    static func compareRaw(_ first: String, _ second: String) throws {
        try Command("qemu-img", ["compare", "-f", "raw", "-F", "raw", first, second]).run()
    }

    /// `qemu-img convert` of a raw image to QCOW2 with the given compression.
    static func convert(raw: String, to qcow2: String, compression: QCOW2Compression, extraOptions: [String] = []) throws {
        var arguments = ["convert", "-f", "raw", "-O", "qcow2"]
        var options = extraOptions
        switch compression {
        case .none: break
        case .zlib: arguments.append("-c")
        case .zstd:
            arguments.append("-c")
            options.append("compression_type=zstd")
        }
        if !options.isEmpty { arguments += ["-o", options.joined(separator: ",")] }
        try Command("qemu-img", arguments + [raw, qcow2]).run()
    }
}

/// Checks an image our writer made from `raw` in every way available: QEMU's consistency
/// check, QEMU's comparison with the source, and our reader, both streaming the whole disk to
/// a raw file (compared by QEMU) and reading `probes` ranges directly (compared with the
/// source's bytes).
func verifyImage(raw: String, qcow2: String, scratch: Scratch, probes: [(offset: Int64, count: Int)] = []) throws {
    try QEMU.check(qcow2)
    try QEMU.compare(raw: raw, qcow2: qcow2)
    let reader = try QCOW2Reader(path: qcow2)
    let rawSize = try Files.size(raw)
    #expect(reader.virtualSize == (rawSize + 511) / 512 * 512)
    let back = scratch.appending("readback-\(UUID().uuidString).raw")
    try reader.convert(toRaw: back, durable: false)
    try QEMU.compareRaw(raw, back)
    #expect(try Files.size(back) == reader.virtualSize)
    for probe in probes {
        let expected = try readFile(raw, offset: probe.offset, count: probe.count)
        let got = try reader.read(at: probe.offset, count: expected.count)
        #expect(got == expected, "read(at: \(probe.offset), count: \(probe.count)) differs from the source")
    }
    unlink(back)
}

/// Collects progress reports.
final class RecordingProgress: ProgressReporter {
    private struct State {
        var updates: [ProgressUpdate] = []
        var began: [String] = []
        var ended: [String] = []
    }
    private let state = Mutex(State())

    var updates: [ProgressUpdate] { state.withLock { $0.updates } }
    var began: [String] { state.withLock { $0.began } }
    var ended: [String] { state.withLock { $0.ended } }

    func begin(_ task: String) { state.withLock { $0.began.append(task) } }
    func update(_ update: ProgressUpdate) { state.withLock { $0.updates.append(update) } }
    func end(_ task: String, summary: String) { state.withLock { $0.ended.append(summary) } }
    func note(_ message: String) {}
}
