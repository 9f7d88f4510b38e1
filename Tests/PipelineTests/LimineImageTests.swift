import BootEntries
import Foundation
import ImageSupport
import Pipeline
import Recipe
import SnapshotTree
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// recipes/limine.toml, built once per test process with its boot test (raw and QCOW2, each
/// under BIOS and UEFI); the tests that change an image work on copies of the raw file.
struct LimineImage: Sendable {
    let raw: String
    let manifest: Manifest

    private static let built: Result<LimineImage, any Error> = Result { try build() }

    static func shared() throws -> LimineImage {
        try ImageTestSupport.requirements()
        try Require.programs("mdir", "mren", "mdel", "fsck.fat", "dd")
        return try built.get()
    }

    private static func build() throws -> LimineImage {
        try ImageTestSupport.requirements()
        let directory = try TemporaryDirectory.forTestProcess(prefix: "rast-limine-image")
        let recipe = try ImageTestSupport.recipe("limine", output: directory.appending("out"))
        let result = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: true)).build()
        return LimineImage(raw: recipe.outputPath(for: .raw), manifest: result.manifest)
    }

    func partition(_ name: String) throws -> AttachedDisk.PartitionRecord {
        try #require(manifest.disk.partitions.first { $0.name == name })
    }

    /// The ESP of a copy of the image, through mtools at the partition's offset.
    func esp(of disk: String) throws -> MtoolsESP {
        MtoolsESP(image: disk, offset: try partition(DiskStage.espName).startBytes)
    }

    /// A copy of the raw image (sparse, reflinked where the filesystem can) in `directory`.
    func copy(to directory: String) throws -> String {
        let path = directory + "/limine.raw"
        try Command("cp", ["--sparse=always", "--reflink=auto", raw, path]).run()
        return path
    }
}

/// A console log without its terminal control sequences (under UEFI, the firmware's console
/// positions every character with one; the log keeps them without their ESC byte), as a
/// person reading the screen would see the text.
func screenText(_ log: String) -> String {
    let scalars = Array(log.unicodeScalars)
    var output = String.UnicodeScalarView()
    var index = 0
    while index < scalars.count {
        if scalars[index] == "\u{1B}" {
            index += 1
            continue
        }
        if scalars[index] == "[" {
            var end = index + 1
            while end < scalars.count, "0123456789;=?".unicodeScalars.contains(scalars[end]) { end += 1 }
            if end < scalars.count, scalars[end].properties.isAlphabetic, scalars[end].isASCII {
                index = end + 1
                continue
            }
        }
        output.append(scalars[index])
        index += 1
    }
    return String(output)
}

/// What a user would check on a Limine ESP: the menu parses, and every file an entry loads
/// is there, complete (its SHA-256 starts with the hash its name carries). Returns the
/// problems (none when all is well) and the menu.
func inspectLimineESP(_ esp: ESPVolume) -> (problems: [String], menu: LimineConfig?) {
    do {
        guard let bytes = try esp.read(LimineLayout.configPath) else { return (["no \(LimineLayout.configPath)"], nil) }
        let menu = try LimineConfig(parsing: String(decoding: bytes, as: UTF8.self))
        var problems: [String] = []
        if menu.entries.isEmpty { problems.append("the menu has no entries") }
        for entry in menu.entries {
            if entry.value("protocol") != "linux" { problems.append("entry '\(entry.title)' has protocol \(entry.value("protocol") ?? "none")") }
            if entry.value("kernel_path") == nil { problems.append("entry '\(entry.title)' loads no kernel") }
            for value in entry.loadedPaths {
                guard let path = LimineConfig.bootPartitionPath(value) else {
                    problems.append("entry '\(entry.title)' loads \(value), not from the ESP")
                    continue
                }
                guard let content = try esp.read(path) else {
                    problems.append("entry '\(entry.title)' loads \(path), which is missing")
                    continue
                }
                if let prefix = LimineLayout.hashPrefix(ofKernelPath: path), !SHA256.hash(content).hasPrefix(prefix) {
                    problems.append("entry '\(entry.title)' loads \(path), whose content does not match its name")
                }
            }
        }
        return (problems, menu)
    } catch {
        return (["\(error)"], nil)
    }
}

