import Blkid
import BootEntries
import Btrfs
import Fdisk
import Foundation
import ImageSupport
import Recipe
import SnapshotTree
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What to install where, and how.
package struct InstallRequest: Sendable {
    /// A raw or QCOW2 image written by rast-build.
    package var image: String
    /// A block device, or a file (created, or replaced when complete).
    package var target: String
    /// For file targets: make the file this large (at least the image's size).
    package var size: Int64?
    /// Read the target back and compare it with the image.
    package var verify: Bool
    /// Grow the root partition and its filesystem to the end of a larger target.
    package var grow: Bool
    /// The user confirmed that a block device may be overwritten (--yes).
    package var confirmed: Bool
    package var personalisation: Personalisation

    package init(image: String, target: String, size: Int64? = nil, verify: Bool = true, grow: Bool = true,
                confirmed: Bool = false, personalisation: Personalisation = Personalisation()) {
        self.image = image
        self.target = target
        self.size = size
        self.verify = verify
        self.grow = grow
        self.confirmed = confirmed
        self.personalisation = personalisation
    }
}

/// What an installation will do, worked out without writing anything (`--dry-run` prints it).
package struct InstallPlan: Sendable, CustomStringConvertible {
    package let image: String
    package let format: ImageFormat
    /// Size of the image's virtual disk.
    package let imageSize: Int64
    /// Bytes of data in it (the rest are holes).
    package let dataBytes: Int64
    /// The file that records the image's SHA-256, when there is one.
    package let checksumSource: String?
    package let target: Target
    /// Size of the target once written.
    package let targetSize: Int64
    /// The image's partitions.
    package let layout: DiskLayout
    /// The root partition's size now and after growing (equal when it does not grow).
    package let rootSize: (before: UInt64, after: UInt64)
    /// Boot loader and firmware of the image (from its manifest or its partitions).
    package let bootloader: Bootloader
    package let firmware: [Firmware]
    package let personalisation: Personalisation
    package let verify: Bool

    package var description: String {
        var lines = ["rast-install plan:"]
        lines.append("  image:   \(image) (\(format.rawValue), \(ByteCount.format(imageSize)) disk, \(ByteCount.format(dataBytes)) of data)")
        lines.append("  checked: " + (checksumSource.map { "SHA-256 against \($0)" } ?? "no manifest or SHA256SUMS beside the image; its SHA-256 is not checked"))
        switch target.kind {
        case .blockDevice:
            lines.append("  target:  block device \(target.overwriteWarning.replacingOccurrences(of: "\n", with: "\n           "))")
            lines.append("           everything on it is overwritten")
        case .file(let exists):
            lines.append("  target:  file \(target.path), \(ByteCount.format(targetSize))\(exists ? " (replaced when complete)" : " (created)")")
        }
        let partitions = layout.partitions.map { "\($0.number) '\($0.name)' \(ByteCount.format(Int64($0.sizeBytes)))" }
        lines.append("  disk:    GPT, partitions " + partitions.joined(separator: ", "))
        lines.append("  write:   data extents only; " + (target.isBlockDevice ? "holes zeroed with BLKZEROOUT" : "holes stay holes (sparse file)") + (verify ? "; read back and compared (SHA-256)" : "; not read back (--no-verify)"))
        if rootSize.after > rootSize.before {
            lines.append("  grow:    backup GPT to the end of the disk; root partition \(ByteCount.format(Int64(rootSize.before))) → \(ByteCount.format(Int64(rootSize.after))); btrfs resized to fill it")
        } else if targetSize > imageSize {
            lines.append("  grow:    backup GPT moved to the end of the disk; the root partition keeps its size")
        }
        if personalisation.changesFiles || personalisation.newIdentifiers {
            lines.append("  personalise (a working copy of the deployed snapshot, committed and deployed again):")
            lines += personalisation.summary.map { "    - " + $0 }
            if personalisation.newIdentifiers {
                lines.append("    - \(bootloader.rawValue) reinstalled for \(firmware.map { $0.rawValue.uppercased() }.joined(separator: " and "))")
            }
        } else {
            lines.append("  personalise: nothing (the disk is the image as built)")
        }
        return lines.joined(separator: "\n")
    }
}

