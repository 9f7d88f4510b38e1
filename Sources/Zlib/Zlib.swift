// Zlib: deflate and inflate through the system zlib, with the window size chosen by the
// caller. QCOW2 needs raw deflate with a 4 KiB window (QEMU inflates with windowBits -12),
// which is why the window is a first-class parameter here rather than zlib's default.
import CZlib

/// A failed zlib call: the function, zlib's return code and zlib's own message.
package struct ZlibError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The zlib function that failed ("inflate", "deflateInit2").
    package let function: String
    /// zlib's return code (Z_DATA_ERROR, ...).
    package let code: Int32
    /// zlib's `msg`, or our own sentence when zlib has none.
    package let message: String?

    package init(function: String, code: Int32, message: String?) {
        self.function = function
        self.code = code
        self.message = message
    }

    /// The symbolic name of `code`.
    package var codeName: String {
        switch code {
        case Z_OK: return "Z_OK"
        case Z_STREAM_END: return "Z_STREAM_END"
        case Z_NEED_DICT: return "Z_NEED_DICT"
        case Z_ERRNO: return "Z_ERRNO"
        case Z_STREAM_ERROR: return "Z_STREAM_ERROR"
        case Z_DATA_ERROR: return "Z_DATA_ERROR"
        case Z_MEM_ERROR: return "Z_MEM_ERROR"
        case Z_BUF_ERROR: return "Z_BUF_ERROR"
        case Z_VERSION_ERROR: return "Z_VERSION_ERROR"
        default: return "zlib error \(code)"
        }
    }

    /// True for errors caused by the compressed data itself (corrupt or truncated input).
    package var isDataError: Bool { code == Z_DATA_ERROR || code == Z_BUF_ERROR || code == Z_NEED_DICT }

    package var description: String {
        "zlib \(function) failed: \(message ?? "no message") (\(codeName))"
    }
}

/// The framing around the deflate data.
package enum ZlibFormat: Sendable {
    /// Bare deflate (RFC 1951), as QCOW2 stores it.
    case raw
    /// zlib header and Adler-32 trailer (RFC 1950).
    case zlib
    /// gzip header and CRC-32 trailer (RFC 1952).
    case gzip

    /// zlib's signed windowBits convention for a window of 2^`bits` bytes.
    func zlibWindowBits(_ bits: Int) -> Int32 {
        switch self {
        case .raw: return -Int32(bits)
        case .zlib: return Int32(bits)
        case .gzip: return Int32(bits) + 16
        }
    }
}

/// How a `Deflater.write` call flushes.
package enum DeflateFlush: Sendable {
    /// Let zlib buffer as it likes.
    case none
    /// Emit everything so far, byte-aligned (Z_SYNC_FLUSH).
    case sync
    /// Like `sync`, and later data does not refer back to earlier data (Z_FULL_FLUSH).
    case full

    var raw: Int32 {
        switch self {
        case .none: return Z_NO_FLUSH
        case .sync: return Z_SYNC_FLUSH
        case .full: return Z_FULL_FLUSH
        }
    }
}

/// zlib's compression strategies.
package enum DeflateStrategy: Sendable {
    case `default`, filtered, huffmanOnly, rle, fixed

    var raw: Int32 {
        switch self {
        case .default: return Z_DEFAULT_STRATEGY
        case .filtered: return Z_FILTERED
        case .huffmanOnly: return Z_HUFFMAN_ONLY
        case .rle: return Z_RLE
        case .fixed: return Z_FIXED
        }
    }
}

/// Size of the scratch buffer the streaming calls hand to their sink piece by piece.
private let streamChunkSize = 64 * 1024

/// Validates a window size given as log2 bytes.
private func validatedWindow(_ bits: Int, function: String) throws -> Int {
    // zlib silently turns a raw window of 8 into 9; accept only what is really used.
    guard (9...15).contains(bits) else {
        throw ZlibError(function: function, code: Z_STREAM_ERROR,
                        message: "window bits must be between 9 and 15 (a 512 B to 32 KiB window), not \(bits)")
    }
    return bits
}

