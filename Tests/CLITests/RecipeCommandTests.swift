import CommandLineSupport
import Foundation
import RastBuildCLI
import SystemSupport
import Testing
import TestSupport

/// `rast-build validate` and `rast-build plan`, run as the built binary (to see its output
/// and exit status) and in-process through `EntryPoint.execute`.
@Suite struct RecipeCommandTests {
    static let root: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
    static let fixtures = root + "/Tests/RecipeTests/Fixtures/broken"
    static let brokenFixtures: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixtures)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.sorted()
    }()
    static let examples = ["minimal.toml", "container.toml", "arch.toml", "limine.toml"]

    /// Runs the built `rast-build` in the package root.
    func rastBuild(_ arguments: String...) throws -> CommandResult {
        let binary = RecipeCommandTests.root + "/.build/debug/rast-build"
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        return try Command(binary, arguments, workingDirectory: RecipeCommandTests.root).run(check: false)
    }

    @Test func thereAreBrokenFixtures() {
        #expect(RecipeCommandTests.brokenFixtures.count >= 10)
    }

    @Test(arguments: brokenFixtures)
    func validateRejectsBrokenRecipes(_ name: String) throws {
        let path = "Tests/RecipeTests/Fixtures/broken/\(name)"
        let result = try rastBuild("validate", path)
        #expect(result.status == 1)
        #expect(result.standardOutput.isEmpty)
        let lines = result.standardError.split(separator: "\n").map(String.init)
        let problems = lines.filter { $0.hasPrefix(path + ":") }
        #expect(!problems.isEmpty, "\(result.standardError)")
        // Every problem line is FILE:LINE:COLUMN: error: KEY: MESSAGE.
        for line in problems {
            let fields = line.dropFirst(path.count + 1).split(separator: ":", maxSplits: 3)
            #expect(fields.count == 4, "\(line)")
            #expect(Int(fields[0]) != nil && Int(fields[1]) != nil, "\(line)")
            #expect(fields.count > 2 && fields[2] == " error", "\(line)")
        }
        #expect(lines.last == (problems.count == 1 ? "1 problem found" : "\(problems.count) problems found"))
        // In-process, the same recipe fails the same way.
        #expect(EntryPoint.execute(RastBuild.self, programName: "rast-build", arguments: ["validate", "--text-only", RecipeCommandTests.fixtures + "/" + name]) == 1)
    }

    @Test func validateNamesPositionKeyAndMessage() throws {
        let result = try rastBuild("validate", "Tests/RecipeTests/Fixtures/broken/bad-size.toml")
        #expect(result.standardError == """
            Tests/RecipeTests/Fixtures/broken/bad-size.toml:7:8: error: disk.size: '2X' is not a size: use bytes or a number with K, M, G or T
            1 problem found

            """)
    }

    @Test(arguments: examples)
    func validateAcceptsTheExampleRecipeTexts(_ name: String) throws {
        let result = try rastBuild("validate", "--text-only", "recipes/\(name)")
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.hasPrefix("recipes/\(name): ok ("), "\(result.standardOutput)")
        #expect(result.standardError.isEmpty)
        #expect(EntryPoint.execute(RastBuild.self, programName: "rast-build", arguments: ["validate", "--text-only", "\(RecipeCommandTests.root)/recipes/\(name)"]) == 0)
    }

    @Test func validateChecksTheFilesARecipeNames() throws {
        let scratch = try Scratch()
        try Files.createDirectory(scratch.appending("kernel-profiles"))
        try Files.write(scratch.appending("kernel-profiles/base.config"), string: "CONFIG_64BIT=y\n")
        try Files.write(scratch.appending("linux.tar.xz"), string: "x")
        try Files.write(scratch.appending("good.toml"), string: """
            name = "good"
            [kernel]
            source = "linux.tar.xz"
            [packages]
            install = ["busybox"]

            """)
        try Files.write(scratch.appending("bad.toml"), string: """
            name = "bad"
            [kernel]
            source = "missing.tar.xz"
            [packages]
            local = ["pkgbuilds/none"]
            install = ["busybox"]

            """)
        let good = try rastBuild("validate", "--profiles", scratch.appending("kernel-profiles"), scratch.appending("good.toml"))
        #expect(good.status == 0, "\(good.standardError)")
        #expect(good.standardOutput == "\(scratch.appending("good.toml")): ok (good: kernel linux-rast-base built from a local source, 2 packages, 0 users, 0 snapshots, 2 GiB disk, grub for bios+uefi, raw+qcow2)\n")
        let bad = try rastBuild("validate", "--profiles", scratch.appending("kernel-profiles"), scratch.appending("bad.toml"))
        #expect(bad.status == 1)
        #expect(bad.standardError == """
            \(scratch.appending("bad.toml")):3:10: error: kernel.source: \(scratch.appending("missing.tar.xz")) does not exist (for Debian's kernel source: apt-get install linux-source-6.1)
            \(scratch.appending("bad.toml")):5:10: error: packages.local[0]: PKGBUILD directory \(scratch.appending("pkgbuilds/none")) does not exist
            2 problems found

            """)
        // --text-only skips those checks.
        #expect(try rastBuild("validate", "--text-only", scratch.appending("bad.toml")).status == 0)
    }

    @Test func planPrintsEveryStage() throws {
        let result = try rastBuild("plan", "recipes/minimal.toml")
        #expect(result.status == 0, "\(result.standardError)")
        let stages = result.standardOutput.split(separator: "\n").filter { $0.first?.isNumber == true }
        #expect(stages.map { String($0.split(separator: " ")[1]) } == ["kernel", "packages", "disk", "rootfs", "configure", "boot", "outputs", "boot"])
        #expect(result.standardOutput.hasPrefix("Plan for minimal (recipes/minimal.toml, sha256 "))
        #expect(result.standardOutput.contains("1. kernel       build linux-rast-base from /usr/src/linux-source-6.1.tar.xz with profile base (cached by source + config + compiler)\n"))
        #expect(result.standardOutput.contains("                - PKGBUILD \(RecipeCommandTests.root)/recipes/pkgbuilds/busybox\n"))
        let broken = try rastBuild("plan", "Tests/RecipeTests/Fixtures/broken/disk-too-small.toml")
        #expect(broken.status == 1)
        #expect(broken.standardOutput.isEmpty)
        #expect(broken.standardError.hasPrefix("Tests/RecipeTests/Fixtures/broken/disk-too-small.toml:7:8: error: disk.size: a disk of 256 MiB is too small"))
    }

    @Test func missingArgumentsAndFilesAreUsageErrors() throws {
        for command in ["validate", "plan"] {
            let result = try rastBuild(command)
            #expect(result.status == 64)
            #expect(result.standardError.contains("Missing expected argument '<recipe>'"), "\(result.standardError)")
            #expect(result.standardError.contains("Usage: rast-build \(command)"), "\(result.standardError)")
        }
        let missing = try rastBuild("validate", "no/such/recipe.toml")
        #expect(missing.status == 1)
        #expect(missing.standardError == "rast-build: error: cannot read recipe no/such/recipe.toml: open no/such/recipe.toml: No such file or directory\n")
    }

    @Test func helpExplainsTheCommands() throws {
        let help = try rastBuild("validate", "--help")
        #expect(help.status == 0)
        #expect(help.standardOutput.contains("FILE:LINE:COLUMN: error: KEY: MESSAGE"))
        #expect(help.standardOutput.contains("--text-only"))
        #expect(help.standardOutput.contains("--profiles <directory>"))
        let plan = try rastBuild("plan", "--help")
        let planText = plan.standardOutput.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(planText.contains("kernel, packages, rootfs, configure, disk, boot loader, outputs, boot test"))
        let root = try rastBuild("--help")
        #expect(root.standardOutput.contains("validate"))
        #expect(root.standardOutput.contains("plan"))
    }
}
