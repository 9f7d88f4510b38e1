import ArgumentParser
import CommandLineSupport
import SystemSupport

/// `rast-install`: writes a built image to a disk and personalises it.
public struct RastInstall: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rast-install",
        abstract: "Write a built rastOS image (raw or QCOW2) to a disk and personalise it.",
        version: RastVersion.string,
        subcommands: [])

    public init() {}
}

public enum RastInstallMain {
    public static func run() -> Never {
        EntryPoint.run(RastInstall.self, programName: "rast-install")
    }
}
