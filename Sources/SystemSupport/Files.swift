import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Small, careful file operations: atomic replacement, fsync, existence checks.
package enum Files {
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    package static func size(_ path: String) throws -> Int64 {
        var st = stat()
        try SystemError.check("stat", path: path) { stat(path, &st) }
        return Int64(st.st_size)
    }

    package static func read(_ path: String) throws -> [UInt8] {
        let file = try FileDescriptor.open(path: path, .readOnly)
        return try file.closeAfter(path: path) { try file.readToEnd(path: path) }
    }

    /// The first `count` bytes of a file (fewer when it is shorter).
    package static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        let file = try FileDescriptor.open(path: path, .readOnly)
        var buffer = [UInt8](repeating: 0, count: count)
        let got = try file.closeAfter(path: path) {
            try buffer.withUnsafeMutableBytes { try file.read(filling: $0, path: path) }
        }
        return Array(buffer.prefix(got))
    }

    package static func readString(_ path: String) throws -> String {
        String(decoding: try read(path), as: UTF8.self)
    }

    /// Replaces `path` atomically: a temporary file in the same directory is written and
    /// fsynced, renamed over `path`, and the directory is fsynced. A crash at any moment
    /// leaves either the old content or the new one.
    package static func writeAtomically(_ path: String, bytes: [UInt8], mode: mode_t = 0o644) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let (file, tempPath) = try FileDescriptor.createUnique(prefix: "\(directory.isEmpty ? "." : directory)/.\(base).tmp-",
                                                               operation: "create temporary file for", reportedPath: path)
        var renamed = false
        defer {
            if !renamed { unlink(tempPath) }
        }
        try file.closeAfter(path: tempPath) {
            try file.writeAll(bytes, path: tempPath)
            try file.setPermissions(mode, path: tempPath)
            try file.sync(path: tempPath)
        }
        try SystemError.check("rename", path: path) { rename(tempPath, path) }
        renamed = true
        try syncDirectory(directory.isEmpty ? "." : directory)
    }

    package static func writeAtomically(_ path: String, string: String, mode: mode_t = 0o644) throws {
        try writeAtomically(path, bytes: Array(string.utf8), mode: mode)
    }

    /// Writes a file in place (no atomicity), creating parent directories.
    package static func write(_ path: String, string: String, mode: mode_t = 0o644) throws {
        try createDirectory((path as NSString).deletingLastPathComponent)
        let file = try FileDescriptor.open(path: path, .writeOnly, options: [.create, .truncate],
                                           permissions: FilePermissions(rawValue: mode))
        try file.closeAfter(path: path) {
            try file.writeAll(string.utf8, path: path)
            try file.setPermissions(mode, path: path)
        }
    }

    package static func syncDirectory(_ path: String) throws {
        let directory = try FileDescriptor.open(path: path, .readOnly, options: .directory, operation: "open directory")
        try directory.closeAfter(path: path) { try directory.sync(path: path) }
    }

    package static func createDirectory(_ path: String, mode: mode_t = 0o755) throws {
        guard !path.isEmpty, !isDirectory(path) else { return }
        try createDirectory((path as NSString).deletingLastPathComponent, mode: mode)
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw SystemError("mkdir", path: path)
        }
    }

    /// Removes a file or a directory tree. Refuses to descend into anything mounted below
    /// `path`, so a forgotten mount can never make it delete another filesystem's files.
    package static func removeTree(_ path: String) throws {
        guard exists(path) else { return }
        let mounted = try MountTable.read().mounts(under: path)
        if let first = mounted.first {
            throw UserError("refusing to delete \(path): \(first.mountPoint) is still mounted below it")
        }
        try FileManager.default.removeItem(atPath: path)
    }

    /// The directory holding rast's caches (kernel builds, downloads):
    /// `$RAST_CACHE_DIR`, else `$XDG_CACHE_HOME/rast`, else `~/.cache/rast`.
    package static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["RAST_CACHE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/rast" }
        return NSHomeDirectory() + "/.cache/rast"
    }
}

/// A directory that exists for the life of the value; `remove()` unmounts nothing and
/// refuses to delete across mounts (release mounts first).
package final class TemporaryDirectory: Sendable {
    package let path: String

    package init(prefix: String = "rast", in parent: String? = nil) throws {
        let base = parent ?? (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        try Files.createDirectory(base)
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError("create temporary directory in", path: base)
        }
        path = String(nulTerminated: template)
    }

    package func appending(_ component: String) -> String { path + "/" + component }

    package func remove() throws {
        try Files.removeTree(path)
    }
}

/// An advisory lock on a file (flock). Serialises concurrent rast invocations. Owns the
/// descriptor that holds the lock; `unlock()` or `deinit` closes it.
package final class FileLock {
    package let path: String
    private var file: FileDescriptor?

    /// Takes the lock. With `wait`, blocks (calling `onWait` once first); without, throws
    /// `UserError` at once when another process holds it.
    package init(path: String, wait: Bool, onWait: (() -> Void)? = nil) throws {
        self.path = path
        try Files.createDirectory((path as NSString).deletingLastPathComponent)
        let file = try FileDescriptor.open(path: path, .readWrite, options: .create, permissions: FilePermissions(rawValue: 0o644),
                                           operation: "open lock file")
        // Closed on every way out but success, where the lock (and the descriptor) is kept.
        var locked = false
        defer { if !locked { try? file.close() } }
        if flock(file.rawValue, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            guard error == EWOULDBLOCK else { throw SystemError("lock", path: path, errno: error) }
            guard wait else {
                throw UserError("another rast command holds the lock \(path); try again when it finishes, or leave out --no-wait to wait for it")
            }
            onWait?()
            while flock(file.rawValue, LOCK_EX) != 0 {
                guard errno == EINTR else { throw SystemError("lock", path: path) }
                if Cancellation.shared.isCancelled { throw InterruptedError(signal: Cancellation.shared.signal) }
            }
        }
        locked = true
        self.file = file
    }

    /// Whether another process holds the lock at `path`, found without creating anything:
    /// no file means no lock. A shared lock is tried on a read-only descriptor, so it works
    /// for users who may not write the file. Nil when the file cannot be opened at all.
    package static func isHeld(path: String) -> Bool? {
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
        } catch {
            return (error as? Errno) == .noSuchFileOrDirectory ? false : nil
        }
        defer { try? file.close() }
        if flock(file.rawValue, LOCK_SH | LOCK_NB) == 0 {
            flock(file.rawValue, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK ? true : nil
    }

    package func unlock() {
        if let file {
            flock(file.rawValue, LOCK_UN)
            try? file.close()
            self.file = nil
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
