/// A QCOW2 image that cannot be read or written: what is wrong, in which field or at which
/// file offset, and in which file.
package struct QCOW2Error: Error, CustomStringConvertible, Sendable, Equatable {
    /// What sort of problem it is.
    package enum Kind: Sendable, Equatable {
        /// The file ends before a structure it declares (header, table, cluster).
        case truncated
        /// Not a QCOW2 file (magic number).
        case badMagic
        /// Valid QCOW2 that uses something this module does not read (backing files,
        /// encryption, external data files, extended L2 entries, version 1).
        case unsupported
        /// A header field or table entry with an impossible value.
        case invalidField
        /// An offset that points past the end of the file.
        case outOfBounds
        /// A table larger than QEMU accepts, or an allocation this module refuses to make.
        case limitExceeded
        /// Compressed data that does not decompress to exactly one cluster.
        case corruptData
        /// A caller's request that cannot be met (option values, reads past the virtual disk).
        case invalidArgument
    }

    package let kind: Kind
    /// The header field or table ("l1_table_offset", "L2 entry"), when one is to blame.
    package let field: String?
    /// The file offset involved, when there is one.
    package let offset: UInt64?
    /// One sentence about the problem.
    package let message: String
    /// The image file, when known.
    package var path: String?

    package init(_ kind: Kind, field: String? = nil, offset: UInt64? = nil, _ message: String, path: String? = nil) {
        self.kind = kind
        self.field = field
        self.offset = offset
        self.message = message
        self.path = path
    }

    package var description: String {
        (path.map { "\($0): " } ?? "") + message
    }

    func with(path: String?) -> QCOW2Error {
        var copy = self
        if copy.path == nil { copy.path = path }
        return copy
    }
}
