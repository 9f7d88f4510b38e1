import SystemSupport

/// Everything that can go wrong with the snapshot tree, said so that a person can act on it.
/// Where a reason explains another error, that error is the `cause`.
package enum SnapshotError: CausedError, CustomStringConvertible, Sendable, Equatable {
    case notRastFilesystem(path: String)
    case corruptState(path: String, reason: String, cause: (any Error)? = nil)
    case noSuchSnapshot(Int)
    case snapshotMissingOnDisk(id: Int, path: String)
    case baseSnapshotIsReadOnly(command: String)
    case refusingToDelete(id: Int, reason: String)
    case inUse(id: Int, workingCopy: String)
    case notBootable(reason: String)
    case noPreviousDeployment
    case cancelled
    case liveOnly(command: String)
    case journalFailed(step: String, reason: String, cause: (any Error)? = nil)
    /// SIGINT or SIGTERM arrived while a recorded change was being applied.
    case interrupted(operation: String)
    case astosImport(path: String, reason: String, cause: (any Error)? = nil)

    package var description: String {
        switch self {
        case .notRastFilesystem(let path):
            return "\(path) is not the top level of a rastOS btrfs filesystem (no @.snapshots/rast/state.json and no astOS tree to adopt)"
        case .corruptState(let path, let reason, _):
            return "the snapshot tree state \(path) cannot be read: \(reason)"
        case .noSuchSnapshot(let id):
            return "snapshot \(id) does not exist (see `rast tree`)"
        case .snapshotMissingOnDisk(let id, let path):
            return "snapshot \(id) is in the tree but \(path) is missing on disk; run `rast check --repair`"
        case .baseSnapshotIsReadOnly(let command):
            return "snapshot 0 is the base and only `rast base-update` changes it; `rast \(command)` refuses it"
        case .refusingToDelete(let id, let reason):
            return "refusing to delete snapshot \(id): \(reason)"
        case .inUse(let id, let workingCopy):
            return "snapshot \(id) is in use: its working copy \(workingCopy) exists; if no other rast command is running, `rast unlock \(id)` removes it"
        case .notBootable(let reason):
            return "cannot update the boot entries: \(reason)"
        case .noPreviousDeployment:
            return "there is no previous deployment to roll back to"
        case .cancelled:
            return "cancelled; nothing was changed"
        case .liveOnly(let command):
            return "`rast \(command)` works on the running system only, not with --root"
        case .journalFailed(let step, let reason, _):
            return "applying a change failed at \(step): \(reason); the change is recorded in the journal and is completed by the next rast command"
        case .interrupted(let operation):
            return "interrupted while applying '\(operation)'; the change is recorded in the journal and is completed by the next rast command"
        case .astosImport(let path, let reason, _):
            return "cannot adopt the astOS tree \(path): \(reason)"
        }
    }

    package var cause: (any Error)? {
        switch self {
        case .corruptState(_, _, let cause), .journalFailed(_, _, let cause), .astosImport(_, _, let cause): cause
        default: nil
        }
    }

    /// Equal when they say the same: every case's description shows all it carries (a cause
    /// through its reason).
    package static func == (lhs: SnapshotError, rhs: SnapshotError) -> Bool {
        lhs.description == rhs.description
    }
}
