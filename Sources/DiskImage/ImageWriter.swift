import CLinux
import Foundation
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Writes an image's virtual disk onto an open target and reads it back.
///
/// Data extents are copied; holes are skipped. On a new file a hole already reads as zeros
/// (and stays a hole), and so do 4 KiB blocks of zeros inside data extents. On a block device the old contents would show through, so each hole
/// is zeroed with BLKZEROOUT: unlike BLKDISCARD it guarantees that the range reads as zeros
/// afterwards, and unlike writing zeros ourselves it lets the device do it cheaply where it
/// can (WRITE ZEROES on disks, a punched hole in a loop device's file); where it cannot, the
/// kernel writes the zeros. Both passes hash the whole virtual disk (holes as zeros), so the
/// hash of a raw image's stream is the SHA-256 of the raw file.
final class ImageWriter {
    let path: String
    let isDevice: Bool
    /// Owned; closed in `deinit`.
    let file: FileDescriptor
    private let chunk = 4 << 20
    private let buffer: UnsafeMutableRawBufferPointer
    private let zeros: UnsafeMutableRawBufferPointer

    /// Opens the target: a block device exclusively (O_EXCL fails while anything has it
    /// mounted or claimed), a file for writing.
    init(path: String, isDevice: Bool) throws {
        do {
            file = try FileDescriptor.open(FilePath(path), .readWrite, options: isDevice ? [.exclusiveCreate, .closeOnExec] : .closeOnExec)
        } catch let error as Errno {
            if isDevice, error == .resourceBusy {
                throw InstallError.refused(target: path, reason: "the kernel reports it busy (mounted, part of a RAID or LVM volume, or opened exclusively by another program)")
            }
            throw SystemError("open", path: path, errno: error)
        }
        self.path = path
        self.isDevice = isDevice
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        buffer.deallocate()
        zeros.deallocate()
        try? file.close()
    }

    /// Copies the virtual disk to offset 0 of the target and flushes it to stable storage.
    /// Returns the SHA-256 of the virtual disk.
    func write(_ source: ImageSource, progress: ProgressReporter) throws -> String {
        var hasher = SHA256()
        var position: Int64 = 0
        let total = source.virtualSize
        let extents = try source.dataExtents() + [total..<total]
        for extent in extents {
            if extent.lowerBound > position {
                try fillHole(position..<extent.lowerBound, hasher: &hasher)
                position = extent.lowerBound
                progress.update(ProgressUpdate(task: "write", completed: position, total: total, unit: .bytes))
            }
            while position < extent.upperBound {
                try checkCancelled()
                let length = Int(min(Int64(chunk), extent.upperBound - position))
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
                try source.read(at: position, into: piece)
                if isDevice {
                    try writeFully(UnsafeRawBufferPointer(piece), at: position)
                } else if let base = piece.baseAddress {
                    // A new file reads zeros where nothing was written: blocks of zeros inside
                    // data extents (preallocated images) stay holes there.
                    for run in ZeroBlocks.dataRuns(base, count: length, start: position) {
                        try writeFully(UnsafeRawBufferPointer(rebasing: piece[run]), at: position + Int64(run.lowerBound))
                    }
                }
                hasher.update(UnsafeRawBufferPointer(piece))
                position += Int64(length)
                progress.update(ProgressUpdate(task: "write", completed: position, total: total, unit: .bytes))
            }
        }
        try sync()
        return hasher.finalize()
    }

    /// Hashes the first `length` bytes as they are on stable storage: the page cache is
    /// flushed and dropped first, so the bytes come from the disk, not from memory.
    func readBack(length: Int64, progress: ProgressReporter) throws -> String {
        try sync()
        _ = posix_fadvise(file.rawValue, 0, 0, POSIX_FADV_DONTNEED)
        if isDevice { _ = rast_block_flush(file.rawValue) }
        var hasher = SHA256()
        var position: Int64 = 0
        while position < length {
            try checkCancelled()
            let want = Int(min(Int64(chunk), length - position))
            let got = try SystemError.wrapping("read back", path: path) {
                try file.read(fromAbsoluteOffset: position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            }
            guard got > 0 else {
                throw InstallError.verificationFailed(target: path, expected: "\(length) bytes", actual: "only \(position) bytes")
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            position += Int64(got)
            progress.update(ProgressUpdate(task: "verify", completed: position, total: length, unit: .bytes))
        }
        return hasher.finalize()
    }

    func sync() throws {
        try file.sync(path: path)
    }

    /// Asks the kernel to read the device's partition table again, so that /dev/sdX1... match
    /// the new table (without a GPT parser in the kernel this changes nothing; not an error).
    func rereadPartitions() {
        guard isDevice else { return }
        if rast_block_reread_partitions(file.rawValue) != 0 {
            RastLog.logger.debug("BLKRRPART on \(path): \(String(cString: strerror(errno)))")
        }
    }

    private func fillHole(_ range: Range<Int64>, hasher: inout SHA256) throws {
        var offset = range.lowerBound
        while offset < range.upperBound {
            try checkCancelled()
            let length = Int(min(Int64(zeros.count), range.upperBound - offset))
            hasher.update(UnsafeRawBufferPointer(rebasing: zeros[0..<length]))
            offset += Int64(length)
        }
        guard isDevice else { return }
        // BLKZEROOUT wants 512-byte multiples; image extents are (4 KiB or clusters).
        let start = (range.lowerBound + 511) / 512 * 512
        let end = range.upperBound / 512 * 512
        if start > range.lowerBound { try writeZeros(range.lowerBound..<min(start, range.upperBound)) }
        if end > start {
            var piece = start
            while piece < end {
                try checkCancelled()
                let length = min(Int64(256 << 20), end - piece)
                if rast_block_zero_out(file.rawValue, UInt64(piece), UInt64(length)) != 0 {
                    let error = errno
                    guard error == ENOTTY || error == EINVAL || error == EOPNOTSUPP else {
                        throw SystemError("zero (BLKZEROOUT) a range of", path: path, errno: error)
                    }
                    try writeZeros(piece..<piece + length)
                }
                piece += length
            }
        }
        if end < range.upperBound, end >= start { try writeZeros(end..<range.upperBound) }
    }

    private func writeZeros(_ range: Range<Int64>) throws {
        var offset = range.lowerBound
        while offset < range.upperBound {
            let length = Int(min(Int64(zeros.count), range.upperBound - offset))
            try writeFully(UnsafeRawBufferPointer(rebasing: zeros[0..<length]), at: offset)
            offset += Int64(length)
        }
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws {
        try file.writeAll(toAbsoluteOffset: offset, bytes, path: path)
    }
}