/// What an installation did.
package struct InstallResult: Sendable {
    package let plan: InstallPlan
    /// SHA-256 of the image's virtual disk as written.
    package let sha256: String
    package let verified: Bool
    /// The snapshot that boots.
    package let deployedSnapshot: Int
    package let diskGUID: String
    package let rootPartitionUUID: String
    package let filesystemUUID: String
    package let seconds: Double
}

/// `rast-install`: writes a built image to a disk or file and personalises it.
///
/// Order of work, so that nothing is written before every check passed and a failure never
/// leaves a target that looks complete:
/// 1. options checked like a recipe's, the image's GPT and root filesystem inspected, the
///    target examined (mounted? in use? large enough?), the image's SHA-256 compared with its
///    manifest or SHA256SUMS;
/// 2. the virtual disk written (a file target under a temporary name beside it), fsynced,
///    read back and compared;
/// 3. the backup GPT moved to the end, the root partition grown; with new identifiers, new
///    disk and partition GUIDs and `btrfstune -U`;
/// 4. the root filesystem mounted in a temporary directory, grown with `btrfs filesystem
///    resize max`; the deployed snapshot N changed through a working copy (never the
///    read-only snapshot), committed, and deployed to both slots, which writes fstab and the
///    boot entries; with new identifiers the boot settings change first and the boot loaders
///    (whose images embed the filesystem UUID) are installed again by the pipeline's stage;
/// 5. everything unmounted and detached, the target fsynced; a file target is renamed to its
///    name only now. A block device that fails after step 2 began is reported incomplete.
package final class Installer {
    package let request: InstallRequest
    package let progress: ProgressReporter

    package init(request: InstallRequest, progress: ProgressReporter = TerminalProgress()) {
        self.request = request
        self.progress = progress
    }

    // MARK: Plan

    /// Every check that needs no writing; returns what `install()` will do.
    package func plan() throws -> InstallPlan {
        try request.personalisation.validate()
        return try withPlan(scratchName: "install-plan") { plan, _, _, _ in plan }
    }

    /// Opens the image, reads its partitions and plans the installation: how `plan()` and
    /// `install()` both begin. `body` runs while the scratch directory (its last argument) exists.
    private func withPlan<T>(scratchName: String,
                             _ body: (InstallPlan, ImageSource, ImageRecords, String) throws -> T) throws -> T {
        guard Files.exists(request.image) else {
            throw InstallError.invalidImage(path: request.image, reason: "it does not exist")
        }
        let source = try ImageSource(path: request.image)
        let scratch = try TemporaryDirectory(prefix: Mounts.workDirectoryPrefix + scratchName)
        defer { try? scratch.remove() }
        let layout = try DiskLayout.inspect(source, scratch: scratch.path)
        let records = try ImageRecords.load(besides: request.image)
        return try body(try plan(source: source, layout: layout, records: records), source, records, scratch.path)
    }

    private func plan(source: ImageSource, layout: DiskLayout, records: ImageRecords) throws -> InstallPlan {
        let target = try Target.examine(request.target)
        let problems = target.problems(image: request.image)
        if !problems.isEmpty {
            throw InstallError.refused(target: request.target, reason: problems.joined(separator: "; "))
        }
        let imageSize = source.virtualSize
        let targetSize: Int64
        switch target.kind {
        case .blockDevice:
            if request.size != nil {
                throw InstallError.invalidOption(option: "--size", value: request.size.map { ByteCount.format($0) },
                                                 reason: "it sizes file targets; \(request.target) is a block device of \(ByteCount.format(target.size))")
            }
            targetSize = target.size
        case .file:
            if let size = request.size, size < imageSize {
                throw InstallError.refused(target: request.target, reason: "--size \(ByteCount.format(size)) is smaller than the \(ByteCount.format(imageSize)) image")
            }
            // Whole sectors, so that the GPT's last sector is the file's last bytes.
            targetSize = (max(imageSize, request.size ?? imageSize) + 511) / 512 * 512
        }
        guard targetSize >= imageSize else {
            throw InstallError.refused(target: request.target, reason: "it holds \(ByteCount.format(targetSize)), less than the \(ByteCount.format(imageSize)) image")
        }
        guard let root = layout.root else {
            throw InstallError.invalidImage(path: request.image, reason: "it has no '\(PartitionName.root)' partition")
        }
        var rootAfter = root.sizeBytes
        let rootIsLast = layout.partitions.allSatisfy { $0.startBytes <= root.startBytes }
        if request.grow, rootIsLast, targetSize > imageSize {
            // libfdisk's layout: the backup GPT takes the last 33 sectors; the end is aligned to 1 MiB.
            let usableEnd = UInt64(targetSize) / 512 - 34
            let alignedEnd = (usableEnd + 1) / 2048 * 2048 - 1
            let rootStart = root.startBytes / 512
            if alignedEnd > rootStart { rootAfter = max(root.sizeBytes, (alignedEnd - rootStart + 1) * 512) }
        }
        let (bootloader, firmware) = try bootSetup(layout: layout, records: records)
        return InstallPlan(image: request.image, format: source.format, imageSize: imageSize, dataBytes: try source.dataBytes(),
                           checksumSource: records.expectedSHA256?.source, target: target, targetSize: targetSize,
                           layout: layout, rootSize: (root.sizeBytes, rootAfter), bootloader: bootloader, firmware: firmware,
                           personalisation: request.personalisation, verify: request.verify)
    }

    /// The image's boot loader and firmware: from its manifest, else from its partitions
    /// (a BIOS boot partition means BIOS, an ESP UEFI). Manifests from before Limine name no
    /// boot loader: those images boot with GRUB. A name this rast-install does not know is an error.
    private func bootSetup(layout: DiskLayout, records: ImageRecords) throws -> (Bootloader, [Firmware]) {
        func unknown(_ what: String, _ name: String) -> InstallError {
            .invalidImage(path: request.image, reason: "its manifest \(records.manifestPath ?? "") names the \(what) '\(name)', which this rast-install does not know")
        }
        var bootloader = Bootloader.grub
        if let name = records.manifest?.disk?.bootloader {
            guard let named = Bootloader(rawValue: name) else { throw unknown("boot loader", name) }
            bootloader = named
        }
        if let names = records.manifest?.disk?.firmware, !names.isEmpty {
            let named = try names.map { name in
                guard let firmware = Firmware(rawValue: name) else { throw unknown("firmware", name) }
                return firmware
            }
            return (bootloader, named)
        }
        var firmware: [Firmware] = []
        if layout.biosBoot != nil { firmware.append(.bios) }
        if layout.esp != nil { firmware.append(.uefi) }
        return (bootloader, firmware)
    }

    // MARK: Install

    /// Installs; see the type's documentation for the order of work.
    @discardableResult
    package func install() throws -> InstallResult {
        let stopwatch = Stopwatch()
        try request.personalisation.validate()
        try Privileges.requireRoot(for: "rast-install (it writes disks, attaches loop devices and mounts the new system)")
        return try withPlan(scratchName: "install") { plan, source, records, scratch in
            if plan.target.isBlockDevice, !request.confirmed {
                throw InstallError.refused(target: request.target, reason: """
                    it is a block device and everything on it would be lost:
                    \(plan.target.overwriteWarning)
                    run again with --yes to overwrite it (--dry-run shows the whole plan)
                    """)
            }
            try preflight(plan)

            if let expected = records.expectedSHA256 {
                progress.begin("check: SHA-256 of \(request.image) against \(expected.source)")
                let actual = try source.fileSHA256(progress: progress)
                guard actual == expected.value else {
                    throw InstallError.checksumMismatch(path: request.image, recordedIn: expected.source, expected: expected.value, actual: actual)
                }
                progress.end("check", summary: "matches")
            } else {
                progress.note("check: no manifest or SHA256SUMS beside \(request.image); its SHA-256 is not checked")
            }

            let run = InstallRun(request: request, plan: plan, source: source, scratch: scratch, progress: progress)
            let outcome = try run.perform()
            return InstallResult(plan: plan, sha256: outcome.sha256, verified: request.verify, deployedSnapshot: outcome.snapshot,
                                 diskGUID: outcome.layout.diskGUID, rootPartitionUUID: outcome.layout.root?.partitionUUID ?? "",
                                 filesystemUUID: outcome.layout.root?.filesystemUUID ?? "", seconds: stopwatch.elapsed)
        }
    }

    /// Tools for the steps the plan has, checked before anything is written.
    private func preflight(_ plan: InstallPlan) throws {
        var tools = ["btrfs"]
        if request.personalisation.changesFiles { tools.append("chown") }
        // A Limine image's deploys write its menu and kernels to the ESP through mtools.
        if plan.bootloader == .limine, request.personalisation.changesFiles || request.personalisation.newIdentifiers {
            tools += MtoolsESP.tools
        }
        if request.personalisation.newIdentifiers {
            tools += ["btrfstune", "mkfs.fat", "mdir"]
            try BootLoaderInstaller.preflight(bootloader: plan.bootloader, firmware: plan.firmware)
        }
        let missing = tools.filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            throw UserError("rast-install needs \(missing.joined(separator: ", ")) (apt-get install btrfs-progs dosfstools mtools coreutils); nothing was written")
        }
    }
}

