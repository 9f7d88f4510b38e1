#if canImport(Glibc)
import Glibc
#endif

/// Finding the parts of a buffer that are not zeros, for writers that keep holes: a block of
/// zeros is not written to a new file (which reads as zeros there anyway), as `qemu-img
/// convert` skips zero blocks by default.
package enum ZeroBlocks {
    /// The granularity: the page and file system block size (qemu-img's default for `-S`).
    package static let blockSize = 4096

    /// True when all `count` bytes at `bytes` are zero.
    package static func isZero(_ bytes: UnsafeRawPointer, count: Int) -> Bool {
        guard count > 0 else { return true }
        // The first byte is zero and every byte equals the one before it.
        return bytes.load(as: UInt8.self) == 0 && memcmp(bytes, bytes + 1, count - 1) == 0
    }

    /// The ranges (offsets into the buffer) of `blockSize` blocks that hold a non-zero byte,
    /// adjacent blocks joined. Block boundaries are counted from `start` (the buffer's offset
    /// in the disk), so that a skipped block is a whole aligned block of the output.
    package static func dataRuns(_ bytes: UnsafeRawPointer, count: Int, start: Int64 = 0,
                                blockSize: Int = ZeroBlocks.blockSize) -> [Range<Int>] {
        var runs: [Range<Int>] = []
        var position = 0
        while position < count {
            let misalignment = Int((start + Int64(position)) % Int64(blockSize))
            let length = min(blockSize - misalignment, count - position)
            if !isZero(bytes + position, count: length) {
                if let last = runs.last, last.upperBound == position {
                    runs[runs.count - 1] = last.lowerBound..<position + length
                } else {
                    runs.append(position..<position + length)
                }
            }
            position += length
        }
        return runs
    }
}
