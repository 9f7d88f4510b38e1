import BootEntries
import Btrfs
import Foundation
import SystemSupport

extension SnapshotStore {
    /// Makes snapshot `id` boot next: a writable copy goes into the slot that is not running,
    /// the boot entries are regenerated (`id` first, the running deployment as the fallback)
    /// and the slot becomes the default subvolume.
    ///
    /// Order of the journal's steps, so that a crash at any point still boots: the menu and
    /// the default first fall back to the running slot alone, then the target slot is
    /// replaced, then the menu and the default point at the new deployment.
    package func deploy(_ id: Int) throws {
        requireLock()
        var state = try state()
        try requireSnapshot(id, in: state)
        let running = runningSlot(state)
        let target = running.map(Layout.otherSlot) ?? Layout.slots[0]
        let staging = Layout.deployCopy(slot: target)

        for (source, copy) in zip(layout.triple(id), layout.triple(staging)) {
            if Files.exists(copy) { try Subvolume.delete(copy) }
            try Btrfs.createSnapshot(of: source, at: copy, readOnly: false)
        }
        let root = layout.root(staging)
        try Self.replaceContents(of: root + "/etc", with: layout.etc(staging))
        try Self.replaceContents(of: root + "/boot", with: layout.boot(staging))
        try Files.createDirectory(root + "/usr/share/rast")
        try Files.writeAtomically(root + "/usr/share/rast/snap", string: "\(id)\n")
        if Files.isDirectory(root + "/usr/share/ast") {
            // An adopted astOS system: astOS's own tools read the deployed snapshot here.
            try Files.writeAtomically(root + "/usr/share/ast/snap", string: "\(id)\n")
        }
        if let settings = state.boot {
            let existing = try? Files.readString(root + "/etc/fstab")
            let table: String
            if settings.rewritesFSTab == true, let existing {
                table = FSTab.rewrite(existing, slot: target)
            } else {
                table = FSTab.render(settings: settings, slot: target)
            }
            try Files.writeAtomically(root + "/etc/fstab", string: table)
            try Files.writeAtomically(layout.etc(staging) + "/fstab", string: table)
        }

        var steps: [Journal.Step] = []
        let fallback = running.flatMap { slot in state.slot(slot).map { (slot, $0.snapshot) } }
        if let (slot, snapshot) = fallback, Files.exists(layout.root(slot)) {
            steps += try bootSteps(state: state, entries: [(slot, snapshot)])
        }
        for (copy, final) in zip(layout.triple(staging), layout.triple(target)) {
            steps.append(.replace(from: copy, to: final))
        }
        var deployed = [(target, id)]
        if let fallback, Files.exists(layout.root(fallback.0)) { deployed.append(fallback) }
        steps += try bootSteps(state: state, entries: deployed, kernelSource: [target: layout.boot(staging)])
        state.setSlot(target, snapshot: id)
        state.next = target
        try commit(Journal(operation: "deploy \(id) to \(target)", steps: steps, state: state))
    }

    /// Makes the previous deployment boot next: cancels a deployment that has not booted yet,
    /// or (when the running deployment is also the next one) switches to the other slot.
    /// Returns the snapshot that now boots next.
    @discardableResult
    package func rollback() throws -> Int {
        requireLock()
        var state = try state()
        guard let running = runningSlot(state) else { throw SnapshotError.noPreviousDeployment }
        let newNext = state.next != running ? running : Layout.otherSlot(running)
        guard let record = state.slot(newNext), Files.exists(layout.root(newNext)) else {
            throw SnapshotError.noPreviousDeployment
        }
        let other = Layout.otherSlot(newNext)
        var entries = [(newNext, record.snapshot)]
        if let previous = state.slot(other), Files.exists(layout.root(other)) { entries.append((other, previous.snapshot)) }
        let steps = try bootSteps(state: state, entries: entries)
        state.next = newNext
        try commit(Journal(operation: "rollback to \(newNext)", steps: steps, state: state))
        return record.snapshot
    }

    /// Regenerates the boot entries from the deployments (astOS's `boot`).
    package func updateBootEntries() throws {
        requireLock()
        let state = try state()
        guard let next = state.next, let record = state.slot(next) else {
            throw SnapshotError.notBootable(reason: "no snapshot is deployed yet; run `rast deploy N`")
        }
        var entries = [(next, record.snapshot)]
        let other = Layout.otherSlot(next)
        if let previous = state.slot(other), Files.exists(layout.root(other)) { entries.append((other, previous.snapshot)) }
        try commit(Journal(operation: "boot entries", steps: try bootSteps(state: state, entries: entries), state: state))
    }