/// One `z_stream` and its output scratch, set up by `deflateInit2` or `inflateInit2` and
/// ended in `deinit`: the part `Deflater` and `Inflater` share. `step` is `deflate` or
/// `inflate`, the one call that moves data.
private final class ZStream {
    /// "deflate" or "inflate", for errors.
    let function: String
    private let stream: UnsafeMutablePointer<z_stream>
    private let scratch = UnsafeMutablePointer<Bytef>.allocate(capacity: streamChunkSize)
    private let step: (UnsafeMutablePointer<z_stream>, Int32) -> Int32
    private let end: (UnsafeMutablePointer<z_stream>) -> Int32
    private let resetStream: (UnsafeMutablePointer<z_stream>) -> Int32

    /// How one `pump` ended.
    enum Outcome {
        /// The end of the stream was reached.
        case ended
        /// All input is taken and all output delivered; more input may follow.
        case needsInput
        /// zlib can make no progress (Z_BUF_ERROR with nothing produced).
        case stuck
    }

    init(function: String, initialize: (UnsafeMutablePointer<z_stream>) -> Int32,
         step: @escaping (UnsafeMutablePointer<z_stream>, Int32) -> Int32,
         reset: @escaping (UnsafeMutablePointer<z_stream>) -> Int32,
         end: @escaping (UnsafeMutablePointer<z_stream>) -> Int32) throws {
        self.function = function
        self.step = step
        self.end = end
        resetStream = reset
        stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let code = initialize(stream)
        if code != Z_OK {
            let error = ZlibError(function: function + "Init2", code: code, message: message)
            stream.deinitialize(count: 1)
            stream.deallocate()
            scratch.deallocate()
            throw error
        }
    }

