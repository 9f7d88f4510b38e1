import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// `rast service` changing definitions in snapshots, through the binary with --root on a real
/// btrfs tree: checked before anything changes, new snapshots made the safe way.
@Suite(.serialized) struct ServiceCommandTests {
    static let alpha = """
        # alpha: the thing beta needs.
        description = "first"
        command = "exec sleep 1000"
        ready = { tcp = 7001 }

        """
    static let beta = """
        # beta runs after alpha.
        command = ["sleep", "1000"]
        depends = ["alpha"]   # started once alpha listens

        """

    /// Snapshot 1 (deployed) with alpha and beta.
    static func fixture() throws -> (TreeFixture, RastCLI, TemporaryDirectory) {
        let fixture = try TreeFixture()
        let rast = RastCLI(root: fixture.layout.top)
        let files = try TemporaryDirectory(prefix: "rast-service-files")
        try Files.write(files.appending("alpha.toml"), string: alpha)
        try Files.write(files.appending("beta.toml"), string: beta)
        #expect(try rast("branch", "0").status == 0)
        let added = try rast("service", "add", "--snapshot", "1", files.appending("alpha.toml"), files.appending("beta.toml"))
        #expect(added.status == 0, "\(added.output)")
        #expect(try rast("deploy", "1").status == 0)
        return (fixture, rast, files)
    }

    /// What a refused command must leave alone: the tree, the definitions, no working copies.
    struct Snapshot: Equatable {
        let tree: String
        let definitions: [String: String]
        let subvolumes: [String]
    }

    static func snapshot(_ fixture: TreeFixture, _ rast: RastCLI) throws -> Snapshot {
        let tree = try rast("tree").output
        var definitions: [String: String] = [:]
        for id in try fixture.store.state().snapshots.map(\.id) {
            let directory = fixture.layout.etc(id) + "/rast/services"
            for name in (try? FileManagerShim.contents(of: directory)) ?? [] {
                definitions["\(id)/\(name)"] = try Files.readString(directory + "/" + name)
            }
        }
        let subvolumes = try ["rootfs", "etc", "boot"].flatMap { try FileManagerShim.contents(of: fixture.layout.snapshots + "/" + $0).sorted() }
        return Snapshot(tree: tree, definitions: definitions, subvolumes: subvolumes)
    }

    @Test func badDefinitionsAreRefusedWithTheirPositionAndChangeNothing() throws {
        let (fixture, rast, files) = try Self.fixture()
        defer { fixture.close(); try? files.remove() }
        let before = try Self.snapshot(fixture, rast)
        #expect(before.definitions.keys.sorted() == ["1/alpha.toml", "1/beta.toml"])

        let cases: [(files: [String: String], expected: [String])] = [
            (["web": "command = \"httpd -f\"\nrestrat = \"always\"\n"],
             ["web.toml:2:1: error: restrat: unknown key 'restrat'; did you mean 'restart'?"]),
            (["web": "description = \"no command\"\n"],
             ["web.toml:1:1: error: command: missing required key 'command'"]),
            (["web": "command = \"x\"\ndepends = [\"alpha\", \"database\"]\n"],
             ["web.toml:2:21: error: depends[1]: unknown service 'database' (defined are alpha, beta)"]),
            (["one": "command = \"x\"\ndepends = [\"two\"]\n", "two": "command = \"x\"\ndepends = [\"one\"]\n"],
             ["two.toml:2:12: error: depends[0]: the dependencies form a cycle (one → two → one)"]),
        ]
        for (definitions, expected) in cases {
            var paths: [String] = []
            for (name, text) in definitions.sorted(by: { $0.key < $1.key }) {
                let path = files.appending(name + ".toml")
                try Files.write(path, string: text)
                paths.append(path)
            }
            for target in [[], ["--snapshot", "1"]] {
                let result = try rast.run(["service", "add"] + target + paths)
                #expect(result.status == 1, "\(result.output)")
                for line in expected {
                    #expect(result.output.contains(files.path + "/" + line), "expected \(line) in:\n\(result.output)")
                }
                #expect(result.output.contains("nothing was changed"))
                #expect(try Self.snapshot(fixture, rast) == before)
            }
            for path in paths { unlink(path) }
        }
        // Disabling alpha would leave beta waiting forever: refused at beta's dependency.
        let disable = try rast("service", "disable", "alpha")
        #expect(disable.status == 1)
        #expect(disable.output.contains(fixture.layout.etc(1) + "/rast/services/beta.toml:3:12: error: depends[0]: 'alpha' is disabled, so 'beta' would never start"), "\(disable.output)")
        let remove = try rast("service", "remove", "alpha", "--snapshot", "1")
        #expect(remove.status == 1)
        #expect(remove.output.contains("beta.toml:3:12: error: depends[0]: unknown service 'alpha'"), "\(remove.output)")
        #expect(try Self.snapshot(fixture, rast) == before)
    }

    @Test func disableMakesANewDeployedSnapshotAndEnableWorksInPlace() throws {
        let (fixture, rast, files) = try Self.fixture()
        defer { fixture.close(); try? files.remove() }
        let disable = try rast("service", "disable", "beta")
        #expect(disable.status == 0, "\(disable.output)")
        #expect(disable.output.contains("snapshot 2 (from 1): rast service disable beta; it is deployed"), "\(disable.output)")
        #expect(try fixture.store.nextSnapshot() == 2)
        #expect(try fixture.store.state().record(2)?.parent == 1)
        // Snapshot 2 has beta disabled, with the file's comments kept; snapshot 1 is unchanged.
        let disabled = try Files.readString(fixture.layout.etc(2) + "/rast/services/beta.toml")
        #expect(disabled == "# beta runs after alpha.\nenabled = false\n" + Self.beta.dropFirst("# beta runs after alpha.\n".count))
        #expect(try Files.readString(fixture.layout.etc(1) + "/rast/services/beta.toml") == Self.beta)
        let list2 = try rast("service", "list", "--snapshot", "2")
        #expect(list2.output.contains("beta     no       alpha"), "\(list2.output)")
        let list1 = try rast("service", "list", "--snapshot", "1", "--json")
        #expect(list1.output.contains("\"enabled\" : true"), "\(list1.output)")
        #expect(!list1.output.contains("\"enabled\" : false"), "\(list1.output)")

        let again = try rast("service", "disable", "beta", "--snapshot", "2")
        #expect(again.output.contains("already disabled in snapshot 2; nothing changed"))
        let enable = try rast("service", "enable", "beta", "--snapshot", "2")
        #expect(enable.status == 0, "\(enable.output)")
        #expect(try Files.readString(fixture.layout.etc(2) + "/rast/services/beta.toml").contains("enabled = true\n"))
        #expect(try rast("service", "check", "--snapshot", "2").status == 0)
        #expect(try rast("check").status == 0)
        #expect(try fixture.store.workingCopies().isEmpty)
        // Commands for the running system refuse an image.
        let start = try rast("service", "start", "beta")
        #expect(start.status == 64)
        #expect(start.output.contains("rast service start acts on the running system; --root does not apply"), "\(start.output)")
    }
}
