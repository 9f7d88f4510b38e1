import Blkid
import DiskImage
import Fdisk
import Foundation
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// rast-install on the default image, built once per test process: files and loop devices
/// over files in temporary directories are the targets, never a disk of the machine.
/// Serialized: installed copies share the image's btrfs UUID, and QEMU needs the CPU.
@Suite(.serialized) struct InstallTests {
    static let key = PersonalisationValidationTests.key
    static let secondKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGQAO9sZhpsFJGzNzVlRQ/B4IMuqzCg4RTEjuFtSnS+m second@laptop"

    /// A larger file: the backup GPT at the end, the root partition and its btrfs grown,
    /// the bytes before them exactly the image's.
    @Test func rawImageToALargerFileGrowsTheRootPartitionAndFilesystem() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-grow")
        let target = scratch.appending("disk.img")
        let size: Int64 = 3 << 30
        let result = try InstallTest.install(image.raw, to: target, size: size)
        try InstallTest.expectNoLeftovers(under: scratch.path)

        #expect(result.verified)
        #expect(result.sha256 == image.rawSHA256, "the written virtual disk hashes like the raw image rast-build recorded")
        #expect(result.plan.checksumSource == "minimal.manifest.json")
        #expect(try Files.size(target) == size)
        let verify = try Command("sgdisk", ["-v", target]).run(check: false).standardOutput
        #expect(verify.contains("No problems found"), "sgdisk -v: \(verify)")

        // The partitions keep their starts and identifiers; the root reaches the end of the disk.
        let table = try PartitionTable(path: target)
        let partitions = try table.partitions()
        #expect(try table.diskID() == image.manifest.disk.diskGUID)
        #expect(partitions.map(\.uuid) == image.manifest.disk.partitions.map { $0.partitionUUID.lowercased() })
        #expect(partitions.map(\.startBytes) == image.manifest.disk.partitions.map(\.startBytes))
        let root = try #require(partitions.last)
        let imageRoot = try #require(image.root)
        #expect(root.name == DiskStage.rootName)
        #expect(root.sizeBytes > imageRoot.sizeBytes + (900 << 20))
        #expect((root.endSector + 1) % 2048 == 0)
        #expect(table.usableSectors.upperBound - root.endSector < 2048, "nothing usable is left after the root partition")
        #expect(result.plan.rootSize.after == root.sizeBytes, "the plan said how large the root partition would be")

        // btrfs fills the partition and passes its check.
        let loop = try LoopDevice(file: target, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
        defer { loop.detach() }
        let superblock = try Command("btrfs", ["inspect-internal", "dump-super", loop.path]).output()
        let deviceBytes = superblock.split(separator: "\n").first { $0.hasPrefix("dev_item.total_bytes") }?
            .split(whereSeparator: \.isWhitespace).last.flatMap { UInt64($0) }
        #expect(deviceBytes == root.sizeBytes, "the btrfs device is as large as the partition")
        let check = try Command("btrfs", ["check", "--readonly", loop.path]).run(check: false)
        #expect(check.status == 0, "btrfs check: \(check.standardError)")
        loop.detach()
        print("install: raw 2 GiB → 3 GiB file in \(String(format: "%.1f", result.seconds)) s; root partition \(ByteCount.format(Int64(root.sizeBytes)))")
    }

    /// QCOW2 onto a loop device holding old bytes everywhere: afterwards it reads exactly as
    /// the raw image, so every hole was zeroed. Without --yes it is refused first, naming what
    /// is on it.
    @Test func qcow2ToALoopDeviceZeroesTheHoles() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-loop")
        let backing = scratch.appending("device.img")
        try Command("cp", ["--sparse=always", image.raw, backing]).run()
        // Old contents: a copy of the image (partitions to show) with a marker in every MiB.
        let fd = open(backing, O_WRONLY | O_CLOEXEC)
        try #require(fd >= 0)
        let marker = [UInt8](repeating: 0xA5, count: 4096)
        var offset: Int64 = 8 << 20  // keep the GPT and the first partitions readable for the warning
        while offset < image.rawSize - (2 << 20) {
            _ = marker.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            offset += 1 << 20
        }
        fsync(fd)
        close(fd)
        let before = try SHA256.hash(file: backing)
        #expect(before != image.rawSHA256)

