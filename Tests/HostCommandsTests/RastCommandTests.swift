import Btrfs
import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// The `rast` binary, driven with `--root` on a real btrfs filesystem, one command at a time.
struct RastCLI {
    static let binary = ProjectPaths.root + "/.build/debug/rast"
    let root: String

    /// Runs `rast ARGS --root ROOT`; returns status and combined output.
    @discardableResult
    func callAsFunction(_ arguments: String..., input: String? = nil, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try run(Array(arguments), input: input, environment: environment)
    }

    func run(_ arguments: [String], input: String? = nil, environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        try Require.file(Self.binary, hint: "swift build")
        var all = arguments
        // Options go after the subcommand name; `run` and `tree-run` take the rest literally.
        let insertAt = ["run", "tree-run", "trun"].contains(all.first ?? "") ? 1 : all.count
        all.insert(contentsOf: ["--root", root], at: insertAt)
        let command = Command(Self.binary, all, environment: environment, input: input.map { .bytes(Array($0.utf8)) } ?? .null)
        let result = try command.run(check: false, timeout: 120)
        return (result.status, result.standardOutput + result.standardError)
    }
}

@Suite(.serialized) struct RastCommandTests {
    static func fixture() throws -> (TreeFixture, RastCLI) {
        let fixture = try TreeFixture()
        return (fixture, RastCLI(root: fixture.layout.top))
    }

    /// A new `rast` process starts with a copy of its parent's mount table. A copy of a mount
    /// in another process's work directory (an image being built, a disk being installed)
    /// would keep that file system, its loop device and its image file alive until `rast`
    /// ends: `rast` drops such copies at once, and keeps everything else.
    @Test func mountsInAnotherProcesssWorkDirectoryAreNotKeptAlive() throws {
        try Require.file(RastCLI.binary, hint: "swift build")
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        let work = try TemporaryDirectory(prefix: Mounts.workDirectoryPrefix + "test")
        defer { try? Mounts.unmountAll(under: work.path); try? work.remove() }
        let image = work.appending("disk.img")
        let mountPoint = work.appending("mnt")
        try Command("truncate", ["-s", "256M", image]).run()
        try Command("mkfs.btrfs", ["-q", "-f", image]).run()
        try Files.createDirectory(mountPoint)
        // mount(8)'s loop device has autoclear and no other holder: the mount alone keeps it.
        try Command("mount", ["-o", "loop", image, mountPoint]).run()

        // A `rast` command that waits for the tree lock, which this test holds.
        try fixture.store.acquire(wait: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: RastCLI.binary)
        process.arguments = ["branch", "--root", rast.root, "0"]
        let log = fixture.fs.directory.appending("rast.log")
        try Files.write(log, string: "")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        try handle.close()
        defer { if process.isRunning { process.terminate(); process.waitUntilExit() } }
        var output = ""
        for _ in 0..<300 where process.isRunning && !output.contains("waiting for another rast command") {
            usleep(100_000)
            output = try Files.readString(log)
        }
        try #require(process.isRunning && output.contains("waiting for another rast command"),
                     "rast says it waits for the lock, as it goes: \(output)")

        let mountInfo = try Files.readString("/proc/\(process.processIdentifier)/mountinfo")
        #expect(!mountInfo.contains(" \(mountPoint) "), "the waiting rast holds no copy of the work mount")
        #expect(mountInfo.contains(" \(fixture.fs.mountPoint) "), "it keeps the mount it works on")
        try Mounts.unmount(mountPoint, lazyFallback: false)
        var attempts = 0
        while !LoopDevice.devices(backing: image).isEmpty, attempts < 50 { attempts += 1; usleep(20_000) }
        #expect(LoopDevice.devices(backing: image).isEmpty, "the loop device is gone while rast still runs")
        #expect(process.isRunning)

