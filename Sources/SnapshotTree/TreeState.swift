import BootEntries
import Foundation
import SystemSupport

/// One snapshot in the tree.
package struct SnapshotRecord: Codable, Sendable, Equatable {
    package var id: Int
    /// nil for the root of a tree (snapshot 0 and every `clone`/`new`).
    package var parent: Int?
    package var description: String
    package var created: String

    package init(id: Int, parent: Int?, description: String, created: String = TreeState.timestamp()) {
        self.id = id
        self.parent = parent
        self.description = description
        self.created = created
    }
}

/// What a deployment slot holds.
package struct SlotRecord: Codable, Sendable, Equatable {
    package var slot: String
    package var snapshot: Int
    package var deployed: String
}

/// rast's persistent state, one JSON file written atomically.
package struct TreeState: Codable, Sendable, Equatable {
    package static let currentFormat = 1

    package var format: Int
    package var snapshots: [SnapshotRecord]
    package var slots: [SlotRecord]
    /// The slot that boots next (also the btrfs default subvolume and GRUB's entry 0).
    package var next: String?
    /// What boot entries are generated from; nil until an image is made bootable.
    package var boot: BootMenuSettings?

    package init(snapshots: [SnapshotRecord] = [], slots: [SlotRecord] = [], next: String? = nil, boot: BootMenuSettings? = nil) {
        self.format = TreeState.currentFormat
        self.snapshots = snapshots
        self.slots = slots
        self.next = next
        self.boot = boot
    }

    package static func timestamp(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    // MARK: Queries

    package func record(_ id: Int) -> SnapshotRecord? { snapshots.first { $0.id == id } }
    package func contains(_ id: Int) -> Bool { record(id) != nil }
    package func children(of id: Int?) -> [SnapshotRecord] {
        snapshots.filter { $0.parent == id }.sorted { $0.id < $1.id }
    }

    /// `id` and all its descendants, parents before children.
    package func subtree(_ id: Int) -> [Int] {
        var result = [id]
        var index = 0
        while index < result.count {
            result += children(of: result[index]).map(\.id)
            index += 1
        }
        return result
    }

    /// The lowest free id above 0 (astOS's findnew).
    package func nextFreeID(excluding taken: Set<Int> = []) -> Int {
        let used = Set(snapshots.map(\.id)).union(taken)
        var candidate = 1
        while used.contains(candidate) { candidate += 1 }
        return candidate
    }

    package func slot(_ name: String) -> SlotRecord? { slots.first { $0.slot == name } }

    package mutating func setSlot(_ name: String, snapshot: Int, deployed: Date = Date()) {
        slots.removeAll { $0.slot == name }
        slots.append(SlotRecord(slot: name, snapshot: snapshot, deployed: TreeState.timestamp(deployed)))
        slots.sort { $0.slot < $1.slot }
    }

    // MARK: Encoding

    package func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [10]
    }

    package static func decode(_ bytes: [UInt8], path: String) throws -> TreeState {
        struct Version: Decodable { let format: Int }
        let data = Data(bytes)
        guard let version = try? JSONDecoder().decode(Version.self, from: data) else {
            throw SnapshotError.corruptState(path: path, reason: "not a rast state file (no format field)")
        }
        guard version.format <= currentFormat else {
            throw SnapshotError.corruptState(path: path, reason: "format \(version.format) is newer than this rast understands (\(currentFormat)); update rast")
        }
        do {
            return try JSONDecoder().decode(TreeState.self, from: data)
        } catch {
            throw SnapshotError.corruptState(path: path, reason: "\(error)", cause: error)
        }
    }
}

/// The parts of the boot menu that do not change between deployments.
package struct BootMenuSettings: Codable, Sendable, Equatable {
    package var loader: BootLoader
    package var distributor: String
    package var filesystemUUID: String
    package var rootPartitionUUID: String
    package var kernelArguments: String
    package var timeoutSeconds: Int
    /// btrfs mount options of every fstab line (compression from the recipe).
    package var mountOptions: String
    /// The kernel's `root=` value when it is not `PARTUUID=rootPartitionUUID`: an adopted
    /// astOS system boots through an initramfs with `root=UUID=...`.
    package var rootDevice: String?
    /// The kernel and initramfs file names to boot when a slot's /boot holds several.
    package var kernel: String?
    package var initrd: String?
    /// Deploy rewrites the slot names in the deployed snapshot's own /etc/fstab (keeping its
    /// other lines, as astOS did) instead of writing rast's.
    package var rewritesFSTab: Bool?
    /// GRUB also talks on the first serial port (nil: yes, as on rast's images).
    package var serialConsole: Bool?

    package init(loader: BootLoader, distributor: String = "rastOS", filesystemUUID: String, rootPartitionUUID: String,
                kernelArguments: String, timeoutSeconds: Int = 3, mountOptions: String = "compress=zstd,noatime") {
        self.mountOptions = mountOptions
        self.loader = loader
        self.distributor = distributor
        self.filesystemUUID = filesystemUUID
        self.rootPartitionUUID = rootPartitionUUID
        self.kernelArguments = kernelArguments
        self.timeoutSeconds = timeoutSeconds
    }
}