/// One installation after the checks: the steps that write.
private final class InstallRun {
    struct Outcome {
        let sha256: String
        let snapshot: Int
        let layout: DiskLayout
    }

    let request: InstallRequest
    let plan: InstallPlan
    let source: ImageSource
    let scratch: String
    let progress: ProgressReporter
    private let teardown = Teardown()
    private var step = "writing"

    init(request: InstallRequest, plan: InstallPlan, source: ImageSource, scratch: String, progress: ProgressReporter) {
        self.request = request
        self.plan = plan
        self.source = source
        self.scratch = scratch
        self.progress = progress
    }

    var personalisation: Personalisation { plan.personalisation }

    func perform() throws -> Outcome {
        let isDevice = plan.target.isBlockDevice
        let finalPath = plan.target.resolvedPath
        let existed = Files.exists(finalPath)
        var temporary: String?
        var committed = false
        var writing = false
        defer {
            teardown.run()
            if !committed, let temporary { unlink(temporary) }
        }
        do {
            let output: String
            if isDevice {
                output = finalPath
            } else {
                let file = try Self.temporaryFile(beside: finalPath, size: plan.targetSize)
                temporary = file
                output = file
            }
            let writer = try ImageWriter(path: output, isDevice: isDevice)
            writing = true

            progress.begin("write: \(plan.image) → \(plan.target.path) (\(ByteCount.format(plan.dataBytes)) of data in a \(ByteCount.format(plan.imageSize)) disk)")
            let stopwatch = Stopwatch()
            let sha256 = try writer.write(source, progress: progress)
            progress.end("write", summary: "\(ByteCount.format(plan.imageSize)) in \(stopwatch.formatted), fsynced")
            if request.verify {
                step = "verifying"
                progress.begin("verify: reading \(plan.target.path) back")
                let readBack = try writer.readBack(length: plan.imageSize, progress: progress)
                guard readBack == sha256 else {
                    throw InstallError.verificationFailed(target: plan.target.path, expected: sha256, actual: readBack)
                }
                progress.end("verify", summary: "SHA-256 \(sha256.prefix(16))… matches the image")
            }

            var layout = try updatePartitionTable(output)
            if personalisation.newIdentifiers { layout = try newFilesystemUUID(output, layout: layout) }
            let snapshot = try configureSystem(output, layout: layout)

            step = "releasing the target"
            let failures = teardown.run()
            guard failures.isEmpty else { throw UserError(failures.joined(separator: "; ")) }
            try writer.sync()
            writer.rereadPartitions()
            if let temporary {
                // The last moment to stop: a SIGINT before this leaves the file as it was.
                try checkCancelled()
                try SystemError.check("rename", path: finalPath) { rename(temporary, finalPath) }
                committed = true
                try Files.syncDirectory((finalPath as NSString).deletingLastPathComponent)
            }
            return Outcome(sha256: sha256, snapshot: snapshot, layout: layout)
        } catch {
            let interrupted = error is InterruptedError || Cancellation.shared.isCancelled
            if isDevice, writing {
                throw InstallError.incomplete(target: plan.target.path, step: step, reason: interrupted ? "interrupted" : "\(error)", cause: error)
            }
            if interrupted, !isDevice {
                throw InstallError.interrupted(target: plan.target.path, step: step, existed: existed)
            }
            throw error
        }
    }

