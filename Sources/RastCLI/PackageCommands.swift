import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import SystemSupport

// astOS's package commands, pacman-style flags (`rast -S`, rewritten into `rast pacman`) and
// the `rast pkg` group.

extension TreeOptions {
    /// `write` with a `PackageCommands` whose progress goes to the terminal.
    @discardableResult
    func packages<T>(_ command: String, _ body: (PackageCommands) throws -> T) throws -> T {
        try write(command) { host in try body(PackageCommands(host: host)) }
    }

    @discardableResult
    func readPackages<T>(_ body: (PackageCommands) throws -> T) throws -> T {
        try read { host in try body(PackageCommands(host: host)) }
    }

    /// A pacman-style change (`rast -Syu`), named by its command line while it holds the lock.
    /// Returns whether it found its targets.
    @discardableResult
    func pacman(_ operation: PacmanOperation) throws -> Bool {
        try packages(String(operation.commandLine.dropFirst("rast ".count))) { try $0.pacman(operation) }
    }
}

struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install", abstract: "Install packages into a snapshot.",
        discussion: """
            The packages (with their dependencies) go into a working copy of the snapshot, which \
            replaces it only when the transaction succeeded. When the snapshot is the booted one, \
            they are also installed into the running system, unless --not-live. Packages no \
            repository has are built from the AUR when the snapshot's /etc/rast.conf says aur::True.
            """,
        aliases: ["in"])
    @OptionGroup var options: TreeOptions
    @Flag(name: .customLong("not-live"), help: "Do not install into the running system as well.") var notLive = false
    @Argument(help: "The snapshot.") var snapshot: Int
    @Argument(help: "The packages.") var packages: [String] = []
    func validate() throws {
        if packages.isEmpty { throw ValidationError("Name the packages to install after the snapshot number.") }
    }
    func run() throws { try options.packages("install") { try $0.install(snapshot, packages, live: !notLive) } }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Remove packages from a snapshot (pacman -Rns).",
        discussion: "Refused while other packages need them; dependencies nothing else needs go too.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    @Argument(help: "The packages.") var packages: [String] = []
    func validate() throws {
        if packages.isEmpty { throw ValidationError("Name the packages to remove after the snapshot number.") }
    }
    func run() throws { try options.packages("remove") { try $0.remove(snapshot, packages) } }
}

struct UpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade", abstract: "Upgrade every package of a snapshot (pacman -Syyu).", aliases: ["up"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws { try options.packages("upgrade") { try $0.upgrade(snapshot) } }
}

struct TreeUpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-upgrade", abstract: "Upgrade a snapshot and all its descendants.", aliases: ["tupgrade"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    func run() throws { try options.packages("tree-upgrade") { try $0.treeUpgrade(snapshot) } }
}

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync", abstract: "Upgrade a subtree, then give every child the packages its parent has.",
        discussion: """
            Parents first, each child gets, through libalpm, the packages its parent has and it \
            lacks, at the parent's versions and with the parent's install reasons. Nothing is \
            removed or overwritten. A booted child gets them live too, unless --not-live.
            """,
        aliases: ["tree-sync"])
    @OptionGroup var options: TreeOptions
    @Flag(name: .customLong("not-live"), help: "Do not change the running system.") var notLive = false
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    func run() throws { try options.packages("sync") { try $0.sync(snapshot, upgrade: true, live: !notLive) } }
}

struct ForceSyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "force-sync", abstract: "Give every child of a subtree its parent's packages, without upgrading first.",
        aliases: ["fsync"])
    @OptionGroup var options: TreeOptions
    @Flag(name: .customLong("not-live"), help: "Do not change the running system.") var notLive = false
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    func run() throws { try options.packages("force-sync") { try $0.sync(snapshot, upgrade: false, live: !notLive) } }
}

struct TreeRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-rmpkg", abstract: "Remove packages from a snapshot and all its descendants.", aliases: ["tremove"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot at the top of the subtree.") var snapshot: Int
    @Argument(help: "The packages.") var packages: [String] = []
    func validate() throws {
        if packages.isEmpty { throw ValidationError("Name the packages to remove after the snapshot number.") }
    }
    func run() throws { try options.packages("tree-rmpkg") { try $0.treeRemove(snapshot, packages) } }
}

