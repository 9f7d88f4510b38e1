import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

// swift-system's `FileDescriptor` is rast's one type for an open file: it retries EINTR,
// writes whole buffers (`writeAll`) and scopes a descriptor's life (`closeAfter`). A type
// that keeps a descriptor longer owns it and closes it in `deinit`. What swift-system lacks on
// Linux (fsync, fchmod, SEEK_DATA/SEEK_HOLE, reads that fill a buffer, unique temporary
// files) is added here once, and every failure becomes a `SystemError` naming the path.

extension SystemError {
    /// The error for an `Errno` that swift-system threw while doing `operation` on `path`.
    package init(_ operation: String, path: String? = nil, errno: Errno) {
        self.init(operation, path: path, errno: errno.rawValue)
    }

    /// Runs `body`; an `Errno` it throws becomes a `SystemError` for `operation` on `path`.
    package static func wrapping<R>(_ operation: String, path: String? = nil, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as Errno {
            throw SystemError(operation, path: path, errno: error)
        }
    }
}

extension FileDescriptor {
    /// Opens `path`, always close-on-exec. A failure is a `SystemError` for `operation`.
    package static func open(path: String, _ mode: AccessMode, options: OpenOptions = [],
                            permissions: FilePermissions? = nil, operation: String = "open") throws -> FileDescriptor {
        try SystemError.wrapping(operation, path: path) {
            try FileDescriptor.open(FilePath(path), mode, options: options.union(.closeOnExec), permissions: permissions)
        }
    }

    /// Creates a new file named `prefix` followed by six random letters and digits, as
    /// mkstemp(3) does: never an existing file, open for reading and writing, close-on-exec.
    /// A failure is a `SystemError` for `operation` on `reportedPath` (the prefix by default).
    package static func createUnique(prefix: String, permissions: FilePermissions = .ownerReadWrite,
                                    operation: String = "create a temporary file", reportedPath: String? = nil)
        throws -> (descriptor: FileDescriptor, path: String) {
        let characters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var attempt = 0
        while true {
            let candidate = prefix + String((0..<6).map { _ in characters[Int.random(in: 0..<characters.count)] })
            do {
                let descriptor = try FileDescriptor.open(FilePath(candidate), .readWrite,
                                                         options: [.create, .exclusiveCreate, .closeOnExec],
                                                         permissions: permissions)
                return (descriptor, candidate)
            } catch let error as Errno {
                attempt += 1
                if error == .fileExists, attempt < 100 { continue }
                throw SystemError(operation, path: reportedPath ?? prefix, errno: error)
            }
        }
    }

    /// Runs `body`, then closes the descriptor whatever happened. When `body` succeeded, a
    /// failing close is an error too: a delayed write error shows up there.
    package func closeAfter<R>(path: String, _ body: () throws -> R) throws -> R {
        let result: R
        do {
            result = try body()
        } catch {
            _ = try? close()
            throw error
        }
        try SystemError.wrapping("close", path: path) { try close() }
        return result
    }

    /// Reads from the current offset until `buffer` is full or the file ends; returns the
    /// number of bytes read.
    package func read(filling buffer: UnsafeMutableRawBufferPointer, path: String) throws -> Int {
        try fill(buffer, path: path) { rest, _ in try read(into: rest) }
    }

    /// Reads at `offset` (pread: the file offset stays, so several threads may share the
    /// descriptor) until `buffer` is full or the file ends; returns the number of bytes read.
    package func read(filling buffer: UnsafeMutableRawBufferPointer, fromAbsoluteOffset offset: Int64,
                     path: String) throws -> Int {
        try fill(buffer, path: path) { rest, done in try read(fromAbsoluteOffset: offset + Int64(done), into: rest) }
    }

    private func fill(_ buffer: UnsafeMutableRawBufferPointer, path: String,
                      read: (_ rest: UnsafeMutableRawBufferPointer, _ done: Int) throws -> Int) throws -> Int {
        var done = 0
        while done < buffer.count {
            let count = try SystemError.wrapping("read", path: path) {
                try read(UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), done)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    /// Everything from the current offset to the end of the file.
    package func readToEnd(path: String) throws -> [UInt8] {
        var result: [UInt8] = []
        let chunk = 1 << 16
        while true {
            let start = result.count
            result.append(contentsOf: repeatElement(0, count: chunk))
            let count = try result.withUnsafeMutableBytes { bytes in
                try SystemError.wrapping("read", path: path) {
                    try read(into: UnsafeMutableRawBufferPointer(rebasing: bytes[start...]))
                }
            }
            result.removeLast(chunk - count)
            if count == 0 { return result }
        }
    }

    /// Writes all of `bytes` at the current offset.
    package func writeAll<Bytes: Sequence<UInt8>>(_ bytes: Bytes, path: String) throws {
        try SystemError.wrapping("write", path: path) { _ = try writeAll(bytes) }
    }

    /// Writes all of `bytes` at `offset` (pwrite: the file offset stays).
    package func writeAll<Bytes: Sequence<UInt8>>(toAbsoluteOffset offset: Int64, _ bytes: Bytes, path: String) throws {
        try SystemError.wrapping("write", path: path) { _ = try writeAll(toAbsoluteOffset: offset, bytes) }
    }

    /// Flushes the file's data and metadata to stable storage (fsync).
    package func sync(path: String) throws {
        while fsync(rawValue) != 0 {
            if errno != EINTR { throw SystemError("fsync", path: path) }
        }
    }

    /// Sets the file's permission bits (fchmod; the umask does not apply).
    package func setPermissions(_ mode: mode_t, path: String) throws {
        try SystemError.check("chmod", path: path) { fchmod(rawValue, mode) }
    }

    /// Makes the file `size` bytes long (ftruncate).
    package func resize(to size: Int64, path: String) throws {
        try SystemError.wrapping("truncate", path: path) { try resize(to: size) }
    }

    /// The size in bytes; for a block device, its capacity.
    package func size(path: String) throws -> Int64 {
        try SystemError.wrapping("seek to the end of", path: path) { try seek(offset: 0, from: .end) }
    }

    /// The data extents of the first `size` bytes, in order (SEEK_DATA and SEEK_HOLE, which
    /// swift-system names only on Darwin and FreeBSD); everything else is a hole and reads as
    /// zeros. A file system or device that cannot tell (EINVAL) has only data.
    package func dataExtents(size: Int64, path: String) throws -> [Range<Int64>] {
        // Linux's whence values; Swift's Glibc module is built without _GNU_SOURCE.
        let nextData = SeekOrigin(rawValue: 3), nextHole = SeekOrigin(rawValue: 4)
        var extents: [Range<Int64>] = []
        var position: Int64 = 0
        while position < size {
            let data: Int64
            do {
                data = try seek(offset: position, from: nextData)
            } catch let error as Errno {
                if error == .noSuchAddressOrDevice { break }  // only a hole from here to the end
                if error == .invalidArgument { extents.append(position..<size); break }
                throw SystemError("find data (SEEK_DATA) in", path: path, errno: error)
            }
            if data >= size { break }
            let hole = try SystemError.wrapping("find a hole (SEEK_HOLE) in", path: path) { try seek(offset: data, from: nextHole) }
            let end = min(hole, size)
            if end > data { extents.append(data..<end) }
            position = end
        }
        return extents
    }
}
