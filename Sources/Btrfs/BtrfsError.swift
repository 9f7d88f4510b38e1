import CBtrfsUtil
#if canImport(Glibc)
import Glibc
#endif

/// A failed btrfs operation: libbtrfsutil's own message, the errno it left, the function
/// that failed and the path (or paths) it failed on.
package struct BtrfsError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure, for callers that react to some (a path that is no subvolume).
    package enum Kind: Sendable, Equatable {
        case notBtrfs
        case notSubvolume
        case subvolumeNotFound
        case invalidArgument
        /// A system call inside libbtrfsutil failed; `errno` says why.
        case systemCall
        /// `Btrfs.rename(from:to:)` was asked to move between two filesystems.
        case differentFilesystems
        /// A system call made by this module itself (rename, open) failed.
        case system
    }

    package let kind: Kind
    /// libbtrfsutil's message (btrfs_util_strerror), or strerror for the module's own calls.
    package let message: String
    package let errno: Int32
    /// The C function that failed, such as `btrfs_util_create_snapshot`.
    package let function: String
    package let path: String
    /// The second path of two-path operations (the destination of a snapshot or rename).
    package let destination: String?

    package init(kind: Kind, message: String, errno: Int32, function: String, path: String, destination: String? = nil) {
        self.kind = kind
        self.message = message
        self.errno = errno
        self.function = function
        self.path = path
        self.destination = destination
    }

    package var description: String {
        let subject = destination.map { "\(path) -> \($0)" } ?? path
        var text = "\(function) \(subject): \(message)"
        // libbtrfsutil sets errno for its own checks too (EINVAL for "not a subvolume"),
        // which only adds noise there; it matters where a system call failed.
        if kind == .systemCall, errno != 0 {
            text += ": \(String(cString: strerror(errno)))"
        }
        return text
    }
}

extension BtrfsError {
    /// Runs one libbtrfsutil call and throws its error, capturing errno right after it.
    static func check(_ function: String, _ path: String, destination: String? = nil,
                      _ call: () -> btrfs_util_error) throws {
        let code = call()
        let savedErrno = Glibc.errno
        guard code != BTRFS_UTIL_OK else { return }
        throw BtrfsError(code: code, errno: savedErrno, function: function, path: path, destination: destination)
    }

    init(code: btrfs_util_error, errno: Int32, function: String, path: String, destination: String?) {
        let kind: Kind
        switch code {
        case BTRFS_UTIL_ERROR_NOT_BTRFS: kind = .notBtrfs
        case BTRFS_UTIL_ERROR_NOT_SUBVOLUME: kind = .notSubvolume
        case BTRFS_UTIL_ERROR_SUBVOLUME_NOT_FOUND: kind = .subvolumeNotFound
        case BTRFS_UTIL_ERROR_INVALID_ARGUMENT: kind = .invalidArgument
        default: kind = .systemCall
        }
        let message = btrfs_util_strerror(code).map { String(cString: $0) } ?? "libbtrfsutil error \(code.rawValue)"
        self.init(kind: kind, message: message, errno: errno, function: function, path: path, destination: destination)
    }

    /// An error from a system call this module makes itself.
    static func system(_ function: String, _ path: String, destination: String? = nil, errno: Int32 = Glibc.errno) -> BtrfsError {
        BtrfsError(kind: .system, message: String(cString: strerror(errno)), errno: errno,
                   function: function, path: path, destination: destination)
    }
}
