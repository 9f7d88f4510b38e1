import CLinux
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Copies a directory tree the way `cp -a --reflink=auto` does, without depending on GNU
/// coreutils (images ship busybox): files are reflinked when the filesystem allows it,
/// otherwise copied with copy_file_range; modes, owners, times and symlinks are kept;
/// device nodes, FIFOs and sockets are recreated.
package enum TreeCopy {
    /// Copies the contents of `source` into the directory `destination` (created if missing).
    package static func copyContents(of source: String, into destination: String) throws {
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
    package static func copy(_ source: String, to destination: String) throws {
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
        let output = try FileDescriptor.open(path: destination, .writeOnly, options: [.create, .exclusiveCreate],
                                             permissions: .ownerReadWrite, operation: "create")
        try output.closeAfter(path: destination) {
            try copyData(from: source, to: output, path: destination)
        }
    }

    /// Copies the bytes of the file at `source` to `output` (at its offset): a reflink when
    /// the file system allows it, else copy_file_range, else reads and writes. `path` names
    /// `output` in errors.
    package static func copyData(from source: String, to output: FileDescriptor, path: String) throws {
        let input = try FileDescriptor.open(path: source, .readOnly)
        try input.closeAfter(path: source) {
            // The C helpers take raw descriptors: swift-system has no clone or copy_file_range.
            if rast_clone_file(output.rawValue, input.rawValue) == 0 { return }
            while true {
                let copied = rast_copy_file_range(input.rawValue, output.rawValue, 1 << 30)
                if copied > 0 { continue }
                if copied == 0 { return }
                if errno == EINTR { continue }
                // Across filesystems of different types the kernel refuses; copy by hand.
                guard [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) else { throw SystemError("copy", path: path) }
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let count = try buffer.withUnsafeMutableBytes { try input.read(filling: $0, path: source) }
                    if count == 0 { return }
                    try output.writeAll(buffer[..<count], path: path)
                }
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