extension ImageBuilds {
    @Suite(.serialized) struct LimineImageTests {
        /// recipes/limine.toml builds, and both outputs boot under BIOS and UEFI to the same
        /// in-guest check as the GRUB images; the ESP holds what Limine needs and nothing else.
        @Test func limineRecipeBuildsAndBootsUnderBIOSAndUEFI() throws {
            let image = try LimineImage.shared()
            let manifest = image.manifest
            #expect(manifest.disk.bootloader == "limine")
            #expect(Set(manifest.packages.map(\.name)).isSuperset(of: ["limine", "rast", "linux-rast-base"]))
            #expect(manifest.bootTests.count == 4)
            for test in manifest.bootTests {
                #expect(test.passed, "\(test.format) \(test.firmware): \(test.outcome)")
                #expect(test.reportedCurrent == "1")
                #expect(test.reportedTree == manifest.tree)
                let log = screenText((try? Files.readString(test.consoleLog)) ?? "")
                let banner = test.firmware == "bios" ? "Limine 8.2.0 (x86-64, BIOS)" : "Limine 8.2.0 (x86-64, UEFI)"
                #expect(log.contains(banner), "\(test.format) \(test.firmware) was booted by Limine")
                print("limine image: \(test.format) booted with \(test.firmware) to `rast current` = \(test.reportedCurrent ?? "?") in \(String(format: "%.1f", test.seconds)) s (\(test.accelerator))")
            }

            // bios-install wrote into the BIOS boot partition, not into the GPT.
            let verify = try Command("sgdisk", ["-v", image.raw]).run(check: false)
            #expect(verify.standardOutput.contains("No problems found"), "sgdisk -v: \(verify.standardOutput)")
            let biosBoot = try image.partition(DiskStage.biosName)
            let stage2 = try Command("dd", ["if=\(image.raw)", "bs=512", "skip=\(biosBoot.startBytes / 512)", "count=8", "status=none"]).run()
            #expect(stage2.standardOutput.utf8.contains { $0 != 0 }, "the BIOS boot partition holds Limine's stage 2")

            // The ESP: Limine's own files, identical to the vendored release, and the menu.
            let esp = try image.esp(of: image.raw)
            let vendor = ProjectPaths.root + "/bootloader/limine/vendor"
            #expect(try esp.read(LimineLayout.efiPath) == (try Files.read(vendor + "/BOOTX64.EFI")))
            #expect(try esp.read(LimineLayout.stage3Path) == (try Files.read(vendor + "/limine-bios.sys")))
            let (problems, menu) = inspectLimineESP(esp)
            #expect(problems.isEmpty, "\(problems)")
            let root = try image.partition(DiskStage.rootName)
            #expect(menu?.entries.map(\.title) == ["rastOS snapshot 1"])
            #expect(menu?.entries.first?.value("cmdline") == "root=PARTUUID=\(root.partitionUUID) rootflags=subvol=@.snapshots/rootfs/snapshot-tmp ro rootwait rast.slot=tmp console=ttyS0")
            #expect(try esp.files(in: LimineLayout.kernelDirectory).count == 1, "one kernel, the deployed snapshot's")
            let scratch = try Scratch("rast-limine-esp")
            let fsck = try Command("fsck.fat", ["-n", try Self.extract(esp: image, from: image.raw, into: scratch)]).run(check: false)
            #expect(fsck.status == 0, "fsck.fat: \(fsck.standardOutput)")
        }

