import Alpm
import Foundation
@testable import HostCommands
import Packages
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// astOS's package commands on a real btrfs tree with a makepkg-built repository over HTTP.
@Suite(.serialized) struct PackageCommandTests {
    @Test func installPullsDependenciesIntoTheSnapshotAndNothingElse() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let base = try tree.identity(0)
        #expect(try tree.installed(0) == ["base 1.0-1"])
        try tree.commands().install(1, ["hello"])
        #expect(try tree.installed(1) == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"])
        #expect(try tree.info(1, "libhello").contains("Installed as a dependency for another package"))
        #expect(try tree.info(1, "hello").contains("Explicitly installed"))
        #expect(Files.exists(tree.layout.root(1) + "/usr/bin/hello"))
        #expect(try Files.readString(tree.layout.etc(1) + "/hello.conf") == "greeting = hello\n", "etc-1 has the package's /etc")
        #expect(Files.exists(tree.layout.variable + "/cache/pacman/pkg/" + TestPackages.hello.packageFileName), "downloads go to the shared cache")
        #expect(try tree.identity(0) == base)
        #expect(try tree.installed(0) == ["base 1.0-1"])
        #expect(try tree.workingCopies().isEmpty)
        #expect(try tree.check().isConsistent)
        #expect(tree.takeOutput().contains("snapshot 1: install hello 1.0-1"))
        // The running deployment is not the snapshot: nothing is installed live on an image.
        #expect(!Files.exists(tree.layout.root("tmp") + "/usr/bin/hello"))
    }

    @Test func conflictMissingDependencyFileConflictAndDownloadErrorLeaveTheSnapshotUnchanged() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        let before = try tree.identity(1)
        let packages = try tree.installed(1)
        func attempt(_ names: [String], sourceLocation: SourceLocation = #_sourceLocation) -> String {
            do {
                try tree.commands().install(1, names)
                Issue.record("installing \(names) must fail", sourceLocation: sourceLocation)
                return ""
            } catch {
                return "\(error)"
            }
        }
        let conflict = attempt(["clash"])
        #expect(conflict.contains("clash conflicts with hello"), "\(conflict)")
        #expect(conflict.contains("snapshot 1 is unchanged"), "\(conflict)")
        let missing = attempt(["needy"])
        #expect(missing.contains("needy requires ghost"), "\(missing)")
        let files = attempt(["filethief"])
        #expect(files.contains("filethief: /usr/bin/hello exists in filesystem (owned by hello)"), "\(files)")
        tree.server.setBehavior(.status(500), for: "/" + TestPackages.failing.packageFileName)
        let download = attempt(["failing"])
        #expect(download.contains(TestPackages.failing.packageFileName), "\(download)")
        #expect(download.contains("500") || download.contains("failed retrieving file"), "\(download)")
        print("packages: refusals:\n\(conflict)\n\(missing)\n\(files)\n\(download)")
        #expect(try tree.identity(1) == before, "snapshot 1 was not replaced")
        #expect(try tree.installed(1) == packages)
        #expect(try tree.workingCopies().isEmpty)
        #expect(try tree.check().isConsistent)
    }

    @Test func failingScriptletDiscardsTheChange() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let before = try tree.identity(1)
        do {
            try tree.commands().install(1, ["failing"])
            Issue.record("a failing install scriptlet must fail the install")
        } catch {
            let text = "\(error)"
            #expect(text.contains("the install scriptlet of failing failed"), "\(text)")
            #expect(text.contains("failing: cannot configure the frobnicator"), "\(text)")
            #expect(text.contains("snapshot 1 is unchanged"), "\(text)")
        }
        #expect(try tree.identity(1) == before)
        #expect(try tree.installed(1) == ["base 1.0-1"])
        #expect(!Files.exists(tree.layout.root(1) + "/usr/share/failing"))
        #expect(try tree.workingCopies().isEmpty)
    }

    @Test func upgradeMovesToTheNewVersionAndKeepsEditedConfiguration() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        // Edit the configuration file in the snapshot (through a working copy, as a user would).
        try tree.withStore { try $0.run(in: 1, ["/bin/sh", "-c", "echo 'greeting = hi' > /etc/hello.conf"], output: .capture) }
        try tree.publish(TestPackages.hello11)
        try tree.commands().upgrade(1)
        #expect(try tree.installed(1) == ["base 1.0-1", "hello 1.1-1", "libhello 1.0-1"])
        #expect(try Files.readString(tree.layout.root(1) + "/usr/bin/hello").contains("hello 1.1"))
        #expect(try Files.readString(tree.layout.etc(1) + "/hello.conf") == "greeting = hi\n", "backup= files keep local edits")
        #expect(tree.takeOutput().contains { $0.contains("upgrade hello 1.0-1 -> 1.1-1") })
    }

    @Test func removeRefusesWhatOthersNeedAndRemovesUnneededDependencies() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        let before = try tree.identity(1)
        do {
            try tree.commands().remove(1, ["libhello"])
            Issue.record("removing a package hello needs must be refused")
        } catch {
            #expect("\(error)".contains("removing libhello breaks dependency 'libhello>=1.0' required by hello"), "\(error)")
            print("packages: removal refused: \(error)")
        }
        #expect(try tree.identity(1) == before)
        try tree.commands().remove(1, ["hello"])
        #expect(try tree.installed(1) == ["base 1.0-1"], "-Rns takes libhello, which only hello needed")
        #expect(!Files.exists(tree.layout.root(1) + "/usr/bin/hello"))
        #expect(!Files.exists(tree.layout.etc(1) + "/hello.conf"))
    }

    @Test func forceSyncGivesChildrenTheParentsPackagesAtTheParentsVersionsAndSyncUpgradesFirst() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let copies = try tree.withStore { store in
            [try store.copy(1, parent: 1, description: "child"), try store.copy(2, parent: 2, description: "grandchild")]
        }
        #expect(copies == [2, 3])
        try tree.commands().install(1, ["hello"])
        // The repository moves on: hello 1.0 is only in the shared package cache now.
        try tree.publish(TestPackages.hello11)
        try tree.commands().refresh(2)
        try tree.commands().sync(1, upgrade: false)
        for id in [2, 3] {
            #expect(try tree.installed(id) == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"], "snapshot \(id)")
            #expect(try tree.info(id, "libhello").contains("Installed as a dependency"), "the parent's install reason")
            #expect(try tree.info(id, "hello").contains("Explicitly installed"))
            #expect(try tree.databaseEntries(id) == ["base-1.0-1", "hello-1.0-1", "libhello-1.0-1"], "one database entry per package")
            #expect(Files.exists(tree.layout.root(id) + "/usr/bin/hello"))
        }
        let output = tree.takeOutput()
        #expect(output.contains("snapshot 2 (from 1): install hello 1.0-1"), "\(output)")
        // Again: nothing to do.
        let unchanged = try tree.identity(3)
        try tree.commands().sync(1, upgrade: false)
        #expect(try tree.identity(3) == unchanged)
        #expect(tree.takeOutput().contains("snapshot 3: has every package of snapshot 2"))
        // sync upgrades the subtree first.
        try tree.commands().sync(1, upgrade: true)
        for id in [1, 2, 3] { #expect(try tree.installed(id).contains("hello 1.1-1"), "snapshot \(id)") }
        #expect(try tree.installed(0) == ["base 1.0-1"], "snapshot 0 is left to base-update")
    }

    @Test func diffListsPackageDifferences() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        _ = tree.takeOutput()
        #expect(try tree.commands().diff(0, 1))
        #expect(tree.takeOutput() == ["packages of snapshot 0 (-) and snapshot 1 (+):", "+ hello 1.0-1", "+ libhello 1.0-1"])
        #expect(try !tree.commands().diff(1, 1))
        try tree.publish(TestPackages.base11)
        try tree.commands().baseUpdate()
        #expect(try tree.installed(0) == ["base 1.1-1"])
        _ = tree.takeOutput()
        try tree.commands().diff(0, 1)
        #expect(tree.takeOutput().contains("~ base 1.1-1 -> 1.0-1"))
    }

    @Test func liveInstallAlsoChangesTheRunningDeployment() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        // Snapshot 1 is deployed in slot tmp; pretend the system booted from it.
        try tree.commands(bootedSlot: "tmp").install(1, ["libhello"], live: false)
        #expect(!Files.exists(tree.layout.root("tmp") + "/usr/lib/libhello.txt"), "--not-live")
        try tree.commands(bootedSlot: "tmp").install(1, ["hello"])
        #expect(Files.exists(tree.layout.root(1) + "/usr/bin/hello"))
        #expect(Files.exists(tree.layout.root("tmp") + "/usr/bin/hello"), "installed into the running slot")
        #expect(Files.exists(tree.layout.etc("tmp") + "/hello.conf"), "the running slot's /etc got the package's files")
        #expect(try tree.installed(name: "tmp").contains("hello 1.0-1"))
        #expect(tree.takeOutput().contains("running system: install hello 1.0-1"))
        // A snapshot that is not booted gets no live install.
        let other = try tree.withStore { try $0.copy(0, parent: 0, description: "not booted") }
        try tree.commands(bootedSlot: "tmp").install(other, ["clash"])
        #expect(Files.exists(tree.layout.root(other) + "/usr/bin/clash"))
        #expect(!Files.exists(tree.layout.root("tmp") + "/usr/bin/clash"))
    }

    @Test func pacmanStyleChangesOnARunningSystemBranchFromTheBootedSnapshot() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        // Booted from slot tmp (snapshot 1): -S makes 2, deploys it to tmp0, changes nothing live.
        try tree.commands(bootedSlot: "tmp").pacman(try PacmanOperation("-S", targets: ["hello"]))
        var state = try tree.state()
        #expect(state.next == "tmp0" && state.slot("tmp0")?.snapshot == 2)
        #expect(!Files.exists(tree.layout.root("tmp") + "/usr/bin/hello"), "the running system is not touched")
        _ = tree.takeOutput()
        // Before a reboot, the next change again starts from the booted snapshot, and says so.
        try tree.commands(bootedSlot: "tmp").pacman(try PacmanOperation("-S", targets: ["clash"]))
        state = try tree.state()
        #expect(state.record(3)?.parent == 1)
        #expect(state.slot("tmp0")?.snapshot == 3)
        #expect(try tree.installed(3) == ["base 1.0-1", "clash 1.0-1"])
        let output = tree.takeOutput()
        #expect(output.contains("note: snapshot 2 was to boot next and is replaced by 3, which does not have its changes (it stays in the tree: `rast deploy 2`)"), "\(output)")
        #expect(state.contains(2))
    }

    @Test func treeRemoveAndTreeUpgradeVisitTheSubtree() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        let copies = try tree.withStore { store in
            [try store.copy(1, parent: 1, description: "child"), try store.copy(0, parent: 1, description: "plain child")]
        }
        #expect(copies == [2, 3])
        try tree.publish(TestPackages.hello11)
        try tree.commands().treeUpgrade(1)
        #expect(try tree.installed(1).contains("hello 1.1-1"))
        #expect(try tree.installed(2).contains("hello 1.1-1"))
        #expect(try tree.installed(3) == ["base 1.0-1"])
        try tree.commands().treeRemove(1, ["hello"])
        for id in [1, 2, 3] { #expect(try tree.installed(id) == ["base 1.0-1"], "snapshot \(id)") }
        #expect(tree.takeOutput().contains("snapshot 3: none of hello is installed"))
        #expect(try tree.installed(0) == ["base 1.0-1"])
    }

    @Test func baseSnapshotChangesOnlyThroughBaseUpdate() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        #expect(throws: SnapshotError.baseSnapshotIsReadOnly(command: "install")) { try tree.commands().install(0, ["hello"]) }
        #expect(try tree.installed(0) == ["base 1.0-1"])
        try tree.publish(TestPackages.base11)
        try tree.commands().baseUpdate()
        #expect(try tree.installed(0) == ["base 1.1-1"])
        #expect(try Files.readString(tree.layout.root(0) + "/usr/share/base/version") == "1.1\n")
        #expect(try tree.installed(1) == ["base 1.0-1"])
    }
}
