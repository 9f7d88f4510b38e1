import CZstd
import Zlib

/// How data clusters are compressed.
package enum QCOW2Compression: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Data clusters stored as they are.
    case none
    /// Raw deflate with a 4 KiB window (compression_type 0, readable by every QEMU).
    case zlib
    /// One zstd frame per cluster (compression_type 1, QEMU 5.1 and later).
    case zstd

    package var description: String { rawValue }

    /// The level used when the caller names none. Measured on a system image with 64 KiB
    /// clusters (bench/README.md): zlib 5 costs about 20 percent less CPU than QEMU's 6 for half
    /// a percent more size; zstd 4 costs the same CPU as QEMU's 3 (both are zstd's "dfast"
    /// strategy for inputs this small) and is 1.6 percent smaller.
    package var defaultLevel: Int {
        switch self {
        case .none: return 0
        case .zlib: return 5
        case .zstd: return 4
        }
    }

    /// Valid levels.
    package var levels: ClosedRange<Int> {
        switch self {
        case .none: return 0...0
        case .zlib: return 1...9
        case .zstd: return 1...19
        }
    }
}

/// A failed libzstd call: the function and zstd's own error name.
package struct ZstdError: Error, CustomStringConvertible, Sendable {
    /// The libzstd function that failed.
    package let function: String
    /// zstd's error name.
    package let message: String

    package var description: String { "zstd \(function) failed: \(message)" }

    static func check(_ function: String, _ code: Int) throws -> Int {
        if ZSTD_isError(code) != 0 {
            throw ZstdError(function: function, message: String(cString: ZSTD_getErrorName(code)))
        }
        return code
    }
}

/// A zstd compression context (ZSTD_CCtx), freed in `deinit`.
final class ZstdCompressor {
    private let context: OpaquePointer

    init(level: Int) throws {
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(function: "ZSTD_createCCtx", message: "out of memory")
        }
        self.context = context
        _ = try ZstdError.check("ZSTD_CCtx_setParameter(compressionLevel)",
                                ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
        // No checksum: QCOW2 keeps none for other cluster types either, and QEMU ignores it.
        _ = try ZstdError.check("ZSTD_CCtx_setParameter(checksumFlag)",
                                ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0))
    }

    deinit { ZSTD_freeCCtx(context) }

    /// One frame into `output`; nil when it does not fit.
    func compress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int? {
        let result = ZSTD_compress2(context, output.baseAddress, output.count, input.baseAddress, input.count)
        if ZSTD_isError(result) != 0 {
            if ZSTD_getErrorCode(result) == ZSTD_error_dstSize_tooSmall { return nil }
            _ = try ZstdError.check("ZSTD_compress2", result)
        }
        return result
    }
}

/// A zstd decompression context (ZSTD_DCtx), freed in `deinit`.
final class ZstdDecompressor {
    private let context: OpaquePointer

    /// `maximumWindowLog` bounds the window a frame may ask for, and so the memory a hostile
    /// frame header can make the decoder allocate.
    init(maximumWindowLog: Int) throws {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(function: "ZSTD_createDCtx", message: "out of memory")
        }
        self.context = context
        _ = try ZstdError.check("ZSTD_DCtx_setParameter(windowLogMax)",
                                ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, Int32(maximumWindowLog)))
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses frames from `input` until `output` is full, as QEMU does: the last frame
    /// must end exactly there. Returns nil with a reason when the data is not one cluster.
    func decompressCluster(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> String? {
        ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
        var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        var last = 1
        while outBuffer.pos < outBuffer.size {
            let inBefore = inBuffer.pos
            let outBefore = outBuffer.pos
            last = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
            if ZSTD_isError(last) != 0 {
                return String(cString: ZSTD_getErrorName(last))
            }
            if inBuffer.pos == inBefore && outBuffer.pos == outBefore {
                return "the compressed data ends before the cluster is complete"
            }
        }
        if last != 0 {
            return "the zstd frame continues past the end of the cluster"
        }
        return nil
    }
}

/// Compresses clusters with one compression method. One per thread.
final class ClusterCompressor {
    private enum Engine {
        case zlib(Deflater)
        case zstd(ZstdCompressor)
    }
    private let engine: Engine?

    init(compression: QCOW2Compression, level: Int) throws {
        switch compression {
        case .none: engine = nil
        // QEMU reads only 4 KiB-window streams; memory level 8 measured faster than 9 at the
        // same size (bench/README.md).
        case .zlib: engine = .zlib(try Deflater(level: level, windowBits: 12, format: .raw, memoryLevel: 8))
        case .zstd: engine = .zstd(try ZstdCompressor(level: level))
        }
    }

    /// Compresses one cluster into `output` (which must be smaller than the cluster). Nil
    /// when compression is off or the result is not smaller than `output`'s capacity allows.
    func compress(_ cluster: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int? {
        switch engine {
        case nil: return nil
        case .zlib(let deflater)?: return try deflater.compress(cluster, into: output)
        case .zstd(let zstd)?: return try zstd.compress(cluster, into: output)
        }
    }
}

/// Decompresses clusters of one image's compression type.
final class ClusterDecompressor {
    private enum Engine {
        case zlib(Inflater)
        case zstd(ZstdDecompressor)
    }
    private let engine: Engine

    init(compression: QCOW2Compression, clusterBits: Int) throws {
        switch compression {
        case .none, .zlib: engine = .zlib(try Inflater(windowBits: 12, format: .raw))
        // A frame for one cluster needs no window larger than the cluster; allow a little more
        // for writers that do not pledge the size.
        case .zstd: engine = .zstd(try ZstdDecompressor(maximumWindowLog: max(clusterBits + 2, 20)))
        }
    }

    /// Fills `output` (one cluster) from `input`; returns the reason when it cannot.
    func decompress(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> String? {
        switch engine {
        case .zlib(let inflater):
            // Like QEMU: one call, and the cluster must come out whole; whether the stream's
            // end marker was reached does not matter once the cluster is full.
            do {
                let result = try inflater.decompress(input, into: output)
                if result.produced != output.count {
                    return "the deflate stream holds \(result.produced) bytes, not a whole cluster of \(output.count)"
                }
                return nil
            } catch let error as ZlibError {
                return "inflate: " + (error.message ?? error.codeName)
            } catch {
                return "\(error)"
            }
        case .zstd(let zstd):
            return zstd.decompressCluster(input, into: output)
        }
    }
}
