import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// A failed libarchive operation: the function, the archive (and entry) it worked on, and
/// libarchive's own message.
package struct ArchiveError: Error, CustomStringConvertible, Sendable {
    package enum Kind: Sendable, Equatable {
        /// libarchive reported an error (its message is in `message`).
        case library
        /// An entry would land outside the extraction directory (absolute path or `..`).
        case unsafePath
        /// A system call around libarchive failed (`errno` holds the reason).
        case system
    }

    package let kind: Kind
    /// The libarchive (or system) function that failed.
    package let function: String
    /// The archive file, or a description of the in-memory archive.
    package let archive: String
    /// The entry being read or written, when there was one.
    package let entry: String?
    package let message: String
    package let errno: Int32

    package init(kind: Kind = .library, function: String, archive: String, entry: String? = nil,
                message: String, errno: Int32 = 0) {
        self.kind = kind
        self.function = function
        self.archive = archive
        self.entry = entry
        self.message = message
        self.errno = errno
    }

    package var description: String {
        let what = entry.map { "\(archive) (entry \($0))" } ?? archive
        return "\(function) failed on \(what): \(message)"
    }

    /// Captures libarchive's message and errno for `handle`.
    static func library(_ handle: OpaquePointer?, function: String, archive: String, entry: String?) -> ArchiveError {
        let message = archive_error_string(handle).map { String(cString: $0) } ?? "unknown libarchive error"
        return ArchiveError(function: function, archive: archive, entry: entry, message: message,
                            errno: archive_errno(handle))
    }

    static func system(_ function: String, archive: String, entry: String? = nil, errno: Int32 = Glibc.errno) -> ArchiveError {
        ArchiveError(kind: .system, function: function, archive: archive, entry: entry,
                     message: String(cString: strerror(errno)), errno: errno)
    }
}

/// Runs a libarchive call: ARCHIVE_OK and ARCHIVE_WARN pass (warnings are logged by the
/// caller when it cares), anything lower throws with libarchive's message.
@discardableResult
func check(_ result: Int32, _ handle: OpaquePointer?, function: String, archive: String, entry: String? = nil) throws -> Int32 {
    if result < ARCHIVE_WARN {
        throw ArchiveError.library(handle, function: function, archive: archive, entry: entry)
    }
    return result
}
