import Foundation
import SystemSupport
import Testing
import TestSupport
import Zlib

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
private func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        bytes[index] = UInt8(truncatingIfNeeded: (state &* 2685821657736338717) >> 56)
    }
    return bytes
}

/// Text-like data: compressible, with matches at all distances.
private func textBytes(_ count: Int) -> [UInt8] {
    let words = ["qcow2", "cluster", "refcount", "table", "deflate", "window", "snapshot", "btrfs",
                 "rast", "image", "zero", "sector", "\n", "L1", "L2", "header"]
    var bytes: [UInt8] = []
    var state: UInt64 = 7
    while bytes.count < count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes.append(contentsOf: Array(words[Int(state >> 60)].utf8))
        bytes.append(UInt8(ascii: " "))
    }
    return Array(bytes.prefix(count))
}

/// Random bytes with an 8 KiB block repeated 24 KiB later: the repeat can only be found by a
/// compressor whose window reaches back more than 16 KiB. The block starts at 48 KiB and its
/// copy at 72 KiB, on both sides of the 64 KiB mark where a streaming inflate hands its first
/// output chunk over: zlib checks a match distance against the window only when the match
/// reaches behind the output buffer of the current call (a one-call inflate of a whole
/// buffer, as QEMU does per cluster, never consults the window).
private func longDistanceData() -> [UInt8] {
    let block = randomBytes(8192, seed: 11)
    return randomBytes(49152, seed: 10) + block + randomBytes(16384, seed: 12) + block
}

@Suite("Zlib")
struct ZlibTests {
    @Test("raw deflate round-trips for every window size and several levels")
    func roundTrips() throws {
        let inputs: [[UInt8]] = [[], [42], textBytes(200_000), randomBytes(70_000, seed: 3), longDistanceData()]
        for bits in [9, 12, 15] {
            for level in [0, 1, 6, 9] {
                for input in inputs {
                    let packed = try Zlib.deflateRaw(input, level: level, windowBits: bits)
                    #expect(try Zlib.inflateRaw(packed, windowBits: bits) == input)
                    #expect(try Zlib.inflateRaw(packed, windowBits: bits, expectedSize: input.count) == input)
                }
            }
        }
    }

    @Test("compressible data shrinks, random data does not")
    func compressionIsReal() throws {
        let text = textBytes(100_000)
        let packed = try Zlib.deflateRaw(text, level: 6, windowBits: 12)
        #expect(packed.count < text.count / 3)
        let noise = randomBytes(100_000, seed: 5)
        #expect(try Zlib.deflateRaw(noise, level: 6, windowBits: 12).count >= noise.count)
    }

    @Test("a 4 KiB-window stream inflates with windowBits 12; a 32 KiB-window stream with long matches does not")
    func windowSizeIsReal() throws {
        let data = longDistanceData()
        let small = try Zlib.deflateRaw(data, level: 9, windowBits: 12)
        #expect(try Zlib.inflateRaw(small, windowBits: 12) == data)

        let large = try Zlib.deflateRaw(data, level: 9, windowBits: 15)
        // The large window found the 8 KiB repeat; the small one could not.
        #expect(large.count < small.count - 4000)
        #expect(try Zlib.inflateRaw(large, windowBits: 15) == data)
        // Streaming inflate (no expectedSize) must look back through its 4 KiB window and fails.
        let error = #expect(throws: ZlibError.self) { _ = try Zlib.inflateRaw(large, windowBits: 12).count }
        #expect(error?.code == -3)  // Z_DATA_ERROR
        #expect(error?.message?.contains("too far back") == true)
        #expect(error?.function == "inflate")
        // A one-call inflate into a buffer that holds the whole result never consults the
        // window (zlib copies matches from the output buffer): QEMU inflates each cluster that
        // way, so only streaming readers enforce the 4 KiB window.
        #expect(try Zlib.inflateRaw(large, windowBits: 12, expectedSize: data.count) == data)
    }

    @Test("corrupt, truncated and oversized input are errors with zlib's message")
    func corruptInput() throws {
        let data = textBytes(50_000)
        let packed = try Zlib.deflateRaw(data, windowBits: 12)

        // Block type 3 is reserved: "invalid block type".
        let corrupt = [0xFF, 0xFF] + packed
        let blockError = #expect(throws: ZlibError.self) { try Zlib.inflateRaw(corrupt, windowBits: 12) }
        #expect(blockError?.isDataError == true)
        #expect(blockError?.description.contains("invalid") == true)

        let truncated = Array(packed.prefix(packed.count / 2))
        let truncatedError = #expect(throws: ZlibError.self) { try Zlib.inflateRaw(truncated, windowBits: 12) }
        #expect(truncatedError?.description.contains("ended before") == true)
        #expect(throws: ZlibError.self) { try Zlib.inflateRaw(truncated, windowBits: 12, expectedSize: data.count) }

        let tooBig = #expect(throws: ZlibError.self) { try Zlib.inflateRaw(packed, windowBits: 12, expectedSize: 1000) }
        #expect(tooBig?.description.contains("more than the expected") == true)

        #expect(throws: ZlibError.self) { try Deflater(level: 6, windowBits: 8) }
        #expect(throws: ZlibError.self) { try Deflater(level: 12) }
    }

