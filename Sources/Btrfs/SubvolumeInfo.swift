import CBtrfsUtil
import Foundation

/// What btrfs records about one subvolume (its root item and back reference).
package struct SubvolumeInfo: Sendable, Equatable {
    /// The subvolume ID, unique in the filesystem; the top level is 5.
    package let id: UInt64
    /// The ID of the subvolume that contains this one; 0 for the top level.
    package let parentID: UInt64
    /// The inode of the directory in the parent that holds this subvolume.
    package let directoryID: UInt64
    package let uuid: UUID
    /// The UUID of the subvolume this one is a snapshot of; nil when it is no snapshot.
    package let parentUUID: UUID?
    /// The UUID of the subvolume this one was received from (btrfs receive), if any.
    package let receivedUUID: UUID?
    /// The on-disk root item flags (bit 0: read-only).
    package let flags: UInt64
    /// The transaction ID of the subvolume root.
    package let generation: UInt64
    /// The transaction ID of the last change to an inode in the subvolume.
    package let changeTransaction: UInt64
    /// The transaction ID in which the subvolume was created.
    package let creationTransaction: UInt64
    /// When an inode in the subvolume last changed.
    package let changeTime: Date
    /// When the subvolume was created (for a snapshot: when it was taken).
    package let creationTime: Date

    /// Whether the subvolume is read-only (BTRFS_ROOT_SUBVOL_RDONLY in the root item).
    package var isReadOnly: Bool { flags & 1 != 0 }

    init(_ info: btrfs_util_subvolume_info) {
        id = info.id
        parentID = info.parent_id
        directoryID = info.dir_id
        uuid = UUID(uuid: info.uuid)
        parentUUID = SubvolumeInfo.nonZero(info.parent_uuid)
        receivedUUID = SubvolumeInfo.nonZero(info.received_uuid)
        flags = info.flags
        generation = info.generation
        changeTransaction = info.ctransid
        creationTransaction = info.otransid
        changeTime = SubvolumeInfo.date(info.ctime)
        creationTime = SubvolumeInfo.date(info.otime)
    }

    private static func nonZero(_ bytes: uuid_t) -> UUID? {
        let value = UUID(uuid: bytes)
        return value == UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) ? nil : value
    }

    private static func date(_ time: timespec) -> Date {
        Date(timeIntervalSince1970: TimeInterval(time.tv_sec) + TimeInterval(time.tv_nsec) / 1_000_000_000)
    }
}

/// One subvolume found by a `SubvolumeIterator`.
package struct SubvolumeEntry: Sendable, Equatable {
    /// The path relative to the subvolume the listing started from (no leading slash).
    package let path: String
    package let info: SubvolumeInfo

    package var id: UInt64 { info.id }
}
