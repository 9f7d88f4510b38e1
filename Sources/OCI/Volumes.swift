import Btrfs
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The directories layers and container roots live in. On btrfs each is a subvolume and a
/// copy is a snapshot (instant, sharing every unchanged block); elsewhere they are plain
/// directories and a copy is a full copy (reflinked where the filesystem can).
package struct Volumes: Sendable {
    package enum Kind: String, Sendable, Codable {
        case btrfs
        case directory
    }

    package let kind: Kind

    package init(kind: Kind) { self.kind = kind }

    /// The kind that suits `path` (an existing directory).
    package static func detect(_ path: String) -> Volumes {
        Volumes(kind: Mounts.isBtrfs(path) ? .btrfs : .directory)
    }

    /// A new empty volume at `path`.
    package func create(at path: String) throws {
        switch kind {
        case .btrfs: try Btrfs.createSubvolume(at: path)
        case .directory: try SystemError.check("mkdir", path: path) { mkdir(path, 0o755) }
        }
    }

    /// A writable copy of `source` at the new path `destination`.
    package func copy(_ source: String, to destination: String) throws {
        switch kind {
        case .btrfs: try Btrfs.createSnapshot(of: source, at: destination)
        case .directory: try TreeCopy.copy(source, to: destination)
        }
    }

    /// Makes a volume read-only (btrfs); plain directories stay as they are.
    package func seal(_ path: String) throws {
        if kind == .btrfs { try Btrfs.setReadOnly(path, true) }
    }

    /// Deletes a volume and everything in it; nothing happens when it does not exist.
    package func delete(_ path: String) throws {
        guard Files.exists(path) || isDanglingLink(path) else { return }
        if kind == .btrfs, (try? Btrfs.isSubvolume(path)) == true {
            try Btrfs.deleteSubvolume(at: path, recursive: true)
        } else {
            try LayerApplier.removeTree(path)
        }
    }

    private func isDanglingLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }
}
