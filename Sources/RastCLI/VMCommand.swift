import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import SnapshotMachine
import SystemSupport
import VirtualMachine

/// `rast vm N`: snapshot N as a virtual machine, the running system untouched.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Boot a snapshot as a virtual machine, without touching the running system.",
        discussion: """
            Makes a throw-away disk in a temporary directory from snapshot N's root, /etc and \
            /boot (the image builder's disk layout and boot loader stage, N deployed there), \
            and boots it in QEMU with the serial console on this terminal: Ctrl-A X quits, \
            Ctrl-A C switches to QEMU's monitor and back. KVM is used when a kernel really runs \
            under it here, TCG otherwise (RAST_ACCEL=tcg or kvm decides without the check). The \
            guest has QEMU's user networking with restrict=on and its SSH port forwarded from \
            127.0.0.1 only. The machine's writes are discarded when it stops; with --commit, \
            its deployed root (with /etc and /boot) becomes a new snapshot branched from N. \
            /var and /home are not N's: the machine gets /var's directories, empty, and an \
            empty /home. Needs QEMU, btrfs-progs, dosfstools, mtools and the boot loader's tools.
            """)

    @Argument(help: "The snapshot to boot.") var snapshot: Int
    @OptionGroup var options: TreeOptions
    @Flag(help: "Turn the machine's changes into a new snapshot branched from N when it stops.") var commit = false
    @OptionGroup var machineOptions: MachineOptions
    @Option(name: .customLong("ssh-port"), help: ArgumentHelp("The port on 127.0.0.1 forwarded to the guest's port 22 (default: a free one).", valueName: "port"))
    var sshPort: Int?

    func validate() throws {
        _ = try machineOptions.settings(sshPort: sshPort)
    }

    func run() throws {
        let host = try HostSession.forWriting(root: options.root, command: "vm")
        let checked = try machineOptions.settings(sshPort: sshPort)
        var settings = SnapshotMachine.Options()
        settings.firmware = checked.firmware
        settings.memory = checked.memory
        settings.cpus = checked.cpus
        settings.commit = commit
        settings.sshPort = checked.sshPort
        let machine = SnapshotMachine(store: host.store, snapshot: snapshot, options: settings, progress: TerminalProgress(),
                                      lock: { try host.lock(wait: !options.noWait) }, unlock: { host.store.unlock() })
        _ = try machine.run()
    }
}
