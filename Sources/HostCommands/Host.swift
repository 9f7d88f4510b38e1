import BootEntries
import Btrfs
import Foundation
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where `rast` works: the running system (its btrfs top level mounted privately for the
/// duration of the command) or an image whose top level is mounted at `--root DIR`.
package final class HostSession {
    package let store: SnapshotStore
    /// True on the running system, false with --root.
    package let live: Bool
    package let output: (String) -> Void
    private let teardown = Teardown()

    package static let liveTopMount = "/run/rast/top"

    init(store: SnapshotStore, live: Bool, output: @escaping (String) -> Void) {
        self.store = store
        self.live = live
        self.output = output
    }

    deinit {
        store.unlock()
        teardown.run()
    }

    /// Opens the tree for reading: `root` (an image's top level) or the running system's
    /// /.snapshots, which needs no privileges.
    package static func forReading(root: String?, output: @escaping (String) -> Void = { print($0) }) throws -> HostSession {
        if let root { return try forImage(root: root, output: output) }
        let booted = try bootedSlot()
        for mounted in ["/.snapshots"] {
            let layout = Layout(mountedSnapshots: mounted)
            if SnapshotStore.isInitialized(layout) {
                return HostSession(store: SnapshotStore(layout: layout, bootedSlot: booted), live: true, output: output)
            }
        }
        return try forWriting(root: nil, command: "tree", output: output)
    }

    /// Opens the tree for a change: needs root; on the running system the top level is
    /// mounted (in rast's private mount namespace) for the duration of the command.
    package static func forWriting(root: String?, command: String, output: @escaping (String) -> Void = { print($0) }) throws -> HostSession {
        try Privileges.requireRoot(for: "rast \(command)")
        if let root { return try forImage(root: root, output: output) }
        let table = try MountTable.read()
        guard let rootMount = table.entry(at: "/"), rootMount.fileSystemType == "btrfs" else {
            throw UserError("this system's / is not on btrfs, so it is not a rastOS system; use --root DIR to work on an image's mounted top level")
        }
        let booted = try bootedSlot()
        let teardown = Teardown()
        try Files.createDirectory(liveTopMount)
        if table.entry(at: liveTopMount) == nil {
            try Mounts.mount(try rootDevice(rootMount), on: liveTopMount, type: "btrfs", options: ["subvolid=5"])
            teardown.push("the top-level mount \(liveTopMount)") { try Mounts.unmount(liveTopMount) }
        }
        let layout = Layout(top: liveTopMount)
        guard SnapshotStore.isInitialized(layout) else { throw SnapshotError.notRastFilesystem(path: rootMount.source) }
        let host = HostSession(store: SnapshotStore(layout: layout, bootedSlot: booted), live: true, output: output)
        host.adopt(teardown)
        host.findESP(besides: try rootDevice(rootMount))
        return host
    }

    static func forImage(root: String, output: @escaping (String) -> Void) throws -> HostSession {
        let layout = Layout(top: (root as NSString).standardizingPath)
        guard Files.isDirectory(layout.top) else { throw UserError("--root \(root) is not a directory") }
        guard SnapshotStore.isInitialized(layout) else { throw SnapshotError.notRastFilesystem(path: root) }
        let host = HostSession(store: SnapshotStore(layout: layout), live: false, output: output)
        // The filesystem mounted at (or holding) the top level: its device leads to the ESP.
        let mounts = (try? MountTable.read().entries) ?? []
        let holding = mounts.filter { layout.top == $0.mountPoint || layout.top.hasPrefix($0.mountPoint == "/" ? "/" : $0.mountPoint + "/") }
            .max { $0.mountPoint.count < $1.mountPoint.count }
        if let holding, holding.fileSystemType == "btrfs" { host.findESP(besides: holding.source) }
        return host
    }

    /// Lets the store open the ESP beside `device` (the root filesystem's) when a Limine menu
    /// is written or checked; a mount it makes is released with the session.
    func findESP(besides device: String) {
        let teardown = self.teardown
        store.espProvider = { try ESPLocator.open(try ESPLocator.locate(besides: device), teardown: teardown) }
    }

    private func adopt(_ other: Teardown) {
        teardown.push("host resources") { other.run() }
    }

    /// The block device holding /. Without an initramfs the kernel names it /dev/root, which
    /// has no device node; btrfs lists the real devices in sysfs under the filesystem UUID.
    static func rootDevice(_ entry: MountEntry) throws -> String {
        if entry.source.hasPrefix("/dev/"), entry.source != "/dev/root", Files.exists(entry.source) { return entry.source }
        let uuid = try Btrfs.filesystemUUID("/").uuidString.lowercased()
        let devices = "/sys/fs/btrfs/\(uuid)/devices"
        guard let name = try? FileManagerShim.contents(of: devices).first, Files.exists("/dev/" + name) else {
            throw UserError("cannot find the block device holding / (mounted from \(entry.source); nothing in \(devices))")
        }
        return "/dev/" + name
    }

    /// The slot the running system was booted from: the subvolume mounted at /.
    package static func bootedSlot() throws -> String? {
        guard let entry = try MountTable.read().entry(at: "/"), entry.fileSystemType == "btrfs" else { return nil }
        let marker = "/@.snapshots/rootfs/snapshot-"
        guard entry.root.hasPrefix(marker) else { return nil }
        let slot = String(entry.root.dropFirst(marker.count))
        return Layout.slots.contains(slot) ? slot : nil
    }

    /// Takes the lock, saying so when another rast command holds it.
    package func lock(wait: Bool) throws {
        try store.acquire(wait: wait) { [output] in
            output("waiting for another rast command to finish (use --no-wait to fail instead)")
        }
    }

    /// The snapshot a command acts on: `id` when the tree has it, else the booted one (on an
    /// image, the one that boots next). `noneDeployed` is the refusal when there is neither.
    func namedOrCurrentSnapshot(_ id: Int?, noneDeployed: String) throws -> Int {
        if let id {
            guard try store.state().contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
            return id
        }
        guard let current = try store.currentSnapshot() else { throw UserError(noneDeployed) }
        return current
    }
}
