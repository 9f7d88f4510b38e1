import ArgumentParser
import CommandLineSupport
import SystemSupport

/// `rast`: the snapshot tree and its packages on a rastOS system.
package struct Rast: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "rast",
        abstract: "Manage the btrfs snapshot tree and the packages of a rastOS system.",
        discussion: """
            Every snapshot is a read-only btrfs subvolume; changes happen in a writable copy that \
            replaces the snapshot only when it is complete. `rast deploy N` makes snapshot N boot \
            next; `rast rollback` returns to the previous deployment. pacman-style flags act on the \
            booted snapshot the safe way: `rast -S PKG` installs into a new snapshot and deploys it; \
            `rast -Syu`, `-R`, `-Rns`, and the queries `-Q`, `-Qi`, `-Qs`, `-Qdt`, `-Ss`, `-Si` work too.
            """,
        version: RastVersion.string,
        subcommands: [
            TreeCommand.self, CurrentCommand.self, StatusCommand.self, DescCommand.self, DelCommand.self,
            ChrootCommand.self, LiveChrootCommand.self, RunCommand.self, TreeRunCommand.self,
            CloneCommand.self, CloneTreeCommand.self, BranchCommand.self, CloneBranchCommand.self, CloneUnderCommand.self,
            NewCommand.self, DeployCommand.self, RollbackCommand.self, EtcUpdateCommand.self, EditConfCommand.self,
            TmpCommand.self, UnlockCommand.self, BootCommand.self, CheckCommand.self,
            InstallCommand.self, RemoveCommand.self, UpgradeCommand.self, TreeUpgradeCommand.self, SyncCommand.self,
            ForceSyncCommand.self, TreeRemoveCommand.self, RefreshCommand.self, BaseUpdateCommand.self, DiffCommand.self,
            PkgCommand.self, PacmanCommand.self, ServiceCommand.self,
            SearchCommand.self, AskCommand.self,
            BackupCommand.self, RestoreCommand.self, ContainerCommand.self,
            VMCommand.self,
        ])

    package init() {}
}

package enum RastMain {
    package static func run() -> Never {
        // pacman-style flags (rast -S, -Syu, -R, -Q, ...) become the hidden `pacman` subcommand.
        EntryPoint.run(Rast.self, programName: "rast", arguments: PacmanFlags.rewrite(AskCommand.rewrite(Array(CommandLine.arguments.dropFirst()))))
    }

    /// One invocation, as `rast ARGUMENTS` would run it; returns the exit status (for tests).
    package static func execute(_ arguments: [String]) -> Int32 {
        EntryPoint.execute(Rast.self, programName: "rast", arguments: PacmanFlags.rewrite(AskCommand.rewrite(arguments)))
    }
}