struct RefreshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refresh", abstract: "Download a snapshot's repository databases anew (pacman -Syy).", aliases: ["ref"])
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot.") var snapshot: Int
    func run() throws { try options.packages("refresh") { try $0.refresh(snapshot) } }
}

struct BaseUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base-update", abstract: "Upgrade the base snapshot 0 (the only command that changes it).", aliases: ["bu"])
    @OptionGroup var options: TreeOptions
    func run() throws { try options.packages("base-update") { try $0.baseUpdate() } }
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Show the package differences between two snapshots.",
        discussion: "- only in the first, + only in the second, ~ different versions.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The first snapshot.") var first: Int
    @Argument(help: "The second snapshot.") var second: Int
    func run() throws { try options.readPackages { try $0.diff(first, second) } }
}

/// `rast -S ...`, `rast -R ...`, `rast -Q ...` arrive here, rewritten by `PacmanFlags`.
struct PacmanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pacman", abstract: "pacman-style operations on the booted snapshot (rast -S, -Syu, -Ss, -Si, -R, -Rns, -Q, -Qi, -Qs, -Qdt).",
        discussion: """
            A change makes a new snapshot from the booted one, runs the transaction there and \
            deploys it only when the transaction succeeded; the booted snapshot stays as the \
            rollback. Queries change nothing and need no root when the database is readable.
            """,
        shouldDisplay: false)
    @OptionGroup var options: TreeOptions
    @Option(name: .customLong("operation"), help: ArgumentHelp("The operation and its letters (Syu, Rns, Qi, ...).", valueName: "LETTERS"))
    var operation: String
    @Flag(name: .customLong("needed"), help: "Do not reinstall targets that are up to date.") var needed = false
    @Flag(name: .customLong("noconfirm"), help: "Accepted for pacman compatibility; rast never asks.") var noConfirm = false
    @Argument(help: "Packages or search terms.") var targets: [String] = []

    func parsed() throws -> PacmanOperation {
        try PacmanOperation("-" + operation, targets: targets, needed: needed)
    }

    func run() throws {
        let operation = try parsed()
        let found = operation.isQuery
            ? try options.readPackages { try $0.pacman(operation) }
            : try options.pacman(operation)
        if !found { throw ExitCode.failure }
    }
}

/// Turns pacman-style invocations into the `pacman` subcommand, and lets the common options
/// come before a subcommand's name.
package enum PacmanFlags {
    /// `rast -Syu hello --root X` becomes `rast pacman --operation Syu hello --root X`. Only a
    /// leading operation (after options such as --root) counts, so subcommands are untouched;
    /// separate modifier letters (`-Q -i`) are merged. `rast --root X branch 1` becomes
    /// `rast branch --root X 1`, as every subcommand takes those options after its name.
    package static func rewrite(_ arguments: [String]) -> [String] {
        let rewritten = rewriteOperation(arguments)
        return rewritten == arguments ? moveLeadingOptions(arguments) : rewritten
    }

    /// Options before the subcommand name go right after it. `--help`, `--version` and
    /// ArgumentParser's own options (completion scripts and what they call, the help dump)
    /// stay where they are: they belong to `rast` itself.
    static func moveLeadingOptions(_ arguments: [String]) -> [String] {
        var index = 0
        while index < arguments.count, arguments[index].hasPrefix("-") {
            let argument = arguments[index]
            if ["-h", "--help", "--version", "--"].contains(argument) { return arguments }
            if argument.hasPrefix("--generate-completion-script") || argument == "---completion"
                || argument == "--experimental-dump-help" { return arguments }
            index += argument == "--root" ? 2 : 1
        }
        guard index > 0, index < arguments.count else { return arguments }
        return [arguments[index]] + arguments[..<index] + arguments[(index + 1)...]
    }

    static func rewriteOperation(_ arguments: [String]) -> [String] {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if let kind = operationKind(argument) {
                var letters = String(argument.dropFirst())
                var rest: [String] = []
                for other in arguments[(index + 1)...] {
                    if other.count >= 2, other.hasPrefix("-"), !other.hasPrefix("--"),
                       other.dropFirst().allSatisfy({ (PacmanOperation.allowedModifiers(kind) ?? "").contains($0) }) {
                        letters += other.dropFirst()
                    } else {
                        rest.append(other)
                    }
                }
                return ["pacman", "--operation", letters] + Array(arguments[..<index]) + rest
            }
            if argument == "--root" {
                index += 2
            } else if argument.hasPrefix("-") {
                index += 1
            } else {
                return arguments
            }
        }
        return arguments
    }

    static func operationKind(_ argument: String) -> PacmanOperation.Kind? {
        guard argument.count >= 2, argument.hasPrefix("-"), !argument.hasPrefix("--") else { return nil }
        return PacmanOperation.Kind(rawValue: argument[argument.index(after: argument.startIndex)])
    }
}

