import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// Upgrades across a package rename (replaces=), checked against the real pacman: the same
/// snapshot copied aside and upgraded with `pacman -Syu --noconfirm` from the same repository.
@Suite(.serialized) struct ReplacesTests {
    /// `pacman -Syu --noconfirm` on a copy of snapshot `id`'s root: what pacman installs there.
    static func pacmanUpgrade(_ tree: PackageTree, snapshot id: Int) throws -> (installed: [String], pacman: RealPacman) {
        let copy = tree.scratch.appending("pacman-root-\(id)")
        try Command("cp", ["-a", tree.layout.root(id), copy]).run()
        let work = tree.scratch.appending("pacman-work-\(id)")
        try Files.createDirectory(work)
        let pacman = try RealPacman(root: copy, databasePath: copy + "/usr/share/rast/db", scratch: work,
                                    repositories: [(PackageTree.repositoryName, tree.server.baseURL)])
        let upgrade = try pacman.run(["-Syu"], check: false)
        #expect(upgrade.status == 0, "pacman -Syu --noconfirm: \(upgrade.standardOutput)\(upgrade.standardError)")
        return (try pacman.installed(), pacman)
    }

    /// oldlib installed, the repository adds newlib (replaces=oldlib): pacman replaces it, and
    /// so does `rast upgrade N`, saying so; `-Q oldlib` then finds newlib, as pacman -Q does.
    @Test func upgradeReplacesARenamedPackageAsPacmanDoes() throws {
        let tree = try PackageTree(packages: TestPackages.standard + [TestPackages.oldlib])
        defer { tree.close() }
        try tree.commands().install(1, ["oldlib"])
        #expect(try tree.installed(1) == ["base 1.0-1", "oldlib 1.0-1"])
        try tree.publish(TestPackages.newlib)
        let oracle = try Self.pacmanUpgrade(tree, snapshot: 1)
        #expect(oracle.installed == ["base 1.0-1", "newlib 1.0-1"], "pacman replaces oldlib")

        _ = tree.takeOutput()
        try tree.commands().upgrade(1)
        #expect(try tree.installed(1) == oracle.installed)
        #expect(!Files.exists(tree.layout.root(1) + "/usr/lib/oldlib.txt"))
        #expect(Files.exists(tree.layout.root(1) + "/usr/lib/newlib.txt"))
        let output = tree.takeOutput()
        #expect(output.contains("snapshot 1: replace oldlib 1.0-1 with newlib 1.0-1"), "\(output)")
        #expect(try tree.info(1, "newlib").contains("Explicitly installed"), "the replacement keeps the install reason")
        #expect(try tree.check().isConsistent)
    }

    /// app 1.0 needs oldlib; the repository has app 1.1, which needs newlib. Without the
    /// replacement the upgrade is "unresolvable package conflicts"; pacman upgrades, so does
    /// `rast -Syu`, which lists the replacement. Queries by the old name find the provider.
    @Test func upgradeThatNeedsTheRenamedPackageSucceedsAsWithPacman() throws {
        let tree = try PackageTree(packages: TestPackages.standard + [TestPackages.app10, TestPackages.oldlib])
        defer { tree.close() }
        let installed = try RastProgram.run(["--root", tree.top, "-S", "app"])
        #expect(installed.status == 0, "\(installed.everything)")
        #expect(try tree.installed(2) == ["app 1.0-1", "base 1.0-1", "oldlib 1.0-1"])
        try tree.publish(TestPackages.app11, TestPackages.newlib)
        let oracle = try Self.pacmanUpgrade(tree, snapshot: 2)
        #expect(oracle.installed == ["app 1.1-1", "base 1.0-1", "newlib 1.0-1"])

        let upgraded = try RastProgram.run(["--root", tree.top, "-Syu"])
        #expect(upgraded.status == 0, "\(upgraded.everything)")
        #expect(upgraded.standardOutput.contains("snapshot 3: replace oldlib 1.0-1 with newlib 1.0-1"), "\(upgraded.standardOutput)")
        #expect(upgraded.standardOutput.contains("snapshot 3: upgrade app 1.0-1 -> 1.1-1"), "\(upgraded.standardOutput)")
        #expect(try tree.installed(3) == oracle.installed)
        let state = try tree.state()
        #expect(state.next.flatMap { state.slot($0)?.snapshot } == 3, "snapshot 3 boots next")

        // -Q and -Qi by a provided name, compared with pacman's answer on its copy.
        let query = try RastProgram.run(["--root", tree.top, "-Q", "oldlib"])
        let pacmanQuery = try oracle.pacman.run(["-Q", "oldlib"], check: false)
        #expect(query.status == 0 && pacmanQuery.status == 0, "\(query.everything) / \(pacmanQuery.standardError)")
        #expect(query.lines == ["newlib 1.0-1"], "\(query.everything)")
        #expect(query.standardOutput == pacmanQuery.standardOutput)
        let info = try RastProgram.run(["--root", tree.top, "-Qi", "oldlib"])
        #expect(info.standardOutput.contains("Name            : newlib"), "\(info.everything)")
        #expect(info.standardOutput.contains("Replaces        : oldlib"), "\(info.everything)")
        let missing = try RastProgram.run(["--root", tree.top, "-Q", "ghost"])
        #expect(missing.status == 1 && missing.standardError.contains("package 'ghost' was not found in snapshot 3"))
    }

    /// `-Q NAME` and `-Qi NAME` fall back to the installed package that provides NAME, as
    /// pacman's do (`pacman -Qi sh` shows busybox on an image).
    @Test func queriesByAProvidedNameFindTheProvider() throws {
        let tree = try PackageTree(packages: TestPackages.standard + [TestPackages.newlib])
        defer { tree.close() }
        #expect(try RastProgram.run(["--root", tree.top, "-S", "newlib"]).status == 0)
        let work = tree.scratch.appending("pacman-query")
        try Files.createDirectory(work)
        let pacman = try RealPacman(root: tree.layout.root(2), databasePath: tree.layout.root(2) + "/usr/share/rast/db", scratch: work)
        // An unversioned provision does not satisfy `oldlib>=1.0`: pacman finds nothing there.
        for arguments in [["-Q", "oldlib"], ["-Q", "newlib>=1.0"], ["-Q", "oldlib>=1.0"], ["-Q", "newlib"]] {
            let rast = try RastProgram.run(["--root", tree.top] + arguments)
            let expected = try pacman.run(arguments, check: false)
            #expect(rast.status == expected.status, "rast \(arguments): \(rast.everything); pacman: \(expected.standardError)")
            #expect(rast.standardOutput == expected.standardOutput, "rast \(arguments) prints what pacman prints")
        }
        let info = try RastProgram.run(["--root", tree.top, "-Qi", "oldlib"])
        #expect(info.status == 0)
        #expect(info.standardOutput.contains("Name            : newlib"), "\(info.everything)")
        #expect(try pacman.run(["-Qi", "oldlib"]).standardOutput.contains("Name            : newlib"))
    }
}
