import ArgumentParser
import CommandLineSupport
import Foundation
import Pipeline
import SystemSupport
import VirtualMachine

/// `rast-build vm IMAGE`: the image as a virtual machine, its serial console on this terminal.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Boot an image in QEMU with its serial console on this terminal.",
        discussion: """
            Boots a raw or QCOW2 image with the guest's serial console on this terminal: \
            Ctrl-A X quits QEMU, Ctrl-A C switches to QEMU's monitor and back, Ctrl-C goes to \
            the guest. The guest's writes are thrown away when QEMU ends unless --persistent \
            writes them to the image. KVM is used when a kernel really runs under it here, TCG \
            otherwise (RAST_ACCEL=tcg or kvm decides without the check). The guest has QEMU's \
            user networking with restrict=on (it reaches nothing outside QEMU) and its SSH port \
            forwarded from 127.0.0.1 only; `rast-build ssh IMAGE` logs in there. While the \
            machine runs, IMAGE.vm.json records its QEMU process, port, user and key.

            The user is --user, else the first user in the image's manifest (NAME.manifest.json \
            beside it). The key is --identity, else the key in ~/.ssh whose .pub is among that \
            user's ssh_keys in the manifest, else ~/.ssh/id_ed25519 (id_ecdsa, id_rsa).
            """)

    @Argument(help: ArgumentHelp("A raw or QCOW2 image.", valueName: "image")) var image: String
    @OptionGroup var machineOptions: MachineOptions
    @Flag(help: "Write the guest's changes to the image (default: a throw-away overlay).") var persistent = false
    @Option(name: .customLong("ssh-port"), help: ArgumentHelp("The port on 127.0.0.1 forwarded to the guest's port 22 (default: a free one).", valueName: "port"))
    var sshPort: Int?
    @Option(help: ArgumentHelp("The user `rast-build ssh` logs in as (default: the manifest's first user).", valueName: "name"))
    var user: String?
    @Option(help: ArgumentHelp("The private key `rast-build ssh` logs in with (default: see below).", valueName: "file"))
    var identity: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        _ = try machineOptions.settings(sshPort: sshPort)
    }

    func run() throws {
        guard Files.exists(image), !Files.isDirectory(image) else { throw UserError("image \(image) does not exist") }
        let format = try ImageFormat.detect(image)
        switch try MachineRecord.lookup(image: image) {
        case .running(let record):
            throw UserError("a virtual machine already runs for \(image) (QEMU pid \(record.pid), since \(record.started), SSH on 127.0.0.1:\(record.sshPort)): `rast-build ssh \(image)` logs in; Ctrl-A X in its console ends it")
        case .stale(let record):
            record.remove()
            print("removed the record of a machine that no longer runs (QEMU pid \(record.pid)): \(MachineRecord.path(forImage: image))")
        case .none:
            break
        }
        if let identity, !Files.exists(identity) { throw UserError("--identity \(identity) does not exist") }
        let manifestUsers = ImageFormat.manifestPath(for: image).flatMap { try? Manifest.load($0) }?.users ?? []
        let loginUser = user ?? manifestUsers.first?.name
        let authorized = manifestUsers.first { $0.name == loginUser }?.sshKeys ?? []
        let key = identity ?? SSHIdentity.privateKey(matching: authorized) ?? SSHIdentity.defaultKey()
        let port = try sshPort ?? QEMU.freeLocalPort()
        guard QEMU.isLocalPortFree(port) else { throw UserError("--ssh-port \(port): 127.0.0.1:\(port) is already in use") }

        let checked = try machineOptions.settings(sshPort: sshPort)
        let chosenFirmware = checked.firmware
        var machine = MachineConfiguration()
        machine.firmware = chosenFirmware
        machine.memory = checked.memory
        machine.cpus = checked.cpus
        machine.disks = [.init(path: image, format: format, snapshot: !persistent)]
        machine.network = .user(forwards: [.init(hostPort: port, guestPort: 22)])
        machine.rebootEndsMachine = false

        // Nothing temporary outlives the check: a killed `vm` leaves no directory behind.
        let accelerator = try {
            let scratch = try TemporaryDirectory(prefix: "rast-vm")
            defer { try? scratch.remove() }
            return try QEMU.decideAccelerator(for: machine, consoleLog: scratch.appending("kvm-check.log"), progress: TerminalProgress())
        }()
        let console = ConsoleMachine(machine, accelerator: accelerator)
        print("rast-build vm: \(image) (\(format), \(chosenFirmware.rawValue.uppercased()), \(accelerator.uppercased()), \(checked.memory), \(checked.cpus) CPU\(checked.cpus == 1 ? "" : "s")); "
              + (persistent ? "the guest's writes go to the image" : "the guest's writes are thrown away at the end"))
        let login = loginUser.map { "rast-build ssh \(image)  (ssh -p \(port) \($0)@127.0.0.1\(key.map { " -i \($0)" } ?? ""))" }
            ?? "ssh -p \(port) USER@127.0.0.1 (rast-build ssh \(image) --user USER)"
        print("SSH: 127.0.0.1:\(port) → guest port 22: \(login)")
        RastLog.logger.debug("QEMU: \(console.command(varsCopy: nil))")
        fflush(nil)

        var record: MachineRecord?
        // Also when waiting for QEMU fails: the record must not outlive the machine.
        defer { record?.remove() }
        let ended = try console.run { pid in
            let written = MachineRecord(image: URL(fileURLWithPath: image).standardizedFileURL.path, pid: pid, sshPort: port,
                                        user: loginUser, identity: key.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                                        persistent: persistent, firmware: chosenFirmware.rawValue, accelerator: accelerator)
            try written.save()
            record = written
            // Once this shows, `rast-build ssh` finds the machine.
            print("console: Ctrl-A X quits, Ctrl-A C switches to the QEMU monitor and back")
            fflush(nil)
        }
        record?.remove()
        record = nil
        print("")
        try checkCancelled()
        switch ended {
        case .exited(0):
            print("rast-build vm: the machine stopped")
        case .exited(let status):
            throw UserError("QEMU exited with status \(status)")
        case .signalled:
            throw UserError("QEMU \(ended)")
        }
    }
}

