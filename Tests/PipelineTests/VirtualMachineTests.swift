import Btrfs
import Foundation
import Pipeline
import SnapshotTree
import Recipe
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// Virtual machines for people: `rast-build vm` and `rast-build ssh` on the default image,
/// driven as a person drives them, from a terminal (a pseudo-terminal the test holds).
enum VirtualMachineTestSupport {
    static let rastBuild = ProjectPaths.root + "/.build/debug/rast-build"
    static let rast = ProjectPaths.root + "/.build/debug/rast"

    /// QEMU processes whose command line names `path`.
    static func qemuProcesses(using path: String) -> [Int32] {
        guard let names = try? FileManagerShim.contents(of: "/proc") else { return [] }
        return names.compactMap(Int32.init).filter { pid in
            guard let data = try? Files.read("/proc/\(pid)/cmdline") else { return false }
            let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return words.first?.contains("qemu-system") == true && words.contains { $0.contains(path) }
        }
    }
}

extension ImageBuilds {
    @Suite(.serialized) struct VirtualMachineTests {
        /// `rast-build vm` of the default image in a terminal: a login on the serial console
        /// and a command whose output comes back; `rast-build ssh -- rast tree` with the key
        /// found through the manifest, a command's exit status, a login shell on a terminal; a second `vm` of the same image refused; Ctrl-A X
        /// quits; the image unchanged (throw-away writes). Then QEMU killed with SIGKILL: the
        /// record goes with it; and `rast-build vm` itself killed: its QEMU runs on, and once
        /// that is killed too, `rast-build ssh` finds the record stale and removes it.
        @Test func consoleSSHAndKilledMachines() throws {
            let shared = try SSHTestImage.shared()
            try Require.file(VirtualMachineTestSupport.rastBuild, hint: "swift build")
            let scratch = try Scratch("rast-vm")
            let image = try shared.copy(to: scratch.appending("out"))
            let key = shared.key
            let recordPath = image + ".vm.json"
            let before = try SHA256.hash(file: image)
            // The key is found through the manifest in rast-build's ~/.ssh.
            let home = scratch.appending("home")
            try Files.createDirectory(home + "/.ssh", mode: 0o700)
            try Command("cp", [key, key + ".pub", home + "/.ssh/"]).run()
            // rast-build's temporary directories go here: none may stay, not even when it is killed.
            let temporary = scratch.appending("tmp")
            try Files.createDirectory(temporary)

            // 1. The console, in a terminal; KVM is checked as the boot test checks it.
            let vm = try TerminalProcess([VirtualMachineTestSupport.rastBuild, "vm", image, "--memory", "512M", "--cpus", "1"],
                                         environment: ["TMPDIR": temporary, "HOME": home])
            defer { vm.kill() }
            let started = try #require(vm.waitFor("console: Ctrl-A X quits", timeout: 120), "rast-build vm did not start: \(vm.output)")
            let header = vm.output(from: 0)
            print("vm: \(header)")
            let accelerator = header.contains(", KVM, ") ? "kvm" : "tcg"
            let port = try #require(header.firstMatch(of: /SSH: 127\.0\.0\.1:(\d+)/).map { Int($0.1) ?? 0 })
            #expect(header.contains("ssh -p \(port) admin@127.0.0.1 -i \(home)/.ssh/id_ed25519"), "\(header)")
            #expect(header.contains("the guest's writes are thrown away"))

            let record = try #require(try MachineRecord.lookup(image: image).running, "\(recordPath) names a running QEMU")
            #expect(record.sshPort == port && record.user == "admin" && record.identity == home + "/.ssh/id_ed25519")
            #expect(VirtualMachineTestSupport.qemuProcesses(using: image) == [record.pid])

            let login = try #require(vm.waitFor("login: ", from: started, timeout: 400), "no login prompt on the console: \(vm.output(from: started).suffix(2000))")
            vm.send("admin\r")
            let asked = try #require(vm.waitFor("Password: ", from: login, timeout: 60), "\(vm.output(from: login))")
            vm.send(SSHTestImage.consolePassword + "\r")
            // The guest computes the number: an echo of the typed line cannot match.
            vm.send("echo console-answer-$((6 * 7)); rast current\r")
            let answered = try #require(vm.waitFor("console-answer-42", from: asked, timeout: 120), "no answer on the console: \(vm.output(from: asked))")
            #expect(vm.waitFor("\n1\r", from: answered, timeout: 60) != nil, "`rast current` on the console: \(vm.output(from: answered))")

            // 2. rast-build ssh with what the record says.
            let tree = try Command(VirtualMachineTestSupport.rastBuild, ["ssh", image, "--wait", "300", "--", "rast", "tree"]).run(check: false, timeout: 400)
            #expect(tree.status == 0, "\(tree.standardOutput)\(tree.standardError)")
            #expect(tree.standardOutput.contains("1* - base system") && tree.standardOutput.contains("2 - workstation"), "\(tree.standardOutput)")
            let status = try Command(VirtualMachineTestSupport.rastBuild, ["ssh", image, "--", "exit", "7"]).run(check: false, timeout: 60)
            #expect(status.status == 7, "the command's exit status comes back: \(status.status) \(status.standardError)")
            // Without a command: a login shell on a terminal.
            let shell = try TerminalProcess([VirtualMachineTestSupport.rastBuild, "ssh", image], environment: ["TMPDIR": temporary, "HOME": home])
            defer { shell.kill() }
            shell.send("echo shell-of-$(id -un)-$((2 * 3)); tty\r")
            #expect(shell.waitFor("shell-of-admin-6", timeout: 60) != nil, "\(shell.output)")
            #expect(shell.waitFor("/dev/pts/", timeout: 30) != nil, "the login has a terminal: \(shell.output)")
            shell.send("exit 3\r")
            #expect(shell.wait(timeout: 30) == .exited(3), "\(shell.output)")

            // 3. One machine per image.
            let second = try Command(VirtualMachineTestSupport.rastBuild, ["vm", image]).run(check: false, timeout: 60)
            #expect(second.status == 1 && second.standardError.contains("a virtual machine already runs for \(image) (QEMU pid \(record.pid)"), "\(second.standardError)")

            // 4. Ctrl-A X quits; the record goes, the image is as it was.
            vm.send("\u{01}x")
            let ended = try #require(vm.wait(timeout: 60), "rast-build vm did not end after Ctrl-A X")
            #expect(ended == .exited(0), "\(vm.output.suffix(500))")
            #expect(vm.output.contains("rast-build vm: the machine stopped"))
            #expect(!Files.exists(recordPath))
            #expect(VirtualMachineTestSupport.qemuProcesses(using: image).isEmpty)
            #expect(try SHA256.hash(file: image) == before, "the image is unchanged after a machine without --persistent")
            let gone = try Command(VirtualMachineTestSupport.rastBuild, ["ssh", image, "--", "true"]).run(check: false)
            #expect(gone.status == 1 && gone.standardError.contains("no virtual machine runs for \(image)"), "\(gone.standardError)")

            // 5. QEMU killed with SIGKILL: rast-build vm says so and removes the record.
            let killedQEMU = try TerminalProcess([VirtualMachineTestSupport.rastBuild, "vm", image, "--memory", "256M", "--cpus", "1"],
                                                 environment: ["TMPDIR": temporary, "HOME": home, "RAST_ACCEL": accelerator])
            defer { killedQEMU.kill() }
            let victim = try #require(waitForRecord(image, timeout: 60), "no record: \(killedQEMU.output)")
            kill(victim.pid, SIGKILL)
            let status5 = killedQEMU.wait(timeout: 30)
            #expect(status5 == .exited(1), "\(killedQEMU.output)")
            #expect(killedQEMU.output.contains("QEMU was killed by signal 9 (SIGKILL)"), "\(killedQEMU.output)")
            #expect(!Files.exists(recordPath))
            #expect(VirtualMachineTestSupport.qemuProcesses(using: image).isEmpty)

            // 6. rast-build vm killed: its QEMU runs on and is found; killed too, the record is stale.
            let killedVM = try TerminalProcess([VirtualMachineTestSupport.rastBuild, "vm", image, "--memory", "256M", "--cpus", "1"],
                                               environment: ["TMPDIR": temporary, "HOME": home, "RAST_ACCEL": accelerator])
            defer { killedVM.kill() }
            let orphan = try #require(waitForRecord(image, timeout: 60), "no record: \(killedVM.output)")
            kill(killedVM.pid, SIGKILL)
            #expect(killedVM.wait(timeout: 30) == .signalled(SIGKILL))
            #expect(try MachineRecord.lookup(image: image) == .running(orphan))
            let busy = try Command(VirtualMachineTestSupport.rastBuild, ["vm", image]).run(check: false, timeout: 60)
            #expect(busy.standardError.contains("a virtual machine already runs"), "\(busy.standardError)")
            kill(orphan.pid, SIGKILL)
            var waited = 0
            while Files.exists("/proc/\(orphan.pid)") && waited < 100 { usleep(100_000); waited += 1 }
            let stale = try Command(VirtualMachineTestSupport.rastBuild, ["ssh", image, "--", "true"]).run(check: false)
            #expect(stale.status == 1 && stale.standardError.contains("is gone (its QEMU, pid \(orphan.pid), no longer runs); removed the stale \(recordPath)"),
                    "\(stale.standardError)")
            #expect(!Files.exists(recordPath))
            #expect(VirtualMachineTestSupport.qemuProcesses(using: image).isEmpty)
            let left = try FileManagerShim.contents(of: temporary)
            #expect(left.isEmpty, "rast-build vm left \(left) in its temporary directory")
            try ImageTestSupport.expectNoLeftovers(under: scratch.path)
        }

