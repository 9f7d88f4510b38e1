import CBtrfsUtil
#if canImport(Glibc)
import Glibc
#endif

/// Walks the subvolumes below one subvolume with libbtrfsutil's tree-search iterator
/// (a few ioctls per entry, no processes), in pre-order (parents first) unless asked
/// for post-order (children first, the order in which they can be deleted).
package final class SubvolumeIterator {
    private let handle: OpaquePointer
    private let path: String

    /// Lists below `path`'s own subvolume, or below subvolume `top` of `path`'s filesystem
    /// (5 lists the whole filesystem). Paths are relative to the subvolume listed below.
    package init(path: String, top: UInt64? = nil, postOrder: Bool = false) throws {
        var iterator: OpaquePointer?
        let flags: Int32 = postOrder ? RAST_BTRFS_ITERATOR_POST_ORDER : 0
        try BtrfsError.check("btrfs_util_create_subvolume_iterator", path) {
            btrfs_util_create_subvolume_iterator(path, top ?? 0, flags, &iterator)
        }
        guard let iterator else {
            throw BtrfsError(kind: .invalidArgument, message: "libbtrfsutil returned no iterator", errno: 0,
                             function: "btrfs_util_create_subvolume_iterator", path: path)
        }
        handle = iterator
        self.path = path
    }

    deinit { btrfs_util_destroy_subvolume_iterator(handle) }

    /// The next subvolume, or nil when the listing is complete.
    package func next() throws -> SubvolumeEntry? {
        var relative: UnsafeMutablePointer<CChar>?
        var info = btrfs_util_subvolume_info()
        let code = btrfs_util_subvolume_iterator_next_info(handle, &relative, &info)
        let savedErrno = Glibc.errno
        defer { free(relative) }
        if code == BTRFS_UTIL_ERROR_STOP_ITERATION { return nil }
        guard code == BTRFS_UTIL_OK else {
            throw BtrfsError(code: code, errno: savedErrno, function: "btrfs_util_subvolume_iterator_next_info",
                             path: path, destination: nil)
        }
        return SubvolumeEntry(path: relative.map { String(cString: $0) } ?? "", info: SubvolumeInfo(info))
    }

    /// All remaining entries.
    package func collect() throws -> [SubvolumeEntry] {
        var entries: [SubvolumeEntry] = []
        while let entry = try next() { entries.append(entry) }
        return entries
    }
}
