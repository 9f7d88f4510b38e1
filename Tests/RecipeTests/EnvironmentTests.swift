import Foundation
import Recipe
import SystemSupport
import Testing
import TestSupport
import TOML

/// `environmentProblems` against real files in a scratch directory.
@Suite struct EnvironmentTests {
    /// A recipe directory with everything the recipe below names, and the recipe's path.
    func makeProject(_ scratch: Scratch) throws -> String {
        let root = scratch.path
        for directory in ["recipes/pkgbuilds/busybox", "recipes/pkgbuilds/rast", "recipes/overlay/etc", "kernel-profiles", "src"] {
            try Files.createDirectory(root + "/" + directory)
        }
        try Files.write(root + "/recipes/pkgbuilds/busybox/PKGBUILD", string: "pkgname=busybox\n")
        try Files.write(root + "/recipes/pkgbuilds/rast/PKGBUILD", string: "pkgname=rast\n")
        try Files.write(root + "/recipes/overlay/etc/motd", string: "hello\n")
        try Files.write(root + "/recipes/extra.config", string: "CONFIG_X=y\n")
        try Files.write(root + "/kernel-profiles/base.config", string: "CONFIG_64BIT=y\n")
        try Files.write(root + "/kernel-profiles/container.config", string: "CONFIG_NAMESPACES=y\n")
        try Files.write(root + "/src/linux.tar.xz", string: "not really a tarball\n")
        let recipe = root + "/recipes/env.toml"
        try Files.write(recipe, string: """
            name = "env"
            [kernel]
            source = "../src/linux.tar.xz"
            profile = "container"
            fragments = ["extra.config"]
            [packages]
            local = ["pkgbuilds/busybox", "pkgbuilds/rast"]
            install = ["busybox", "rast"]
            [[files]]
            source = "overlay/etc/motd"
            destination = "/etc/motd"

            """)
        return recipe
    }

    @Test func everythingPresentIsOK() throws {
        let scratch = try Scratch()
        let path = try makeProject(scratch)
        let recipe = try Recipe.load(path: path)
        #expect(recipe.findProfilesDirectory() == scratch.path + "/kernel-profiles")
        #expect(recipe.environmentProblems(profilesDirectory: recipe.findProfilesDirectory()).isEmpty)
        try recipe.validateEnvironment(profilesDirectory: scratch.path + "/kernel-profiles")
    }

    @Test func missingThingsAreReportedAtTheKeysThatNameThem() throws {
        let scratch = try Scratch()
        let path = try makeProject(scratch)
        try Files.removeTree(scratch.path + "/src")
        try Files.removeTree(scratch.path + "/recipes/pkgbuilds/rast/PKGBUILD")
        try Files.removeTree(scratch.path + "/recipes/pkgbuilds/busybox")
        try Files.removeTree(scratch.path + "/recipes/overlay")
        try Files.removeTree(scratch.path + "/recipes/extra.config")
        try Files.removeTree(scratch.path + "/kernel-profiles/container.config")
        let recipe = try Recipe.load(path: path)
        let problems = recipe.environmentProblems(profilesDirectory: scratch.path + "/kernel-profiles")
        let root = scratch.path
        #expect(problems.map { "\($0.position.line):\($0.position.column) \($0.keyPath): \($0.message)" } == [
            "3:10 kernel.source: \(root)/src/linux.tar.xz does not exist (for Debian's kernel source: apt-get install linux-source-6.1)",
            "4:11 kernel.profile: kernel profile 'container' does not exist: no \(root)/kernel-profiles/container.config (available: base)",
            "5:14 kernel.fragments[0]: config fragment \(root)/recipes/extra.config does not exist",
            "7:10 packages.local[0]: PKGBUILD directory \(root)/recipes/pkgbuilds/busybox does not exist",
            "7:31 packages.local[1]: \(root)/recipes/pkgbuilds/rast has no PKGBUILD",
            "10:10 files[0].source: \(root)/recipes/overlay/etc/motd does not exist",
        ])
        #expect(problems.allSatisfy { $0.position.file == path })
        #expect(throws: RecipeErrors.self) { try recipe.validateEnvironment(profilesDirectory: root + "/kernel-profiles") }
    }

    /// A disk larger than the output's filesystem can hold as a file (ext4: 16 TiB) is refused
    /// at disk.size's line and column, before the build would fail in truncate.
    @Test func aDiskTheOutputCannotHoldIsRefusedAtDiskSize() throws {
        try Require.loopDevices()
        try Require.programs("mkfs.ext4")
        let scratch = try Scratch()
        let path = try makeProject(scratch)
        // The output on an ext4 filesystem, whatever the machine's own filesystems are.
        let image = scratch.appending("ext4.img")
        try Command("truncate", ["-s", "32M", image]).run()
        try Command("mkfs.ext4", ["-q", "-F", "-b", "4096", image]).run()
        let output = scratch.appending("out")
        try Files.createDirectory(output)
        let loop = try LoopDevice(file: image)
        defer { loop.detach() }
        try Mounts.mount(loop.path, on: output, type: "ext4")
        defer { try? Mounts.unmount(output) }

        let text = try Files.readString(path)
        for (size, refused) in [("999999T", true), ("16T", true), ("15T", false), ("2G", false)] {
            try Files.write(path, string: text + "[disk]\nsize = \"\(size)\"\n[output]\ndirectory = \"\(output)/images\"\n")
            let recipe = try Recipe.load(path: path)
            let problems = recipe.environmentProblems(profilesDirectory: scratch.path + "/kernel-profiles")
            if refused {
                #expect(problems.map { "\($0.position.line):\($0.position.column) \($0.keyPath)" } == ["13:8 disk.size"], "\(size): \(problems)")
                #expect(problems.first?.message.contains("cannot be written to \(output)/images: the filesystem holding it cannot hold a file that large") == true,
                        "\(problems.first?.message ?? "")")
            } else {
                #expect(problems.isEmpty, "\(size): \(problems)")
            }
        }
        #expect(try FileManagerShim.contents(of: output).filter { $0.hasPrefix(".rast") }.isEmpty, "the check leaves nothing behind")
    }

    @Test func noProfilesDirectory() throws {
        let scratch = try Scratch()
        let path = try makeProject(scratch)
        let recipe = try Recipe.load(path: path)
        let problems = recipe.environmentProblems(profilesDirectory: nil)
        #expect(problems.count == 1)
        #expect(problems.first?.keyPath == "kernel.profile")
        #expect(problems.first?.message.hasPrefix("no kernel-profiles directory found (looked in \(scratch.path)/kernel-profiles, ") == true)
    }

    @Test func theHashIsTheSHA256OfTheFile() throws {
        let scratch = try Scratch()
        let path = try makeProject(scratch)
        let recipe = try Recipe.load(path: path)
        // Checked against coreutils' implementation.
        let expected = try Command("sha256sum", [path]).output().split(separator: " ").first.map(String.init)
        #expect(recipe.recipeHash == expected)
    }

    @Test func anUnreadableRecipeIsASystemError() {
        #expect(throws: SystemError.self) { try Recipe.load(path: "/nonexistent/recipe.toml") }
    }
}
