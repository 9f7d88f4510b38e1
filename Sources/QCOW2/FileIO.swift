import Foundation
import Synchronization
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// An image file's descriptor, owned: closed by `close()` (which reports a delayed write
/// error) or in `deinit`. Reads and writes at explicit offsets (pread, pwrite) are safe from
/// several threads; `close()` is called only by the owner once no other thread uses the file.
final class ImageFile: Sendable {
    let path: String
    let descriptor: FileDescriptor
    private let closed = Atomic(false)

    init(path: String, mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = []) throws {
        self.path = path
        descriptor = try FileDescriptor.open(path: path, mode, options: options)
    }

    /// Takes over `descriptor`, opened from `path`.
    init(path: String, owning descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        if !closed.load(ordering: .acquiring) { try? descriptor.close() }
    }

    /// Closes now, reporting a failure (a delayed write error shows up here).
    func close() throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try SystemError.wrapping("close", path: path) { try descriptor.close() }
    }

    /// The size in bytes; for a block device, its capacity.
    func size() throws -> Int64 {
        try descriptor.size(path: path)
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws -> Int {
        try descriptor.read(filling: UnsafeMutableRawBufferPointer(start: buffer, count: count), fromAbsoluteOffset: offset, path: path)
    }

    /// Writes all `count` bytes at `offset`.
    func write(_ buffer: UnsafeRawPointer, count: Int, at offset: Int64) throws {
        try descriptor.writeAll(toAbsoluteOffset: offset, UnsafeRawBufferPointer(start: buffer, count: count), path: path)
    }

    func truncate(to size: Int64) throws {
        try descriptor.resize(to: size, path: path)
    }

    func sync() throws {
        try descriptor.sync(path: path)
    }

    /// The data extents (SEEK_DATA/SEEK_HOLE) of the first `size` bytes. A file system or
    /// device without hole support reports everything as data.
    func dataExtents(size: Int64) throws -> [Range<Int64>] {
        try descriptor.dataExtents(size: size, path: path)
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
        let (descriptor, path) = try FileDescriptor.createUnique(
            prefix: "\(url.deletingLastPathComponent().path)/.\(url.lastPathComponent).tmp-",
            permissions: FilePermissions(rawValue: 0o644), operation: "open")
        return (path, ImageFile(path: path, owning: descriptor))
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

// O_DIRECT, which Swift's Glibc module (built without _GNU_SOURCE) does not export; its value
// differs between architectures.
#if arch(arm64) || arch(arm)
private let openDirect: Int32 = 0o200000
#elseif arch(powerpc64) || arch(powerpc64le)
private let openDirect: Int32 = 0o400000
#else
private let openDirect: Int32 = 0o40000
#endif

/// A write-combining buffer in front of a file: appends and small writes near the end are
/// gathered into large sequential writes; large writes go straight to the file. Bytes past the
/// highest offset written are never written behind the caller's back.
///
/// With `directPath`, block-aligned stretches are written through a second descriptor opened
/// with O_DIRECT: they skip the page cache (no copy, no page allocation, nothing left to flush
/// for an fsync), and the few unaligned bytes at the edges go through the page cache. The
/// kernel keeps the two paths coherent.
final class CoalescingWriter {
    private let handle: ImageFile
    private var direct: ImageFile?
    private let buffer: AlignedBuffer
    /// File offset of buffer[0].
    private var bufferStart: Int64 = 0
    private var bufferCount = 0
    /// Gaps up to this size between the buffered bytes and a new write are filled with zeros.
    private let maximumGap: Int
    private let directThreshold: Int
    /// Offsets, lengths and addresses of O_DIRECT writes are multiples of this.
    static let blockAlignment = 4096

    init(handle: ImageFile, capacity: Int = 8 << 20, maximumGap: Int, directThreshold: Int = 256 << 10,
         directPath: String? = nil) {
        self.handle = handle
        buffer = AlignedBuffer(count: capacity)
        self.maximumGap = maximumGap
        self.directThreshold = directThreshold
        // File systems without O_DIRECT (tmpfs) refuse the open: then everything is buffered.
        direct = directPath.flatMap { try? ImageFile(path: $0, mode: .writeOnly, options: FileDescriptor.OpenOptions(rawValue: openDirect)) }
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
        // Make room, keeping an unaligned tail so that the buffer stays block-aligned.
        try flush(keepingTail: true)
        if count < directThreshold && fitsBuffer(count: count, at: offset) {
            copyIntoBuffer(bytes, count: count, at: offset)
            return
        }
        try flush(keepingTail: false)
        try writeThrough(bytes, count: count, at: offset)
        bufferStart = max(bufferStart, offset + Int64(count))
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

    /// Writes through O_DIRECT when everything is block-aligned, else through the page cache.
    private func writeThrough(_ bytes: UnsafeRawPointer, count: Int, at offset: Int64) throws {
        let alignment = CoalescingWriter.blockAlignment
        if let direct, offset % Int64(alignment) == 0, count % alignment == 0, Int(bitPattern: bytes) % alignment == 0 {
            do {
                try direct.write(bytes, count: count, at: offset)
                return
            } catch let error as SystemError where error.errno == EINVAL {
                // The file system takes O_DIRECT opens but not these writes: stay buffered.
                self.direct = nil
            }
        }
        try handle.write(bytes, count: count, at: offset)
    }

    /// Writes the buffer out. With `keepingTail`, bytes after the last block boundary stay
    /// buffered (moved to the front), so that later appends continue block-aligned.
    private func flush(keepingTail: Bool) throws {
        guard bufferCount > 0 else {
            bufferStart = bufferEnd
            return
        }
        let alignment = Int64(CoalescingWriter.blockAlignment)
        // The bytes up to the first block boundary, then whole blocks, then the rest.
        let misalignment = Int(bufferStart % alignment)
        let head = direct == nil ? bufferCount : min(bufferCount, misalignment == 0 ? 0 : Int(alignment) - misalignment)
        let middle = (bufferCount - head) / Int(alignment) * Int(alignment)
        let tail = bufferCount - head - middle
        if head > 0 { try handle.write(buffer.base, count: head, at: bufferStart) }
        if middle > 0 { try writeThrough(buffer.base + head, count: middle, at: bufferStart + Int64(head)) }
        if keepingTail && direct != nil {
            if tail > 0 { buffer.base.copyMemory(from: buffer.base + head + middle, byteCount: tail) }
            bufferStart += Int64(head + middle)
            bufferCount = tail
        } else {
            if tail > 0 { try handle.write(buffer.base + head + middle, count: tail, at: bufferStart + Int64(head + middle)) }
            bufferStart = bufferEnd
            bufferCount = 0
        }
    }

    /// Writes everything buffered.
    func flush() throws {
        try flush(keepingTail: false)
    }
}
