import Foundation

/// One piece of a read unit, in virtual disk order.
struct ReadItem {
    enum Source {
        /// Uncompressed clusters, contiguous in the file.
        case data(hostOffset: UInt64)
        /// One compressed cluster.
        case compressed(hostOffset: UInt64, maximumSize: Int)
        /// Zeros (only written when the output is a device).
        case zeros
    }
    let source: Source
    let virtualOffset: Int64
    /// Bytes of the virtual disk this item covers.
    let length: Int
    /// Where its bytes go in the slot buffer (unused for zeros).
    let bufferOffset: Int
}

/// A buffer set in the reader's ring (see `WorkerPool`): the caller walks the L1/L2 tables
/// and fills `items`; a worker reads and decompresses them into `buffer`.
final class ReadSlot {
    let buffer: AlignedBuffer
    var items: [ReadItem] = []

    init(capacity: Int) { buffer = AlignedBuffer(count: capacity) }

    /// Reads the items' bytes with `read(buffer, count, offset)` into the buffer, decompressing
    /// compressed clusters (a worker thread's part); `compressed` is scratch space for one cluster.
    func fill(fileSize: Int64, clusterSize: Int, compression: QCOW2Compression, decompressor: ClusterDecompressor,
              compressed: AlignedBuffer, read: (UnsafeMutableRawPointer, Int, Int64) throws -> Int) throws {
        for item in items {
            let target = buffer.base + item.bufferOffset
            switch item.source {
            case .zeros:
                break
            case .data(let host):
                let got = try read(target, item.length, Int64(host))
                // QEMU reads past the end of the file as zeros too.
                if got < item.length { (target + got).initializeMemory(as: UInt8.self, repeating: 0, count: item.length - got) }
            case .compressed(let host, let maximumSize):
                let available = min(maximumSize, Int(fileSize - Int64(host)), compressed.count)
                let got = try read(compressed.base, available, Int64(host))
                if let problem = decompressor.decompress(compressed.bytes(at: 0, count: got),
                                                         into: buffer.mutableBytes(at: item.bufferOffset, count: clusterSize)) {
                    throw QCOW2Error(.corruptData, offset: host,
                                     "the \(compression) cluster at \(hex(host)) (virtual offset \(hex(item.virtualOffset))) is corrupt: \(problem)")
                }
            }
        }
    }
}
