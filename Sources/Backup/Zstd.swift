// Streaming zstd (one frame, with its content checksum) for backup streams.
import CZstd

package struct ZstdError: Error, CustomStringConvertible, Sendable {
    package let function: String
    package let message: String
    package var description: String { "zstd: \(function) failed: \(message)" }

    static func check(_ function: String, _ code: Int) throws -> Int {
        if ZSTD_isError(code) != 0 { throw ZstdError(function: function, message: String(cString: ZSTD_getErrorName(code))) }
        return code
    }
}

/// A streaming compressor (ZSTD_CCtx), freed in `deinit`; `output` gets compressed bytes.
final class ZstdCompressor {
    private let context: OpaquePointer
    private var buffer: [UInt8]
    private let output: (UnsafeRawBufferPointer) throws -> Void

    init(level: Int = 3, workers: Int = 0, output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let context = ZSTD_createCCtx() else { throw ZstdError(function: "ZSTD_createCCtx", message: "out of memory") }
        self.context = context
        self.output = output
        buffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        _ = try ZstdError.check("ZSTD_CCtx_setParameter(compressionLevel)", ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
        _ = try ZstdError.check("ZSTD_CCtx_setParameter(checksumFlag)", ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
        if workers > 0 {
            // libzstd built without threads refuses this; one thread then does the work.
            _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(workers))
        }
    }

    deinit { ZSTD_freeCCtx(context) }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try run(bytes, directive: ZSTD_e_continue)
    }

    func finish() throws {
        try run(UnsafeRawBufferPointer(start: nil, count: 0), directive: ZSTD_e_end)
    }

    private func run(_ bytes: UnsafeRawBufferPointer, directive: ZSTD_EndDirective) throws {
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while true {
            let (remaining, produced) = try buffer.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let remaining = try ZstdError.check("ZSTD_compressStream2", ZSTD_compressStream2(context, &outBuffer, &input, directive))
                return (remaining, outBuffer.pos)
            }
            if produced > 0 { try buffer.withUnsafeBytes { try output(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            let done = directive == ZSTD_e_end ? remaining == 0 : input.pos == input.size && produced < buffer.count
            if done { return }
        }
    }
}

/// A streaming decompressor (ZSTD_DCtx), freed in `deinit`; `finish` fails on a stream that
/// ends within a frame.
final class ZstdDecompressor {
    private let context: OpaquePointer
    private var buffer: [UInt8]
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var lastHint = 0
    private var started = false

    init(output: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let context = ZSTD_createDCtx() else { throw ZstdError(function: "ZSTD_createDCtx", message: "out of memory") }
        self.context = context
        self.output = output
        buffer = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    }

    deinit { ZSTD_freeDCtx(context) }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if bytes.count > 0 { started = true }
        var input = ZSTD_inBuffer(src: bytes.baseAddress, size: bytes.count, pos: 0)
        while true {
            let (hint, produced) = try buffer.withUnsafeMutableBytes { out -> (Int, Int) in
                var outBuffer = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let hint = try ZstdError.check("ZSTD_decompressStream", ZSTD_decompressStream(context, &outBuffer, &input))
                return (hint, outBuffer.pos)
            }
            lastHint = hint
            if produced > 0 { try buffer.withUnsafeBytes { try output(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            if input.pos == input.size && produced < buffer.count { return }
        }
    }

    func finish() throws {
        guard started, lastHint == 0 else { throw ZstdError(function: "ZSTD_decompressStream", message: "the stream ends within a frame") }
    }
}
