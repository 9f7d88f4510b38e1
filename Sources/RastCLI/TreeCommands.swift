import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Options every tree command takes.
struct TreeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Work on the rastOS filesystem whose top level (subvolid=5) is mounted at DIR, instead of the running system.", valueName: "DIR"))
    var root: String?

    @Flag(name: .customLong("no-wait"), help: "Fail at once when another rast command holds the lock, instead of waiting for it.")
    var noWait = false

    @OptionGroup var global: GlobalOptions

    /// Opens the host for a change (root privileges, the lock) and runs `body`.
    func write<T>(_ command: String, _ body: (HostSession) throws -> T) throws -> T {
        let host = try HostSession.forWriting(root: root, command: command)
        try host.lock(wait: !noWait)
        return try body(host)
    }

    func read<T>(_ body: (HostSession) throws -> T) throws -> T {
        try body(try HostSession.forReading(root: root))
    }
}

struct JSONFlag: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false
}

struct TreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tree", abstract: "Show the snapshot tree (* marks the booted snapshot).")
    @OptionGroup var options: TreeOptions
    @OptionGroup var format: JSONFlag
    func run() throws { try options.read { try $0.tree(json: format.json) } }
}

struct CurrentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "current", abstract: "Print the number of the booted snapshot.", aliases: ["c"])
    @OptionGroup var options: TreeOptions
    @OptionGroup var format: JSONFlag
    func run() throws { try options.read { try $0.current(json: format.json) } }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show what is booted, what boots next, locks and space used.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var format: JSONFlag
    func run() throws { try options.read { try $0.status(json: format.json) } }
}

struct DescCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "desc", abstract: "Set the description of a snapshot.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    @Argument(parsing: .remaining, help: "The description.") var text: [String]
    func validate() throws {
        if text.isEmpty { throw ValidationError("Give the description after the snapshot number.") }
    }
    func run() throws { try options.write("desc") { try $0.describe(snapshot, text.joined(separator: " ")) } }
}

struct DelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del", abstract: "Delete snapshots and all their descendants.",
        discussion: "Snapshot 0, the booted snapshot and the one that boots next are refused.", aliases: ["rm-snapshot"])
    @OptionGroup var options: TreeOptions
    @Flag(name: [.short, .long], help: "Do not ask before deleting.") var yes = false
    @Argument(help: "The snapshots to delete.") var snapshots: [Int]
    func validate() throws {
        if snapshots.isEmpty { throw ValidationError("Name at least one snapshot to delete.") }
    }
    func run() throws {
        try options.write("del") { host in
            try host.delete(snapshots, assumeYes: yes) { question in Prompt.yesNo(question) }
        }
    }
}

enum Prompt {
    /// Asks on the terminal; without one, answers no (pass --yes in scripts).
    static func yesNo(_ question: String) -> Bool {
        guard isatty(0) == 1 else {
            EntryPoint.printError("rast: \(question) (no terminal to ask on; pass --yes to confirm)")
            return false
        }
        print("\(question) [y/N] ", terminator: "")
        fflush(nil)
        guard let answer = readLine() else { return false }
        return ["y", "yes"].contains(answer.lowercased().trimmingCharacters(in: .whitespaces))
    }
}

struct ChrootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chroot", abstract: "Open a shell in a working copy of a snapshot.",
        discussion: "Leave the shell with `exit 0` to keep the changes; any other exit status discards them.", aliases: ["cr"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws {
        let status = try options.write("chroot") { try $0.runInSnapshot(snapshot, command: nil, commandName: "chroot") }
        if status != 0 { throw ExitCode(status) }
    }
}

/// The command `run` and `tree-run` run in snapshots, after the snapshot number.
struct ShellCommandArgument: ParsableArguments {
    @Argument(parsing: .captureForPassthrough, help: "The command (run by /bin/sh -c).") var command: [String] = []
    func validate() throws {
        if command.isEmpty { throw ValidationError("Give the command to run after the snapshot number.") }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a working copy of a snapshot; keep the changes only if it succeeds.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    @OptionGroup var shell: ShellCommandArgument
    func run() throws {
        let status = try options.write("run") { try $0.runInSnapshot(snapshot, command: shell.command, commandName: "run") }
        if status != 0 { throw ExitCode(status) }
    }
}

struct TreeRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-run", abstract: "Run a command in a snapshot and all its descendants; each keeps the changes only where it succeeded.",
        aliases: ["trun"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    @OptionGroup var shell: ShellCommandArgument
    func run() throws {
        let failed = try options.write("tree-run") { try $0.treeRun(snapshot, command: shell.command) }
        if !failed.isEmpty { throw ExitCode.failure }
    }
}

struct LiveChrootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live-chroot", abstract: "Open a writable shell in the running deployment (changes are lost at the next deploy).")
    @OptionGroup var options: TreeOptions
    func run() throws {
        let status = try options.write("live-chroot") { try $0.liveChroot() }
        if status != 0 { throw ExitCode(status) }
    }
}