        /// `rast vm N --root DIR` on the filesystem of a built image (its root partition
        /// mounted here): snapshot 2 boots (UEFI) and says it is current, a file written there is
        /// gone afterwards; `--commit` of snapshot 1 yields snapshot 3, branched from 1, holding
        /// the files the machine wrote (in / and /etc) and 1's own fstab; a QEMU killed with
        /// SIGKILL commits nothing, and a SIGTERM to rast ends its QEMU. No QEMU, mount or loop device of rast's stays behind.
        @Test func rastVMBootsASnapshotAndCommitsItsChanges() throws {
            let shared = try SSHTestImage.shared()
            try Require.file(VirtualMachineTestSupport.rast, hint: "swift build")
            let scratch = try Scratch("rast-vm-snapshot")
            let image = try shared.copy(to: scratch.appending("out"))
            let rootPartition = try #require(shared.manifest.disk.partitions.first { $0.filesystem == "btrfs" })
            let loop = try LoopDevice(file: image, offset: rootPartition.startBytes, sizeLimit: rootPartition.sizeBytes)
            defer { loop.detach() }
            let top = scratch.appending("top")
            try Files.createDirectory(top)
            try Mounts.mount(loop.path, on: top, type: "btrfs", options: ["subvolid=5"])
            defer { try? Mounts.unmount(top) }
            // rast's temporary directory (the machine's disk) goes below the scratch directory.
            let temporary = scratch.appending("tmp")
            try Files.createDirectory(temporary)
            var environment = ["TMPDIR": temporary]
            let treeBefore = try Command(VirtualMachineTestSupport.rast, ["tree", "--root", top]).output()
            let fstab1 = try? Files.readString(top + "/@.snapshots/etc/etc-1/fstab")

            /// Boots snapshot `id` with `rast vm`, logs in as root on the console, checks that
            /// `rast current` says `id`, writes files, syncs and quits with Ctrl-A X.
            func boot(_ id: Int, commit: Bool, firmware: String) throws -> TerminalProcess {
                let vm = try TerminalProcess([VirtualMachineTestSupport.rast, "vm", String(id), "--root", top, "--memory", "512M", "--cpus", "1",
                                              "--firmware", firmware] + (commit ? ["--commit"] : []), environment: environment)
                let started = try #require(vm.waitFor("console: Ctrl-A X quits", timeout: 300), "rast vm did not start: \(vm.output)")
                print("rast vm \(id): \(vm.output(from: 0))")
                // The first machine decided the accelerator as the boot test does; the others take it.
                if environment["RAST_ACCEL"] == nil { environment["RAST_ACCEL"] = vm.output(from: 0).contains(", KVM, ") ? "kvm" : "tcg" }
                #expect(VirtualMachineTestSupport.qemuProcesses(using: temporary).count == 1)
                #expect(try Leftovers.mounts(under: temporary).isEmpty && Leftovers.loopDevices(under: temporary).isEmpty,
                        "nothing of the machine's disk is attached while QEMU runs")
                let login = try #require(vm.waitFor("login: ", from: started, timeout: 400), "no login prompt: \(vm.output(from: started).suffix(2000))")
                vm.send("root\r")
                let asked = try #require(vm.waitFor("Password: ", from: login, timeout: 60), "\(vm.output(from: login))")
                vm.send(SSHTestImage.consolePassword + "\r")
                vm.send("echo current-is-$(rast current)-$((40 + 2))\r")
                let current = vm.waitFor("current-is-\(id)-42", from: asked, timeout: 120)
                #expect(current != nil, "`rast current` in the machine of snapshot \(id): \(vm.output(from: asked).suffix(2000))")
                // / is read-only on a running rastOS, /etc a subvolume of its own.
                vm.send("mount -o remount,rw / && echo written-in-the-vm > /usr/share/vm-file; echo note > /etc/vm-note; sync; echo synced-$(cat /usr/share/vm-file /etc/vm-note | wc -l)\r")
                #expect(vm.waitFor("synced-2", from: current ?? asked, timeout: 120) != nil, "\(vm.output(from: asked).suffix(2000))")
                vm.send("\u{01}x")
                return vm
            }

