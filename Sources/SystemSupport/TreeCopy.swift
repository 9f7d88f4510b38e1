import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Copies a directory tree the way `cp -a --reflink=auto` does, without depending on GNU
/// coreutils (images ship busybox): files are reflinked when the filesystem allows it,
/// otherwise copied with copy_file_range; modes, owners, times and symlinks are kept;
/// device nodes, FIFOs and sockets are recreated.
public enum TreeCopy {
    /// Copies the contents of `source` into the directory `destination` (created if missing).
    public static func copyContents(of source: String, into destination: String) throws {
        var st = stat()
        try SystemError.check("stat", path: source) { lstat(source, &st) }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw UserError("\(source) is not a directory") }
        if !Files.isDirectory(destination) {
            try SystemError.check("mkdir", path: destination) { mkdir(destination, st.st_mode & 0o7777) }
        }
        for name in try FileManagerShim.contents(of: source) {
            try copy(source + "/" + name, to: destination + "/" + name)
        }
        try copyMetadata(st, to: destination)
    }

    /// Copies one entry (recursively for directories) to a path that does not exist yet.
    public static func copy(_ source: String, to destination: String) throws {
        var st = stat()
        try SystemError.check("stat", path: source) { lstat(source, &st) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            try SystemError.check("mkdir", path: destination) { mkdir(destination, 0o700) }
            for name in try FileManagerShim.contents(of: source) {
                try copy(source + "/" + name, to: destination + "/" + name)
            }
            try copyMetadata(st, to: destination)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink(source, &buffer, buffer.count - 1)
            if length < 0 { throw SystemError("readlink", path: source) }
            buffer[length] = 0
            try SystemError.check("symlink", path: destination) { symlink(buffer, destination) }
            _ = lchown(destination, st.st_uid, st.st_gid)
            var times = [st.st_atim, st.st_mtim]
            _ = utimensat(AT_FDCWD, destination, &times, AT_SYMLINK_NOFOLLOW)
        case S_IFREG:
            try copyFile(source, to: destination, size: Int(st.st_size))
            try copyMetadata(st, to: destination)
        default:
            try SystemError.check("mknod", path: destination) { mknod(destination, st.st_mode, st.st_rdev) }
            try copyMetadata(st, to: destination)
        }
    }

    private static func copyFile(_ source: String, to destination: String, size: Int) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        if input < 0 { throw SystemError("open", path: source) }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if output < 0 { throw SystemError("create", path: destination) }
        defer { close(output) }
        if size == 0 || rast_clone_file(output, input) == 0 { return }
        var remaining = size
        while remaining > 0 {
            let copied = rast_copy_file_range(input, output, remaining)
            if copied < 0 {
                if errno == EINTR { continue }
                // Across filesystems of different types the kernel refuses; copy by hand.
                if [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) {
                    try copyByReading(input, output, path: destination)
                    return
                }
                throw SystemError("copy", path: destination)
            }
            if copied == 0 { break }
            remaining -= copied
        }
    }

    private static func copyByReading(_ input: Int32, _ output: Int32, path: String) throws {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if count == 0 { return }
            var offset = 0
            while offset < count {
                let written = buffer.withUnsafeBytes { write(output, $0.baseAddress! + offset, count - offset) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("write", path: path)
                }
                offset += written
            }
        }
    }

    private static func copyMetadata(_ st: stat, to path: String) throws {
        try SystemError.check("chown", path: path) { lchown(path, st.st_uid, st.st_gid) }
        try SystemError.check("chmod", path: path) { chmod(path, st.st_mode & 0o7777) }
        var times = [st.st_atim, st.st_mtim]
        try SystemError.check("set times of", path: path) { utimensat(AT_FDCWD, path, &times, 0) }
    }
}
