import ArgumentParser
import CommandLineSupport
import SystemSupport

/// `rast`: the snapshot tree and its packages on a rastOS system.
public struct Rast: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rast",
        abstract: "Manage the btrfs snapshot tree and the packages of a rastOS system.",
        discussion: """
            Every snapshot is a read-only btrfs subvolume; changes happen in a writable copy that \
            replaces the snapshot only when it is complete. `rast deploy N` makes snapshot N boot \
            next; `rast rollback` returns to the previous deployment.
            """,
        version: RastVersion.string,
        subcommands: [
            TreeCommand.self, CurrentCommand.self, StatusCommand.self, DescCommand.self, DelCommand.self,
            ChrootCommand.self, LiveChrootCommand.self, RunCommand.self, TreeRunCommand.self,
            CloneCommand.self, CloneTreeCommand.self, BranchCommand.self, CloneBranchCommand.self, CloneUnderCommand.self,
            NewCommand.self, DeployCommand.self, RollbackCommand.self, EtcUpdateCommand.self, EditConfCommand.self,
            TmpCommand.self, UnlockCommand.self, BootCommand.self, CheckCommand.self,
        ])

    public init() {}
}

public enum RastMain {
    public static func run() -> Never {
        EntryPoint.run(Rast.self, programName: "rast")
    }
}