            // 1. Snapshot 2 under UEFI, writes thrown away.
            let plain = try boot(2, commit: false, firmware: "uefi")
            #expect(plain.output.contains("rast vm: snapshot 2 (UEFI, "), "\(plain.output.prefix(1000))")
            #expect(plain.wait(timeout: 120) == .exited(0), "\(plain.output.suffix(1000))")
            #expect(plain.output.contains("rast vm: the machine stopped; its writes are discarded"), "\(plain.output.suffix(1000))")
            #expect(try Command(VirtualMachineTestSupport.rast, ["tree", "--root", top]).output() == treeBefore)
            #expect(!Files.exists(top + "/@.snapshots/rootfs/snapshot-2/usr/share/vm-file") && !Files.exists(top + "/@.snapshots/etc/etc-2/vm-note"))
            #expect(VirtualMachineTestSupport.qemuProcesses(using: temporary).isEmpty)
            #expect(try FileManagerShim.contents(of: temporary).isEmpty, "rast vm removed its disk")

            // 2. Snapshot 1 with --commit: snapshot 3, branched from 1.
            let committing = try boot(1, commit: true, firmware: "bios")
            #expect(committing.wait(timeout: 300) == .exited(0), "\(committing.output.suffix(1000))")
            #expect(committing.output.contains("rast vm: snapshot 3 (from 1) holds the machine's changes"), "\(committing.output.suffix(1000))")
            let tree = try Command(VirtualMachineTestSupport.rast, ["tree", "--root", top, "--json"]).output()
            print("tree after --commit: \(tree)")
            let state = try TreeState.decode(try Files.read(top + "/@.snapshots/rast/state.json"), path: "state.json")
            #expect(state.record(3)?.parent == 1, "\(state.snapshots)")
            #expect(try Files.readString(top + "/@.snapshots/rootfs/snapshot-3/usr/share/vm-file") == "written-in-the-vm\n")
            #expect(try Files.readString(top + "/@.snapshots/etc/etc-3/vm-note") == "note\n")
            #expect((try? Files.readString(top + "/@.snapshots/etc/etc-3/fstab")) == fstab1, "snapshot 3 keeps 1's fstab (\(fstab1 ?? "none")), not the machine's")
            #expect(!Files.exists(top + "/@.snapshots/rootfs/snapshot-1/usr/share/vm-file"), "snapshot 1 is unchanged")
            #expect(try Btrfs.isReadOnly(top + "/@.snapshots/rootfs/snapshot-3"))
            #expect(VirtualMachineTestSupport.qemuProcesses(using: temporary).isEmpty)

