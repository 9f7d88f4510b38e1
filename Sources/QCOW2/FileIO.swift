import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

// Linux's lseek whence values for sparse files; Swift's Glibc module is built without
// _GNU_SOURCE and does not export them.
private let seekData: Int32 = 3
private let seekHole: Int32 = 4

/// An open file descriptor, closed in `deinit`. Full-length pread/pwrite with EINTR retries.
///
/// `@unchecked Sendable`: pread and pwrite at explicit offsets are safe from several threads;
/// `close()` is called only by the owner once no other thread uses the file.
final class ImageFile: @unchecked Sendable {
    let path: String
    private(set) var fd: Int32

    init(path: String, flags: Int32, mode: mode_t = 0o644) throws {
        self.path = path
        fd = open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw SystemError("open", path: path) }
    }

    deinit {
        if fd >= 0 { Glibc.close(fd) }
    }

    /// Closes now, reporting a failure (a delayed write error shows up here).
    func close() throws {
        guard fd >= 0 else { return }
        let result = Glibc.close(fd)
        fd = -1
        if result != 0 { throw SystemError("close", path: path) }
    }

    /// The size in bytes; for a block device, its capacity.
    func size() throws -> Int64 {
        let end = lseek(fd, 0, SEEK_END)
        if end < 0 { throw SystemError("seek to the end of", path: path) }
        return Int64(end)
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws -> Int {
        var done = 0
        while done < count {
            let result = pread(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if result == 0 { break }
            done += result
        }
        return done
    }

    /// Writes all `count` bytes at `offset`.
    func write(_ buffer: UnsafeRawPointer, count: Int, at offset: Int64) throws {
        var done = 0
        while done < count {
            let result = pwrite(fd, buffer + done, count - done, off_t(offset) + off_t(done))
            if result < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: path)
            }
            done += result
        }
    }

    func truncate(to size: Int64) throws {
        try SystemError.check("truncate", path: path) { ftruncate(fd, off_t(size)) }
    }

    func sync() throws {
        try SystemError.check("fsync", path: path) { fsync(fd) }
    }

    /// The data extents (SEEK_DATA/SEEK_HOLE) of the first `size` bytes. A file system or
    /// device without hole support reports everything as data.
    func dataExtents(size: Int64) throws -> [Range<Int64>] {
        var extents: [Range<Int64>] = []
        var position: Int64 = 0
        while position < size {
            let dataStart = lseek(fd, off_t(position), seekData)
            if dataStart < 0 {
                if errno == ENXIO { break }  // no data after `position`
                if errno == EINVAL && position == 0 { return size > 0 ? [0..<size] : [] }
                throw SystemError("find data (SEEK_DATA) in", path: path)
            }
            if Int64(dataStart) >= size { break }
            var holeStart = lseek(fd, dataStart, seekHole)
            if holeStart < 0 { throw SystemError("find a hole (SEEK_HOLE) in", path: path) }
            holeStart = min(holeStart, off_t(size))
            extents.append(Int64(dataStart)..<Int64(holeStart))
            position = Int64(holeStart)
        }
        return extents
    }
}

/// The kind of file at `path`, nil when nothing is there.
func fileType(_ path: String) -> mode_t? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return st.st_mode & S_IFMT
}

/// A file written under a temporary name in the destination's directory and renamed over the
/// destination by `commit()`; removed when dropped without a commit.
final class TemporaryOutput {
    let finalPath: String
    let temporaryPath: String
    let handle: ImageFile
    private var committed = false

    init(finalPath: String) throws {
        self.finalPath = finalPath
        (temporaryPath, handle) = try TemporaryOutput.create(near: finalPath)
    }

    private static func create(near finalPath: String) throws -> (String, ImageFile) {
        let url = URL(fileURLWithPath: finalPath)
        let directory = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        var attempt = 0
        while true {
            let candidate = "\(directory)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            do {
                return (candidate, try ImageFile(path: candidate, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o644))
            } catch let error as SystemError where error.errno == EEXIST && attempt < 100 {
                attempt += 1
            }
        }
    }

    /// Closes the file (optionally after fsync), renames it into place and, when `durable`,
    /// syncs the directory.
    func commit(durable: Bool) throws {
        if durable { try handle.sync() }
        try handle.close()
        try SystemError.check("rename", path: finalPath) { rename(temporaryPath, finalPath) }
        committed = true
        if durable {
            try Files.syncDirectory(URL(fileURLWithPath: finalPath).deletingLastPathComponent().path)
        }
    }

    deinit {
        if !committed { unlink(temporaryPath) }
    }
}

/// Page-aligned memory owned by a class and freed in `deinit`.
final class AlignedBuffer {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(count: Int, zeroed: Bool = false) {
        self.count = count
        base = .allocate(byteCount: max(count, 1), alignment: 4096)
        if zeroed { base.initializeMemory(as: UInt8.self, repeating: 0, count: count) }
    }

    deinit { base.deallocate() }

    func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    func mutableBytes(at offset: Int, count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: base + offset, count: count)
    }
}

/// A write-combining buffer in front of a file: appends and small writes near the end are
/// gathered into large sequential writes; large writes go straight to the file. Bytes past the
/// highest offset written are never written behind the caller's back.
final class CoalescingWriter {
    private let handle: ImageFile
    private let buffer: AlignedBuffer
    /// File offset of buffer[0].
    private var bufferStart: Int64 = 0
    private var bufferCount = 0
    /// Gaps up to this size between the buffered bytes and a new write are filled with zeros.
    private let maximumGap: Int
    private let directThreshold: Int

    init(handle: ImageFile, capacity: Int = 8 << 20, maximumGap: Int, directThreshold: Int = 256 << 10) {
        self.handle = handle
        buffer = AlignedBuffer(count: capacity)
        self.maximumGap = maximumGap
        self.directThreshold = directThreshold
    }

    private var bufferEnd: Int64 { bufferStart + Int64(bufferCount) }

    func write(_ bytes: UnsafeRawPointer, count: Int, at offset: Int64) throws {
        guard count > 0 else { return }
        if fitsBuffer(count: count, at: offset) {
            copyIntoBuffer(bytes, count: count, at: offset)
            return
        }
        if offset + Int64(count) <= bufferStart {
            // Entirely below the buffer: already flushed territory (back-filling a cluster).
            try handle.write(bytes, count: count, at: offset)
            return
        }
        try flush()
        if count < directThreshold && fitsBuffer(count: count, at: offset) {
            copyIntoBuffer(bytes, count: count, at: offset)
        } else {
            try handle.write(bytes, count: count, at: offset)
            bufferStart = max(bufferStart, offset + Int64(count))
        }
    }

    func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { try write(base, count: raw.count, at: offset) }
        }
    }

    private func fitsBuffer(count: Int, at offset: Int64) -> Bool {
        offset >= bufferStart && offset <= bufferEnd + Int64(maximumGap)
            && offset + Int64(count) - bufferStart <= Int64(buffer.count)
    }

    private func copyIntoBuffer(_ bytes: UnsafeRawPointer, count: Int, at offset: Int64) {
        let position = Int(offset - bufferStart)
        if position > bufferCount {
            (buffer.base + bufferCount).initializeMemory(as: UInt8.self, repeating: 0, count: position - bufferCount)
        }
        (buffer.base + position).copyMemory(from: bytes, byteCount: count)
        bufferCount = max(bufferCount, position + count)
    }

    func flush() throws {
        if bufferCount > 0 {
            try handle.write(buffer.base, count: bufferCount, at: bufferStart)
        }
        bufferStart = bufferEnd
        bufferCount = 0
    }
}