        /// The GRUB test's sequence with Limine, in the guest (the ESP mounted as vfat there):
        /// branch and deploy, reboot into the branch, roll back, reboot into the first snapshot.
        @Test func branchDeployRebootRollbackRebootWithLimine() throws {
            let image = try LimineImage.shared()
            let scratch = try Scratch("rast-limine-reboot")
            let disk = try image.copy(to: scratch.path)

            func boot(_ number: Int, firmware: MachineConfiguration.Firmware, expect current: Int, then script: String) throws -> BootTestResult {
                try ImageTestSupport.reboot(disk, number, firmware: firmware, expect: current, then: script,
                                            logDirectory: scratch.path, label: "limine reboot test")
            }

            // First, in the guest, where the ESP is mounted as vfat: deploys killed with SIGKILL
            // at random moments, each followed by `rast check` (it completes the deploy and
            // checks the menu and kernels on the ESP).
            let first = try boot(1, firmware: .bios, expect: 1, then: """
                for round in 1 2 3 4 5 6 7 8; do
                    rast deploy $((round % 2 + 1)) > /dev/null 2>&1 &
                    usleep $((RANDOM * 40))
                    kill -9 $! 2>/dev/null || true
                    wait $! 2>/dev/null || true
                    rast check > /tmp/check 2>&1 || { cat /tmp/check; exit 1; }
                done
                echo "RAST-REPORT killed deploys checked"
                rast branch 1 "branch to deploy" > /tmp/branch
                new=$(sed -n 's/^created snapshot \\([0-9]*\\) from 1$/\\1/p' /tmp/branch)
                echo "RAST-REPORT branched $new"
                rast deploy "$new"
                rast status | sed 's/^/RAST-REPORT after-deploy /'
                rast check | sed 's/^/RAST-REPORT check /'
                """)
            let branched = first.otherReports.first { $0.hasPrefix("branched ") }.flatMap { Int($0.dropFirst("branched ".count)) }
            let branch = try #require(branched, "the guest reported the new branch: \(first.otherReports)")
            #expect(first.otherReports.contains("after-deploy next:    snapshot \(branch) (slot tmp0)"))
            #expect(first.otherReports.contains("check the snapshot tree is consistent"), "\(first.otherReports)")
            #expect(first.otherReports.contains("killed deploys checked"), "\(first.otherReports)")
            // The guest wrote the ESP through vfat: the host reads the new menu with mtools.
            let (problems, menu) = inspectLimineESP(try image.esp(of: disk))
            #expect(problems.isEmpty, "\(problems)")
            #expect(menu?.entries.map(\.title) == ["rastOS snapshot \(branch)", "rastOS previous deployment (snapshot 1)"])

            let second = try boot(2, firmware: .uefi, expect: branch, then: "rast rollback\nrast check")
            #expect(second.reportedTree.contains { $0.contains("\(branch)* - branch to deploy") })
            #expect(screenText((try? Files.readString(second.consoleLog)) ?? "").contains("Limine 8.2.0 (x86-64, UEFI)"))

            let third = try boot(3, firmware: .bios, expect: 1, then: "rast check")
            #expect(third.reportedTree.contains { $0.contains("1* - base system") })
            let after = inspectLimineESP(try image.esp(of: disk))
            #expect(after.problems.isEmpty, "\(after.problems)")
            #expect(after.menu?.entries.map(\.title) == ["rastOS snapshot 1", "rastOS previous deployment (snapshot \(branch))"])
            try ImageTestSupport.expectNoLeftovers(under: scratch.path)
        }

