import Alpm
import Foundation
import HostCommands
import Packages
import RastCLI
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// `rast pkg ...`, `rast refresh`, and the parsing of pacman-style flags.
@Suite(.serialized) struct PkgCommandTests {
    /// Everything that must not change in a test run: the snapshots, the tree, the databases, the cache.
    struct Fingerprint: Equatable {
        var identities: [[UInt64]]
        var state: TreeState
        var syncDatabase: [UInt8]
        var cache: [String]
        var workingCopies: [String]

        init(_ tree: PackageTree) throws {
            let state = try tree.state()
            identities = try state.snapshots.map { try tree.identity($0.id) }
            self.state = state
            syncDatabase = try Files.read(tree.layout.root(1) + "/usr/share/rast/db/sync/\(PackageTree.repositoryName).db")
            cache = try FileManagerShim.contents(of: tree.layout.variable + "/cache/pacman/pkg").sorted()
            workingCopies = try tree.workingCopies()
        }
    }

    @Test func updateTestPrintsWhatWouldChangeAndWritesNothing() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.commands().install(1, ["hello"])
        try tree.publish(TestPackages.hello11, TestPackages.base11)
        let before = try Fingerprint(tree)
        _ = tree.takeOutput()
        try tree.commands().updateTest()
        let output = tree.takeOutput()
        #expect(output.contains("would upgrade base 1.0-1 -> 1.1-1"), "\(output)")
        #expect(output.contains("would upgrade hello 1.0-1 -> 1.1-1"), "\(output)")
        #expect(output.last == "nothing was changed (test run)")
        #expect(try Fingerprint(tree) == before)

        let cli = try RastProgram.run(["pkg", "update", "--test", "--root", tree.top])
        #expect(cli.status == 0, "\(cli.everything)")
        #expect(cli.standardOutput.contains("would upgrade hello 1.0-1 -> 1.1-1"))
        #expect(try Fingerprint(tree) == before)