    /// The boot menu for these deployments, first entry = default.
    package func bootMenu(state: TreeState, entries: [(slot: String, snapshot: Int)],
                         kernelSource: [String: String] = [:]) throws -> BootMenu? {
        guard let settings = state.boot else { return nil }
        var menu = BootMenu(distributor: settings.distributor, filesystemUUID: settings.filesystemUUID,
                            rootPartitionUUID: settings.rootPartitionUUID, kernelArguments: settings.kernelArguments,
                            timeoutSeconds: settings.timeoutSeconds)
        menu.rootDevice = settings.rootDevice
        menu.serialConsole = settings.serialConsole ?? true
        for (index, (slot, snapshot)) in entries.enumerated() {
            let bootDirectory = kernelSource[slot] ?? layout.boot(slot)
            guard let kernel = try Self.kernel(in: bootDirectory, preferring: settings.kernel) else {
                throw SnapshotError.notBootable(reason: "no kernel (vmlinuz-*) in \(bootDirectory) for snapshot \(snapshot)")
            }
            let title = index == 0 ? "\(settings.distributor) snapshot \(snapshot)"
                : "\(settings.distributor) previous deployment (snapshot \(snapshot))"
            var entry = BootEntry(title: title, slot: slot, snapshot: snapshot, kernel: kernel,
                                  initrd: try Self.initrd(in: bootDirectory, preferring: settings.initrd))
            if settings.loader == .limine {
                // Limine reads the kernel from the ESP, under a name made of its content.
                entry.espKernel = LimineLayout.kernelPath(name: kernel, sha256: try SHA256.hash(file: bootDirectory + "/" + kernel))
                entry.espInitrd = try entry.initrd.map {
                    LimineLayout.kernelPath(name: $0, sha256: try SHA256.hash(file: bootDirectory + "/" + $0))
                }
            }
            menu.entries.append(entry)
        }
        return menu
    }

    /// Journal steps that write the boot configuration and set the default subvolume.
    func bootSteps(state: TreeState, entries: [(String, Int)], kernelSource: [String: String] = [:]) throws -> [Journal.Step] {
        var steps: [Journal.Step] = []
        if let menu = try bootMenu(state: state, entries: entries.map { (slot: $0.0, snapshot: $0.1) }, kernelSource: kernelSource),
           let settings = state.boot {
            switch settings.loader {
            case .grub:
                steps.append(.write(path: layout.grubConfig, contents: try BootConfiguration.grub(menu, templates: templates)))
            case .limine:
                steps.append(.syncESP(try espContents(menu)))
            }
        }
        if let first = entries.first { steps.append(.setDefault(path: layout.root(first.0))) }
        return steps
    }

    /// The ESP's contents for a Limine menu: the menu and the copies of the kernels and
    /// initramfs files its entries load, copied from the slots' /boot.
    func espContents(_ menu: BootMenu) throws -> ESPContents {
        var files: [ESPContents.File] = []
        for entry in menu.entries {
            for (name, path) in [(entry.kernel, entry.espKernel), (entry.initrd, entry.espInitrd)] {
                guard let name, let path, !files.contains(where: { $0.path == path }),
                      let hash = LimineLayout.hashPrefix(ofKernelPath: path) else { continue }
                files.append(ESPContents.File(path: path, source: layout.boot(entry.slot) + "/" + name, sha256Prefix: hash))
            }
        }
        return ESPContents(config: try BootConfiguration.limine(menu, templates: templates), files: files)
    }

    /// The kernel in a slot's /boot: `preferred` when it is there, else the first vmlinuz-*.
    static func kernel(in directory: String, preferring preferred: String? = nil) throws -> String? {
        guard Files.isDirectory(directory) else { return nil }
        let names = try FileManagerShim.contents(of: directory)
        if let preferred, names.contains(preferred) { return preferred }
        return names.first { $0.hasPrefix("vmlinuz") }
    }

    static func initrd(in directory: String, preferring preferred: String? = nil) throws -> String? {
        guard Files.isDirectory(directory) else { return nil }
        let names = try FileManagerShim.contents(of: directory)
        if let preferred, names.contains(preferred) { return preferred }
        return names.first { $0.hasPrefix("initramfs") && !$0.contains("fallback") }
    }
}

/// /etc/fstab of a deployment slot (astOS's layout; only / is read-only).
package enum FSTab {
    package static func render(settings: BootMenuSettings, slot: String) -> String {
        let uuid = "UUID=\(settings.filesystemUUID)"
        let options = settings.mountOptions
        return """
            # /etc/fstab of rastOS deployment slot \(slot), written by rast deploy.
            \(uuid) / btrfs subvol=@.snapshots/rootfs/snapshot-\(slot),\(options),ro 0 0
            \(uuid) /.snapshots btrfs subvol=@.snapshots,\(options) 0 0
            \(uuid) /home btrfs subvol=@home,\(options) 0 0
            \(uuid) /var btrfs subvol=@var,\(options) 0 0
            \(uuid) /etc btrfs subvol=@.snapshots/etc/etc-\(slot),\(options) 0 0
            \(uuid) /boot btrfs subvol=@.snapshots/boot/boot-\(slot),\(options) 0 0

            """
    }

    /// `table` with every deployment slot it mounts (`@.snapshots/rootfs/snapshot-SLOT`,
    /// `etc/etc-SLOT`, `boot/boot-SLOT`) changed to `slot`, every other line kept: what
    /// astOS's deploy did with sed, for an adopted system's own fstab.
    package static func rewrite(_ table: String, slot: String) -> String {
        var output = ""
        var rest = Substring(table)
        let prefixes = ["@.snapshots/rootfs/snapshot-", "@.snapshots/etc/etc-", "@.snapshots/boot/boot-"]
        while !rest.isEmpty {
            let next = prefixes.compactMap { rest.range(of: $0) }.min { $0.lowerBound < $1.lowerBound }
            guard let found = next else {
                output += rest
                break
            }
            output += rest[..<found.upperBound]
            rest = rest[found.upperBound...]
            let name = rest.prefix { !$0.isWhitespace && $0 != "," && $0 != "/" }
            if Layout.slots.contains(String(name)) {
                output += slot
                rest = rest.dropFirst(name.count)
            }
        }
        return output
    }
}
