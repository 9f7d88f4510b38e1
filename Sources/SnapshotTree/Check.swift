import Btrfs
import Foundation
import SystemSupport

/// The tree compared with the subvolumes on disk.
package struct CheckReport: Sendable, Codable, Equatable {
    /// In the tree, missing on disk (with the missing path).
    package var dangling: [Int: [String]] = [:]
    /// Complete snapshot triples on disk that the tree does not know.
    package var orphans: [Int] = []
    /// Parts of snapshots (or unknown names) on disk that belong to nothing.
    package var strays: [String] = []
    /// Working copies (`rast tmp` removes them).
    package var workingCopies: [String] = []
    /// Deployment slots recorded in the state but missing on disk.
    package var missingSlots: [String] = []
    /// Slots that boot entries point at but that do not exist.
    package var brokenBootEntries: [String] = []
    /// The default subvolume is not the slot that boots next.
    package var defaultMismatch: String?
    /// Snapshots whose parent is not in the tree.
    package var unknownParents: [Int] = []
    /// The boot menu's first (default) entry does not boot the slot that boots next.
    package var firstEntryMismatch: String?
    /// Kernels and initramfs images boot entries load that do not exist.
    package var missingBootFiles: [String] = []
    /// Snapshots (committed, so meant to be read-only) with a writable subvolume.
    package var writableSnapshots: [Int: [String]] = [:]
    /// Limine: the menu on the ESP is missing or unreadable, or an entry's kernel or initramfs
    /// is missing or damaged there.
    package var bootMenuProblems: [String] = []
    /// Limine: ESP files an interrupted deploy left (kernels no entry loads, `.tmp` and
    /// `.new` files); harmless, removed by the next deploy, rollback, `rast boot` or repair.
    package var bootLeftovers: [String] = []
    /// ESP copies to be replaced by a repair (missing or damaged).
    var damagedBootFiles: [String] = []

    enum CodingKeys: String, CodingKey {
        case dangling, orphans, strays, workingCopies, missingSlots, brokenBootEntries, defaultMismatch, unknownParents,
             firstEntryMismatch, missingBootFiles, writableSnapshots, bootMenuProblems, bootLeftovers
    }

    /// Consistent: everything in the tree exists, nothing unknown but working copies remains,
    /// snapshots are read-only, and the boot entries boot the next slot with files that exist.
    package var isConsistent: Bool {
        dangling.isEmpty && orphans.isEmpty && strays.isEmpty && missingSlots.isEmpty
            && brokenBootEntries.isEmpty && defaultMismatch == nil && unknownParents.isEmpty
            && firstEntryMismatch == nil && missingBootFiles.isEmpty && writableSnapshots.isEmpty && bootMenuProblems.isEmpty
    }

    package var lines: [String] {
        var lines: [String] = []
        for (id, paths) in dangling.sorted(by: { $0.key < $1.key }) {
            lines.append("dangling: snapshot \(id) is in the tree but \(paths.joined(separator: ", ")) missing on disk")
        }
        for id in orphans { lines.append("orphan: snapshot \(id) exists on disk but not in the tree") }
        for path in strays { lines.append("stray: \(path) belongs to no snapshot") }
        for slot in missingSlots { lines.append("missing slot: deployment slot \(slot) is recorded but missing on disk") }
        for slot in brokenBootEntries { lines.append("boot entry: points at slot \(slot), which does not exist") }
        if let defaultMismatch { lines.append("default subvolume: \(defaultMismatch)") }
        if let firstEntryMismatch { lines.append("boot entry: \(firstEntryMismatch)") }
        for file in missingBootFiles { lines.append("boot entry: \(file)") }
        for (id, paths) in writableSnapshots.sorted(by: { $0.key < $1.key }) {
            lines.append("writable: snapshot \(id) should be read-only, but \(paths.joined(separator: ", ")) \(paths.count == 1 ? "is" : "are") writable")
        }
        for id in unknownParents { lines.append("parent: snapshot \(id) has a parent that is not in the tree") }
        for problem in bootMenuProblems { lines.append("boot menu: \(problem)") }
        for path in bootLeftovers { lines.append("leftover on the ESP: \(path) (removed by the next deploy or `rast check --repair`)") }
        for path in workingCopies { lines.append("working copy: \(path) (removed by `rast tmp`)") }
        return lines
    }
}

