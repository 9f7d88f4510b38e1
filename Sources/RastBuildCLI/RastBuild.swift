import ArgumentParser
import CommandLineSupport
import SystemSupport

/// `rast-build`: from a TOML recipe to bootable, boot-tested disk images.
package struct RastBuild: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "rast-build",
        abstract: "Build bootable rastOS disk images from a TOML recipe.",
        discussion: """
            `rast-build RECIPE.toml` runs every stage: kernel, local packages, root filesystem, \
            configuration, disk, boot loader, outputs and the QEMU boot test. The subcommands run \
            one stage or one tool on its own. The recipe format is described in docs/recipe.md.
            """,
        version: RastVersion.string,
        subcommands: [Build.self, Validate.self, Plan.self, KernelCommand.self, BootCommand.self, VMCommand.self, SSHCommand.self, Convert.self],
        defaultSubcommand: Build.self)

    package init() {}
}

package enum RastBuildMain {
    package static func run() -> Never {
        EntryPoint.run(RastBuild.self, programName: "rast-build")
    }
}
