#if canImport(Glibc)
import Glibc
#endif

/// A failed partitioning step, naming the disk image, the partition and the reason.
package enum FdiskError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A libfdisk call failed: its errno and the last warning libfdisk printed, if any.
    case library(function: String, path: String, errno: Int32, message: String?)
    /// A partition type string that is neither a known name, a GUID nor an MBR code.
    case invalidType(String, reason: String)
    /// A type that the table kind cannot hold (a GPT GUID in an MBR table).
    case typeNotSupported(type: String, table: String, path: String)
    /// A partition that does not fit into the free space left on the disk.
    case doesNotFit(partition: String, requestedBytes: UInt64, availableBytes: UInt64, path: String)
    /// A disk identifier, alignment or start that cannot be used.
    case invalidValue(String, reason: String)
    /// A setting the table kind cannot store (a partition name in an MBR table).
    case unsupported(String, table: String, path: String)
    /// The disk holds no partition table libfdisk recognises.
    case noPartitionTable(path: String)
    /// `write()` on a table opened read-only.
    case readOnly(path: String)
    /// A system call made by this module (open, fsync).
    case system(function: String, path: String, errno: Int32)

    package var description: String {
        switch self {
        case .library(let function, let path, let errno, let message):
            var text = "\(function) failed on \(path): \(String(cString: strerror(errno)))"
            if let message, !message.isEmpty { text += " (libfdisk: \(message))" }
            return text
        case .invalidType(let type, let reason):
            return "invalid partition type \"\(type)\": \(reason)"
        case .typeNotSupported(let type, let table, let path):
            return "partition type \(type) cannot be used in the \(table) partition table of \(path)"
        case .doesNotFit(let partition, let requested, let available, let path):
            return "partition \(partition) needs \(bytes(requested)) but only \(bytes(available)) are free on \(path)"
        case .invalidValue(let value, let reason):
            return "invalid value \"\(value)\": \(reason)"
        case .unsupported(let what, let table, let path):
            return "\(what) is not supported by the \(table) partition table of \(path)"
        case .noPartitionTable(let path):
            return "\(path) has no partition table"
        case .readOnly(let path):
            return "cannot write the partition table of \(path): it was opened read-only"
        case .system(let function, let path, let errno):
            return "\(function) \(path): \(String(cString: strerror(errno)))"
        }
    }
}

/// "104857600 bytes (100.0 MiB)": exact for scripts, readable for people.
private func bytes(_ count: UInt64) -> String {
    let mib = Double(count) / 1_048_576
    return "\(count) bytes (\((mib * 10).rounded() / 10) MiB)"
}