extension SnapshotStore {
    /// Compares the tree with the disk. Call under the lock (an interrupted change is
    /// completed first) to see the state a user will see.
    package func check() throws -> CheckReport {
        let state = try state()
        var report = CheckReport()
        let known = Set(state.snapshots.map(\.id))
        for record in state.snapshots {
            let missing = layout.triple(record.id).filter { !Files.exists($0) }
            if !missing.isEmpty { report.dangling[record.id] = missing }
            if let parent = record.parent, !known.contains(parent) { report.unknownParents.append(record.id) }
        }
        report.workingCopies = try workingCopies()

        // Everything named like a snapshot on disk.
        var partsOnDisk: [Int: Int] = [:]
        for (directory, prefix) in [("rootfs", "snapshot-"), ("etc", "etc-"), ("boot", "boot-")] {
            let path = layout.snapshots + "/" + directory
            guard Files.isDirectory(path) else { continue }
            for name in try FileManagerShim.contents(of: path) {
                guard name.hasPrefix(prefix) else {
                    report.strays.append(path + "/" + name)
                    continue
                }
                let key = String(name.dropFirst(prefix.count))
                if key.hasPrefix("chr") || Layout.slots.contains(key) { continue }
                if let id = Int(key) {
                    if !known.contains(id) { partsOnDisk[id, default: 0] += 1 }
                } else {
                    report.strays.append(path + "/" + name)
                }
            }
        }
        for (id, count) in partsOnDisk.sorted(by: { $0.key < $1.key }) {
            if count == 3 { report.orphans.append(id) } else { report.strays += layout.triple(id).filter(Files.exists) }
        }

        for record in state.slots where layout.triple(record.slot).contains(where: { !Files.exists($0) }) {
            report.missingSlots.append(record.slot)
        }
        var entrySlots: [String]
        if state.boot?.loader == .limine, state.next != nil {
            do {
                let inspection = LimineInspection(volume: try espVolume())
                report.bootMenuProblems = inspection.problems
                report.bootLeftovers = inspection.leftovers
                report.damagedBootFiles = inspection.damaged
                entrySlots = inspection.slots
                if let next = state.next, let first = inspection.slots.first, first != next {
                    report.firstEntryMismatch = "the first (default) entry of the Limine menu on the ESP boots slot \(first), but slot \(next) boots next"
                }
            } catch {
                report.bootMenuProblems.append("the EFI system partition cannot be opened: \(error)")
                entrySlots = []
            }
        } else {
            entrySlots = try bootEntrySlots()
        }
        for slot in entrySlots where !Files.exists(layout.root(slot)) {
            report.brokenBootEntries.append(slot)
        }
        if let next = state.next, Files.exists(layout.root(next)) {
            let defaultID = try Btrfs.defaultSubvolumeID(fs: layout.top)
            if defaultID != (try Btrfs.subvolumeID(layout.root(next))) {
                report.defaultMismatch = "slot \(next) boots next but subvolume \(defaultID) is the default"
            }
        }
        if let installed = InstalledBootConfig.read(layout) {
            if let next = state.next, let first = installed.entries.first, first.slot != next {
                report.firstEntryMismatch = "the first (default) entry '\(first.title)' boots "
                    + (first.slot.map { "slot \($0)" } ?? "no deployment slot") + ", but slot \(next) boots next"
            }
            if Files.exists(layout.grubConfig) {
                for entry in installed.entries {
                    var files = entry.initrdPaths.map { (what: "initramfs", path: $0) }
                    if let kernel = entry.kernelPath { files.insert((what: "kernel", path: kernel), at: 0) }
                    for (what, path) in files where isOnTopLevel(path) && !Files.exists(layout.top + path) {
                        report.missingBootFiles.append("'\(entry.title)' loads the \(what) \(path), which does not exist")
                    }
                }
            }
        }
        for record in state.snapshots {
            let writable = layout.triple(record.id).filter { Files.exists($0) && (try? Btrfs.isReadOnly($0)) == false }
            if !writable.isEmpty { report.writableSnapshots[record.id] = writable }
        }
        return report
    }