    @Test("streaming deflate and inflate in small pieces match the one-shot result")
    func streaming() throws {
        let data = textBytes(300_000) + randomBytes(50_000, seed: 9)
        let deflater = try Deflater(level: 6, windowBits: 12)
        var packed: [UInt8] = []
        try data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let piece = min(7777, bytes.count - offset)
                try deflater.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + piece])) { packed.append(contentsOf: $0) }
                offset += piece
            }
        }
        try deflater.finish { packed.append(contentsOf: $0) }
        #expect(try Zlib.inflateRaw(packed, windowBits: 12) == data)

        // Inflate piece by piece, with trailing garbage after the stream end.
        let inflater = try Inflater(windowBits: 12)
        var output: [UInt8] = []
        let withTrailer = packed + [1, 2, 3, 4]
        var consumedTotal = 0
        try withTrailer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count && !inflater.isFinished {
                let piece = min(1000, bytes.count - offset)
                consumedTotal += try inflater.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + piece])) { output.append(contentsOf: $0) }
                offset += piece
            }
        }
        try inflater.finish()
        #expect(output == data)
        #expect(consumedTotal == packed.count)

        // The same Deflater makes identical output after reset.
        try deflater.reset()
        var again: [UInt8] = []
        try data.withUnsafeBytes { try deflater.write($0) { again.append(contentsOf: $0) } }
        try deflater.finish { again.append(contentsOf: $0) }
        #expect(again == packed)
    }

    @Test("compress(into:) reports a stream that does not fit, as QCOW2 needs")
    func boundedOutput() throws {
        let deflater = try Deflater(level: 6, windowBits: 12)
        let noise = randomBytes(65536, seed: 21)
        var out = [UInt8](repeating: 0, count: 65535)
        let size = try noise.withUnsafeBytes { input in try out.withUnsafeMutableBytes { try deflater.compress(input, into: $0) } }
        #expect(size == nil)
        let text = textBytes(65536)
        let textSize = try text.withUnsafeBytes { input in try out.withUnsafeMutableBytes { try deflater.compress(input, into: $0) } }
        let packedSize = try #require(textSize)
        #expect(packedSize < 30000)
        #expect(try Zlib.inflateRaw(Array(out.prefix(packedSize)), windowBits: 12, expectedSize: 65536) == text)
    }

    @Test("Python's zlib reads our 4 KiB-window streams and we read its streams")
    func pythonInterop() throws {
        try Require.programs("python3")
        let scratch = try Scratch("rast-zlib")
        let data = textBytes(200_000) + randomBytes(20_000, seed: 77) + longDistanceData()
        let ours = try Zlib.deflateRaw(data, level: 6, windowBits: 12)
        try Files.writeAtomically(scratch.appending("ours.deflate"), bytes: ours)
        try Files.writeAtomically(scratch.appending("data.bin"), bytes: data)

        let script = """
            import sys, zlib
            d = scratch = sys.argv[1]
            data = open(d + '/data.bin', 'rb').read()
            # Ours must inflate with a 4 KiB window.
            assert zlib.decompressobj(wbits=-12).decompress(open(d + '/ours.deflate', 'rb').read()) == data
            c = zlib.compressobj(6, zlib.DEFLATED, -12)
            open(d + '/python12.deflate', 'wb').write(c.compress(data) + c.flush())
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            open(d + '/python15.deflate', 'wb').write(c.compress(data) + c.flush())
            print('ok')
            """
        let out = try Command("python3", ["-c", script, scratch.path]).output()
        #expect(out == "ok")
        let python12 = try Files.read(scratch.appending("python12.deflate"))
        #expect(try Zlib.inflateRaw(python12, windowBits: 12, expectedSize: data.count) == data)
        // Python's 32 KiB-window stream uses the long matches: a 4 KiB window rejects it.
        let python15 = try Files.read(scratch.appending("python15.deflate"))
        #expect(try Zlib.inflateRaw(python15, windowBits: 15) == data)
        #expect(throws: ZlibError.self) { _ = try Zlib.inflateRaw(python15, windowBits: 12).count }
    }

    @Test("zlib and gzip framing round-trip too")
    func otherFormats() throws {
        let data = textBytes(10_000)
        for format in [ZlibFormat.zlib, .gzip] {
            let packed = try Deflater(level: 6, windowBits: 15, format: format).compress(data)
            let inflater = try Inflater(windowBits: 15, format: format)
            var out: [UInt8] = []
            try packed.withUnsafeBytes { _ = try inflater.write($0) { out.append(contentsOf: $0) } }
            try inflater.finish()
            #expect(out == data)
        }
    }
}
