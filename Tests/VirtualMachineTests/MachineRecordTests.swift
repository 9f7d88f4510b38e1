import Foundation
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// The state file of `rast-build vm`, the key lookup of `rast-build ssh`, and the QEMU
/// arguments of a console machine. (The machines themselves boot in
/// Tests/PipelineTests/VirtualMachineTests.swift.)
@Suite struct MachineRecordTests {
    @Test func aRecordIsRunningWhileItsProcessLivesAndStaleAfterwards() throws {
        let scratch = try Scratch("rast-vm-record")
        let image = scratch.appending("disk.raw")
        try Files.write(image, string: "")
        #expect(try MachineRecord.lookup(image: image) == .none)

        let sleeper = try BackgroundProcess(Command("sleep", ["600"])) { _ in }
        let record = MachineRecord(image: image, pid: sleeper.pid, sshPort: 2222, user: "admin", identity: "/root/.ssh/id_ed25519",
                                   persistent: false, firmware: "bios", accelerator: "tcg")
        #expect(record.processStart != nil)
        try record.save()
        #expect(MachineRecord.path(forImage: image) == image + ".vm.json")
        #expect(Files.exists(image + ".vm.json"))
        #expect(try MachineRecord.lookup(image: image) == .running(record))

        // The same process id with another start time is another process.
        var reused = record
        reused.processStart = (record.processStart ?? 0) + 1
        try reused.save()
        guard case .stale = try MachineRecord.lookup(image: image) else {
            Issue.record("a record whose process started at another time must be stale")
            return
        }
        // remove() leaves a record that is not its own.
        record.remove()
        #expect(Files.exists(image + ".vm.json"))
        try record.save()

        sleeper.stop(signal: SIGKILL, grace: 1)
        #expect(try MachineRecord.lookup(image: image) == .stale(record))
        record.remove()
        #expect(!Files.exists(image + ".vm.json"))
    }

    @Test func aBrokenRecordIsAClearError() throws {
        let scratch = try Scratch("rast-vm-record")
        let image = scratch.appending("disk.qcow2")
        try Files.write(image + ".vm.json", string: "{ not json")
        #expect {
            try MachineRecord.lookup(image: image)
        } throws: { error in
            "\(error)".contains("\(image).vm.json is not a virtual machine record") && "\(error)".contains("remove it")
                && error.underlying(DecodingError.self) != nil
        }
    }

    @Test func theKeyWhosePublicHalfTheImageAuthorisesIsFound() throws {
        try Require.programs("ssh-keygen")
        let scratch = try Scratch("rast-vm-keys")
        let directory = scratch.appending("ssh")
        try Files.createDirectory(directory, mode: 0o700)
        let first = try SSHClient.generateKey(at: directory + "/id_ed25519", comment: "first@test")
        let second = try SSHClient.generateKey(at: directory + "/work_key", comment: "second@test")
        try Files.write(directory + "/orphan.pub", string: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINydRzvC4WcnJQptV2yOfxGjN4msUhY0xeebqTFwlKZH orphan\n")

        // The comment does not matter, options in front of an authorized_keys line neither.
        let material = try #require(SSHIdentity.keyMaterial(second))
        #expect(SSHIdentity.privateKey(matching: ["no-pty,from=\"127.0.0.1\" \(material) other-comment"], in: directory) == directory + "/work_key")
        #expect(SSHIdentity.privateKey(matching: [first], in: directory) == directory + "/id_ed25519")
        // A public key without its private half, or no key at all: nothing.
        #expect(SSHIdentity.privateKey(matching: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINydRzvC4WcnJQptV2yOfxGjN4msUhY0xeebqTFwlKZH x"], in: directory) == nil)
        #expect(SSHIdentity.privateKey(matching: [], in: directory) == nil)
        #expect(SSHIdentity.keyMaterial("not a key") == nil)
        #expect(SSHIdentity.defaultKey(in: directory) == directory + "/id_ed25519")
        #expect(SSHIdentity.defaultKey(in: scratch.appending("nowhere")) == nil)
    }

    @Test func aConsoleMachineHasTheSerialLineAndTheMonitorOnItsTerminal() throws {
        var configuration = MachineConfiguration()
        configuration.disks = [.init(path: "/images/disk.raw", format: "raw", snapshot: true)]
        configuration.network = .user(forwards: [.init(hostPort: 2222, guestPort: 22)])
        configuration.rebootEndsMachine = false
        let console = ConsoleMachine(configuration, accelerator: "tcg")
        let arguments = console.command(varsCopy: nil).arguments
        let serial = try #require(arguments.firstIndex(of: "-serial"))
        #expect(arguments[serial + 1] == "mon:stdio")
        #expect(!arguments.contains("-monitor"))
        #expect(!arguments.contains("-no-reboot"))
        #expect(arguments.contains("user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"))
        #expect(arguments.contains("file=/images/disk.raw,format=raw,if=virtio,snapshot=on"))

        // The boot tests' machines are unchanged: console on stdout, no monitor, no reboots.
        let watched = QEMU.arguments(for: MachineConfiguration(), accelerator: "tcg", varsCopy: nil)
        #expect(watched.contains("-no-reboot"))
        let index = watched.firstIndex(of: "-serial")
        #expect(index.map { watched[$0 + 1] } == "stdio")
        #expect(watched.firstIndex(of: "-monitor").map { watched[$0 + 1] } == "none")
    }

    @Test func aPortInUseIsNotFree() throws {
        let (fd, port) = try LoopbackListener.listeningSocket()
        #expect(!QEMU.isLocalPortFree(Int(port)))
        close(fd)
        #expect(QEMU.isLocalPortFree(Int(port)))
        let free = try QEMU.freeLocalPort()
        #expect(QEMU.isLocalPortFree(free))
    }
}
