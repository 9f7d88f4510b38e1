// The backup operations on one snapshot tree and one repository: create, restore (one
// snapshot or the whole tree), verify and prune. The caller holds the tree's lock.
import Btrfs
import Foundation
import ObjectStore
import SnapshotTree
import SystemSupport

package final class BackupEngine {
    /// The tree backups are made from and restored into; nil for what needs none (verify, prune).
    package let tree: SnapshotStore?
    package let repository: BackupRepository
    let progress: ProgressReporter
    let output: (String) -> Void
    /// zstd level and worker threads for new backups.
    package var compressionLevel = 3
    package var compressionWorkers = 2
    /// A backup whose chain of bases would grow longer than this is made full instead.
    package var maximumChain = 30

    static let subvolumeNames = ["root", "etc", "boot"]

    package init(snapshots: SnapshotStore?, repository: BackupRepository, progress: ProgressReporter = SilentProgress(),
                output: @escaping (String) -> Void = { print($0) }) {
        self.tree = snapshots
        self.repository = repository
        self.progress = progress
        self.output = output
    }

    var snapshots: SnapshotStore {
        get throws {
            guard let tree else { throw UserError("this backup operation needs a snapshot tree (--root DIR or the running system)") }
            return tree
        }
    }

    var layout: Layout {
        get throws { try snapshots.layout }
    }

    // MARK: Create

    /// Backs up `requested` snapshots (nil: every snapshot whose current state has no backup,
    /// the booted one among them), parents before children. Each is an increment to the
    /// newest backup of the same line (itself or an ancestor in the tree) whose subvolumes
    /// are still on disk, or full when there is none (or `full`). Returns the new backups.
    @discardableResult
    package func create(_ requested: [Int]? = nil, full: Bool = false) throws -> [BackupManifest] {
        let state = try snapshots.state()
        let catalog = try repository.catalog()
        let removed = try repository.removeIncomplete(catalog)
        if !removed.isEmpty { output("removed \(removed.count) interrupted backup\(removed.count == 1 ? "" : "s"): \(removed.joined(separator: ", "))") }
        for damage in catalog.damaged { output("warning: backup \(damage.id) is damaged (\(damage.reason)); it is not used as a base") }

        let order = BackupEngine.treeOrder(state)
        let targets: [Int]
        if let requested {
            for id in requested where !state.contains(id) { throw SnapshotError.noSuchSnapshot(id) }
            targets = order.filter { requested.contains($0) }
        } else {
            targets = order
        }
        var known = catalog.backups
        var made: [BackupManifest] = []
        var local = try localSubvolumes()
        for id in targets {
            try checkCancelled()
            let paths = try layout.triple(id)
            for path in paths where !Files.exists(path) { throw SnapshotError.snapshotMissingOnDisk(id: id, path: path) }
            let identities = try paths.map { try BackupEngine.identity($0) }
            if let existing = known.last(where: { $0.sources == identities || $0.identities == identities }) {
                output("snapshot \(id) is backed up already: \(existing.id)")
                continue
            }
            let base = full ? nil : try chooseBase(for: id, state: state, among: known, local: local)
            let manifest = try backUp(id, state: state, base: base, sources: identities, local: local, after: known.map(\.id))
            known.append(manifest)
            made.append(manifest)
            local = try localSubvolumes()
        }
        try retireParents(keeping: known)
        return made
    }

    /// Where the sent copies of backed-up snapshots stay, as parents for the next increments:
    /// @.snapshots/rast/backup-parents/ID/{root,etc,boot}. Only the newest backup of each
    /// snapshot keeps its copy.
    var parentsDirectory: String {
        get throws { try layout.stateDirectory + "/backup-parents" }
    }

    /// Deletes the kept copies of backups that are not the newest of their snapshot (or gone).
    func retireParents(keeping backups: [BackupManifest]) throws {
        let directory = try parentsDirectory
        guard Files.isDirectory(directory) else { return }
        var newest: [Int: String] = [:]
        for backup in backups where backup.id > newest[backup.snapshot, default: ""] { newest[backup.snapshot] = backup.id }
        let wanted = Set(newest.values)
        for id in try FileManagerShim.contents(of: directory) where !wanted.contains(id) {
            try deleteKeptCopy(directory + "/" + id)
        }
    }

    private func deleteKeptCopy(_ path: String) throws {
        for name in (try? FileManagerShim.contents(of: path)) ?? [] where try Btrfs.isSubvolume(path + "/" + name) {
            try Btrfs.deleteSubvolume(at: path + "/" + name)
        }
        try Files.removeTree(path)
    }

    /// The newest backup of `id`'s line whose subvolumes are here to send an increment against.
    func chooseBase(for id: Int, state: TreeState, among backups: [BackupManifest], local: [String: String]) throws -> BackupManifest? {
        var line = [id]
        var cursor = state.record(id)?.parent
        while let parent = cursor, !line.contains(parent) {
            line.append(parent)
            cursor = state.record(parent)?.parent
        }
        let catalog = BackupCatalog(backups: backups, incomplete: [], damaged: [])
        let candidates = backups.filter { backup in
            line.contains(backup.snapshot) && backup.identities.allSatisfy { local[$0] != nil }
                && ((try? catalog.chain(backup).count) ?? .max) < maximumChain
        }
        return candidates.max { $0.id < $1.id }
    }

    private func backUp(_ id: Int, state: TreeState, base: BackupManifest?, sources: [String], local: [String: String],
                        after existing: [String]) throws -> BackupManifest {
        let backupID = try BackupRepository.newID(after: existing)
        let record = state.record(id)
        let kind = base.map { "increment to \($0.id) (snapshot \($0.snapshot))" } ?? "full"
        progress.begin("backup of snapshot \(id) (\(kind)) as \(backupID)")
        let watch = Stopwatch()
        var subvolumes: [SubvolumeBackup] = []
        // A read-only copy of the snapshot is sent and kept: the next increment is sent
        // against it, also after rast replaced the snapshot itself by a changed one.
        let kept = try parentsDirectory + "/" + backupID
        try Files.createDirectory(kept)
        do {
            for (index, name) in BackupEngine.subvolumeNames.enumerated() {
                try Btrfs.createSnapshot(of: try layout.triple(id)[index], at: kept + "/" + name, readOnly: true)
            }
            for (index, name) in BackupEngine.subvolumeNames.enumerated() {
                let parent = try base.map { base -> String in
                    guard let path = local[base.identities[index]] else {
                        throw BackupError.damaged(backup: base.id, reason: "its \(name) subvolume is no longer on disk")
                    }
                    return path
                }
                let meter = TransferMeter(task: "snapshot \(id) \(name)", total: nil, progress: progress)
                meter.otherLabel = "compressed and encrypted"
                let object = BackupRepository.objectKey(backupID, name)
                subvolumes.append(try sendAndUpload(name: name, subvolume: kept + "/" + name, source: sources[index], parent: parent,
                                                    object: object, meter: meter))
                meter.report()
            }
            let manifest = BackupManifest(id: backupID, created: BackupEngine.timestamp(backupID), snapshot: id,
                                          description: record?.description ?? "", treeParent: record?.parent,
                                          snapshotCreated: record?.created ?? "", base: base?.id, subvolumes: subvolumes,
                                          tree: state, host: BackupEngine.hostname(), rastVersion: RastVersion.string)
            try repository.write(manifest)
            let sent = manifest.streamBytes, stored = manifest.storedBytes
            progress.end("backup of snapshot \(id) (\(kind)) as \(backupID)",
                          summary: "\(ByteCount.format(sent)) sent, \(ByteCount.format(stored)) uploaded in \(watch.formatted) (\(TransferMeter.rate(sent, seconds: watch.elapsed)))")
            return manifest
        } catch {
            // The objects already complete go; pending uploads were aborted by their owners.
            for subvolume in subvolumes { try? repository.store.delete(subvolume.object) }
            try? deleteKeptCopy(kept)
            throw error
        }
    }

    /// Read-only snapshot subvolumes on disk by identity (working copies and slots left out).
    func localSubvolumes() throws -> [String: String] {
        var result: [String: String] = [:]
        let snapshotsDirectory = try layout.snapshots
        for entry in try Btrfs.subvolumes(below: snapshotsDirectory) where entry.info.isReadOnly {
            let path = entry.path
            let places = ["rootfs/", "etc/", "boot/", "rast/backup-parents/"]
            guard places.contains(where: { path.hasPrefix($0) }), !path.contains(Layout.workingCopyMarker) else { continue }
            let identity = (entry.info.receivedUUID ?? entry.info.uuid).uuidString.lowercased()
            if result[identity] == nil { result[identity] = snapshotsDirectory + "/" + path }
        }
        return result
    }

    /// The tree's snapshots, parents before children.
    static func treeOrder(_ state: TreeState) -> [Int] {
        var order: [Int] = []
        let ids = Set(state.snapshots.map(\.id))
        for root in state.snapshots where root.parent.map({ !ids.contains($0) }) ?? true {
            for id in state.subtree(root.id) where !order.contains(id) { order.append(id) }
        }
        return order
    }

    static func timestamp(_ backupID: String) -> String {
        // "20250102T030405.678Z-abcdef" -> "2025-01-02T03:04:05.678Z"
        let t = Array(backupID.prefix(20))
        guard t.count == 20 else { return TreeState.timestamp() }
        return "\(String(t[0..<4]))-\(String(t[4..<6]))-\(String(t[6..<8]))T\(String(t[9..<11])):\(String(t[11..<13])):\(String(t[13..<19]))Z"
    }

    static func hostname() -> String {
        (try? Files.readString("/proc/sys/kernel/hostname"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    // MARK: Restore

    /// Restores backup `text` (an ID or a unique prefix) as snapshot `newID` (default: its
    /// own number): the whole chain is received below the scratch directory, then the
    /// snapshot is renamed into place and added to the tree in one journal step. Chain
    /// members whose subvolumes are on disk already are not downloaded again. Nothing is
    /// left behind on failure. Returns the new snapshot's number.
    @discardableResult
    package func restore(_ text: String, as newID: Int? = nil, description: String? = nil, catalog known: BackupCatalog? = nil) throws -> Int {
        let catalog = try known ?? repository.catalog()
        let target = try catalog.find(text)
        let chain = try catalog.chain(target)
        let id = newID ?? target.snapshot
        let state = try snapshots.state()
        if try state.contains(id) || layout.triple(id).contains(where: Files.exists) { throw BackupError.snapshotExists(id) }

        let local = try localSubvolumes()
        var start = 0
        for index in stride(from: chain.count - 2, through: 0, by: -1)
        where chain[index].identities.allSatisfy({ local[$0] != nil }) {
            start = index + 1
            break
        }
        let members = Array(chain[start...])
        let tree = try snapshots
        try tree.clearRestoreScratch()
        defer {
            do { try tree.clearRestoreScratch() } catch { output("warning: could not clear \(tree.restoreScratch): \(error)") }
        }
        let total = members.reduce(Int64(0)) { $0 + $1.storedBytes }
        let what = "restore of backup \(target.id) (snapshot \(target.snapshot)) as snapshot \(id)"
        progress.begin(what + (members.count > 1 ? " with \(members.count - 1) backup\(members.count > 2 ? "s" : "") it builds on" : ""))
        let meter = TransferMeter(task: "restore \(target.id)", total: total, progress: progress)
        var received: [String] = []
        for (index, member) in members.enumerated() {
            received = []
            for subvolume in member.subvolumes {
                let directory = tree.restoreScratch + "/\(index)-\(subvolume.name)"
                received.append(try receive(subvolume, backup: member.id, into: directory, meter: meter))
            }
        }
        meter.report()
        let record = SnapshotRecord(id: id, parent: target.treeParent, description: description ?? target.description,
                                    created: target.snapshotCreated.isEmpty ? TreeState.timestamp() : target.snapshotCreated)
        try tree.addReceivedSnapshot(record, subvolumes: received)
        progress.end(what, summary: "\(ByteCount.format(meter.bytes)) downloaded in \(String(format: "%.1f s", meter.elapsed)) (\(TransferMeter.rate(meter.bytes, seconds: meter.elapsed)))")
        return id
    }

    /// Restores the tree of the newest backup onto a filesystem without snapshots: every
    /// snapshot of that tree that has a backup, under its own number, parents first, with
    /// its description. Returns the restored numbers.
    @discardableResult
    package func restoreTree() throws -> [Int] {
        let catalog = try repository.catalog()
        guard let newest = catalog.backups.max(by: { $0.id < $1.id }) else {
            throw BackupError.nothingToRestore("\(repository.store.location) holds no good backup")
        }
        let state = try snapshots.state()
        guard state.snapshots.isEmpty else {
            throw UserError("restore --tree restores a whole tree onto a filesystem without snapshots, and this one has \(state.snapshots.count); restore single snapshots with `rast restore ID --as N`")
        }
        var restored: [Int] = []
        for id in BackupEngine.treeOrder(newest.tree) {
            guard let record = newest.tree.record(id) else { continue }
            guard let backup = catalog.backups.filter({ $0.snapshot == id }).max(by: { $0.id < $1.id }) else {
                output("snapshot \(id) (\(record.description)) has no backup; skipped")
                continue
            }
            try restore(backup.id, as: id, description: record.description, catalog: catalog)
            restored.append(id)
        }
        return restored
    }

    // MARK: Verify

    /// Downloads and checks every object of backup `text` and the backups it builds on (nil:
    /// of every backup): SHA-256, every chunk's authentication, the zstd frame and the
    /// stream length; and that every chain is complete. Returns one line per backup.
    @discardableResult
    package func verify(_ text: String? = nil) throws -> [String] {
        let catalog = try repository.catalog()
        var problems: [String] = []
        var selected = catalog.backups
        if let text {
            let target = try catalog.find(text)
            do { selected = try catalog.chain(target) } catch {
                problems.append("\(error)")
                selected = [target]
            }
        } else {
            problems += catalog.damaged.map { "backup \($0.id) is damaged: \($0.reason)" }
            problems += catalog.incomplete.map { "backup \($0) is incomplete (an interrupted upload; the next `backup create` or `prune` removes it)" }
        }
        var lines: [String] = []
        let total = selected.reduce(Int64(0)) { $0 + $1.storedBytes }
        progress.begin("verifying \(selected.count) backup\(selected.count == 1 ? "" : "s") (\(ByteCount.format(total)))")
        let meter = TransferMeter(task: "verify", total: total, progress: progress)
        for backup in selected {
            do {
                _ = try catalog.chain(backup)
                for subvolume in backup.subvolumes {
                    try download(subvolume, backup: backup.id, meter: meter, into: nil)
                }
                lines.append("\(backup.id): ok (snapshot \(backup.snapshot), \(ByteCount.format(backup.storedBytes)))")
            } catch let error as InterruptedError {
                throw error
            } catch {
                problems.append("\(error)")
                lines.append("\(backup.id): FAILED")
            }
        }
        meter.report()
        progress.end("verifying", summary: problems.isEmpty ? "all good" : "\(problems.count) problem\(problems.count == 1 ? "" : "s")")
        for line in lines { output(line) }
        if !problems.isEmpty { throw BackupError.verifyFailed(problems) }
        return lines
    }

    // MARK: Prune

    /// Deletes the backups `policy` does not keep (never one a kept backup builds on), and
    /// what interrupted backups left. Returns the deleted IDs.
    @discardableResult
    package func prune(_ policy: RetentionPolicy, dryRun: Bool = false) throws -> [String] {
        guard !policy.keepsNothing else {
            throw UserError("give at least one of --keep-last, --keep-daily, --keep-weekly; prune never deletes every backup")
        }
        let catalog = try repository.catalog()
        let keep = policy.keep(catalog.backups)
        // Newest first: a backup goes before the bases it stands on.
        let doomed = catalog.backups.filter { !keep.contains($0.id) }.sorted { $0.id > $1.id }
        for backup in doomed {
            output("\(dryRun ? "would delete" : "deleting") \(backup.id) (snapshot \(backup.snapshot), \(ByteCount.format(backup.storedBytes)))")
            if !dryRun { try repository.delete(backup.id) }
        }
        if !dryRun {
            if tree != nil { try retireParents(keeping: catalog.backups.filter { keep.contains($0.id) }) }
            let removed = try repository.removeIncomplete(catalog)
            if !removed.isEmpty { output("removed \(removed.count) interrupted backup\(removed.count == 1 ? "" : "s"): \(removed.joined(separator: ", "))") }
        }
        output("\(keep.count) backup\(keep.count == 1 ? "" : "s") kept")
        return doomed.map(\.id)
    }
}