struct CloneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clone", abstract: "Copy a snapshot as the root of a new tree.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot to copy.") var snapshot: Int
    @Argument(parsing: .remaining, help: "A description (default: the original's).") var description: [String] = []
    func run() throws { try options.write("clone") { try $0.copy(snapshot, parent: nil, description: description.joinedOrNil) } }
}

struct CloneTreeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clone-tree", abstract: "Copy a snapshot and all its descendants, as a sibling of the original.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    func run() throws { try options.write("clone-tree") { try $0.cloneTree(snapshot) } }
}

struct BranchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "branch", abstract: "Make a new child of a snapshot (a copy of it).", aliases: ["add-branch"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The parent snapshot.") var snapshot: Int
    @Argument(parsing: .remaining, help: "A description (default: the parent's).") var description: [String] = []
    func run() throws { try options.write("branch") { try $0.copy(snapshot, parent: snapshot, description: description.joinedOrNil) } }
}

struct CloneBranchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cbranch", abstract: "Copy a snapshot under its own parent (a sibling).", aliases: ["clone-branch"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot to copy.") var snapshot: Int
    func run() throws { try options.write("cbranch") { try $0.cloneBranch(snapshot, description: nil) } }
}

struct CloneUnderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ubranch", abstract: "Copy a snapshot under another parent.", aliases: ["clone-under"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The new parent.") var parent: Int
    @Argument(help: "The snapshot to copy.") var snapshot: Int
    func run() throws { try options.write("ubranch") { try $0.copy(snapshot, parent: parent, description: nil) } }
}

struct NewCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "new", abstract: "Start a new tree from the base snapshot.", aliases: ["new-tree"])
    @OptionGroup var options: TreeOptions
    @Argument(parsing: .remaining, help: "A description.") var description: [String] = []
    func run() throws { try options.write("new") { try $0.newTree(description: description.joinedOrNil) } }
}

struct DeployCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy", abstract: "Make a snapshot boot next.",
        discussion: "The snapshot is copied into the deployment slot that is not running and the boot entries are regenerated: the snapshot first, the running deployment as the fallback.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws { try options.write("deploy") { try $0.deploy(snapshot) } }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Make the previous deployment boot next.")
    @OptionGroup var options: TreeOptions
    func run() throws { try options.write("rollback") { try $0.rollback() } }
}

struct EtcUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "etc-update", abstract: "Save the running /etc into the booted snapshot.", aliases: ["etc"])
    @OptionGroup var options: TreeOptions
    func run() throws { try options.write("etc-update") { try $0.etcUpdate() } }
}

struct EditConfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edit-conf", abstract: "Edit a snapshot's /etc/rast.conf (key::value lines) with $EDITOR.", aliases: ["edit"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws {
        let editor = ProcessInfo.processInfo.environment["EDITOR"].flatMap { $0.isEmpty ? nil : $0 } ?? "vi"
        let status = try options.write("edit-conf") { try $0.editConfig(snapshot, editor: editor) }
        if status != 0 { throw ExitCode(status) }
    }
}

struct TmpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tmp", abstract: "Delete every working copy (left by interrupted commands).", aliases: ["tmpclear"])
    @OptionGroup var options: TreeOptions
    func run() throws { try options.write("tmp") { try $0.clearWorkingCopies() } }
}

struct UnlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unlock", abstract: "Delete the working copy of one snapshot.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws { try options.write("unlock") { try $0.unlock(snapshot) } }
}

struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Regenerate the boot entries from the deployments.", aliases: ["boot-update"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "Accepted for astOS compatibility; the entries always follow the deployments.") var snapshot: Int?
    func run() throws { try options.write("boot") { try $0.updateBootEntries() } }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Compare the tree with the subvolumes on disk.",
        discussion: "Reports snapshots missing on disk, unknown subvolumes, working copies and boot entries that point nowhere. Exits 1 when inconsistent.")
    @OptionGroup var options: TreeOptions
    @Flag(name: .long, help: "Fix what was found: forget dangling entries, adopt orphans, delete strays, regenerate boot entries.")
    var repair = false
    @OptionGroup var format: JSONFlag
    func run() throws {
        let consistent = try options.write("check") { try $0.check(repair: repair, json: format.json) }
        if !consistent { throw ExitCode.failure }
    }
}

extension Array where Element == String {
    var joinedOrNil: String? { isEmpty ? nil : joined(separator: " ") }
}