    /// `.NAME.rast-install-XXXXXX` beside the final file, `size` bytes long and all hole.
    static func temporaryFile(beside path: String, size: Int64) throws -> String {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let (file, temporary) = try FileDescriptor.createUnique(prefix: "\(directory)/.\(name).rast-install-",
                                                                operation: "create a temporary file in", reportedPath: directory)
        // The mode a new file would get (createUnique makes it 0600), or the replaced file's.
        var st = stat()
        let mode = stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0o644
        do {
            try file.closeAfter(path: temporary) {
                try file.setPermissions(mode, path: temporary)
                try file.resize(to: size, path: temporary)
            }
        } catch let error as SystemError {
            unlink(temporary)
            throw SystemError("set the mode and size of", path: temporary, errno: error.errno)
        }
        return temporary
    }

    // MARK: Partition table

    /// Moves the backup GPT to the end of a larger target (libfdisk does that when it opens
    /// the table), grows the root partition, and gives new GUIDs when asked.
    private func updatePartitionTable(_ path: String) throws -> DiskLayout {
        guard let root = plan.layout.root else { throw InstallError.invalidImage(path: plan.image, reason: "no root partition") }
        let growing = plan.rootSize.after > plan.rootSize.before
        guard plan.targetSize > plan.imageSize || personalisation.newIdentifiers else { return try DiskLayout.read(disk: path) }
        step = "updating the partition table"
        progress.begin("partitions: " + [plan.targetSize > plan.imageSize ? "backup GPT to the end" : nil,
                                         growing ? "root partition to the end of the disk" : nil,
                                         personalisation.newIdentifiers ? "new disk and partition GUIDs" : nil]
            .compactMap { $0 }.joined(separator: ", "))
        let table = try PartitionTable(path: path, readOnly: false)
        var changed = table.hasUnwrittenChanges
        if growing {
            let grown = try table.resizePartition(root.number, to: .restOfDisk)
            changed = changed || grown.sizeBytes != root.sizeBytes
        }
        if personalisation.newIdentifiers {
            try table.setDiskID(UUID().uuidString)
            for partition in try table.partitions() { try table.setPartitionUUID(partition.number, UUID()) }
            changed = true
        }
        if changed { try table.write() }
        let layout = try DiskLayout.read(disk: path)
        let newRoot = layout.root.map { ByteCount.format(Int64($0.sizeBytes)) } ?? "?"
        progress.end("partitions", summary: "root partition \(newRoot)" + (personalisation.newIdentifiers ? ", disk GUID \(layout.diskGUID)" : ""))
        return layout
    }

