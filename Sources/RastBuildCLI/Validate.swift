import ArgumentParser
import CommandLineSupport
import Recipe
import SystemSupport

/// `rast-build validate RECIPE`: every problem of a recipe, one per line, or "ok".
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a recipe and report every problem with its file, line, column and key.",
        discussion: """
            Reads RECIPE, checks its syntax (TOML), every key and value against the recipe \
            format (docs/recipe.md), and then the files it names: the kernel source, config \
            fragments, kernel profiles, PKGBUILD directories and file overlays.

            Prints "RECIPE: ok" and a one-line summary, or every problem found, one per line \
            as FILE:LINE:COLUMN: error: KEY: MESSAGE, sorted by position, and exits with 1.
            """)

    @Argument(help: ArgumentHelp("The recipe file to check.", valueName: "recipe"))
    var recipe: String

    @Option(name: .customLong("profiles"),
            help: ArgumentHelp("Directory of kernel profiles (NAME.config). Default: kernel-profiles beside the recipe's folder, inside it, in the current directory, or /usr/share/rast/kernel-profiles.",
                               valueName: "directory"))
    var profilesDirectory: String?

    @Flag(help: "Check only the recipe itself, not the files and profiles it names.")
    var textOnly = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let loaded = try RecipeLoading.load(recipe)
        if !textOnly {
            let problems = loaded.environmentProblems(profilesDirectory: profilesDirectory ?? loaded.findProfilesDirectory())
            if !problems.isEmpty {
                RecipeLoading.report(problems)
                throw ExitCode.failure
            }
        }
        print("\(recipe): ok (\(RecipeLoading.summary(loaded)))")
    }
}

/// Loading a recipe for a command: problems are printed one per line and end the command.
enum RecipeLoading {
    static func load(_ path: String) throws -> Recipe {
        do {
            return try Recipe.load(path: path)
        } catch let errors as RecipeErrors {
            report(errors.errors)
            throw ExitCode.failure
        } catch let error as SystemError {
            throw UserError("cannot read recipe \(path): \(error)", cause: error)
        }
    }

    static func report(_ errors: [RecipeError]) {
        for error in errors { EntryPoint.printError(error.description) }
        EntryPoint.printError(errors.count == 1 ? "1 problem found" : "\(errors.count) problems found")
    }

    /// "minimal: kernel linux-rast-base from source, 4 packages, 1 user, 2 snapshots, 2 GiB disk, grub for bios+uefi, raw+qcow2".
    static func summary(_ recipe: Recipe) -> String {
        var parts: [String] = []
        if let kernel = recipe.kernel {
            switch kernel.source {
            case .packaged(let name): parts.append("packaged kernel \(name)")
            case .local: parts.append("kernel \(kernel.package) built from a local source")
            case .https: parts.append("kernel \(kernel.package) built from a download")
            case .git: parts.append("kernel \(kernel.package) built from git")
            }
        } else {
            parts.append("no kernel")
        }
        let install = recipe.packagesToInstall.count
        parts.append(install == 1 ? "1 package" : "\(install) packages")
        parts.append(recipe.users.count == 1 ? "1 user" : "\(recipe.users.count) users")
        parts.append(recipe.snapshots.tree.count == 1 ? "1 snapshot" : "\(recipe.snapshots.tree.count) snapshots")
        parts.append("\(Recipe.describeSize(recipe.disk.size)) disk")
        parts.append("\(recipe.disk.bootloader.rawValue) for \(recipe.disk.firmware.map(\.rawValue).joined(separator: "+"))")
        parts.append(recipe.output.formats.map(\.rawValue).joined(separator: "+"))
        return "\(recipe.name): " + parts.joined(separator: ", ")
    }
}
