import Blkid
import BootEntries
import Btrfs
import Foundation
import ImageSupport
import Recipe
import SnapshotTree
import SystemSupport
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// `rast vm N`: snapshot N of a rastOS filesystem booted as a virtual machine, without touching
/// the system it belongs to.
///
/// The machine gets a throw-away disk of its own in a temporary directory, made the way the
/// image builder makes one: the disk stage's GPT (BIOS boot, ESP, btrfs root), N's root, /etc
/// and /boot copied into the layout's subvolumes (`TreeCopy`: reflinked where source and
/// destination share a filesystem, copied otherwise; a disk of its own never shares one), a
/// tree state holding N alone with the source's boot settings on the new disk's identifiers,
/// N deployed there by `SnapshotStore.deploy` (the menu, fstab), and the boot loader stage the
/// builder runs (GRUB or Limine, for BIOS and UEFI). Nothing is attached or mounted while QEMU
/// runs. With `commit`, what the machine's deployed slot holds when it stops becomes a new
/// snapshot branched from N (a working copy of N filled with the slot's files, committed by
/// `SnapshotStore.commitWorkingCopy`); without it the disk is deleted with its writes.
package struct SnapshotMachine {
    package struct Options: Sendable {
        package var firmware: MachineConfiguration.Firmware = .bios
        package var memory = "1G"
        package var cpus = 2
        package var commit = false
        package var sshPort: Int?
        package init() {}
    }

    /// What a run did.
    package struct Outcome: Sendable {
        /// The snapshot `commit` made.
        package var committed: Int?
        package var termination: Termination
    }

    package let store: SnapshotStore
    package let snapshot: Int
    package let options: Options
    package let progress: ProgressReporter
    /// Takes and releases the source tree's lock (held while N is read and while a commit writes).
    package let lock: () throws -> Void
    package let unlock: () -> Void

    package init(store: SnapshotStore, snapshot: Int, options: Options, progress: ProgressReporter,
                lock: @escaping () throws -> Void, unlock: @escaping () -> Void) {
        self.store = store
        self.snapshot = snapshot
        self.options = options
        self.progress = progress
        self.lock = lock
        self.unlock = unlock
    }

    /// Tools the disk needs beyond what the builder's stages check themselves.
    static func preflight(loader: BootLoader) throws {
        var missing = ["qemu-system-x86_64", "mkfs.btrfs", "mkfs.fat"].filter { Command.find($0) == nil }
        missing += (loader == .grub ? ["grub-install", "grub-mkimage", "mmd", "mcopy"] : ["mmd", "mcopy", "mren", "mdir"])
            .filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            throw UserError("rast vm needs \(missing.joined(separator: ", ")) on this machine (qemu-system-x86, btrfs-progs, dosfstools, mtools, grub-pc-bin and grub-efi-amd64-bin on Debian; qemu-base, btrfs-progs, dosfstools, mtools and grub on Arch)")
        }
    }

    package func run() throws -> Outcome {
        let scratch = try TemporaryDirectory(prefix: "rast-vm")
        defer { try? scratch.remove() }
        let diskPath = scratch.appending("snapshot-\(snapshot).raw")
        let rootPartition: AttachedDisk.PartitionRecord

        // 1. The disk, assembled while the source tree is locked (N cannot go away meanwhile).
        try lock()
        do {
            let source = try store.state()
            guard let record = source.record(snapshot) else { throw SnapshotError.noSuchSnapshot(snapshot) }
            guard let boot = source.boot else {
                throw UserError("the tree records no boot settings (kernel arguments, boot loader), so rast cannot make snapshot \(snapshot) boot; `rast deploy` on a system built by rast-build records them")
            }
            try Self.preflight(loader: boot.loader)
            rootPartition = try assemble(disk: diskPath, record: record, boot: boot, scratch: scratch)
        } catch {
            unlock()
            throw error
        }
        unlock()

        // 2. The machine, with its console on this terminal.
        let port = try options.sshPort ?? QEMU.freeLocalPort()
        guard QEMU.isLocalPortFree(port) else { throw UserError("--ssh-port \(port): 127.0.0.1:\(port) is already in use") }
        var machine = MachineConfiguration()
        machine.firmware = options.firmware
        machine.memory = options.memory
        machine.cpus = options.cpus
        machine.disks = [.init(path: diskPath, format: "raw", snapshot: false)]
        machine.network = .user(forwards: [.init(hostPort: port, guestPort: 22)])
        machine.rebootEndsMachine = false
        let accelerator = try QEMU.decideAccelerator(for: machine, consoleLog: scratch.appending("kvm-check.log"), progress: progress)
        let console = ConsoleMachine(machine, accelerator: accelerator)
        print("rast vm: snapshot \(snapshot) (\(options.firmware.rawValue.uppercased()), \(accelerator.uppercased()), \(options.memory), \(options.cpus) CPU\(options.cpus == 1 ? "" : "s")); "
              + (options.commit ? "when it stops, its changes become a new snapshot branched from \(snapshot)" : "its writes are thrown away when it stops"))
        print("SSH: 127.0.0.1:\(port) → guest port 22 (ssh -p \(port) USER@127.0.0.1)")
        fflush(nil)
        let ended = try console.run { _ in
            print("console: Ctrl-A X quits, Ctrl-A C switches to the QEMU monitor and back")
            fflush(nil)
        }
        print("")
        try checkCancelled()
        switch ended {
        case .exited(0): break
        case .exited(let status):
            throw UserError("QEMU exited with status \(status)\(options.commit ? "; nothing was committed" : "")")
        case .signalled:
            throw UserError("QEMU \(ended)\(options.commit ? "; the machine's writes were not committed" : "")")
        }
        guard options.commit else {
            print("rast vm: the machine stopped; its writes are discarded")
            return Outcome(committed: nil, termination: ended)
        }

        // 3. The machine's deployed slot becomes snapshot M, branched from N.
        let committed = try commitChanges(disk: diskPath, root: rootPartition, scratch: scratch)
        print("rast vm: snapshot \(committed) (from \(snapshot)) holds the machine's changes")
        return Outcome(committed: committed, termination: ended)
    }

    /// Partitions, fills, deploys and makes bootable the machine's disk; returns its root partition.
    func assemble(disk path: String, record: SnapshotRecord, boot: BootMenuSettings, scratch: TemporaryDirectory) throws
        -> AttachedDisk.PartitionRecord {
        let stopwatch = Stopwatch()
        let source = store.layout
        let used = try Self.usedBytes(source.triple(snapshot))
        // Sparse: the size is room for the guest's writes, not space taken.
        let size = max(Int64(4) << 30, (used * 2 + (Int64(1) << 30) + 0xFFFFF) & ~0xFFFFF)
        progress.begin("rast vm: a disk for snapshot \(snapshot) (\(ByteCount.format(used)) to copy)")
        let teardown = Teardown()
        defer { _ = teardown.run() }
        let spec = DiskSpec(size: size, biosBootSize: 1 << 20, espSize: 64 << 20, filesystemLabel: "rastvm",
                            compression: BtrfsCompression(algorithm: .none),
                            bootloader: boot.loader == .grub ? .grub : .limine, firmware: [.bios, .uefi])
        let disk = try Self.makeDisk(spec, at: path)
        for partition in [disk.partition(named: PartitionName.esp), disk.partition(named: PartitionName.root)].compactMap({ $0 }) {
            try disk.attach(partition, teardown: teardown)
        }
        teardown.push("the disk's loop devices") { disk.detach() }
        let root = try disk.root

        let top = scratch.appending("top")
        try Files.createDirectory(top)
        let mountOptions = boot.mountOptions.split(separator: ",").map(String.init).filter { $0.hasPrefix("compress") || $0 == "noatime" }
        try Mounts.mount(disk.device(of: root), on: top, type: "btrfs", options: ["subvolid=5"] + mountOptions)
        teardown.push("mount \(top)") { try Mounts.unmountAll(under: top) }
        let layout = Layout(top: top)
        for subvolume in [layout.snapshots, layout.home, layout.variable, layout.bootLoader] {
            try Btrfs.createSubvolume(at: subvolume)
        }
        for directory in ["rootfs", "etc", "boot", "rast"] {
            try Files.createDirectory(layout.snapshots + "/" + directory)
        }
        // N's three subvolumes, read-only as in the source tree.
        for (from, to) in zip(source.triple(snapshot), layout.triple(snapshot)) {
            try Btrfs.createSubvolume(at: to)
            try TreeCopy.copyContents(of: from, into: to)
            try Btrfs.setReadOnly(to, true)
        }
        // /var and /home are shared by every snapshot and not N's: the machine gets /var's
        // directories (empty) and an empty /home.
        try Self.copyDirectories(of: source.variable, into: layout.variable)

        var settings = boot
        settings.filesystemUUID = root.filesystemUUID ?? ""
        settings.rootPartitionUUID = root.partitionUUID
        if let device = settings.rootDevice, device.hasPrefix("UUID=") { settings.rootDevice = "UUID=\(settings.filesystemUUID)" }
        if !settings.kernelArguments.split(separator: " ").contains(where: { $0.hasPrefix("console=ttyS0") }) {
            settings.kernelArguments += settings.kernelArguments.isEmpty ? "console=ttyS0" : " console=ttyS0"
        }
        settings.serialConsole = true
        var own = record
        own.parent = nil
        let state = TreeState(snapshots: [own], boot: settings)
        try Files.writeAtomically(layout.stateFile, bytes: try state.encoded())

        let templates = BootTemplates()
        let vmStore = SnapshotStore(layout: layout, templates: templates)
        if let esp = disk.partition(named: PartitionName.esp) {
            let device = disk.device(of: esp)
            vmStore.espProvider = { MtoolsESP(image: device) }
        }
        try vmStore.acquire(wait: false)
        defer { vmStore.unlock() }
        try vmStore.deploy(snapshot)
        try BootLoaderInstaller(bootloader: spec.bootloader, firmware: spec.firmware, disk: disk, layout: layout, templates: templates,
                            workDirectory: scratch.path, progress: SilentProgress()).run()
        try Btrfs.sync(top)
        progress.end("rast vm", summary: "disk for snapshot \(snapshot) ready in \(stopwatch.formatted)")
        return root
    }

    /// Makes a new snapshot from N holding what the machine's deployed slot holds now.
    func commitChanges(disk path: String, root: AttachedDisk.PartitionRecord, scratch: TemporaryDirectory) throws -> Int {
        let teardown = Teardown()
        defer { _ = teardown.run() }
        let loop = try LoopDevice(file: path, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
        teardown.push("loop device \(loop.path)") { loop.detach() }
        let top = scratch.appending("top")
        try Files.createDirectory(top)
        try Mounts.mount(loop.path, on: top, type: "btrfs", options: ["ro", "subvolid=5"])
        teardown.push("mount \(top)") { try Mounts.unmountAll(under: top) }
        // The slot the machine boots next (the one deployed here, unless `rast deploy` ran inside).
        let machine = Layout(top: top)
        let state = try TreeState.decode(try Files.read(machine.stateFile), path: machine.stateFile)
        guard let slot = state.next else { throw UserError("the machine's tree has no deployment to commit") }
        let machineRoot = machine.root(slot)
        guard Files.isDirectory(machineRoot) else { throw UserError("the machine's disk has no deployment slot \(slot)") }

        try lock()
        defer { unlock() }
        let (id, copy) = try store.prepareNewSnapshot(from: snapshot)
        do {
            // The machine's / (read-only unless remounted), with its /etc and /boot, which
            // are subvolumes of their own on a running rastOS.
            try SnapshotStore.replaceContents(of: copy, with: machineRoot)
            try SnapshotStore.replaceContents(of: copy + "/etc", with: machine.etc(slot))
            try SnapshotStore.replaceContents(of: copy + "/boot", with: machine.boot(slot))
            // The deployment wrote the machine's own fstab and deployed-snapshot marker: N's
            // versions go back (the host's deploy writes its own).
            for file in ["/etc/fstab", "/usr/share/rast/snap"] {
                let original = store.layout.root(snapshot) + file
                if file == "/etc/fstab", Files.exists(store.layout.etc(snapshot) + "/fstab") {
                    try Self.replaceFile(copy + file, with: store.layout.etc(snapshot) + "/fstab")
                } else if Files.exists(original) {
                    try Self.replaceFile(copy + file, with: original)
                } else if Files.exists(copy + file) {
                    unlink(copy + file)
                }
            }
            try store.commitWorkingCopy(id, adding: SnapshotRecord(id: id, parent: snapshot, description: "rast vm \(snapshot) --commit"))
        } catch {
            try? store.discardWorkingCopy(id)
            throw error
        }
        return id
    }

    /// The disk stage's disk (`DiskStage`: the same GPT, partition names and filesystems),
    /// partitioned with libfdisk and formatted; nothing stays attached.
    static func makeDisk(_ spec: DiskSpec, at path: String) throws -> AttachedDisk {
        // Always with the BIOS boot partition: the machine may start under either firmware.
        let blank = try AttachedDisk.partitioned(path, as: spec, biosBoot: true)
        var records: [AttachedDisk.PartitionRecord] = []
        for var record in blank.partitions {
            let format: [String]?
            switch record.name {
            case PartitionName.esp: (format, record.filesystem) = (["mkfs.fat", "-F", "32", "-n", "RASTESP"], "vfat")
            case PartitionName.root: (format, record.filesystem) = (["mkfs.btrfs", "-q", "-f", "-L", spec.filesystemLabel], "btrfs")
            default: format = nil
            }
            if let format {
                let loop = try LoopDevice(file: path, offset: record.startBytes, sizeLimit: record.sizeBytes)
                defer { loop.detach() }
                try Command(format[0], Array(format.dropFirst()) + [loop.path]).run()
                record.filesystemUUID = try Blkid.filesystem(at: loop.path)?.uuid
                if record.filesystem == "btrfs", record.filesystemUUID == nil {
                    throw UserError("mkfs.btrfs ran, but libblkid finds no filesystem UUID on \(loop.path)")
                }
            }
            records.append(record)
        }
        return AttachedDisk(imagePath: path, diskGUID: blank.diskGUID, partitions: records)
    }

    static func replaceFile(_ target: String, with source: String) throws {
        if Files.exists(target) { unlink(target) }
        try TreeCopy.copy(source, to: target)
    }

    /// The bytes the files under `paths` take (apparent sizes).
    static func usedBytes(_ paths: [String]) throws -> Int64 {
        var total: Int64 = 0
        for path in paths {
            let result = try Command("du", ["-s", "-B1", "--apparent-size", path]).output()
            total += Int64(result.split(separator: "\t").first ?? "0") ?? 0
        }
        return total
    }

    /// Recreates the directory tree of `source` (no files) in `target`, with owners and modes.
    static func copyDirectories(of source: String, into target: String) throws {
        guard Files.isDirectory(source) else { return }
        let result = try Command("find", [source, "-mindepth", "1", "-xdev", "-type", "d", "-printf", "%P\\t%m\\t%U\\t%G\\n"]).output()
        for line in result.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 4, let mode = mode_t(fields[1], radix: 8), let uid = uid_t(fields[2]), let gid = gid_t(fields[3]) else { continue }
            let path = target + "/" + fields[0]
            try SystemError.check("mkdir", path: path) { mkdir(path, mode) == 0 || errno == EEXIST ? 0 : -1 }
            try SystemError.check("chown", path: path) { chown(path, uid, gid) }
            try SystemError.check("chmod", path: path) { chmod(path, mode) }
        }
    }
}