        // The real thing: a new snapshot, deployed.
        let update = try RastProgram.run(["pkg", "update", "--root", tree.top])
        #expect(update.status == 0, "\(update.everything)")
        #expect(try tree.state().record(2)?.description == "rast -Syu")
        #expect(try tree.installed(2) == ["base 1.1-1", "hello 1.1-1", "libhello 1.0-1"])
    }

    @Test func checkConflictsRunsTheTransactionInAThrowAwayCopy() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        var before = try Fingerprint(tree)
        try tree.commands().checkInstall(["hello"])
        let output = tree.takeOutput()
        #expect(output.contains("would install hello 1.0-1"), "\(output)")
        #expect(output.contains("would install libhello 1.0-1"))
        #expect(output.last?.hasPrefix("no conflicts: hello can be installed in snapshot 1") == true)
        before.cache = try Fingerprint(tree).cache  // downloads may stay in the cache
        #expect(try Fingerprint(tree) == before)

        try tree.commands().install(1, ["hello"])
        before = try Fingerprint(tree)
        for (package, problem) in [("clash", "clash conflicts with hello"),
                                   ("filethief", "filethief: /usr/bin/hello exists in filesystem (owned by hello)"),
                                   ("failing", "the install scriptlet of failing failed")] {
            do {
                try tree.commands().checkInstall([package])
                Issue.record("\(package) must not pass the check")
            } catch {
                #expect("\(error)".contains(problem), "\(error)")
                #expect("\(error)".hasSuffix("nothing was changed"), "\(error)")
                // The one-line message carries libalpm's typed error.
                let alpm = error.underlying(AlpmError.self)
                switch package {
                case "clash": #expect(alpm?.conflicts.contains { $0.package == "clash" && $0.otherPackage == "hello" } == true, "cause: \(String(describing: alpm))")
                case "filethief": #expect(alpm?.fileConflicts.map(\.path).contains("/usr/bin/hello") == true, "cause: \(String(describing: alpm))")
                default: break
                }
            }
            before.cache = try Fingerprint(tree).cache
            #expect(try Fingerprint(tree) == before, "\(package)")
        }
        let cli = try RastProgram.run(["pkg", "install", "--check-conflicts", "clash", "--root", tree.top])
        #expect(cli.status == 1)
        #expect(cli.standardError.contains("clash conflicts with hello"), "\(cli.everything)")
    }

    @Test func refreshDownloadsTheDatabasesIntoTheSnapshot() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        try tree.publish(TestPackages.hello11)
        let database = tree.layout.root(1) + "/usr/share/rast/db/sync/\(PackageTree.repositoryName).db"
        let old = try Files.read(database)
        let result = try RastProgram.run(["refresh", "1", "--root", tree.top])
        #expect(result.status == 0, "\(result.everything)")
        #expect(try Files.read(database) != old)
        let search = try RastProgram.run(["--root", tree.top, "-Ss", "^hello$"])
        #expect(search.lines.first == "rasttest/hello 1.1-1", "\(search.everything)")
        #expect(try Files.read(tree.layout.root(0) + "/usr/share/rast/db/sync/\(PackageTree.repositoryName).db") == old,
                "snapshot 0 keeps its own databases")
    }

    @Test func aRepositoryAddedToPacmanConfIsDownloadedOnFirstUse() throws {
        let tree = try PackageTree(packages: [TestPackages.base])
        defer { tree.close() }
        let second = try LocalRepository(name: "second", directory: tree.scratch.appending("second"))
        try second.add([tree.built.file(TestPackages.clash)])
        let server = try HTTPServer(root: second.directory)
        defer { server.stop() }
        try tree.withStore { try $0.run(in: 1, ["/bin/sh", "-c", "printf '[second]\\nServer = \(server.baseURL)\\n' >> /etc/pacman.conf"], output: .capture) }
        #expect(!Files.exists(tree.layout.root(1) + "/usr/share/rast/db/sync/second.db"))
        let result = try RastProgram.run(["--root", tree.top, "-S", "clash"])
        #expect(result.status == 0, "\(result.everything)")
        #expect(try tree.installed(2) == ["base 1.0-1", "clash 1.0-1"])
        #expect(server.requests.contains { $0.path == "/second.db" })
        #expect(Files.exists(tree.layout.root(2) + "/usr/share/rast/db/sync/second.db"), "the new snapshot has the database")
    }

    @Test func pacmanOperationsParseLikePacman() throws {
        let upgrade = try PacmanOperation("-Syu", targets: [])
        #expect(upgrade.kind == .sync && upgrade.count("y") == 1 && upgrade.has("u") && !upgrade.isQuery)
        #expect(try PacmanOperation("-Syyu", targets: []).count("y") == 2)
        #expect(try PacmanOperation("-Ss", targets: ["x"]).isQuery)
        #expect(try !PacmanOperation("-Rns", targets: ["x"]).isQuery, "-Rs removes recursively; it is not a search")
        #expect(try PacmanOperation("-Qdt", targets: []).isQuery)
        #expect(try PacmanOperation("-S", targets: ["hello", "clash"], needed: true).commandLine == "rast -S --needed hello clash")
        for (flag, targets, message) in [("-Sw", ["x"], "'-Sw' is not supported"), ("-Syi", ["x"], "only read"),
                                         ("-S", [], "name the packages to install"), ("-R", [], "name the packages to remove"),
                                         ("-Sis", ["x"], "separate operations"), ("-X", [], "not a pacman operation")] {
            #expect {
                try PacmanOperation(flag, targets: targets)
            } throws: { "\($0)".contains(message) }
        }
    }

    @Test func pacmanFlagsAreRewrittenIntoThePacmanSubcommand() {
        #expect(PacmanFlags.rewrite(["-S", "hello"]) == ["pacman", "--operation", "S", "hello"])
        #expect(PacmanFlags.rewrite(["--root", "/mnt", "-Syu"]) == ["pacman", "--operation", "Syu", "--root", "/mnt"])
        #expect(PacmanFlags.rewrite(["-Q", "-i", "hello", "--root", "/mnt"]) == ["pacman", "--operation", "Qi", "hello", "--root", "/mnt"])
        #expect(PacmanFlags.rewrite(["-v", "-Rns", "hello"]) == ["pacman", "--operation", "Rns", "-v", "hello"])
        #expect(PacmanFlags.rewrite(["install", "1", "-S"]) == ["install", "1", "-S"], "subcommands are left alone")
        #expect(PacmanFlags.rewrite(["--root", "/mnt", "branch", "1"]) == ["branch", "--root", "/mnt", "1"], "options may come first")
        #expect(PacmanFlags.rewrite(["--no-wait", "-v", "run", "1", "ls", "-l"]) == ["run", "--no-wait", "-v", "1", "ls", "-l"])
        #expect(PacmanFlags.rewrite(["--help", "branch"]) == ["--help", "branch"])
        #expect(PacmanFlags.rewrite(["--root", "/mnt"]) == ["--root", "/mnt"], "no subcommand: ArgumentParser says so")
        #expect(PacmanFlags.rewrite(["--help"]) == ["--help"])
        #expect(PacmanFlags.rewrite(["-h"]) == ["-h"])
        #expect(RastMain.execute(["-Sw", "hello"]) != 0)
    }
}