    deinit {
        _ = end(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        scratch.deallocate()
    }

    /// zlib's `msg`, when it left one.
    var message: String? { stream.pointee.msg.map { String(cString: $0) } }

    func error(_ code: Int32, _ fallback: String? = nil) -> ZlibError {
        ZlibError(function: function, code: code, message: message ?? fallback)
    }

    func reset() throws {
        let code = resetStream(stream)
        if code != Z_OK { throw ZlibError(function: function + "Reset", code: code, message: message) }
    }

    /// Bytes of input not taken yet.
    var inputLeft: Int { Int(stream.pointee.avail_in) }

    /// An upper bound of the deflated size of `count` bytes (deflate streams only).
    func bound(_ count: Int) -> Int { Int(deflateBound(stream, uLong(count))) }

    /// One `step` call from `input` into `output`: returns zlib's code and the bytes
    /// consumed and produced.
    func once(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer,
              flush: Int32) -> (code: Int32, consumed: Int, produced: Int) {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = output.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(output.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }
        let code = step(stream, flush)
        return (code, input.count - Int(stream.pointee.avail_in), output.count - Int(stream.pointee.avail_out))
    }

    /// Feeds `input` through `step` with `flush`, handing each piece of output to `sink`,
    /// until the stream ends, zlib wants more input, or it is stuck. Codes other than Z_OK,
    /// Z_BUF_ERROR and Z_STREAM_END throw. Leaves `inputLeft` set for the caller.
    func pump(_ input: UnsafeRawBufferPointer, flush: Int32, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Outcome {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil
        }
        while true {
            stream.pointee.next_out = scratch
            stream.pointee.avail_out = uInt(streamChunkSize)
            let code = step(stream, flush)
            let produced = streamChunkSize - Int(stream.pointee.avail_out)
            if produced > 0 { try sink(UnsafeRawBufferPointer(start: scratch, count: produced)) }
            switch code {
            case Z_STREAM_END:
                return .ended
            case Z_OK, Z_BUF_ERROR:
                // Done when zlib took all input and had output space left over.
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0 && flush != Z_FINISH { return .needsInput }
                if code == Z_BUF_ERROR && produced == 0 { return .stuck }
            case Z_NEED_DICT:
                throw ZlibError(function: function, code: code, message: "the stream needs a preset dictionary")
            default:
                throw error(code)
            }
        }
    }
}

/// A deflate stream (compressor). Owns its `z_stream`; freed in `deinit`. Not thread-safe:
/// use one per thread.
package final class Deflater {
    /// log2 of the window: matches reach back at most 2^windowBits bytes.
    package let windowBits: Int
    /// Compression level, 0...9.
    package let level: Int
    /// The framing written.
    package let format: ZlibFormat
    private let stream: ZStream

    /// Sets up a compressor; `level` 0...9, `windowBits` 9...15, `memoryLevel` 1...9.
    package init(level: Int = 6, windowBits: Int = 15, format: ZlibFormat = .raw,
                memoryLevel: Int = 8, strategy: DeflateStrategy = .default) throws {
        let bits = try validatedWindow(windowBits, function: "deflateInit2")
        guard (0...9).contains(level) else {
            throw ZlibError(function: "deflateInit2", code: Z_STREAM_ERROR, message: "compression level must be 0...9, not \(level)")
        }
        guard (1...9).contains(memoryLevel) else {
            throw ZlibError(function: "deflateInit2", code: Z_STREAM_ERROR, message: "memory level must be 1...9, not \(memoryLevel)")
        }
        self.windowBits = bits
        self.level = level
        self.format = format
        stream = try ZStream(function: "deflate", initialize: {
            rast_deflateInit2($0, Int32(level), Z_DEFLATED, format.zlibWindowBits(bits), Int32(memoryLevel), strategy.raw)
        }, step: deflate, reset: deflateReset, end: deflateEnd)
    }

    /// Starts a new stream with the same settings (cheaper than a new Deflater).
    package func reset() throws {
        try stream.reset()
    }

    /// An upper bound of the compressed size of `count` bytes in one complete stream.
    package func bound(_ count: Int) -> Int {
        // zlib 1.2.13 undercounts a stored (level 0) stream of 0 or 1 bytes by a byte or two.
        stream.bound(count) + 16
    }

    /// Compresses `input` as one complete stream into `output` (resetting first). Returns the
    /// compressed size, or nil when the stream does not fit into `output`.
    package func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int? {
        try reset()
        guard output.baseAddress != nil, output.count > 0 else { return nil }
        let result = stream.once(input, into: output, flush: Z_FINISH)
        switch result.code {
        case Z_STREAM_END:
            return result.produced
        case Z_OK, Z_BUF_ERROR:
            // Output space ran out before the end of the stream.
            return nil
        default:
            throw stream.error(result.code)
        }
    }

    /// Compresses `input` as one complete stream and returns it.
    package func compress(_ input: [UInt8]) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: bound(input.count))
        let size = try input.withUnsafeBytes { inBytes in
            try output.withUnsafeMutableBytes { try compress(inBytes, into: $0) }
        }
        guard let size else {
            throw ZlibError(function: "deflate", code: Z_BUF_ERROR, message: "output exceeded deflateBound")
        }
        output.removeSubrange(size...)
        return output
    }

    /// Streaming: feeds `input`; compressed bytes go to `sink` as they are produced.
    package func write(_ input: UnsafeRawBufferPointer, flush: DeflateFlush = .none,
                      to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try run(input, flush: flush.raw, sink: sink)
    }

    /// Streaming: ends the stream; the remaining bytes go to `sink`. Call `reset()` to reuse.
    package func finish(to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH, sink: sink)
    }

    private func run(_ input: UnsafeRawBufferPointer, flush: Int32, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if try stream.pump(input, flush: flush, sink: sink) == .stuck {
            throw stream.error(Z_BUF_ERROR, "no progress possible")
        }
    }
}

/// What one `Inflater.decompress` call did.
package struct InflateResult: Sendable, Equatable {
    /// Input bytes consumed.
    package var consumed: Int
    /// Output bytes produced.
    package var produced: Int
    /// True when the end of the deflate stream was reached.
    package var finished: Bool
}

