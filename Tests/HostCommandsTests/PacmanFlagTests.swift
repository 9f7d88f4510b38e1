import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The built `rast` (debug) run as a program, as a user would run it on an image: `--root TOP`.
enum RastProgram {
    static let binary = ProjectPaths.root + "/.build/debug/rast"

    static func command(_ arguments: [String], user: String? = nil) throws -> Command {
        try Require.file(binary, hint: "`swift build --build-tests` builds it")
        if let user { return Command("runuser", ["-u", user, "--", binary] + arguments, environment: ["LANG": "C"]) }
        return Command(binary, arguments, environment: ["LANG": "C"])
    }

    @discardableResult
    static func run(_ arguments: [String], user: String? = nil) throws -> CommandResult {
        try command(arguments, user: user).run(check: false)
    }
}

extension CommandResult {
    var lines: [String] { standardOutput.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty } }
    var everything: String { standardOutput + standardError }
}

/// pacman-style flags through the real program: changes become a new, deployed snapshot.
@Suite(.serialized) struct PacmanFlagTests {
    @Test func installMakesANewSnapshotDeploysItAndKeepsTheOldOne() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let one = try tree.identity(1)
        let installed = try RastProgram.run(["--root", tree.top, "-S", "hello"])
        #expect(installed.status == 0, "\(installed.everything)")
        var state = try tree.state()
        #expect(state.snapshots.map(\.id) == [0, 1, 2])
        #expect(state.record(2)?.parent == 1)
        #expect(state.record(2)?.description == "rast -S hello")
        #expect(state.next.flatMap { state.slot($0)?.snapshot } == 2, "snapshot 2 boots next")
        #expect(try tree.installed(2) == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"])
        #expect(try tree.identity(1) == one, "the old snapshot stays as it was")
        #expect(try tree.installed(1) == ["base 1.0-1"])
        #expect(installed.standardOutput.contains("snapshot 2 (from 1) is deployed and boots next"), "\(installed.standardOutput)")
        #expect(Files.exists(tree.layout.root(state.next ?? "?") + "/usr/bin/hello"), "the deployment slot holds the new snapshot")
        #expect(try RastProgram.run(["check", "--root", tree.top]).status == 0)

        // A failing -S makes no snapshot and deploys nothing.
        let slots = state.slots
        let failed = try RastProgram.run(["--root", tree.top, "-S", "needy"])
        #expect(failed.status == 1)
        #expect(failed.standardError.contains("needy requires ghost"), "\(failed.standardError)")
        #expect(failed.standardError.contains("no snapshot was made; snapshot 2 and the deployment are unchanged"), "\(failed.standardError)")
        state = try tree.state()
        #expect(state.snapshots.map(\.id) == [0, 1, 2])
        #expect(state.slots == slots)
        #expect(try tree.workingCopies().isEmpty)
        print("rast -S needy: \(failed.standardError)")

        // -R and -Rns the same way; -Q reads the current (deployed) snapshot.
        let removed = try RastProgram.run(["--root", tree.top, "-R", "hello"])
        #expect(removed.status == 0, "\(removed.everything)")
        state = try tree.state()
        #expect(state.record(3)?.description == "rast -R hello")
        #expect(try tree.installed(3) == ["base 1.0-1", "libhello 1.0-1"])
        let orphans = try RastProgram.run(["--root", tree.top, "-Qdt"])
        #expect(orphans.lines == ["libhello 1.0-1"], "\(orphans.everything)")
        let cleaned = try RastProgram.run(["pkg", "clean", "--unused-deps", "--root", tree.top])
        #expect(cleaned.status == 0, "\(cleaned.everything)")
        #expect(try tree.state().record(4)?.description == "rast pkg clean --unused-deps")
        #expect(try tree.installed(4) == ["base 1.0-1"])
        let none = try RastProgram.run(["--root", tree.top, "-Qdt"])
        #expect(none.status == 1 && none.standardOutput.isEmpty, "pacman's exit status when nothing matches")
        #expect(try RastProgram.run(["pkg", "clean", "--unused-deps", "--root", tree.top]).standardOutput.contains("no unused dependencies"))
        #expect(try tree.state().snapshots.map(\.id) == [0, 1, 2, 3, 4])

