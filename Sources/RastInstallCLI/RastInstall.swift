import ArgumentParser
import CommandLineSupport
import DiskImage
import SystemSupport

/// `rast-install IMAGE TARGET`: writes a built image to a disk and personalises it.
package struct RastInstall: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "rast-install",
        abstract: "Write a built rastOS image (raw or QCOW2) to a disk and personalise it.",
        discussion: """
            IMAGE is NAME.raw or NAME.qcow2 from rast-build. Its GPT must have the 'rastOS root' \
            btrfs partition; when NAME.manifest.json or SHA256SUMS is beside it, the image's \
            SHA-256 must match before anything is written.

            TARGET is a block device (needs --yes; everything on it is lost) or a file (created, \
            or replaced once complete; --size makes it larger than the image). Only data is \
            written: holes stay holes in a file and are zeroed with BLKZEROOUT on a device. The \
            target is then read back and compared with the image (--no-verify skips that).

            On a larger target the backup GPT moves to the end of the disk and the root \
            partition and its btrfs filesystem grow to fill it (--no-grow keeps their size).

            Personalisation changes the deployed snapshot the way rast does: a working copy of \
            it is changed, committed, and deployed again, so the system boots with the changes \
            and its read-only snapshots are never written. --new-uuids gives the disk, its \
            partitions and the btrfs filesystem new identifiers and reinstalls the boot loaders, \
            so that two disks from one image can be in one machine.

            Refused: a target that is mounted, holds a mounted partition or the running system's \
            root, is swap or held by device-mapper/RAID, is smaller than the image, or is the \
            image itself. Bad option values are named before anything is written. A failed \
            installation leaves a file target as it was; a device is reported incomplete.

            Examples:
              rast-install output/minimal.raw /dev/sdb --yes --hostname lab1 \\
                  --user alice --ssh-key-file ~/.ssh/id_ed25519.pub
              rast-install output/minimal.qcow2 vm.raw --size 20G --new-uuids
              rast-install output/minimal.raw /dev/sdb --dry-run
            """,
        version: RastVersion.string)

    @Argument(help: ArgumentHelp("The image rast-build wrote (.raw or .qcow2).", valueName: "image"))
    var image: String

    @Argument(help: ArgumentHelp("The block device or file to write.", valueName: "target"))
    var target: String

    @Option(help: ArgumentHelp("Size of a file target, at least the image's (e.g. 20G).", valueName: "size"))
    var size: String?

    @Flag(name: [.short, .long], help: "Overwrite a block device (it is refused without).")
    var yes = false

    @Flag(help: "Check everything and print the plan; write nothing.")
    var dryRun = false

    @Flag(name: .customLong("no-verify"), help: "Do not read the target back and compare it with the image.")
    var noVerify = false

    @Flag(name: .customLong("no-grow"), help: "Keep the root partition's size on a larger target.")
    var noGrow = false

    @Option(help: ArgumentHelp("Host name of the installed system.", valueName: "name"))
    var hostname: String?

    @Option(help: ArgumentHelp("Time zone, e.g. Europe/Berlin.", valueName: "zone"))
    var timezone: String?

    @Option(help: ArgumentHelp("Add this user (or update the image's user of that name).", valueName: "name"))
    var user: String?

    @Option(name: .customLong("group"), help: ArgumentHelp("Extra group of --user (repeatable).", valueName: "name"))
    var groups: [String] = []

    @Option(name: .customLong("ssh-key"), help: ArgumentHelp("An SSH public key for --user's authorized_keys (repeatable).", valueName: "key"))
    var sshKeys: [String] = []

    @Option(name: .customLong("ssh-key-file"), help: ArgumentHelp("A file of SSH public keys, e.g. ~/.ssh/id_ed25519.pub (repeatable).", valueName: "file"))
    var sshKeyFiles: [String] = []

    @Option(help: ArgumentHelp("crypt(3) hash of --user's password (openssl passwd -6).", valueName: "hash"))
    var passwordHash: String?

    @Option(help: ArgumentHelp("crypt(3) hash of root's password.", valueName: "hash"))
    var rootPasswordHash: String?

    @Flag(name: .customLong("new-uuids"), help: "New disk GUID, partition UUIDs and btrfs filesystem UUID.")
    var newUUIDs = false

    @OptionGroup var global: GlobalOptions

    package init() {}

    package func validate() throws {
        if let size, ByteCount.parse(size) == nil {
            throw ValidationError("--size must be a size such as 8G or 512M, not '\(size)'.")
        }
    }

    /// The request these arguments describe (option values checked, nothing touched).
    package func request() throws -> InstallRequest {
        var keys = sshKeys
        for file in sshKeyFiles { keys += try Personalisation.sshKeys(fromFile: file) }
        if !sshKeyFiles.isEmpty, user == nil {
            throw InstallError.invalidOption(option: "--ssh-key-file", value: nil, reason: "it applies to the user named with --user, and no --user was given")
        }
        let personalisation = Personalisation(
            hostname: hostname, timezone: timezone, user: user, groups: groups, sshKeys: keys,
            passwordHash: passwordHash, rootPasswordHash: rootPasswordHash, newIdentifiers: newUUIDs)
        try personalisation.validate()
        return InstallRequest(image: image, target: target, size: size.flatMap(ByteCount.parse), verify: !noVerify,
                              grow: !noGrow, confirmed: yes, personalisation: personalisation)
    }

    package func run() throws {
        let installer = Installer(request: try request(), progress: TerminalProgress())
        if dryRun {
            print(try installer.plan())
            print("dry run: nothing was written")
            return
        }
        let result: InstallResult
        do {
            result = try installer.install()
        } catch let error as InstallError where Cancellation.shared.isCancelled {
            // An interrupted device installation: say that the device is incomplete, exit as interrupted.
            EntryPoint.printError("rast-install: \(error)")
            throw ExitCode(130)
        }
        print("""
            \(result.plan.target.path): rastOS installed from \(result.plan.image) in \(String(format: "%.1f", result.seconds)) s
              snapshot \(result.deployedSnapshot) deployed; disk GUID \(result.diskGUID)
              root PARTUUID \(result.rootPartitionUUID), btrfs UUID \(result.filesystemUUID)
              SHA-256 of the written image \(result.sha256)\(result.verified ? " (read back and verified)" : "")
            """)
    }
}

package enum RastInstallMain {
    package static func run() -> Never {
        EntryPoint.run(RastInstall.self, programName: "rast-install")
    }
}
