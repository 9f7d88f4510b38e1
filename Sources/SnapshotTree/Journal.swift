import Btrfs
import Foundation
import SystemSupport

/// A change to the tree, recorded before it is applied so that a crash at any moment leaves
/// either the old state or the new one.
///
/// Every change first builds what it needs under working-copy names (`…-chr…`, which
/// `rast tmp` removes and which are never part of the tree). Writing the journal is the
/// commit point. Its steps are idempotent: the next rast command replays an interrupted
/// journal from the start, then writes the new state and removes the journal.
struct Journal: Codable, Equatable {
    enum Step: Codable, Equatable {
        /// Delete a subvolume (recursively) if it exists.
        case delete(path: String)
        /// Move `from` to `to`, replacing `to`. Done when `from` is gone and `to` exists.
        case replace(from: String, to: String)
        /// Make `path` the filesystem's default subvolume (if it exists).
        case setDefault(path: String)
        /// Write a file atomically.
        case write(path: String, contents: String)
        /// Bring the ESP in step with a Limine menu (`ESPSync`).
        case syncESP(ESPContents)
    }

    var operation: String
    var steps: [Step]
    var state: TreeState
}

extension Journal.Step: CustomStringConvertible {
    /// Boot loader configuration and the default subvolume, which GRUB reads.
    var touchesBoot: Bool {
        switch self {
        case .write, .setDefault, .syncESP: return true
        case .delete, .replace: return false
        }
    }

    var description: String {
        switch self {
        case .delete(let path): return "delete \(path)"
        case .replace(let from, let to): return "rename \(from) to \(to)"
        case .setDefault(let path): return "set default subvolume \(path)"
        case .write(let path, _): return "write \(path)"
        case .syncESP(let contents): return "write the Limine menu and \(contents.files.count) kernel file(s) to the ESP"
        }
    }
}

extension SnapshotStore {
    /// Records `journal`, applies it, writes the new state and removes the journal.
    func commit(_ journal: Journal) throws {
        try Files.writeAtomically(layout.journalFile, bytes: Array(try JSONEncoder().encode(journal)))
        RastLog.logger.debug("journal: \(journal.operation) (\(journal.steps.count) steps)")
        try apply(journal)
    }

    /// Replays an interrupted journal, if there is one. Called under the lock.
    func recover() throws {
        guard Files.exists(layout.journalFile) else { return }
        let bytes = try Files.read(layout.journalFile)
        let journal: Journal
        do {
            journal = try JSONDecoder().decode(Journal.self, from: Data(bytes))
        } catch {
            throw SnapshotError.corruptState(path: layout.journalFile, reason: "\(error)", cause: error)
        }
        RastLog.logger.notice("completing an interrupted change: \(journal.operation)")
        try apply(journal)
    }

    private func apply(_ journal: Journal) throws {
        for step in journal.steps {
            do {
                try checkCancelled()
                try perform(step)
            } catch is InterruptedError {
                throw SnapshotError.interrupted(operation: journal.operation)
            } catch {
                throw SnapshotError.journalFailed(step: step.description, reason: "\(error)", cause: error)
            }
        }
        try Files.writeAtomically(layout.stateFile, bytes: try journal.state.encoded())
        unlink(layout.journalFile)
        try Files.syncDirectory(layout.stateDirectory)
        // fsync puts a change into btrfs's log tree, which the kernel replays on mount but GRUB
        // never reads: without a full transaction commit, a crash right after a deploy would
        // let GRUB boot from the old menu while Linux sees the new state.
        if journal.steps.contains(where: \.touchesBoot) { try Btrfs.sync(layout.top) }
        cachedState = journal.state
    }

    private func perform(_ step: Journal.Step) throws {
        switch step {
        case .delete(let path):
            if Files.exists(path) { try Subvolume.delete(path) }
        case .replace(let from, let to):
            if Files.exists(from) {
                if Files.exists(to) { try Subvolume.delete(to) }
                try Btrfs.rename(from: from, to: to)
            } else if !Files.exists(to) {
                throw SnapshotError.journalFailed(step: step.description, reason: "neither \(from) nor \(to) exists")
            }
        case .setDefault(let path):
            if Files.exists(path) { try Btrfs.setDefaultSubvolume(path) }
        case .write(let path, let contents):
            try Files.createDirectory((path as NSString).deletingLastPathComponent)
            try Files.writeAtomically(path, string: contents)
        case .syncESP(let contents):
            try ESPSync(volume: try espVolume()).apply(contents)
        }
    }
}

/// Subvolume helpers shared by the store's operations.
enum Subvolume {
    /// Deletes a subvolume and anything nested in it; a plain directory left by an earlier
    /// crash (never a subvolume) is removed as a tree.
    static func delete(_ path: String) throws {
        if try Btrfs.isSubvolume(path) {
            try Btrfs.deleteSubvolume(at: path, recursive: true)
        } else {
            try Files.removeTree(path)
        }
    }

    static func exists(_ path: String) -> Bool {
        (try? Btrfs.isSubvolume(path)) ?? false
    }
}