            // 3. QEMU killed: nothing is committed, nothing stays behind.
            let killed = try TerminalProcess([VirtualMachineTestSupport.rast, "vm", "1", "--root", top, "--commit", "--memory", "256M", "--cpus", "1"],
                                             environment: environment)
            defer { killed.kill() }
            #expect(killed.waitFor("console: Ctrl-A X quits", timeout: 300) != nil, "\(killed.output)")
            var victims: [Int32] = []
            for _ in 0..<100 where victims.isEmpty {
                victims = VirtualMachineTestSupport.qemuProcesses(using: temporary)
                usleep(100_000)
            }
            #expect(victims.count == 1)
            for pid in victims { kill(pid, SIGKILL) }
            #expect(killed.wait(timeout: 60) == .exited(1), "\(killed.output.suffix(500))")
            #expect(killed.output.contains("QEMU was killed by signal 9 (SIGKILL); the machine's writes were not committed"), "\(killed.output.suffix(500))")

            // 4. rast itself stopped (SIGTERM, as a closed terminal or `kill` does): its QEMU
            // goes with it, and its disk.
            let stopped = try TerminalProcess([VirtualMachineTestSupport.rast, "vm", "2", "--root", top, "--commit", "--memory", "256M", "--cpus", "1"],
                                              environment: environment)
            defer { stopped.kill() }
            #expect(stopped.waitFor("console: Ctrl-A X quits", timeout: 300) != nil, "\(stopped.output)")
            #expect(VirtualMachineTestSupport.qemuProcesses(using: temporary).count == 1)
            kill(stopped.pid, SIGTERM)
            let ended = stopped.wait(timeout: 60)
            #expect(ended != nil && ended != .exited(0), "\(stopped.output.suffix(500))")

            let after = try TreeState.decode(try Files.read(top + "/@.snapshots/rast/state.json"), path: "state.json")
            #expect(after.snapshots.map(\.id) == [0, 1, 2, 3])
            #expect(try Command(VirtualMachineTestSupport.rast, ["check", "--root", top]).run(check: false).status == 0)
            #expect(VirtualMachineTestSupport.qemuProcesses(using: temporary).isEmpty)
            #expect(try FileManagerShim.contents(of: temporary).isEmpty)
            let mounts = try Leftovers.mounts(under: scratch.path).filter { $0 != top }
            #expect(mounts.isEmpty, "\(mounts)")
            #expect(try Leftovers.loopDevices(under: temporary).isEmpty)
        }

        /// Waits for `image`'s record to name a running QEMU.
        private func waitForRecord(_ image: String, timeout: Double) -> MachineRecord? {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let record = (try? MachineRecord.lookup(image: image))?.running { return record }
                usleep(100_000)
            }
            return nil
        }
    }
}

extension MachineRecord.Lookup {
    var running: MachineRecord? {
        if case .running(let record) = self { return record }
        return nil
    }
}