    /// `btrfstune -U` on the unmounted root filesystem (a loop device of its own, released
    /// before the filesystem is mounted).
    private func newFilesystemUUID(_ path: String, layout: DiskLayout) throws -> DiskLayout {
        guard let root = layout.root else { return layout }
        step = "giving the root filesystem a new UUID"
        progress.begin("identifiers: new btrfs filesystem UUID (btrfstune -U)")
        let uuid = UUID().uuidString.lowercased()
        let loop = try LoopDevice(file: path, offset: root.startBytes, sizeLimit: root.sizeBytes)
        defer { loop.detach() }
        try Command("btrfstune", ["-f", "-U", uuid, loop.path]).run()
        loop.detach()
        let updated = try DiskLayout.read(disk: path)
        guard updated.root?.filesystemUUID == uuid else {
            throw UserError("btrfstune ran, but the root filesystem's UUID is \(updated.root?.filesystemUUID ?? "unknown"), not \(uuid)")
        }
        progress.end("identifiers", summary: "filesystem UUID \(uuid)")
        return updated
    }

    // MARK: The installed system

    /// Mounts the root filesystem, grows it, personalises and redeploys the deployed snapshot,
    /// and reinstalls the boot loaders after new identifiers. Returns the deployed snapshot.
    private func configureSystem(_ path: String, layout: DiskLayout) throws -> Int {
        guard let root = layout.root, let uuid = root.filesystemUUID else {
            throw InstallError.invalidImage(path: plan.image, reason: "the root partition holds no filesystem with a UUID")
        }
        step = "mounting the root filesystem"
        let disk = AttachedDisk(imagePath: path, diskGUID: layout.diskGUID, partitions: layout.partitions)
        let rootDevice = try disk.attach(root, teardown: teardown)
        let mountPoint = scratch + "/root"
        try Files.createDirectory(mountPoint)
        try Mounts.mount(rootDevice, on: mountPoint, type: "btrfs", options: ["subvolid=5", "noatime"])
        teardown.push("mount \(mountPoint)") { try Mounts.unmountAll(under: mountPoint) }

        if plan.rootSize.after > plan.rootSize.before {
            step = "growing the root filesystem"
            progress.begin("grow: btrfs filesystem resize max")
            try Command("btrfs", ["filesystem", "resize", "max", mountPoint]).run()
            progress.end("grow", summary: "filesystem \(ByteCount.format(try filesystemSize(mountPoint)))")
        }

        step = "reading the snapshot tree"
        let fsLayout = Layout(top: mountPoint)
        guard SnapshotStore.isInitialized(fsLayout) else {
            throw InstallError.invalidImage(path: plan.image, reason: "its root filesystem holds no rast snapshot tree (@.snapshots/rast/state.json is missing)")
        }
        let state = try SnapshotStore(layout: fsLayout).state()
        guard let next = state.next, let snapshot = state.slot(next)?.snapshot, var settings = state.boot else {
            throw InstallError.invalidImage(path: plan.image, reason: "no snapshot is deployed in it")
        }
        let changesFiles = personalisation.changesFiles
        guard changesFiles || personalisation.newIdentifiers else {
            try Btrfs.sync(mountPoint)
            return snapshot
        }

        let templates = try bootTemplates(layout: fsLayout, snapshot: snapshot)
        let store = SnapshotStore(layout: fsLayout, templates: templates)
        // Limine's menu and kernels are on the ESP: the deploys below write them there.
        if let esp = disk.partition(named: PartitionName.esp) {
            let device = try disk.attach(esp, teardown: teardown)
            store.espProvider = { MtoolsESP(image: device) }
        }
        try store.acquire(wait: false)
        teardown.push("the snapshot tree lock") { store.unlock() }
        if personalisation.newIdentifiers {
            settings.filesystemUUID = uuid
            settings.rootPartitionUUID = root.partitionUUID
            try store.setBootSettings(settings)
            // Limine's ESP holds the menu and kernels the deploys write: formatted before them.
            if plan.bootloader == .limine { try formatESP(disk: disk) }
        }
        if changesFiles {
            step = "personalising snapshot \(snapshot)"
            progress.begin("personalise: snapshot \(snapshot) (" + personalisation.summary.filter { !$0.hasPrefix("new disk") }.joined(separator: "; ") + ")")
            let copy = try store.prepareWorkingCopy(snapshot, allowBase: snapshot == 0, command: "install")
            do {
                try PersonalisationWriter(personalisation: personalisation, root: copy, home: fsLayout.home, progress: progress).apply()
            } catch {
                try? store.discardWorkingCopy(snapshot)
                throw error
            }
            try store.commitWorkingCopy(snapshot)
            progress.end("personalise", summary: "snapshot \(snapshot) committed")
        }
        // Both slots get the new snapshot (and an fstab with the current UUIDs): the image's
        // own deployment would otherwise stay behind as the fallback entry.
        step = "deploying snapshot \(snapshot)"
        progress.begin("deploy: snapshot \(snapshot) to both slots (fstab and boot entries)")
        try store.deploy(snapshot)
        try store.deploy(snapshot)
        store.unlock()
        progress.end("deploy", summary: "snapshot \(snapshot) boots next")

        if personalisation.newIdentifiers {
            try reinstallBootLoaders(disk: disk, layout: fsLayout, templates: templates)
        }
        try Btrfs.sync(mountPoint)
        return snapshot
    }

