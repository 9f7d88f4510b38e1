import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Small, careful file operations: atomic replacement, fsync, existence checks.
public enum Files {
    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    public static func size(_ path: String) throws -> Int64 {
        var st = stat()
        try SystemError.check("stat", path: path) { stat(path, &st) }
        return Int64(st.st_size)
    }

    /// The data extents of the first `size` bytes of an open file, in order (SEEK_DATA and
    /// SEEK_HOLE); everything else is a hole and reads as zeros. A file system or device that
    /// cannot tell (EINVAL) has only data.
    public static func dataExtents(fd: Int32, path: String, size: Int64) throws -> [Range<Int64>] {
        // Linux's whence values; Swift's Glibc module is built without _GNU_SOURCE.
        let seekData: Int32 = 3, seekHole: Int32 = 4
        var extents: [Range<Int64>] = []
        var position: Int64 = 0
        while position < size {
            let data = lseek(fd, off_t(position), seekData)
            if data < 0 {
                if errno == ENXIO { break }  // only a hole from here to the end
                if errno == EINVAL { extents.append(position..<size); break }
                throw SystemError("find data (SEEK_DATA) in", path: path)
            }
            if Int64(data) >= size { break }
            let hole = lseek(fd, data, seekHole)
            if hole < 0 { throw SystemError("find a hole (SEEK_HOLE) in", path: path) }
            let end = min(Int64(hole), size)
            if end > Int64(data) { extents.append(Int64(data)..<end) }
            position = end
        }
        return extents
    }

    public static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", path: path) }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if count == 0 { break }
            result.append(contentsOf: buffer[0..<count])
        }
        return result
    }

    /// The first `count` bytes of a file (fewer when it is shorter).
    public static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open", path: path) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count) }
        if got < 0 { throw SystemError("read", path: path) }
        return Array(buffer.prefix(got))
    }

    public static func readString(_ path: String) throws -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// Replaces `path` atomically: a temporary file in the same directory is written and
    /// fsynced, renamed over `path`, and the directory is fsynced. A crash at any moment
    /// leaves either the old content or the new one.
    public static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        var template = Array("\(directory.isEmpty ? "." : directory)/.\(base).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { rast_mkostemp_cloexec($0.baseAddress!) }
        if fd < 0 { throw SystemError("create temporary file for", path: path) }
        let tempPath = String(nulTerminated: template)
        var renamed = false
        defer {
            if !renamed { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("write", path: tempPath)
                }
                offset += written
            }
            try SystemError.check("chmod", path: tempPath) { fchmod(fd, mode) }
            try SystemError.check("fsync", path: tempPath) { fsync(fd) }
        }
        try SystemError.check("rename", path: path) { rename(tempPath, path) }
        renamed = true
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    public static func writeAtomically(_ path: String, string: String, mode: mode_t = 0o644) throws {
        try writeAtomically(path, bytes: Array(string.utf8), mode: mode)
    }

    /// Writes a file in place (no atomicity), creating parent directories.
    public static func write(_ path: String, string: String, mode: mode_t = 0o644) throws {
        try createDirectory((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        if fd < 0 { throw SystemError("open", path: path) }
        defer { close(fd) }
        let bytes = Array(string.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: path)
            }
            offset += written
        }
        try SystemError.check("chmod", path: path) { fchmod(fd, mode) }
    }

    public static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw SystemError("open directory", path: path) }
        defer { close(fd) }
        try SystemError.check("fsync", path: path) { fsync(fd) }
    }

    public static func createDirectory(_ path: String, mode: mode_t = 0o755) throws {
        guard !path.isEmpty, !isDirectory(path) else { return }
        try createDirectory((path as NSString).deletingLastPathComponent, mode: mode)
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw SystemError("mkdir", path: path)
        }
    }

    /// Removes a file or a directory tree. Refuses to descend into anything mounted below
    /// `path`, so a forgotten mount can never make it delete another filesystem's files.
    public static func removeTree(_ path: String) throws {
        guard exists(path) else { return }
        let mounted = try MountTable.read().mounts(under: path)
        if let first = mounted.first {
            throw UserError("refusing to delete \(path): \(first.mountPoint) is still mounted below it")
        }
        try FileManager.default.removeItem(atPath: path)
    }

    /// The directory holding rast's caches (kernel builds, downloads):
    /// `$RAST_CACHE_DIR`, else `$XDG_CACHE_HOME/rast`, else `~/.cache/rast`.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["RAST_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/rast" }
        return NSHomeDirectory() + "/.cache/rast"
    }
}

/// A directory that exists for the life of the value; `remove()` unmounts nothing and
/// refuses to delete across mounts (release mounts first).
public final class TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "rast", in parent: String? = nil) throws {
        let base = parent ?? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        try Files.createDirectory(base)
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError("create temporary directory in", path: base)
        }
        path = String(nulTerminated: template)
    }

    public func appending(_ component: String) -> String { path + "/" + component }

    public func remove() throws {
        try Files.removeTree(path)
    }
}

/// An advisory lock on a file (flock). Serialises concurrent rast invocations.
public final class FileLock {
    public let path: String
    private var fd: Int32

    /// Takes the lock. With `wait`, blocks (calling `onWait` once first); without, throws
    /// `UserError` at once when another process holds it.
    public init(path: String, wait: Bool, onWait: (() -> Void)? = nil) throws {
        self.path = path
        try Files.createDirectory((path as NSString).deletingLastPathComponent)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw SystemError("open lock file", path: path) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
        let error = errno
        guard error == EWOULDBLOCK else {
            close(fd)
            throw SystemError("lock", path: path, errno: error)
        }
        guard wait else {
            close(fd)
            throw UserError("another rast command holds the lock \(path); try again when it finishes, or leave out --no-wait to wait for it")
        }
        onWait?()
        while flock(fd, LOCK_EX) != 0 {
            if errno == EINTR {
                if Cancellation.shared.isCancelled { close(fd); throw InterruptedError(signal: Cancellation.shared.signal) }
                continue
            }
            let error = errno
            close(fd)
            throw SystemError("lock", path: path, errno: error)
        }
    }

    /// Whether another process holds the lock at `path`, found without creating anything:
    /// no file means no lock. A shared lock is tried on a read-only descriptor, so it works
    /// for users who may not write the file. Nil when the file cannot be opened at all.
    public static func isHeld(path: String) -> Bool? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return errno == ENOENT ? false : nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK ? true : nil
    }

    public func unlock() {
        if fd >= 0 {
            flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { unlock() }
}

extension String {
    /// Decodes a NUL-terminated C string held in a Swift array.
    init(nulTerminated chars: [CChar]) {
        self = String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
