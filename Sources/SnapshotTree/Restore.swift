import Btrfs
import Foundation
import SystemSupport

/// Snapshots that come from elsewhere (`rast restore`): received with `btrfs receive` into a
/// scratch directory of @.snapshots, then snapshotted into place and added to the tree in
/// one journal commit, so the tree gains the whole snapshot or nothing.
extension SnapshotStore {
    /// Where restores receive their subvolumes (below @.snapshots, so that a rename moves
    /// them into place). What a killed restore left there is removed by the next one.
    package var restoreScratch: String { layout.stateDirectory + "/restore" }

    /// Lays out an empty rastOS filesystem (@.snapshots with an empty tree, @home, @var,
    /// @boot) on a filesystem that has none, for a whole tree restored onto a new disk.
    /// Refuses a filesystem that already holds a tree.
    package static func initializeEmpty(_ layout: Layout) throws {
        guard !isInitialized(layout) else { throw UserError("\(layout.top) holds a snapshot tree already") }
        for subvolume in [layout.snapshots, layout.home, layout.variable, layout.bootLoader] where !Files.exists(subvolume) {
            try Btrfs.createSubvolume(at: subvolume)
        }
        for directory in ["rootfs", "etc", "boot", "rast"] {
            try Files.createDirectory(layout.snapshots + "/" + directory)
        }
        try Files.writeAtomically(layout.stateFile, bytes: try TreeState().encoded())
    }

    /// Adds snapshot `record.id` whose root, etc and boot subvolumes (read-only, in that
    /// order) were received below `restoreScratch`. Never replaces anything: the id must be
    /// free in the tree and on disk.
    package func addReceivedSnapshot(_ record: SnapshotRecord, subvolumes: [String]) throws {
        requireLock()
        var state = try state()
        guard !state.contains(record.id) else {
            throw UserError("snapshot \(record.id) exists already; a restore never replaces a snapshot")
        }
        for path in layout.triple(record.id) where Files.exists(path) {
            throw UserError("\(path) exists already (not in the tree); a restore never replaces it; `rast check` reports such leftovers")
        }
        guard subvolumes.count == 3 else { throw UserError("a snapshot has three subvolumes (root, etc, boot), not \(subvolumes.count)") }
        for path in subvolumes {
            guard path.hasPrefix(restoreScratch + "/"), try Btrfs.isSubvolume(path), try Btrfs.isReadOnly(path) else {
                throw UserError("\(path) is no read-only subvolume received below \(restoreScratch)")
            }
        }
        var parent = record.parent
        if let wanted = parent, !state.contains(wanted) { parent = nil }
        state.snapshots.append(SnapshotRecord(id: record.id, parent: parent, description: record.description, created: record.created))
        state.snapshots.sort { $0.id < $1.id }
        // btrfs refuses to move a read-only subvolume to another directory: a read-only
        // snapshot of each (which keeps its received UUID, what later increments name as
        // their parent) goes next to its final name, and the journal renames it there.
        var steps: [Journal.Step] = []
        for (received, (copy, final)) in zip(subvolumes, zip(layout.triple(Layout.commitCopy(of: record.id)), layout.triple(record.id))) {
            if Files.exists(copy) { try Subvolume.delete(copy) }
            try Btrfs.createSnapshot(of: received, at: copy, readOnly: true)
            steps.append(.replace(from: copy, to: final))
        }
        try commit(Journal(operation: "restore \(record.id)", steps: steps, state: state))
    }

    /// Removes what earlier restores left in `restoreScratch`.
    package func clearRestoreScratch() throws {
        requireLock()
        guard Files.exists(restoreScratch) else { return }
        func clear(_ directory: String) throws {
            for name in try FileManagerShim.contents(of: directory) {
                let path = directory + "/" + name
                if try Btrfs.isSubvolume(path) {
                    try Subvolume.delete(path)
                } else if Files.isDirectory(path) {
                    try clear(path)
                }
            }
        }
        try clear(restoreScratch)
        try Files.removeTree(restoreScratch)
    }
}