struct PkgCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pkg", abstract: "Package maintenance on the booted snapshot.",
        subcommands: [PkgInstallCommand.self, PkgUpdateCommand.self, PkgCleanCommand.self, PkgFixKeysCommand.self,
                      PkgBootstrapCommand.self])
}

struct PkgInstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install", abstract: "Install packages into a new snapshot from the booted one and deploy it (rast -S).")
    @OptionGroup var options: TreeOptions
    @Flag(name: .customLong("check-conflicts"), help: "Only check: run the transaction in a throw-away copy and report dependency, package and file conflicts; nothing changes.")
    var checkConflicts = false
    @Argument(help: "The packages.") var packages: [String] = []
    func validate() throws {
        if packages.isEmpty { throw ValidationError("Name the packages to install.") }
    }
    func run() throws {
        if checkConflicts {
            try options.packages("pkg install") { try $0.checkInstall(packages) }
        } else {
            try options.pacman(try PacmanOperation("-S", targets: packages))
        }
    }
}

struct PkgUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Upgrade every package in a new snapshot from the booted one and deploy it (rast -Syu).")
    @OptionGroup var options: TreeOptions
    @Flag(name: .long, help: "Only print what would change; write nothing.") var test = false
    func run() throws {
        if test {
            try options.packages("pkg update --test") { try $0.updateTest() }
        } else {
            try options.pacman(try PacmanOperation("-Syu", targets: []))
        }
    }
}

struct PkgCleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean", abstract: "Remove what is no longer needed, in a new snapshot that is deployed.")
    @OptionGroup var options: TreeOptions
    @Flag(name: .customLong("unused-deps"), help: "Remove dependencies nothing needs any more (pacman -Rns $(pacman -Qdtq)).")
    var unusedDependencies = false
    func validate() throws {
        if !unusedDependencies { throw ValidationError("Say what to clean: --unused-deps.") }
    }
    func run() throws { try options.packages("pkg clean") { try $0.cleanUnusedDependencies() } }
}

struct PkgFixKeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fix-keys", abstract: "Make a snapshot's pacman keyring anew (pacman-key --init; pacman-key --populate).",
        discussion: "The keys come from the snapshot's /usr/share/pacman/keyrings (the keyring packages it has installed).")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The snapshot (default: the booted one).") var snapshot: Int?
    func run() throws { try options.packages("pkg fix-keys") { try $0.fixKeys(snapshot) } }
}

struct PkgBootstrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap", abstract: "Install packages into a plain directory, outside any snapshot tree (what pacstrap does).")
    @Option(name: .long, help: ArgumentHelp("The pacman.conf naming the repositories.", valueName: "FILE")) var config: String
    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Where downloaded packages go (default: inside the root).", valueName: "DIR"))
    var cacheDirectory: String?
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The directory to install into.") var root: String
    @Argument(help: "The packages.") var packages: [String] = []
    func validate() throws {
        if packages.isEmpty { throw ValidationError("Name the packages to install after the directory.") }
    }
    func run() throws {
        try PackageCommands.bootstrap(root: root, packages: packages, configFile: config, cacheDirectory: cacheDirectory,
                                      progress: TerminalProgress(), output: { print($0) })
    }
}
