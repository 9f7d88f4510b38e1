import BootEntries
import Btrfs
import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

@Suite(.serialized) struct SnapshotTreeTests {
    @Test func baseSnapshotHasTheAstosLayoutAndIsReadOnly() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        for path in fixture.layout.triple(0) + [fixture.layout.home, fixture.layout.variable, fixture.layout.bootLoader] {
            #expect(try Btrfs.isSubvolume(path), "\(path) is a subvolume")
        }
        for path in fixture.layout.triple(0) { #expect(try Btrfs.isReadOnly(path)) }
        #expect(fixture.file(0, "/etc/hostname") == "base\n")
        #expect(try String(contentsOfFile: fixture.layout.etc(0) + "/hostname", encoding: .utf8) == "base\n")
        #expect(Files.exists(fixture.layout.boot(0) + "/vmlinuz-linux-test"))
        #expect(try fixture.store.state().snapshots.map(\.id) == [0])
        #expect(try fixture.store.workingCopies().isEmpty)
    }

    @Test func branchCloneAndFriendsBuildTheTreeAstosWould() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let store = fixture.store
        try store.acquire(wait: false)
        let one = try store.copy(0, parent: 0, description: "branch of 0")          // branch 0
        let two = try store.copy(one, parent: one, description: "branch of 1")      // branch 1
        let three = try store.copy(two, parent: one, description: "cbranch of 2")   // cbranch 2 (sibling)
        let four = try store.copy(one, parent: nil, description: "clone of 1")      // clone 1 (new tree)
        let five = try store.copy(two, parent: four, description: "ubranch 4 2")    // ubranch 4 2
        let six = try store.copy(0, parent: nil, description: "new tree")           // new
        #expect([one, two, three, four, five, six] == [Int](1...6))
        let state = try store.state()
        #expect(state.record(3)?.parent == 1)
        #expect(state.record(5)?.parent == 4)
        #expect(state.record(6)?.parent == nil)
        try store.setDescription(2, "renamed")
        let tree = try store.treeView().render()
        #expect(tree == """
            root
            ├── 0 - base snapshot
            │   └── 1 - branch of 0
            │       ├── 2 - renamed
            │       └── 3 - cbranch of 2
            ├── 4 - clone of 1
            │   └── 5 - ubranch 4 2
            └── 6 - new tree
            """)
        let mapping = try store.copyTree(1, parent: 0)   // clone-tree 1
        #expect(mapping == [1: 7, 2: 8, 3: 9])
        #expect(try store.state().record(8)?.parent == 7)
        for id in 1...9 { for path in fixture.layout.triple(id) { #expect(try Btrfs.isReadOnly(path)) } }
        #expect(try store.check().isConsistent)
    }

    @Test func runCommitsOnSuccessAndDiscardsOnFailureAndReleasesMounts() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let store = fixture.store
        try store.acquire(wait: false)
        let id = try store.copy(0, parent: 0, description: "work")
        let ok = try store.run(in: id, ["/bin/sh", "-c", "echo changed > /etc/hostname && touch /made-here && test -e /proc/self"],
                               output: .capture)
        #expect(ok == 0)
        #expect(fixture.file(id, "/etc/hostname") == "changed\n")
        #expect(try Files.readString(fixture.layout.etc(id) + "/hostname") == "changed\n", "etc-N follows the root's /etc")
        #expect(Files.exists(fixture.layout.root(id) + "/made-here"))
        let failed = try store.run(in: id, ["/bin/sh", "-c", "echo broken > /etc/hostname; rm /made-here; exit 1"], output: .capture)
        #expect(failed == 1)
        #expect(fixture.file(id, "/etc/hostname") == "changed\n", "a failing command leaves the snapshot unchanged")
        #expect(Files.exists(fixture.layout.root(id) + "/made-here"))
        #expect(try store.workingCopies().isEmpty)
        #expect(try MountTable.read().mounts(under: fixture.layout.snapshots).isEmpty, "no mount is left behind")
        #expect(throws: SnapshotError.baseSnapshotIsReadOnly(command: "run")) {
            try store.run(in: 0, ["/bin/true"], output: .capture)
        }
    }

    @Test func treeRunCommitsOnlyWhereTheCommandSucceeded() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let store = fixture.store
        try store.acquire(wait: false)
        let one = try store.copy(0, parent: 0, description: "a")
        let two = try store.copy(one, parent: one, description: "b")
        let three = try store.copy(one, parent: one, description: "c")
        // Fails in snapshot 2 only.
        let failed = try store.treeRun(one, ["/bin/sh", "-c", "touch /stamp; test \"$RAST_SNAPSHOT\" != 2"], output: .capture)
        #expect(failed == [two])
        #expect(Files.exists(fixture.layout.root(one) + "/stamp"))
        #expect(!Files.exists(fixture.layout.root(two) + "/stamp"))
        #expect(Files.exists(fixture.layout.root(three) + "/stamp"))
    }

    @Test func deleteRemovesTheSubtreeAndRefusesBaseBootedAndNext() throws {
        let fixture = try TreeFixture(bootedSlot: "tmp")
        defer { fixture.close() }
        let store = fixture.store
        try store.acquire(wait: false)
        let one = try store.copy(0, parent: 0, description: "a")
        let two = try store.copy(one, parent: one, description: "b")
        _ = try store.copy(two, parent: two, description: "c")
        let four = try store.copy(0, parent: 0, description: "d")
        try store.deploy(four)   // slot tmp0 boots next; tmp (booted) holds nothing yet
        #expect(throws: SnapshotError.refusingToDelete(id: 0, reason: "it is the base snapshot")) { try store.delete(0) }
        #expect(throws: SnapshotError.refusingToDelete(id: four, reason: "it boots next")) { try store.delete(four) }
        #expect(throws: SnapshotError.noSuchSnapshot(42)) { try store.delete(42) }
        #expect(try store.delete(two) == [2, 3])
        #expect(try store.state().snapshots.map(\.id) == [0, 1, 4])
        for id in [2, 3] { for path in fixture.layout.triple(id) { #expect(!Files.exists(path)) } }
        #expect(try store.check().isConsistent)
    }

    @Test func deployFillsTheOtherSlotWritesBootEntriesAndRollbackSwitchesBack() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let store = fixture.store
        let layout = fixture.layout
        try store.acquire(wait: false)
        let one = try store.copy(0, parent: 0, description: "first")
        try store.deploy(one)
        #expect(try store.state().next == "tmp")
        #expect(try store.currentSnapshot() == one, "on an image the slot that boots next stands in for the booted one")
        #expect(try Files.readString(layout.root("tmp") + "/usr/share/rast/snap") == "1\n")
        #expect(try Files.readString(layout.root("tmp") + "/etc/fstab").contains("subvol=@.snapshots/rootfs/snapshot-tmp,compress=zstd,noatime,ro"))
        #expect(try !Btrfs.isReadOnly(layout.root("tmp")))
        #expect(try Btrfs.defaultSubvolumeID(fs: layout.top) == Btrfs.subvolumeID(layout.root("tmp")))
        var grub = try Files.readString(layout.grubConfig)
        #expect(grub.contains("menuentry 'rastOS snapshot 1'"))
        #expect(!grub.contains("previous deployment"))

        let two = try store.copy(one, parent: one, description: "second")
        try store.deploy(two)
        #expect(try store.state().next == "tmp0")
        #expect(try store.nextSnapshot() == two)
        grub = try Files.readString(layout.grubConfig)
        let titles = grub.split(separator: "\n").filter { $0.hasPrefix("menuentry") }
        #expect(titles.count == 2)
        #expect(titles[0].contains("rastOS snapshot 2") && titles[1].contains("previous deployment (snapshot 1)"))
        #expect(grub.contains("/@.snapshots/boot/boot-tmp0/vmlinuz-linux-test"))

        #expect(try store.rollback() == one)
        #expect(try store.state().next == "tmp")
        #expect(try Btrfs.defaultSubvolumeID(fs: layout.top) == Btrfs.subvolumeID(layout.root("tmp")))
        grub = try Files.readString(layout.grubConfig)
        #expect(grub.split(separator: "\n").first { $0.hasPrefix("menuentry") }?.contains("rastOS snapshot 1") == true)
        #expect(throws: SnapshotError.noSuchSnapshot(9)) { try store.deploy(9) }
        #expect(try store.check().isConsistent)
    }

    @Test func interruptedChangeIsCompletedByTheNextCommand() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let layout = fixture.layout
        // A "crash" in the middle of a commit: the new read-only copy exists, the journal is
        // written, and only the first step was applied.
        try fixture.store.acquire(wait: false)
        let one = try fixture.store.copy(0, parent: 0, description: "one")
        fixture.store.unlock()
        var state = try fixture.store.state()
        state.snapshots.append(SnapshotRecord(id: 2, parent: one, description: "crashed clone"))
        for (source, copy) in zip(layout.triple(one), layout.triple("chr2.commit")) {
            try Btrfs.createSnapshot(of: source, at: copy, readOnly: true)
        }
        try Btrfs.rename(from: layout.root("chr2.commit"), to: layout.root(2))
        let journal = """
            {"operation":"copy 1 as 2","steps":[
              {"replace":{"from":"\(layout.root("chr2.commit"))","to":"\(layout.root(2))"}},
              {"replace":{"from":"\(layout.etc("chr2.commit"))","to":"\(layout.etc(2))"}},
              {"replace":{"from":"\(layout.boot("chr2.commit"))","to":"\(layout.boot(2))"}}],
             "state":\(String(decoding: try state.encoded(), as: UTF8.self))}
            """
        try Files.writeAtomically(layout.journalFile, string: journal)
        // Readers already see the committed change.
        #expect(try SnapshotStore(layout: layout).state().contains(2))
        let next = SnapshotStore(layout: layout)
        try next.acquire(wait: false)
        #expect(!Files.exists(layout.journalFile))
        #expect(try next.check().isConsistent)
        #expect(try next.check().workingCopies.isEmpty)
    }

    @Test func secondCommandFailsAtOnceWithNoWait() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        try fixture.store.acquire(wait: false)
        let other = SnapshotStore(layout: fixture.layout)
        #expect {
            try other.acquire(wait: false)
        } throws: { error in "\(error)".contains("another rast command holds the lock") }
    }

    @Test func checkFindsOrphansAndDanglingEntriesAndRepairFixesThem() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let store = fixture.store
        let layout = fixture.layout
        try store.acquire(wait: false)
        let one = try store.copy(0, parent: 0, description: "one")
        let two = try store.copy(one, parent: one, description: "two")
        _ = try store.copy(two, parent: two, description: "three")
        // An orphan (complete triple unknown to the tree) and a dangling entry (2 lost its root).
        for (source, copy) in zip(layout.triple(one), layout.triple(7)) {
            try Btrfs.createSnapshot(of: source, at: copy, readOnly: true)
        }
        try Btrfs.deleteSubvolume(at: layout.root(two))
        let report = try store.check()
        #expect(!report.isConsistent)
        #expect(report.orphans == [7])
        #expect(report.dangling.keys.sorted() == [2])
        let actions = try store.repair()
        #expect(actions.contains("removed dangling snapshot 2 from the tree"))
        #expect(actions.contains("adopted orphan snapshot 7 as a new tree"))
        let state = try store.state()
        #expect(state.record(3)?.parent == one, "children of a dangling snapshot move up")
        #expect(state.record(7)?.description == "recovered orphan")
        #expect(try store.check().isConsistent)
    }

    @Test func adoptsAnAstosInstallation() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let layout = fixture.layout
        // Turn the fixture into what astOS leaves: its fstree and desc files, no rast state.
        try fixture.store.acquire(wait: false)
        _ = try fixture.store.copy(0, parent: 0, description: "x")
        _ = try fixture.store.copy(0, parent: nil, description: "y")
        _ = try fixture.store.copy(1, parent: 1, description: "z")
        fixture.store.unlock()
        unlink(layout.stateFile)
        try Files.write(layout.astosDirectory + "/fstree",
                        string: "{'name': 'root', 'children': [{'name': '0', 'children': [{'name': 1, 'children': [{'name': 3}]}]}, {'name': 2}]}")
        try Files.write(layout.astosDirectory + "/snapshots/1-desc", string: "desktop\n")
        try Files.write(layout.astosDirectory + "/snapshots/3-desc", string: "with a trailing line and no newline")
        let store = SnapshotStore(layout: layout)
        let state = try store.state()
        #expect(state.snapshots.map(\.id) == [0, 1, 2, 3])
        #expect(state.record(1)?.parent == 0)
        #expect(state.record(2)?.parent == nil)
        #expect(state.record(3)?.parent == 1)
        #expect(state.record(1)?.description == "desktop")
        #expect(state.record(3)?.description == "with a trailing line and no newline")
        try store.acquire(wait: false)
        #expect(Files.exists(layout.stateFile), "the first locked command writes rast's own state")
        #expect(try store.check().isConsistent)
    }

    @Test func snapshotConfigParsesAstosFilesRobustly() {
        let config = SnapshotConfig(text: "\n# comment\naur::True\n\n  editor :: nano  \nbroken line\naur::False\nlast::True")
        #expect(config["aur"] == "False")
        #expect(config["editor"] == "nano")
        #expect(config["last"] == "True", "astOS cut the last character of a final line without newline")
        #expect(config.flag("last"))
        #expect(!config.flag("missing"))
    }
}