/// `rast-build ssh IMAGE [-- COMMAND]`: a login into the machine `rast-build vm IMAGE` runs.
struct SSHCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh",
        abstract: "Log in to the virtual machine `rast-build vm IMAGE` runs, or run a command there.",
        discussion: """
            Finds the machine through IMAGE.vm.json (written by `rast-build vm`) and runs ssh \
            to its forwarded port on 127.0.0.1 as the user and with the key recorded there \
            (--user and --identity override them). A guest makes new host keys on its first \
            boot, so host keys are not checked or stored. The exit status is the command's.

            Examples: `rast-build ssh output/minimal.raw`, `rast-build ssh output/minimal.raw -- rast tree`.
            """)

    @Argument(help: ArgumentHelp("The image a `rast-build vm` runs.", valueName: "image")) var image: String
    @Option(help: ArgumentHelp("Log in as this user.", valueName: "name")) var user: String?
    @Option(help: ArgumentHelp("The private key to log in with.", valueName: "file")) var identity: String?
    @Option(help: ArgumentHelp("Wait up to this many seconds for the guest's SSH server (it may still be booting).", valueName: "seconds"))
    var wait: Double?
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run in the guest (after --); without one, a login shell.", valueName: "command"))
    var command: [String] = []
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let wait, wait < 0 { throw ValidationError("--wait must be a number of seconds, not \(wait).") }
    }

    func run() throws {
        let recordPath = MachineRecord.path(forImage: image)
        let record: MachineRecord
        switch try MachineRecord.lookup(image: image) {
        case .none:
            throw UserError("no virtual machine runs for \(image) (there is no \(recordPath)); start one with `rast-build vm \(image)`")
        case .stale(let stale):
            stale.remove()
            throw UserError("the virtual machine for \(image) is gone (its QEMU, pid \(stale.pid), no longer runs); removed the stale \(recordPath). Start one with `rast-build vm \(image)`")
        case .running(let running):
            record = running
        }
        guard let loginUser = user ?? record.user else {
            throw UserError("which user? \(image) has no manifest naming its users: pass --user NAME (here or to rast-build vm)")
        }
        guard let key = identity ?? record.identity else {
            throw UserError("no key to log in to \(image) with: pass --identity FILE (the private half of a key in \(loginUser)'s authorized_keys)")
        }
        guard Files.exists(key) else { throw UserError("the key \(key) does not exist (pass --identity FILE)") }
        let client = SSHClient(port: record.sshPort, user: loginUser, identity: key)
        if let wait {
            guard try client.waitUntilLoggedIn(timeout: wait, giveUp: { !record.isRunning }) != nil else {
                if !record.isRunning { throw UserError("the virtual machine for \(image) stopped (QEMU pid \(record.pid))") }
                throw UserError("no SSH login as \(loginUser) on 127.0.0.1:\(record.sshPort) within \(Int(wait)) s")
            }
        }
        let remote = command.isEmpty ? nil : command.joined(separator: " ")
        let result = try Command("ssh", client.arguments(command: remote), input: .inherit).run(output: .inherit, check: false)
        if result.status != 0 { throw ExitCode(result.status) }
    }
}
