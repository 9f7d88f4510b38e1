// Btrfs: subvolumes and snapshots through libbtrfsutil (ioctls, no `btrfs` processes).
//
// Every function takes paths on a mounted btrfs filesystem. IDs are subvolume IDs; the top
// level of a filesystem is subvolume 5. Errors are `BtrfsError`s carrying libbtrfsutil's
// message, the errno, the C function and the path.
import CBtrfsUtil
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Subvolume and snapshot operations on mounted btrfs filesystems.
package enum Btrfs {
    /// The ID of a filesystem's top-level subvolume (BTRFS_FS_TREE_OBJECTID).
    package static let topLevelID: UInt64 = 5

    /// Creates an empty subvolume at `path` (its parent directory must exist).
    package static func createSubvolume(at path: String) throws {
        try BtrfsError.check("btrfs_util_create_subvolume", path) {
            btrfs_util_create_subvolume(path, 0, nil, nil)
        }
    }

    /// Snapshots subvolume `source` to the new path `destination`. `recursive` also
    /// snapshots the subvolumes nested in `source` (not atomically; see libbtrfsutil).
    package static func createSnapshot(of source: String, at destination: String,
                                      readOnly: Bool = false, recursive: Bool = false) throws {
        var flags: Int32 = 0
        if readOnly { flags |= RAST_BTRFS_SNAPSHOT_READ_ONLY }
        if recursive { flags |= RAST_BTRFS_SNAPSHOT_RECURSIVE }
        do {
            try BtrfsError.check("btrfs_util_create_snapshot", source, destination: destination) {
                btrfs_util_create_snapshot(source, destination, flags, nil, nil)
            }
        } catch let error as BtrfsError where error.errno == EINVAL {
            // The kernel answers a source that is no subvolume with a bare EINVAL; say so.
            let check = btrfs_util_is_subvolume(source)
            let checkErrno = Glibc.errno
            guard check == BTRFS_UTIL_ERROR_NOT_SUBVOLUME || check == BTRFS_UTIL_ERROR_NOT_BTRFS else { throw error }
            throw BtrfsError(code: check, errno: checkErrno, function: "btrfs_util_create_snapshot",
                             path: source, destination: destination)
        }
    }

    /// Deletes the subvolume at `path`. Without `recursive` a subvolume that holds other
    /// subvolumes is refused (ENOTEMPTY); with it they are deleted first, deepest first.
    package static func deleteSubvolume(at path: String, recursive: Bool = false) throws {
        let flags: Int32 = recursive ? RAST_BTRFS_DELETE_RECURSIVE : 0
        try BtrfsError.check("btrfs_util_delete_subvolume", path) {
            btrfs_util_delete_subvolume(path, flags)
        }
    }

    /// Whether `path` is the root of a subvolume; false for other directories and for
    /// paths on other filesystems. Throws when `path` cannot be examined (missing).
    package static func isSubvolume(_ path: String) throws -> Bool {
        do {
            try BtrfsError.check("btrfs_util_is_subvolume", path) { btrfs_util_is_subvolume(path) }
            return true
        } catch let error as BtrfsError where error.kind == .notSubvolume || error.kind == .notBtrfs {
            return false
        }
    }

    /// The ID of the subvolume containing `path`.
    package static func subvolumeID(_ path: String) throws -> UInt64 {
        var id: UInt64 = 0
        try BtrfsError.check("btrfs_util_subvolume_id", path) { btrfs_util_subvolume_id(path, &id) }
        return id
    }

    /// The path of subvolume `id` relative to the top level of the filesystem holding `fs`
    /// (no leading slash; "" for the top level itself).
    package static func subvolumePath(fs: String, id: UInt64) throws -> String {
        var result: UnsafeMutablePointer<CChar>?
        try BtrfsError.check("btrfs_util_subvolume_path", fs) { btrfs_util_subvolume_path(fs, id, &result) }
        defer { free(result) }
        return result.map { String(cString: $0) } ?? ""
    }

    /// What btrfs records about the subvolume at `path`.
    package static func subvolumeInfo(_ path: String) throws -> SubvolumeInfo {
        try subvolumeInfo(fs: path, id: 0)
    }

    /// What btrfs records about subvolume `id` of the filesystem holding `fs`
    /// (0: the subvolume containing `fs`).
    package static func subvolumeInfo(fs: String, id: UInt64) throws -> SubvolumeInfo {
        var info = btrfs_util_subvolume_info()
        try BtrfsError.check("btrfs_util_subvolume_info", fs) { btrfs_util_subvolume_info(fs, id, &info) }
        return SubvolumeInfo(info)
    }

    /// Whether the subvolume at `path` is read-only.
    package static func isReadOnly(_ path: String) throws -> Bool {
        var readOnly = false
        try BtrfsError.check("btrfs_util_get_subvolume_read_only", path) {
            btrfs_util_get_subvolume_read_only(path, &readOnly)
        }
        return readOnly
    }

    /// Makes the subvolume at `path` read-only or writable.
    package static func setReadOnly(_ path: String, _ readOnly: Bool) throws {
        try BtrfsError.check("btrfs_util_set_subvolume_read_only", path) {
            btrfs_util_set_subvolume_read_only(path, readOnly)
        }
    }

    /// The ID of the subvolume mounted when no subvol option is given (the default).
    package static func defaultSubvolumeID(fs: String) throws -> UInt64 {
        var id: UInt64 = 0
        try BtrfsError.check("btrfs_util_get_default_subvolume", fs) { btrfs_util_get_default_subvolume(fs, &id) }
        return id
    }

    /// Makes subvolume `id` of the filesystem holding `fs` the default.
    package static func setDefaultSubvolume(id: UInt64, fs: String) throws {
        try BtrfsError.check("btrfs_util_set_default_subvolume", fs) { btrfs_util_set_default_subvolume(fs, id) }
    }

    /// Makes the subvolume at `path` the default of its filesystem.
    package static func setDefaultSubvolume(_ path: String) throws {
        try setDefaultSubvolume(id: 0, fs: path)
    }

    /// Renames (moves) a subvolume, or any path, within one btrfs filesystem with
    /// rename(2). Refuses to replace an existing `destination` and to cross filesystems
    /// (checked by filesystem UUID, since every subvolume has its own st_dev).
    package static func rename(from source: String, to destination: String) throws {
        let sourceFS = try filesystemUUID(source, function: "rename")
        let destinationFS = try filesystemUUID(parentDirectory(of: destination), function: "rename")
        guard sourceFS == destinationFS else {
            throw BtrfsError(kind: .differentFilesystems,
                             message: "source and destination are on different btrfs filesystems",
                             errno: EXDEV, function: "rename", path: source, destination: destination)
        }
        guard rast_rename_noreplace(source, destination) == 0 else {
            throw BtrfsError.system("rename", source, destination: destination)
        }
    }

    /// Commits the current transaction of the filesystem holding `path` and waits for it.
    package static func sync(_ path: String) throws {
        try BtrfsError.check("btrfs_util_sync", path) { btrfs_util_sync(path) }
    }

    /// Every subvolume below the subvolume at `path` (or below subvolume `top`), with paths
    /// relative to it. For large trees prefer `SubvolumeIterator` to stream entries.
    package static func subvolumes(below path: String, top: UInt64? = nil, postOrder: Bool = false) throws -> [SubvolumeEntry] {
        try SubvolumeIterator(path: path, top: top, postOrder: postOrder).collect()
    }

    /// The UUID of the btrfs filesystem holding `path` (the UUID `blkid` shows).
    package static func filesystemUUID(_ path: String) throws -> UUID {
        try filesystemUUID(path, function: "BTRFS_IOC_FS_INFO")
    }

    private static func filesystemUUID(_ path: String, function: String) throws -> UUID {
        var info = statfs()
        guard statfs(path, &info) == 0 else { throw BtrfsError.system("\(function): statfs", path) }
        guard UInt(bitPattern: Int(info.f_type)) == 0x9123_683E else {  // BTRFS_SUPER_MAGIC
            throw BtrfsError(kind: .notBtrfs, message: "not on a btrfs filesystem", errno: EINVAL,
                             function: function, path: path)
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard rast_btrfs_fsid(path, &bytes) == 0 else {
            throw BtrfsError.system("\(function): BTRFS_IOC_FS_INFO", path)
        }
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    private static func parentDirectory(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
}