        fixture.store.unlock()
        process.waitUntilExit()
        output = try Files.readString(log)
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("created snapshot 1 from 0"))
    }

    @Test func noArgumentsPrintsHelp() throws {
        let result = try Command(RastCLI.binary).run(check: false)
        #expect(result.status == 0)
        #expect(result.standardOutput.contains("USAGE: rast <subcommand>"))
        #expect(result.standardOutput.contains("branch, add-branch"))
    }

    @Test func treeCommandsAndTheirAliases() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        #expect(try rast("branch", "0", "first", "branch").output.contains("created snapshot 1 from 0"))
        #expect(try rast("add-branch", "1").output.contains("created snapshot 2 from 1"))
        #expect(try rast("cbranch", "2").output.contains("created snapshot 3 from 2"))
        #expect(try rast("clone-under", "0", "3").output.contains("created snapshot 4 from 3"))
        #expect(try rast("clone", "1", "a", "new", "tree").output.contains("created snapshot 5 from 1"))
        #expect(try rast("new-tree", "fresh").output.contains("created snapshot 6, a new tree from the base snapshot"))
        #expect(try rast("clone-tree", "1").output.contains("created snapshot 9 from 3"))
        #expect(try rast("desc", "2", "the", "second").status == 0)
        try rast("deploy", "2")
        let tree = try rast("tree").output
        #expect(tree == """
            root
            ├── 0 - base snapshot
            │   ├── 1 - first branch
            │   │   ├── 2* - the second
            │   │   └── 3 - first branch
            │   ├── 4 - first branch
            │   └── 7 - first branch
            │       ├── 8 - first branch
            │       └── 9 - first branch
            ├── 5 - a new tree
            └── 6 - fresh

            """)
        let optionsFirst = try Command(RastCLI.binary, ["--root", fixture.layout.top, "tree"]).run(check: false)
        #expect(optionsFirst.status == 0 && optionsFirst.standardOutput == tree, "`rast --root DIR tree` works too")
        #expect(try rast("c").output == "2\n")
        let json = try rast("current", "--json").output
        #expect(json.contains("\"snapshot\" : 2") && json.contains("\"slot\" : \"tmp\""))
        let treeJSON = try JSONSerialization.jsonObject(with: Data(try rast("tree", "--json").output.utf8)) as? [String: Any]
        #expect((treeJSON?["trees"] as? [Any])?.count == 3)
        let status = try rast("status").output
        #expect(status.contains("booted:  snapshot 2 (slot tmp)") && status.contains("snapshots: 10"))
        #expect(try rast("status", "--json").output.contains("\"bootedSnapshot\" : 2"))
        #expect(try rast("check").output.contains("the snapshot tree is consistent"))
    }

    @Test func runAndChrootCommitOnlyOnExitZero() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        try rast("branch", "0")
        let ok = try rast("run", "1", "echo", "hello", ">", "/greeting")
        #expect(ok.status == 0, "\(ok.output)")
        #expect(fixture.file(1, "/greeting") == "hello\n")
        let failed = try rast("run", "1", "rm /greeting; exit 3")
        #expect(failed.status == 3)
        #expect(failed.output.contains("discarded the changes to snapshot 1 (exit status 3)"))
        #expect(fixture.file(1, "/greeting") == "hello\n", "a failing command leaves the snapshot unchanged")

        // chroot: the shell reads the session from stdin.
        let chroot = try rast("chroot", "1", input: "echo from-chroot > /etc/motd\nexit 0\n")
        #expect(chroot.status == 0, "\(chroot.output)")
        #expect(fixture.file(1, "/etc/motd") == "from-chroot\n")
        let discarded = try rast("cr", "1", input: "rm /etc/motd\nexit 1\n")
        #expect(discarded.status == 1)
        #expect(fixture.file(1, "/etc/motd") == "from-chroot\n")
        #expect(try rast("run", "0", "true").output.contains("snapshot 0 is the base"))

        try rast("branch", "1")
        try rast("branch", "1")
        let treeRun = try rast("tree-run", "1", "test \"$RAST_SNAPSHOT\" != 2 && touch /stamp")
        #expect(treeRun.status == 1)
        #expect(treeRun.output.contains("snapshot 2: failed"))
        #expect(Files.exists(fixture.layout.root(1) + "/stamp") && Files.exists(fixture.layout.root(3) + "/stamp"))
        #expect(!Files.exists(fixture.layout.root(2) + "/stamp"))
        #expect(try MountTable.read().mounts(under: fixture.layout.snapshots).isEmpty)
    }

    @Test func deleteAsksAndRefusesTheBaseAndTheDeployment() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        try rast("branch", "0")
        try rast("branch", "1")
        try rast("branch", "0")
        try rast("deploy", "3")
        let unasked = try rast("del", "1")
        #expect(unasked.status != 0)
        #expect(unasked.output.contains("pass --yes"))
        #expect(try rast("tree").output.contains("2 - "))
        #expect(try rast("del", "0", "--yes").output.contains("refusing to delete snapshot 0: it is the base snapshot"))
        #expect(try rast("rm-snapshot", "3", "--yes").output.contains("refusing to delete snapshot 3: it is deployed in the image"))
        #expect(try rast("del", "1", "--yes").output.contains("deleted snapshots 1, 2"))
        #expect(try rast("del", "42", "--yes").output.contains("snapshot 42 does not exist"))
        for id in [1, 2] { #expect(!Files.exists(fixture.layout.root(id))) }
    }

    @Test func deployRollbackBootAndTheirErrors() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        try rast("branch", "0")
        try rast("branch", "1")
        #expect(try rast("deploy", "42").output.contains("snapshot 42 does not exist"))
        #expect(try rast("rollback").output.contains("there is no previous deployment"))
        #expect(try rast("deploy", "1").output.contains("snapshot 1 is deployed to slot tmp and boots next"))
        #expect(try rast("deploy", "2").output.contains("snapshot 2 is deployed to slot tmp0 and boots next"))
        #expect(try rast("rollback").output.contains("the previous deployment (snapshot 1) boots next"))
        #expect(try rast("c").output == "1\n")
        let grub = try Files.readString(fixture.layout.grubConfig)
        #expect(grub.split(separator: "\n").first { $0.hasPrefix("menuentry") }?.contains("snapshot 1") == true)
        #expect(try rast("boot-update").output.contains("regenerated the boot entries"))
        #expect(try rast("etc-update").output.contains("works on the running system only"))
        #expect(try rast("live-chroot").output.contains("works on the running system only"))
    }

    @Test func workingCopiesLocksAndConfiguration() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        try rast("branch", "0")
        // A left-over working copy (an interrupted chroot) makes the snapshot "in use".
        for (source, copy) in zip(fixture.layout.triple(1), fixture.layout.triple("chr1")) {
            try Btrfs.createSnapshot(of: source, at: copy)
        }
        #expect(try rast("run", "1", "true").output.contains("snapshot 1 is in use"))
        #expect(try rast("check").output.contains("working copy: "))
        #expect(try rast("unlock", "1").output.contains("removed the working copy of snapshot 1"))
        #expect(try rast("run", "1", "true").status == 0)
        for (source, copy) in zip(fixture.layout.triple(1), fixture.layout.triple("chr1")) {
            try Btrfs.createSnapshot(of: source, at: copy)
        }
        #expect(try rast("tmpclear").output.contains("snapshot-chr1"))

        // edit-conf runs $EDITOR on the working copy's /etc/rast.conf and commits on success.
        let editor = fixture.fs.directory.appending("editor.sh")
        try Files.write(editor, string: "#!/bin/sh\nprintf 'aur::True\\n' >> \"$1\"\n", mode: 0o755)
        #expect(try rast("edit", "1", environment: ["EDITOR": editor]).status == 0)
        #expect(SnapshotConfig.load(etcDirectory: fixture.layout.etc(1)).flag("aur"))

        // --no-wait fails at once while another rast command holds the lock.
        let lock = try FileLock(path: fixture.layout.lockFile, wait: false)
        let busy = try rast("branch", "1", "--no-wait")
        #expect(busy.status != 0)
        #expect(busy.output.contains("another rast command holds the lock"))
        lock.unlock()
    }

    @Test func checkRepairsAndNonRootIsToldWhatToDo() throws {
        let (fixture, rast) = try Self.fixture()
        defer { fixture.close() }
        try rast("branch", "0")
        try Btrfs.createSubvolume(at: fixture.layout.snapshots + "/rootfs/snapshot-17")
        let broken = try rast("check")
        #expect(broken.status == 1)
        #expect(broken.output.contains("stray: "))
        #expect(try rast("check", "--repair").status == 0)
        #expect(try rast("check").status == 0)

        // A command that needs root, run without it: one sentence.
        let copy = fixture.fs.directory.appending("rast")
        try Command("cp", [RastCLI.binary, copy]).run()
        try Command("chmod", ["755", fixture.fs.directory.path, copy]).run()
        let denied = try Command("runuser", ["-u", "nobody", "--", copy, "deploy", "1", "--root", fixture.layout.top]).run(check: false)
        #expect(denied.status == 1)
        #expect(denied.standardError == "rast: error: rast deploy needs root privileges; run it again with sudo or as root.\n")
    }
}