        /// `rast --root` deploys on the host (the ESP through mtools, found from the loop device
        /// the root partition is mounted from), killed with SIGKILL at random moments: after every
        /// kill the menu on the ESP parses and every file it loads is there and complete; `rast
        /// check` then completes the interrupted deploy and finds everything consistent. The last
        /// state boots in QEMU.
        @Test func sigkillDuringDeployLeavesABootableESP() throws {
            let image = try LimineImage.shared()
            let scratch = try Scratch("rast-limine-kill")
            let disk = try image.copy(to: scratch.path)
            let root = try image.partition(DiskStage.rootName)
            let esp = try image.esp(of: disk)
            let rast = ImageTestSupport.rastBinary
            let top = scratch.appending("top")
            try Files.createDirectory(top)
            let loop = try LoopDevice(file: disk, offset: root.startBytes, sizeLimit: root.sizeBytes)
            defer { loop.detach() }
            try Mounts.mount(loop.path, on: top, type: "btrfs", options: ["subvolid=5"])
            var mounted = true
            defer { if mounted { try? Mounts.unmount(top) } }

            // rast's temporary files go here: a killed rast must leave none behind.
            let temporary = scratch.appending("tmp")
            try Files.createDirectory(temporary)
            /// `rast COMMAND --root TOP ARGUMENTS...`
            func run(_ arguments: [String]) throws -> CommandResult {
                try Command(rast, [arguments[0], "--root", top] + arguments.dropFirst(), environment: ["TMPDIR": temporary])
                    .run(check: false, timeout: 120)
            }
            /// mtools runs rast started finish on their own after rast is killed: wait for them.
            func waitForOrphans() throws {
                for _ in 0..<300 {
                    let busy = try FileManagerShim.contents(of: "/proc").filter { $0.allSatisfy(\.isNumber) }.contains { pid in
                        ((try? Files.readString("/proc/\(pid)/cmdline")) ?? "").contains(disk)
                    }
                    if !busy { return }
                    usleep(50_000)
                }
                Issue.record("mtools processes on \(disk) did not finish")
            }

            // Snapshots 3 to 6, each with an initramfs of its own (an uncompressed cpio without
            // /init: the kernel mounts the root as usual), so that deploys copy files to the ESP
            // and drop others, not only rewrite the menu.
            var targets: [Int] = []
            for marker in 3...6 {
                let created = try run(["branch", "1", "kill test \(marker)"])
                #expect(created.status == 0, "\(created.combinedTail(lines: 5))")
                let id = try #require(Int(created.standardOutput.split(separator: " ").dropFirst(2).first ?? ""))
                let made = try run(["run", String(id),
                                     "mkdir -p /tmp/i && cd /tmp/i && echo \(marker) > marker && echo marker | cpio -o -H newc > /boot/initramfs-linux-rast-base.img"])
                #expect(made.status == 0, "\(made.combinedTail(lines: 5))")
                targets.append(id)
            }
            #expect(try run(["deploy", String(targets[0])]).status == 0)
            var durations: [Double] = []
            for target in targets.prefix(3).dropFirst() {
                let watch = Stopwatch()
                #expect(try run(["deploy", String(target)]).status == 0)
                durations.append(watch.elapsed)
            }
            let duration = durations.reduce(0, +) / Double(durations.count)

            var random = SplitMix64(environment: "RAST_CRASH_SEED", default: 20261206)
            let wanted = Int(ProcessInfo.processInfo.environment["RAST_LIMINE_KILLS"] ?? "") ?? 50
            var killed = 0
            var finished = 0
            var failures: [String] = []
            for iteration in 0..<(wanted * 4) where killed < wanted && failures.isEmpty {
                let target = targets[iteration % targets.count]
                let delay = Double.random(in: 0...1, using: &random) * duration
                var command = Command(rast, ["deploy", "--root", top, String(target)], environment: ["TMPDIR": temporary])
                command.stopSignal = SIGKILL
                let result = try command.run(check: false, timeout: delay)
                if result.timedOut { killed += 1 } else { finished += 1 }
                try waitForOrphans()

                let (problems, _) = inspectLimineESP(esp)
                if !problems.isEmpty {
                    failures.append("iteration \(iteration): `rast deploy \(target)` killed after \(String(format: "%.3f", delay)) s left the ESP with: \(problems.joined(separator: "; "))")
                }
                let check = try run(["check"])
                if check.status != 0 {
                    failures.append("iteration \(iteration): after `rast deploy \(target)` killed after \(String(format: "%.3f", delay)) s, rast check: \(check.combinedTail(lines: 20))")
                }
            }
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
            #expect(killed >= wanted, "at least \(wanted) deploys were killed mid-way (\(killed) killed, \(finished) finished)")
            #expect(try FileManagerShim.contents(of: temporary).isEmpty, "no temporary file left by a killed rast")
            print("limine kill test: \(killed) deploys killed with SIGKILL (\(finished) finished first) within \(String(format: "%.2f", duration)) s; the ESP was bootable after every kill")

            // The last state boots, into the snapshot the tree says boots next.
            let state = try SnapshotStore(layout: Layout(top: top)).state()
            let next = try #require(state.next.flatMap { state.slot($0)?.snapshot })
            #expect(try run(["check"]).standardOutput.contains("the snapshot tree is consistent"))
            try Mounts.unmount(top)
            mounted = false
            loop.detach()
            #expect(try Command("fsck.fat", ["-n", try Self.extract(esp: image, from: disk, into: scratch)]).run(check: false).status == 0,
                    "fsck.fat finds the ESP's FAT consistent")
            let boot = try BootTest(image: disk, format: "raw", firmware: .bios, timeout: 300,
                                    expectation: BootExpectation(current: next, tree: nil), extraChecks: "rast check",
                                    consoleLog: scratch.appending("boot.log")).run(progress: TerminalProgress(interactive: false))
            #expect(boot.passed, "\(boot.outcome)\n\((try? Files.readString(boot.consoleLog))?.suffix(3000) ?? "")")
            #expect(boot.reportedCurrent == String(next))
            try ImageTestSupport.expectNoLeftovers(under: scratch.path)
        }

        /// The ESP of `disk` copied out into a file of its own (fsck.fat reads whole devices or files).
        static func extract(esp image: LimineImage, from disk: String, into scratch: Scratch) throws -> String {
            let partition = try image.partition(DiskStage.espName)
            let file = scratch.appending("esp.fat")
            try Command("dd", ["if=\(disk)", "of=\(file)", "bs=1M", "skip=\(partition.startBytes >> 20)",
                               "count=\(partition.sizeBytes >> 20)", "status=none"]).run()
            return file
        }
    }
}
