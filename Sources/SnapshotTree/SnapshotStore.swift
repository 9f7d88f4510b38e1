import BootEntries
import Btrfs
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The snapshot tree of one rastOS filesystem and every operation on it.
///
/// The store works on the filesystem's top level mounted at `layout.top`: on the running
/// system (`bootedSlot` says which slot is running) or on an image (`bootedSlot` nil: the slot
/// that boots next stands in for the running one). Mutating operations take the lock, replay
/// an interrupted journal, then build their result under working-copy names and commit it
/// through the journal.
package final class SnapshotStore {
    package let layout: Layout
    /// The slot the running system booted from; nil when working on an image.
    package let bootedSlot: String?
    let templates: BootTemplates
    var cachedState: TreeState?
    /// Opens the ESP when a Limine menu must be written or checked (see `espVolume()`).
    package var espProvider: (() throws -> ESPVolume)? {
        didSet { resolvedESP = nil }
    }
    var resolvedESP: ESPVolume?
    private var lock: FileLock?

    package init(layout: Layout, bootedSlot: String? = nil, templates: BootTemplates = BootTemplates()) {
        self.layout = layout
        self.bootedSlot = bootedSlot
        self.templates = templates
    }

    // MARK: State and locking

    /// Whether `top` holds a rast (or adoptable astOS) tree.
    package static func isInitialized(_ layout: Layout) -> Bool {
        Files.exists(layout.stateFile) || Files.exists(layout.astosDirectory + "/fstree")
    }

    /// The current state: the journal's state while a change is pending (that change is
    /// committed; it is only not yet fully applied), else state.json; an astOS tree is read
    /// from astOS's files until rast first writes its own state.
    package func state() throws -> TreeState {
        if let cachedState { return cachedState }
        if Files.exists(layout.journalFile), let bytes = try? Files.read(layout.journalFile),
           let journal = try? JSONDecoder().decode(Journal.self, from: Data(bytes)) {
            return journal.state
        }
        if Files.exists(layout.stateFile) {
            let state = try TreeState.decode(try Files.read(layout.stateFile), path: layout.stateFile)
            cachedState = state
            return state
        }
        if Files.exists(layout.astosDirectory + "/fstree") {
            return try AstosImport.read(layout)
        }
        throw SnapshotError.notRastFilesystem(path: layout.top)
    }

    /// Takes the lock for a mutating operation and completes an interrupted change first.
    /// The lock is held until `unlock()` (or the store goes away).
    package func acquire(wait: Bool, onWait: (() -> Void)? = nil) throws {
        guard lock == nil else { return }
        try Files.createDirectory(layout.stateDirectory)
        lock = try FileLock(path: layout.lockFile, wait: wait, onWait: onWait)
        cachedState = nil
        if !Files.exists(layout.stateFile), !Files.exists(layout.journalFile), Files.exists(layout.astosDirectory + "/fstree") {
            // First rast command on an astOS system: keep astOS's files, write our own state.
            let adopted = try AstosImport.read(layout)
            try Files.writeAtomically(layout.stateFile, bytes: try adopted.encoded())
            RastLog.logger.notice("adopted the astOS snapshot tree (\(adopted.snapshots.count) snapshots)")
        }
        try recover()
        // Adopted by a rast that did not yet derive astOS's boot settings: derive them now, or
        // deploy, rollback and boot would leave grub.cfg and fstab as they are.
        if Files.exists(layout.astosDirectory + "/fstree"), Files.exists(layout.stateFile) {
            var state = try state()
            if state.boot == nil, let settings = AstosImport.bootSettings(layout, next: state.next, bootConfig: InstalledBootConfig.read(layout)) {
                state.boot = settings
                try commit(Journal(operation: "boot settings of the adopted astOS system", steps: [], state: state))
            }
        }
    }

    package func unlock() {
        lock?.unlock()
        lock = nil
    }

    func requireLock() {
        precondition(lock != nil, "SnapshotStore: mutating operation without acquire()")
    }

    // MARK: Queries

    /// The slot treated as running: the booted one, or on an image the one that boots next.
    package func runningSlot(_ state: TreeState) -> String? {
        bootedSlot ?? state.next
    }

    /// The snapshot the running system booted (astOS's `current`).
    package func currentSnapshot() throws -> Int? {
        let state = try state()
        guard let slot = runningSlot(state) else { return nil }
        return state.slot(slot)?.snapshot
    }

    /// The snapshot that boots next.
    package func nextSnapshot() throws -> Int? {
        let state = try state()
        return state.next.flatMap { state.slot($0)?.snapshot }
    }

    func requireSnapshot(_ id: Int, in state: TreeState) throws {
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        for path in layout.triple(id) where !Files.exists(path) {
            throw SnapshotError.snapshotMissingOnDisk(id: id, path: path)
        }
    }

    // MARK: Creating snapshots

    /// Copies snapshot `source` as a new snapshot (`id` or the lowest free one) under `parent`.
    /// This is astOS's clone (parent nil), branch (parent = source), cbranch (parent =
    /// source's parent) and ubranch (any parent).
    @discardableResult
    package func copy(_ source: Int, as id: Int? = nil, parent: Int?, description: String) throws -> Int {
        requireLock()
        var state = try state()
        try requireSnapshot(source, in: state)
        if let parent, !state.contains(parent) { throw SnapshotError.noSuchSnapshot(parent) }
        let newID = id ?? state.nextFreeID()
        if state.contains(newID) { throw UserError("snapshot \(newID) already exists") }
        var steps: [Journal.Step] = []
        steps += try snapshotTriple(of: String(source), as: Layout.commitCopy(of: newID), to: String(newID))
        state.snapshots.append(SnapshotRecord(id: newID, parent: parent, description: description))
        state.snapshots.sort { $0.id < $1.id }
        try commit(Journal(operation: "copy \(source) as \(newID)", steps: steps, state: state))
        return newID
    }

    /// Copies `source` and all its descendants; the copy of `source` goes under `parent`.
    /// Returns the new ids, in the order of the copied subtree.
    @discardableResult
    package func copyTree(_ source: Int, parent: Int?) throws -> [Int: Int] {
        requireLock()
        var state = try state()
        try requireSnapshot(source, in: state)
        var mapping: [Int: Int] = [:]
        var steps: [Journal.Step] = []
        var taken = Set<Int>()
        for old in state.subtree(source) {
            try requireSnapshot(old, in: state)
            let new = state.nextFreeID(excluding: taken)
            taken.insert(new)
            mapping[old] = new
            steps += try snapshotTriple(of: String(old), as: Layout.commitCopy(of: new), to: String(new))
        }
        for old in state.subtree(source) {
            guard let record = state.record(old), let new = mapping[old] else { continue }
            let newParent = old == source ? parent : record.parent.flatMap { mapping[$0] }
            state.snapshots.append(SnapshotRecord(id: new, parent: newParent, description: record.description))
        }
        state.snapshots.sort { $0.id < $1.id }
        try commit(Journal(operation: "copy tree \(source)", steps: steps, state: state))
        return mapping
    }

    /// Read-only snapshots of `name`'s triple under the working-copy name `scratch`, and the
    /// journal steps that move them to `final`.
    private func snapshotTriple(of name: String, as scratch: String, to final: String) throws -> [Journal.Step] {
        var steps: [Journal.Step] = []
        for (source, copy, target) in zip3(layout.triple(name), layout.triple(scratch), layout.triple(final)) {
            if Files.exists(copy) { try Subvolume.delete(copy) }
            try Btrfs.createSnapshot(of: source, at: copy, readOnly: true)
            steps.append(.replace(from: copy, to: target))
        }
        return steps
    }

    package func setDescription(_ id: Int, _ text: String) throws {
        requireLock()
        var state = try state()
        guard let index = state.snapshots.firstIndex(where: { $0.id == id }) else { throw SnapshotError.noSuchSnapshot(id) }
        state.snapshots[index].description = text
        try commit(Journal(operation: "describe \(id)", steps: [], state: state))
    }

    // MARK: Deleting

    /// Why `id` may not be deleted, or nil.
    package func deletionRefusal(_ id: Int) throws -> String? {
        let state = try state()
        if id == 0 { return "it is the base snapshot" }
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        let current = try currentSnapshot()
        let next = try nextSnapshot()
        for member in state.subtree(id) {
            let what = member == id ? "it" : "its descendant \(member)"
            if let bootedSlot, state.slot(bootedSlot)?.snapshot == member {
                return "\(what) is the booted snapshot"
            }
            if bootedSlot == nil, member == current { return "\(what) is deployed in the image" }
            if member == next { return "\(what) boots next" }
        }
        return nil
    }

    /// Deletes `id` and all its descendants. Returns the deleted ids.
    @discardableResult
    package func delete(_ id: Int) throws -> [Int] {
        requireLock()
        if let reason = try deletionRefusal(id) { throw SnapshotError.refusingToDelete(id: id, reason: reason) }
        var state = try state()
        let doomed = state.subtree(id)
        var steps: [Journal.Step] = []
        for member in doomed.reversed() {
            steps += layout.triple(member).map { Journal.Step.delete(path: $0) }
        }
        state.snapshots.removeAll { doomed.contains($0.id) }
        try commit(Journal(operation: "delete \(doomed.map(String.init).joined(separator: " "))", steps: steps, state: state))
        return doomed
    }

    // MARK: Working copies

    /// Makes the writable working copy of `id` (which doubles as its lock) and returns its root.
    package func prepareWorkingCopy(_ id: Int, allowBase: Bool = false, command: String) throws -> String {
        requireLock()
        if id == 0, !allowBase { throw SnapshotError.baseSnapshotIsReadOnly(command: command) }
        let state = try state()
        try requireSnapshot(id, in: state)
        let name = Layout.workingCopy(of: id)
        for path in layout.triple(name) where Files.exists(path) {
            throw SnapshotError.inUse(id: id, workingCopy: path)
        }
        for (source, copy) in zip(layout.triple(id), layout.triple(name)) {
            try Btrfs.createSnapshot(of: source, at: copy, readOnly: false)
        }
        // etc-N and boot-N are authoritative (as in astOS): bring the root's copies up to date.
        try Self.replaceContents(of: layout.root(name) + "/etc", with: layout.etc(name))
        try Self.replaceContents(of: layout.root(name) + "/boot", with: layout.boot(name))
        return layout.root(name)
    }

    /// A working copy of `source` for a snapshot that is not in the tree yet, under the lowest
    /// free id: `commitWorkingCopy(id, adding:)` adds it to the tree, `discardWorkingCopy(id)`
    /// drops it, and until then the tree does not change. A working copy left under that id by
    /// a killed command is removed first (the lock is held, so no other command can own it).
    package func prepareNewSnapshot(from source: Int) throws -> (id: Int, root: String) {
        requireLock()
        let state = try state()
        try requireSnapshot(source, in: state)
        let id = state.nextFreeID()
        try discardWorkingCopy(id)
        let name = Layout.workingCopy(of: id)
        for (original, copy) in zip(layout.triple(source), layout.triple(name)) {
            try Btrfs.createSnapshot(of: original, at: copy, readOnly: false)
        }
        try Self.replaceContents(of: layout.root(name) + "/etc", with: layout.etc(name))
        try Self.replaceContents(of: layout.root(name) + "/boot", with: layout.boot(name))
        return (id, layout.root(name))
    }

    /// Turns the working copy of `id` into snapshot `id`: the new read-only triple is complete
    /// before the old one is replaced. `record` adds a snapshot made by `prepareNewSnapshot` to
    /// the tree in the same journal step.
    package func commitWorkingCopy(_ id: Int, adding record: SnapshotRecord? = nil) throws {
        requireLock()
        var state = try state()
        if let record {
            guard record.id == id, !state.contains(id) else { throw UserError("snapshot \(id) already exists") }
            state.snapshots.append(record)
            state.snapshots.sort { $0.id < $1.id }
        }
        let name = Layout.workingCopy(of: id)
        let root = layout.root(name)
        guard Files.exists(root) else { throw UserError("snapshot \(id) has no working copy to commit") }
        // The root's /etc and /boot are what the change edited; carry them into etc/boot.
        for (subvolume, directory) in [(layout.etc(name), root + "/etc"), (layout.boot(name), root + "/boot")] {
            if Files.exists(subvolume) { try Subvolume.delete(subvolume) }
            try Btrfs.createSubvolume(at: subvolume)
            try Self.copyContents(of: directory, into: subvolume)
        }
        var steps = try snapshotTriple(of: name, as: Layout.commitCopy(of: id), to: String(id))
        steps += layout.triple(name).map { Journal.Step.delete(path: $0) }
        try commit(Journal(operation: "commit \(id)", steps: steps, state: state))
    }

    /// Deletes the working copy of `id` (discarding its changes; also `rast unlock`).
    package func discardWorkingCopy(_ id: Int) throws {
        requireLock()
        for path in layout.triple(Layout.workingCopy(of: id)) + layout.triple(Layout.commitCopy(of: id)) where Files.exists(path) {
            try Subvolume.delete(path)
        }
    }

    /// Every working copy on disk (`…-chr…` subvolumes), as paths.
    package func workingCopies() throws -> [String] {
        var result: [String] = []
        for (directory, prefix) in [("rootfs", "snapshot-"), ("etc", "etc-"), ("boot", "boot-")] {
            let path = layout.snapshots + "/" + directory
            guard Files.isDirectory(path) else { continue }
            for name in try FileManagerShim.contents(of: path) where name.hasPrefix(prefix + "chr") {
                result.append(path + "/" + name)
            }
        }
        return result
    }

    /// Deletes every working copy (astOS's `tmp`). Returns what was deleted.
    @discardableResult
    package func removeWorkingCopies() throws -> [String] {
        requireLock()
        let copies = try workingCopies()
        for path in copies { try Subvolume.delete(path) }
        return copies
    }

    // MARK: Base snapshot (image builds)

    /// Creates the layout's subvolumes on an empty filesystem and the working copy of
    /// snapshot 0, whose root is returned for the image builder to fill.
    package func beginBase() throws -> String {
        try Files.createDirectory(layout.top)
        for subvolume in [layout.snapshots, layout.home, layout.variable, layout.bootLoader] where !Files.exists(subvolume) {
            try Btrfs.createSubvolume(at: subvolume)
        }
        for directory in ["rootfs", "etc", "boot", "rast"] {
            try Files.createDirectory(layout.snapshots + "/" + directory)
        }
        try acquire(wait: false)
        let name = Layout.workingCopy(of: 0)
        for path in layout.triple(name) {
            if Files.exists(path) { try Subvolume.delete(path) }
            try Btrfs.createSubvolume(at: path)
        }
        return layout.root(name)
    }

    /// Commits the filled working copy as snapshot 0 and records the boot settings.
    package func commitBase(description: String = "base snapshot", boot: BootMenuSettings?) throws {
        requireLock()
        cachedState = TreeState(snapshots: [SnapshotRecord(id: 0, parent: nil, description: description)], boot: boot)
        try commitWorkingCopy(0)
    }

    /// Records new boot settings (a new filesystem UUID or root PARTUUID after the disk was
    /// given new identifiers). Boot entries and fstab follow at the next deploy or
    /// `updateBootEntries()`.
    package func setBootSettings(_ settings: BootMenuSettings) throws {
        requireLock()
        var state = try state()
        state.boot = settings
        try commit(Journal(operation: "boot settings", steps: [], state: state))
    }

    // MARK: Helpers

    /// Replaces the contents of directory `target` with those of `source` (reflinked copies).
    package static func replaceContents(of target: String, with source: String) throws {
        guard Files.isDirectory(source) else { return }
        if Files.exists(target) {
            for name in try FileManagerShim.contents(of: target) { try Files.removeTree(target + "/" + name) }
        } else {
            try Files.createDirectory(target)
        }
        try copyContents(of: source, into: target)
    }

    /// Copies the contents of `source` into the existing directory `target`, keeping owners,
    /// modes, links and times; reflinks on btrfs make it cheap.
    static func copyContents(of source: String, into target: String) throws {
        guard Files.isDirectory(source) else { return }
        try TreeCopy.copyContents(of: source, into: target)
    }
}

func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
}