        let device = try LoopDevice(file: backing)
        defer { device.detach() }
        #expect {
            try InstallTest.install(image.qcow2, to: device.path)
        } throws: { error in
            let text = "\(error)"
            return text.contains("--yes") && text.contains("2.0 GiB") && text.contains("rastOS root") && text.contains("EFI system")
        }
        #expect(try SHA256.hash(file: backing) == before, "refused: the device is unchanged")

        let result = try InstallTest.install(image.qcow2, to: device.path, confirmed: true)
        #expect(result.plan.format == .qcow2)
        #expect(result.sha256 == image.rawSHA256)
        device.detach()
        #expect(try SHA256.hash(file: backing) == image.rawSHA256, "the device reads as the raw image, holes included")
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    /// A QCOW2 whose every cluster is allocated (qemu-img's preallocation=falloc) but mostly
    /// zeros: the file target keeps holes where the disk holds zeros, as `qemu-img convert`
    /// would, instead of allocating the whole disk; the virtual disk is still the image's.
    @Test func preallocatedQCOW2ToAFileKeepsTheHoles() throws {
        let image = try TestImage.shared()
        try Require.programs("qemu-img")
        let scratch = try Scratch("rast-install-prealloc")
        let preallocated = scratch.appending("preallocated.qcow2")
        try Command("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", "-o", "preallocation=falloc", image.raw, preallocated]).run()
        let target = scratch.appending("disk.img")
        let result = try InstallTest.install(preallocated, to: target)
        #expect(result.sha256 == image.rawSHA256, "the written virtual disk is the raw image's")
        var st = stat()
        stat(image.raw, &st)
        let imageAllocated = Int64(st.st_blocks) * 512
        stat(target, &st)
        let targetAllocated = Int64(st.st_blocks) * 512
        #expect(targetAllocated < imageAllocated + (64 << 20),
                "the target allocates \(ByteCount.format(targetAllocated)), the raw image \(ByteCount.format(imageAllocated)) of \(ByteCount.format(image.rawSize))")
        print("install: preallocated QCOW2 → file: \(ByteCount.format(targetAllocated)) allocated (raw image: \(ByteCount.format(imageAllocated)))")
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    /// Host name, time zone, a user with two SSH keys and a password: written into a working
    /// copy of the deployed snapshot, committed and deployed; the guest reports them.
    @Test func personalisedInstallBootsWithTheHostnameUserAndKeys() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-personal")
        let target = scratch.appending("disk.img")
        let keyFile = scratch.appending("second.pub")
        try Files.write(keyFile, string: Self.secondKey + "\n")
        let personalisation = Personalisation(
            hostname: "lab-one", timezone: "Europe/Berlin", user: "alice", groups: ["wheel"],
            sshKeys: [Self.key] + (try Personalisation.sshKeys(fromFile: keyFile)),
            passwordHash: PersonalisationValidationTests.hash, rootPasswordHash: PersonalisationValidationTests.hash)
        let result = try InstallTest.install(image.qcow2, to: target, personalisation)
        try InstallTest.expectNoLeftovers(under: scratch.path)
        #expect(result.deployedSnapshot == image.manifest.deployed)

        // Offline: the deployed snapshot and both slots have the changes; the other snapshots
        // (read-only) do not; the tree is the image's.
        let deployed = image.manifest.deployed
        do {
            let root = try InstallTest.MountedRoot(disk: target)
            defer { root.close() }
            for name in [String(deployed), "tmp", "tmp0"] {
                #expect(root.read("@.snapshots/etc/etc-\(name)/hostname") == "lab-one\n", "etc-\(name)")
                #expect(root.read("@.snapshots/rootfs/snapshot-\(name)/etc/hostname") == "lab-one\n", "snapshot-\(name)")
                #expect(root.read("@.snapshots/etc/etc-\(name)/passwd")?.contains("\nalice:x:") == true)
                #expect(root.read("@.snapshots/etc/etc-\(name)/shadow")?.contains("alice:\(PersonalisationValidationTests.hash):") == true)
                #expect(root.read("@.snapshots/etc/etc-\(name)/shadow")?.contains("root:\(PersonalisationValidationTests.hash):") == true)
                #expect(root.read("@.snapshots/etc/etc-\(name)/group")?.contains("wheel:x:") == true)
            }
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root.path + "/@.snapshots/etc/etc-\(deployed)/localtime")
                    == "/usr/share/zoneinfo/Europe/Berlin")
            for other in image.manifest.snapshots.map(\.id) where other != deployed {
                #expect(root.read("@.snapshots/etc/etc-\(other)/hostname") == "rastos\n", "snapshot \(other) keeps the image's host name")
                #expect(root.read("@.snapshots/etc/etc-\(other)/passwd")?.contains("alice") == false)
            }
            let readOnly = try Command("btrfs", ["property", "get", root.path + "/@.snapshots/rootfs/snapshot-\(deployed)", "ro"]).output()
            #expect(readOnly == "ro=true", "snapshot \(deployed) is read-only again")
            #expect(root.read("@home/alice/.ssh/authorized_keys") == Self.key + "\n" + Self.secondKey + "\n")
            let workingCopies = try FileManagerShim.contents(of: root.path + "/@.snapshots/rootfs").filter { $0.contains("chr") }
            #expect(workingCopies.isEmpty, "no working copy is left: \(workingCopies)")
        }

        // In the guest.
        let checks = """
            [ "$(cat /etc/hostname)" = "lab-one" ] || fail "/etc/hostname is $(cat /etc/hostname)"
            grep -q '^alice:x:' /etc/passwd || fail "alice is not in /etc/passwd"
            [ -f /home/alice/.ssh/authorized_keys ] || fail "/home/alice/.ssh/authorized_keys is missing"
            grep -qF '\(Self.key)' /home/alice/.ssh/authorized_keys || fail "the first key is not in authorized_keys"
            grep -qF '\(Self.secondKey)' /home/alice/.ssh/authorized_keys || fail "the second key is not in authorized_keys"
            echo "RAST-REPORT hostname $(cat /etc/hostname)"
            """
        let boot = try InstallTest.boot(target, firmware: .bios, expectation: BootExpectation(current: deployed, tree: image.manifest.tree),
                                        extraChecks: checks, logDirectory: scratch.path)
        #expect(boot.passed, "boot: \(boot.outcome); console log \(boot.consoleLog): \((try? Files.readString(boot.consoleLog))?.suffix(2000) ?? "")")
        print("install: personalised disk booted with BIOS in \(String(format: "%.1f", boot.seconds)) s, `rast current` = \(boot.reportedCurrent ?? "?")")
    }

    /// --new-uuids: new disk GUID, partition UUIDs and btrfs UUID; fstab, boot entries and
    /// both GRUB images follow, so the disk boots under BIOS and UEFI. The image's own user
    /// (admin) gets a second key next to the one the recipe gave it.
    @Test func newUUIDsBootUnderBIOSAndUEFI() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-uuids")
        let target = scratch.appending("disk.img")
        let result = try InstallTest.install(image.raw, to: target, size: (5 << 29),
                                             Personalisation(user: "admin", sshKeys: [Self.secondKey], newIdentifiers: true))
        try InstallTest.expectNoLeftovers(under: scratch.path)

        let old = image.manifest
        let layout = try DiskLayout.read(disk: target)
        #expect(layout.diskGUID != old.disk.diskGUID)
        #expect(result.diskGUID == layout.diskGUID)
        for partition in layout.partitions {
            let before = try #require(old.disk.partitions.first { $0.number == partition.number })
            #expect(partition.partitionUUID != before.partitionUUID.lowercased(), "partition \(partition.number) has a new PARTUUID")
            #expect(partition.startBytes == before.startBytes)
        }
        let root = try #require(layout.root)
        #expect(root.filesystemUUID != old.filesystemUUID)
        #expect(root.filesystemUUID == result.filesystemUUID)
        #expect(layout.esp?.filesystemUUID != old.disk.partitions.first { $0.name == DiskStage.espName }?.filesystemUUID,
                "the ESP was formatted afresh")
        let verify = try Command("sgdisk", ["-v", target]).run(check: false).standardOutput
        #expect(verify.contains("No problems found"), "sgdisk -v: \(verify)")

        do {
            let mounted = try InstallTest.MountedRoot(disk: target)
            defer { mounted.close() }
            let newUUID = try #require(root.filesystemUUID)
            let state = try #require(mounted.read("@.snapshots/rast/state.json"))
            #expect(state.contains(newUUID) && state.contains(root.partitionUUID))
            #expect(!state.contains(old.filesystemUUID) && !state.contains(old.rootPartitionUUID))
            for slot in ["tmp", "tmp0"] {
                let fstab = try #require(mounted.read("@.snapshots/etc/etc-\(slot)/fstab"))
                #expect(fstab.contains("UUID=\(newUUID) / btrfs") && !fstab.contains(old.filesystemUUID), "fstab of \(slot): \(fstab)")
            }
            #expect(mounted.read("@home/admin/.ssh/authorized_keys") == Self.key + "\n" + Self.secondKey + "\n",
                    "the recipe's key stays, the new one is added")
            #expect(mounted.read("@.snapshots/etc/etc-\(old.deployed)/passwd")?.components(separatedBy: "\nadmin:").count == 2,
                    "admin is not added twice")
            let grub = try #require(mounted.read("@boot/grub/grub.cfg"))
            #expect(grub.contains(newUUID) && grub.contains("root=PARTUUID=\(root.partitionUUID)"))
            #expect(!grub.contains(old.filesystemUUID) && !grub.contains(old.rootPartitionUUID))
        }
        // btrfstune rewrote every metadata block: the filesystem still passes its check.
        let loop = try LoopDevice(file: target, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
        let check = try Command("btrfs", ["check", "--readonly", loop.path]).run(check: false)
        loop.detach()
        #expect(check.status == 0, "btrfs check: \(check.standardError)")

        for firmware in [MachineConfiguration.Firmware.bios, .uefi] {
            let boot = try InstallTest.boot(target, firmware: firmware, expectation: BootExpectation(current: old.deployed, tree: old.tree),
                                            extraChecks: """
                                                grep -q '\(try #require(root.filesystemUUID))' /etc/fstab || fail "fstab names the old UUID"
                                                grep -qF '\(Self.secondKey)' /home/admin/.ssh/authorized_keys || fail "admin lacks the new key"
                                                """,
                                            logDirectory: scratch.path)
            #expect(boot.passed, "\(firmware): \(boot.outcome); console log \(boot.consoleLog): \((try? Files.readString(boot.consoleLog))?.suffix(2000) ?? "")")
            print("install: --new-uuids disk booted with \(firmware.rawValue.uppercased()) in \(String(format: "%.1f", boot.seconds)) s")
        }
    }

    // MARK: Refusals: each leaves the target as it was.

    @Test func aMountedTargetIsRefused() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-mounted")
        let backing = scratch.appending("device.img")
        try Command("truncate", ["-s", "3G", backing]).run()
        try Command("mkfs.btrfs", ["-q", "-f", "-L", "busy", backing]).run()
        let before = try SHA256.hash(file: backing)
        let device = try LoopDevice(file: backing)
        defer { device.detach() }
        let mountPoint = scratch.appending("mnt")
        try Files.createDirectory(mountPoint)
        try Mounts.mount(device.path, on: mountPoint, type: "btrfs", options: ["ro"])  // read-only: the bytes stay as they are
        defer { try? Mounts.unmount(mountPoint) }

        #expect {
            try InstallTest.install(image.raw, to: device.path, confirmed: true)
        } throws: { error in
            guard case .refused(_, let reason) = error as? InstallError else { return false }
            return reason.contains("mounted on \(mountPoint)")
        }
        // The file behind it is refused too: it is attached to a loop device.
        #expect {
            try InstallTest.install(image.raw, to: backing)
        } throws: { "\($0)".contains("attached to \(device.path)") }
        try Mounts.unmount(mountPoint)
        device.detach()
        #expect(try SHA256.hash(file: backing) == before)
    }

    @Test func theRunningSystemsRootDiskIsRefused() throws {
        let image = try TestImage.shared()
        // Whatever holds / here is refused; the refusal happens before anything is opened for writing.
        let table = try MountTable.read()
        let rootSource = try #require(table.entry(at: "/")?.source)
        try #require(rootSource.hasPrefix("/dev/"), "/ is mounted from \(rootSource), not a block device")
        #expect {
            try Installer(request: InstallRequest(image: image.raw, target: rootSource, confirmed: true),
                          progress: SilentProgress()).plan()
        } throws: { error in
            guard case .refused(_, let reason) = error as? InstallError else { return false }
            return reason.contains("root filesystem") || reason.contains("partition")
        }
    }

    @Test func aTargetSmallerThanTheImageIsRefused() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-small")
        let backing = scratch.appending("small.img")
        try InstallTest.garbageFile(backing, size: 1 << 30)
        let before = try SHA256.hash(file: backing)
        let device = try LoopDevice(file: backing)
        defer { device.detach() }
        #expect {
            try InstallTest.install(image.raw, to: device.path, confirmed: true)
        } throws: { "\($0)".contains("less than the 2.0 GiB image") }
        device.detach()
        #expect {
            try InstallTest.install(image.raw, to: backing, size: 1 << 30)
        } throws: { "\($0)".contains("smaller than the 2.0 GiB image") }
        #expect(try SHA256.hash(file: backing) == before)
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    @Test func aBadSSHKeyIsRefusedBeforeAnythingIsWritten() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-badkey")
        let target = scratch.appending("disk.img")
        try Files.write(target, string: "the old contents\n")
        #expect {
            try InstallTest.install(image.raw, to: target, Personalisation(user: "alice", sshKeys: [Self.key, "ssh-ed25519 AAAAC3Nz truncated"]))
        } throws: { PersonalisationValidationTests.option(of: $0) == "--ssh-key" }
        #expect(try Files.readString(target) == "the old contents\n")
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    @Test func anImageThatDoesNotMatchItsManifestIsRefused() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-checksum")
        let copy = scratch.appending("minimal.raw")
        try Command("cp", ["--sparse=always", image.raw, copy]).run()
        try Command("cp", [image.directory + "/minimal.manifest.json", image.directory + "/SHA256SUMS", scratch.path]).run()
        let fd = open(copy, O_WRONLY | O_CLOEXEC)
        try #require(fd >= 0)
        _ = [UInt8(0x42)].withUnsafeBytes { pwrite(fd, $0.baseAddress, 1, off_t(100 << 20)) }
        close(fd)
        let target = scratch.appending("disk.img")
        #expect {
            try InstallTest.install(copy, to: target)
        } throws: { error in
            guard case .checksumMismatch(_, let recordedIn, let expected, _) = error as? InstallError else { return false }
            return recordedIn == "minimal.manifest.json" && expected == image.rawSHA256
        }
        #expect(!Files.exists(target))
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    // MARK: Failures after writing began

    /// An image with rast-build's partitions but no snapshot tree passes the checks before
    /// writing and fails after: a file target keeps its old contents, a device is reported
    /// incomplete.
    @Test func aFailureAfterWritingLeavesAFileTargetAsItWas() throws {
        try TestImage.requirements()
        let scratch = try Scratch("rast-install-fail")
        let fake = scratch.appending("fake.raw")
        // rast-build's partitions, the way its disk stage makes them, and an empty btrfs.
        try Command("truncate", ["-s", "400M", fake]).run()
        let table = try PartitionTable.create(.gpt, on: fake)
        try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(1 << 20), name: DiskStage.biosName))
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(33 << 20), name: DiskStage.espName))
        let rootPartition = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: DiskStage.rootName))
        try table.write()
        let rootLoop = try LoopDevice(file: fake, offset: rootPartition.startBytes, sizeLimit: rootPartition.sizeBytes)
        try Command("mkfs.btrfs", ["-q", "-f", "-L", "fake", rootLoop.path]).run()
        rootLoop.detach()

        let target = scratch.appending("disk.img")
        try Files.write(target, string: "the old contents\n")
        #expect {
            try InstallTest.install(fake, to: target, Personalisation(hostname: "never"))
        } throws: { "\($0)".contains("holds no rast snapshot tree") }
        #expect(try Files.readString(target) == "the old contents\n")
        try InstallTest.expectNoLeftovers(under: scratch.path)

        let backing = scratch.appending("device.img")
        try Command("truncate", ["-s", "512M", backing]).run()
        let device = try LoopDevice(file: backing)
        defer { device.detach() }
        #expect {
            try InstallTest.install(fake, to: device.path, confirmed: true, Personalisation(hostname: "never"))
        } throws: { error in
            guard case .incomplete(let name, _, _, let cause) = error as? InstallError,
                  case .invalidImage(_, let reason, _)? = cause as? InstallError else { return false }
            return name == device.path && reason.contains("holds no rast snapshot tree") && "\(error)".contains("is incomplete")
        }
        device.detach()
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    /// rast-install (the debug build) writing the shared image onto `target`, a file that
    /// holds "the old contents", with `options`, stopped with SIGINT at the first line of its
    /// output that contains `step`; `reached` tells whether that line came.
    static func interruptedInstall(onto target: String, at step: String, _ options: String...) throws -> (result: CommandResult, reached: Bool) {
        let image = try TestImage.shared()
        let program = ProjectPaths.root + "/.build/debug/rast-install"
        try Require.file(program, hint: "swift build --build-tests builds it")
        try Files.write(target, string: "the old contents\n")
        var command = Command(program, [image.raw, target] + options)
        command.stopSignal = SIGINT
        var reached = false
        let result = try command.run(output: .linesUntil { line in
            if line.contains(step) { reached = true }
            return reached
        }, check: false, timeout: 600)
        return (result, reached)
    }

    /// SIGINT while the deployed snapshot is being personalised: rast-install stops, cleans up
    /// and exits 130; the file target is as it was and nothing stays mounted or attached.
    @Test func sigintDuringPersonalisationLeavesTheFileTargetAsItWas() throws {
        let scratch = try Scratch("rast-install-sigint")
        let target = scratch.appending("disk.img")
        let (result, reached) = try Self.interruptedInstall(onto: target, at: "==> personalise",
                                                            "--hostname", "interrupted", "--user", "alice", "--ssh-key", Self.key)
        #expect(reached, "the installation reached the personalisation: \(result.combinedTail(lines: 20))")
        #expect(result.status == 130, "exit status 130 after SIGINT: \(result.combinedTail(lines: 10))")
        #expect(try Files.readString(target) == "the old contents\n")
        try InstallTest.expectNoLeftovers(under: scratch.path)
    }

    /// SIGINT in the deploy step (the journal of the installed system's tree): exit 130 and a
    /// message about the target, not one about a journal in a temporary file that is gone.
    @Test func sigintDuringTheDeployStepExits130AndSaysTheTargetIsUnchanged() throws {
        let scratch = try Scratch("rast-install-sigint-deploy")
        let target = scratch.appending("disk.img")
        let (result, reached) = try Self.interruptedInstall(onto: target, at: "==> deploy", "--hostname", "interrupted")
        #expect(reached, "the installation reached the deploy step: \(result.combinedTail(lines: 20))")
        #expect(result.status == 130, "exit status 130 after SIGINT: \(result.combinedTail(lines: 10))")
        #expect(result.standardError.contains("\(target) is unchanged"), "\(result.standardError)")
        #expect(!result.standardError.contains("completed by the next rast command"), "\(result.standardError)")
        #expect(try Files.readString(target) == "the old contents\n")
        try InstallTest.expectNoLeftovers(under: scratch.path)
        print("rast-install, SIGINT in the deploy step: \(result.standardError.split(separator: "\n").last ?? "")")
    }

    /// --dry-run prints the plan and touches nothing.
    @Test func aDryRunPrintsThePlanAndWritesNothing() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-dry")
        let target = scratch.appending("disk.img")
        let plan = try Installer(request: InstallRequest(image: image.qcow2, target: target, size: 3 << 30,
                                                         personalisation: Personalisation(hostname: "dry", newIdentifiers: true)),
                                 progress: SilentProgress()).plan()
        let text = "\(plan)"
        for part in ["minimal.qcow2", "qcow2", "SHA-256 against minimal.manifest.json", "3.0 GiB (created)", "rastOS root",
                     "root partition", "host name dry", "new disk GUID", "grub reinstalled for BIOS and UEFI"] {
            #expect(text.contains(part), "the plan mentions \(part):\n\(text)")
        }
        #expect(!Files.exists(target))
    }

    /// A manifest that names a boot loader or firmware this rast-install does not know is
    /// refused by name; only a manifest that names none (older images) means GRUB.
    @Test func aManifestNamingAnUnknownBootLoaderIsRefused() throws {
        let image = try TestImage.shared()
        let scratch = try Scratch("rast-install-unknown")
        for (disk, word) in [("{\"bootloader\": \"syslinux\"}", "boot loader 'syslinux'"), ("{\"firmware\": [\"bios\", \"coreboot\"]}", "firmware 'coreboot'")] {
            let link = scratch.appending("other.qcow2")
            unlink(link)
            try SystemError.check("symlink", path: link) { symlink(image.qcow2, link) }
            try Files.write(scratch.appending("other.manifest.json"), string: "{\"disk\": \(disk)}")
            #expect {
                _ = try Installer(request: InstallRequest(image: link, target: scratch.appending("disk.img")), progress: SilentProgress()).plan()
            } throws: { error in
                guard case .invalidImage(let path, let reason, _)? = error as? InstallError else { return false }
                return path == link && reason.contains(word)
            }
        }
        #expect(!Files.exists(scratch.appending("disk.img")))
    }
}