    /// The templates the image's own rast renders boot entries with (copied out of the
    /// snapshot, which the deploy replaces), or rast-install's when the image has none.
    private func bootTemplates(layout: Layout, snapshot: Int) throws -> BootTemplates {
        let inImage = layout.root(snapshot) + "/usr/share/rast/bootloader"
        guard Files.exists(inImage + "/grub/grub.cfg") else { return BootTemplates() }
        let copy = scratch + "/bootloader"
        try TreeCopy.copyContents(of: inImage, into: copy)
        return BootTemplates(directory: copy)
    }

    /// The ESP formatted afresh, with its label and a new FAT volume ID.
    private func formatESP(disk: AttachedDisk) throws {
        guard let esp = disk.partition(named: PartitionName.esp) else { return }
        let device = try disk.attach(esp, teardown: teardown)
        let label = (try? Blkid.filesystem(at: device))?.label ?? "RASTESP"
        try Command("mkfs.fat", ["-F", "32", "-n", label.isEmpty ? "RASTESP" : label, device]).run()
    }

    /// GRUB's BIOS core.img and its removable UEFI image both find the root by filesystem
    /// UUID, so both are installed again: the ESP is formatted afresh (a new FAT volume ID
    /// too) and the pipeline's boot loader stage writes what rast-build wrote. Limine's ESP was
    /// formatted before the deploys, which wrote its menu (with the new root PARTUUID) and the
    /// kernels there; the stage adds Limine's files and writes the BIOS stages again (the
    /// partition table was rewritten).
    private func reinstallBootLoaders(disk: AttachedDisk, layout: Layout, templates: BootTemplates) throws {
        step = "installing the boot loaders"
        var firmware = plan.firmware
        if plan.bootloader == .grub, let esp = disk.partition(named: PartitionName.esp) {
            let device = try disk.attach(esp, teardown: teardown)
            let hasEFIImage = try Command("mdir", ["-i", device, "::/EFI/BOOT/BOOTX64.EFI"]).run(check: false).status == 0
            if firmware.contains(.uefi), !hasEFIImage {
                progress.note("boot loader: the image's ESP holds no EFI/BOOT/BOOTX64.EFI; installing for BIOS only")
                firmware.removeAll { $0 == .uefi }
            }
            try formatESP(disk: disk)
        }
        // The stage copies GRUB's UEFI modules next to grub.cfg and refuses to overwrite them.
        if plan.bootloader == .grub, firmware.contains(.uefi) { try Files.removeTree(layout.bootLoader + "/grub/x86_64-efi") }
        let work = scratch + "/bootloader-work"
        try Files.createDirectory(work)
        try BootLoaderInstaller(bootloader: plan.bootloader, firmware: firmware, disk: disk, layout: layout, templates: templates,
                            workDirectory: work, progress: progress).run()
    }

    private func filesystemSize(_ path: String) throws -> Int64 {
        var info = statvfs()
        try SystemError.check("statvfs", path: path) { statvfs(path, &info) }
        return Int64(info.f_blocks) * Int64(info.f_frsize)
    }
}