    /// A GRUB path on the btrfs filesystem's top level (`/@.snapshots/...`, `/@boot/...`);
    /// paths on another file system (a separate /boot) are not checked.
    private func isOnTopLevel(_ path: String) -> Bool {
        guard path.hasPrefix("/"), let first = path.dropFirst().split(separator: "/").first else { return false }
        return Files.exists(layout.top + "/" + first)
    }

    /// Slots named by the generated boot configuration.
    func bootEntrySlots() throws -> [String] {
        var slots: [String] = []
        for path in [layout.grubConfig, layout.limineConfig] where Files.exists(path) {
            let text = try Files.readString(path)
            var rest = Substring(text)
            let marker = "rootflags=subvol=@.snapshots/rootfs/snapshot-"
            while let range = rest.range(of: marker) {
                let slot = rest[range.upperBound...].prefix { !$0.isWhitespace }
                slots.append(String(slot))
                rest = rest[range.upperBound...]
            }
        }
        return slots
    }

    /// Fixes what `check` found: dangling entries leave the tree (their children move up),
    /// complete orphans are adopted as new trees, strays are deleted, missing slots are
    /// forgotten, and the boot entries and default subvolume are regenerated.
    /// Working copies are left for `rast tmp`. Returns the actions taken.
    @discardableResult
    package func repair() throws -> [String] {
        requireLock()
        let report = try check()
        var state = try state()
        var steps: [Journal.Step] = []
        var actions: [String] = []
        for id in report.dangling.keys.sorted() {
            let parent = state.record(id)?.parent
            for index in state.snapshots.indices where state.snapshots[index].parent == id {
                state.snapshots[index].parent = parent
            }
            state.snapshots.removeAll { $0.id == id }
            steps += layout.triple(id).map { Journal.Step.delete(path: $0) }
            actions.append("removed dangling snapshot \(id) from the tree")
        }
        for id in report.unknownParents where state.contains(id) {
            if let index = state.snapshots.firstIndex(where: { $0.id == id }) { state.snapshots[index].parent = nil }
            actions.append("made snapshot \(id), whose parent was missing, the root of its own tree")
        }
        for id in report.orphans {
            state.snapshots.append(SnapshotRecord(id: id, parent: nil, description: "recovered orphan"))
            actions.append("adopted orphan snapshot \(id) as a new tree")
        }
        state.snapshots.sort { $0.id < $1.id }
        for path in report.strays {
            steps.append(.delete(path: path))
            actions.append("deleted stray \(path)")
        }
        for slot in report.missingSlots {
            state.slots.removeAll { $0.slot == slot }
            steps += layout.triple(slot).map { Journal.Step.delete(path: $0) }
            if state.next == slot { state.next = state.slots.first?.slot }
            actions.append("forgot deployment slot \(slot), which was missing")
        }
        for (id, paths) in report.writableSnapshots.sorted(by: { $0.key < $1.key }) where state.contains(id) {
            for path in paths { try Btrfs.setReadOnly(path, true) }
            actions.append("made snapshot \(id) read-only again")
        }
        // Damaged copies on the ESP go first: the sync below copies what is missing.
        if !report.damagedBootFiles.isEmpty, let volume = try? espVolume() {
            for path in report.damagedBootFiles { try volume.remove(path) }
        }
        let bootMenuNeedsWork = !report.bootMenuProblems.isEmpty || !report.bootLeftovers.isEmpty
        if let next = state.next, let record = state.slot(next),
           !report.brokenBootEntries.isEmpty || report.defaultMismatch != nil || !report.missingSlots.isEmpty
            || report.firstEntryMismatch != nil || !report.missingBootFiles.isEmpty || bootMenuNeedsWork {
            var entries = [(next, record.snapshot)]
            let other = Layout.otherSlot(next)
            if let previous = state.slot(other) { entries.append((other, previous.snapshot)) }
            steps += try bootSteps(state: state, entries: entries)
            actions.append("regenerated the boot entries")
        }
        let before = try self.state()
        if !steps.isEmpty || state != before {
            try commit(Journal(operation: "repair", steps: steps, state: state))
        }
        return actions
    }
}