        let again = try RastProgram.run(["--root", tree.top, "-S", "hello", "clash"])
        #expect(again.status == 1)
        #expect(again.standardError.contains("clash conflicts with hello"), "\(again.standardError)")
        let both = try RastProgram.run(["--root", tree.top, "-Rns", "nothing-installed"])
        #expect(both.status == 1)
        #expect(both.standardError.contains("target not found: nothing-installed"), "\(both.standardError)")
        #expect(try tree.state().snapshots.map(\.id) == [0, 1, 2, 3, 4])
    }

    @Test func queriesReadTheCurrentSnapshotWithoutRoot() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        #expect(try RastProgram.run(["--root", tree.top, "-S", "hello"]).status == 0)
        // Let an unprivileged user reach the filesystem (the fixture's directories are 0700).
        for path in [tree.fs.directory.path, tree.fs.mountPoint] { chmod(path, 0o755) }
        for user in [nil, "nobody"] {
            let list = try RastProgram.run(["--root", tree.top, "-Q"], user: user)
            #expect(list.lines == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"], "\(user ?? "root"): \(list.everything)")
            let info = try RastProgram.run(["--root", tree.top, "-Q", "-i", "hello"], user: user)
            #expect(info.standardOutput.contains("Name            : hello"), "\(info.everything)")
            #expect(info.standardOutput.contains("Depends On      : libhello>=1.0"))
            #expect(info.standardOutput.contains("Install Reason  : Explicitly installed"))
            let search = try RastProgram.run(["--root", tree.top, "-Qs", "hel"], user: user)
            #expect(search.lines == ["local/hello 1.0-1", "    says hello", "local/libhello 1.0-1", "    the library hello needs"], "\(search.everything)")
            let repository = try RastProgram.run(["--root", tree.top, "-Ss", "clash"], user: user)
            #expect(repository.lines == ["rasttest/clash 1.0-1", "    cannot live with hello"], "\(repository.everything)")
            let installedMark = try RastProgram.run(["--root", tree.top, "-Ss", "^hello$"], user: user)
            #expect(installedMark.lines.first == "rasttest/hello 1.0-1 [installed]", "\(installedMark.everything)")
            let syncInfo = try RastProgram.run(["--root", tree.top, "-Si", "hello"], user: user)
            #expect(syncInfo.standardOutput.contains("Repository      : rasttest"), "\(syncInfo.everything)")
            let missing = try RastProgram.run(["--root", tree.top, "-Q", "ghost"], user: user)
            #expect(missing.status == 1)
            #expect(missing.standardError.contains("package 'ghost' was not found in snapshot 2"), "\(missing.everything)")
        }
        let refused = try RastProgram.run(["--root", tree.top, "-S", "clash"], user: "nobody")
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("root"), "\(refused.everything)")
        let unsupported = try RastProgram.run(["--root", tree.top, "-Sw", "hello"])
        #expect(unsupported.status != 0)
        #expect(unsupported.standardError.contains("'-Sw' is not supported"), "\(unsupported.everything)")
        #expect(try tree.state().snapshots.map(\.id) == [0, 1, 2], "queries and refusals change nothing")
    }

    @Test func sigkillDuringTheTransactionLeavesTheTreeConsistentAndTheSnapshotUnchanged() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let one = try tree.identity(1)
        let slots = try tree.state().slots
        // `slow` needs libhello, which is installed first; slow's pre_install then waits: kill there.
        var command = try RastProgram.command(["--root", tree.top, "-S", "slow"])
        command.stopSignal = SIGKILL
        var seen: [String] = []
        let result = try command.run(output: .linesUntil { line in
            seen.append(line)
            return line.contains("slow: pre_install started")
        }, check: false, timeout: 120)
        #expect(result.stoppedByHandler, "rast was killed in the middle of the transaction: \(seen.joined(separator: "\n"))")
        #expect(!result.timedOut)
        // The working copy had libhello's files when rast died; the snapshot never saw them.
        let leftovers = try tree.workingCopies()
        #expect(leftovers.contains(tree.layout.root("chr2")), "\(leftovers)")
        #expect(Files.exists(tree.layout.root("chr2") + "/usr/lib/libhello.txt"), "the kill came mid-transaction")
        #expect(try tree.identity(1) == one)
        #expect(try tree.installed(1) == ["base 1.0-1"])
        #expect(try tree.state().snapshots.map(\.id) == [0, 1])
        #expect(try tree.state().slots == slots)
        let check = try RastProgram.run(["check", "--root", tree.top])
        #expect(check.status == 0, "\(check.everything)")
        #expect(check.standardOutput.contains("the snapshot tree is consistent"))
        print("rast check after SIGKILL:\n\(check.standardOutput)")
        // The next change reclaims the dead command's working copy.
        let next = try RastProgram.run(["--root", tree.top, "-S", "hello"])
        #expect(next.status == 0, "\(next.everything)")
        #expect(try tree.installed(2) == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"])
        #expect(try tree.workingCopies().isEmpty)
        #expect(try tree.check().isConsistent)
    }
}