/// An inflate stream (decompressor). Owns its `z_stream`; freed in `deinit`. Not thread-safe.
package final class Inflater {
    /// log2 of the window; a stream that refers further back fails with Z_DATA_ERROR.
    package let windowBits: Int
    /// The framing expected.
    package let format: ZlibFormat
    private let stream: ZStream
    private var ended = false

    /// Sets up a decompressor for streams made with a window of at most 2^`windowBits` bytes.
    package init(windowBits: Int = 15, format: ZlibFormat = .raw) throws {
        let bits = try validatedWindow(windowBits, function: "inflateInit2")
        self.windowBits = bits
        self.format = format
        stream = try ZStream(function: "inflate", initialize: { rast_inflateInit2($0, format.zlibWindowBits(bits)) },
                             step: inflate, reset: inflateReset, end: inflateEnd)
    }

    /// Starts a new stream with the same settings.
    package func reset() throws {
        try stream.reset()
        ended = false
    }

    /// True once the end of the current stream was reached.
    package var isFinished: Bool { ended }

    /// Inflates a new stream from `input` into `output` (resetting first) until the stream
    /// ends, the input runs out or `output` is full. Corrupt data throws.
    package func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> InflateResult {
        try reset()
        guard output.baseAddress != nil, output.count > 0 else {
            return InflateResult(consumed: 0, produced: 0, finished: false)
        }
        let (code, consumed, produced) = stream.once(input, into: output, flush: Z_FINISH)
        let result = InflateResult(consumed: consumed, produced: produced, finished: code == Z_STREAM_END)
        switch code {
        case Z_STREAM_END:
            ended = true
            return result
        case Z_OK, Z_BUF_ERROR:
            // Input exhausted or output full: the caller decides whether that is enough.
            return result
        case Z_NEED_DICT:
            throw ZlibError(function: "inflate", code: code, message: "the stream needs a preset dictionary")
        default:
            throw stream.error(code)
        }
    }

    /// Streaming: feeds `input`; decompressed bytes go to `sink`. Returns the number of input
    /// bytes consumed, which is less than `input.count` only when the stream ended early
    /// (`isFinished`); the rest is whatever follows the stream.
    @discardableResult
    package func write(_ input: UnsafeRawBufferPointer, to sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        if ended || input.isEmpty { return 0 }
        if try stream.pump(input, flush: Z_NO_FLUSH, sink: sink) == .ended { ended = true }
        return input.count - stream.inputLeft
    }

    /// Streaming: throws unless the stream has ended (input that stops early is truncated).
    package func finish() throws {
        guard ended else {
            throw ZlibError(function: "inflate", code: Z_BUF_ERROR, message: "input ended before the end of the deflate stream")
        }
    }
}

/// One-call helpers for whole buffers.
package enum Zlib {
    /// The version of the zlib library in use.
    package static var version: String { String(cString: zlibVersion()) }

    /// Compresses `data` as raw deflate with a window of 2^`windowBits` bytes
    /// (windowBits 12 is what zlib's callers write as -12).
    package static func deflateRaw(_ data: [UInt8], level: Int = 6, windowBits: Int = 15) throws -> [UInt8] {
        try Deflater(level: level, windowBits: windowBits, format: .raw).compress(data)
    }

    /// Decompresses one complete raw deflate stream made with a window of at most
    /// 2^`windowBits` bytes. With `expectedSize`, the output must be exactly that long; a
    /// stream that would produce more is an error (and is not decompressed further).
    package static func inflateRaw(_ data: [UInt8], windowBits: Int = 15, expectedSize: Int? = nil) throws -> [UInt8] {
        let inflater = try Inflater(windowBits: windowBits, format: .raw)
        if let expectedSize {
            // One extra byte tells "exactly expectedSize" from "more than that".
            var output = [UInt8](repeating: 0, count: expectedSize + 1)
            let result = try data.withUnsafeBytes { input in
                try output.withUnsafeMutableBytes { try inflater.decompress(input, into: $0) }
            }
            guard result.finished else {
                let message = result.produced > expectedSize
                    ? "the stream holds more than the expected \(expectedSize) bytes"
                    : "input ended before the end of the deflate stream"
                throw ZlibError(function: "inflate", code: Z_BUF_ERROR, message: message)
            }
            guard result.produced == expectedSize else {
                throw ZlibError(function: "inflate", code: Z_DATA_ERROR,
                                message: "the stream holds \(result.produced) bytes, expected \(expectedSize)")
            }
            output.removeLast()
            return output
        }
        var output: [UInt8] = []
        output.reserveCapacity(data.count * 3)
        try data.withUnsafeBytes { input in
            _ = try inflater.write(input) { output.append(contentsOf: $0) }
        }
        try inflater.finish()
        return output
    }
}
