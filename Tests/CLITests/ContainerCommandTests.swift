import Foundation
import SystemSupport
import Testing
import TestSupport

/// `rast container` as the built binary runs it, with its stores in a temporary directory
/// (`--data`). Running containers needs crun, which cannot run them on the build hosts: that
/// part is ContainerBootTests, in a booted image.
@Suite("rast container", .serialized)
struct ContainerCommandTests {
    func rast(_ arguments: [String], input: String? = nil) throws -> CommandResult {
        let binary = RecipeCommandTests.root + "/.build/debug/rast"
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        return try Command(binary, arguments, input: input.map { .bytes(Array($0.utf8)) } ?? .null).run(check: false)
    }

    @Test func pullListRemoveAndPruneImages() throws {
        try Require.root()
        let scratch = try Scratch("rast-ctr-cli")
        let builder = try OCILayoutBuilder(layout: scratch.appending("images"), scratch: scratch.appending("layers"))
        try builder.image("base", layers: [[.file("etc/os-release", "ID=test\n")]])
        try builder.image("app", base: "base", layers: [[.file("app/run", "run")]], cmd: ["/app/run"])
        let data = ["--data", scratch.appending("data")]

        let pulled = try rast(["container", "pull"] + data + ["oci:\(builder.layout):app"])
        #expect(pulled.status == 0, "\(pulled.standardError)")
        #expect(pulled.standardOutput.hasPrefix("images:app: sha256:"))
        #expect(pulled.standardOutput.contains("(2 layers,"))
        #expect(try rast(["ctr", "pull"] + data + ["--name", "base:1", "oci:\(builder.layout):base"]).status == 0)

        let images = try rast(["ctr", "images"] + data)
        let lines = images.standardOutput.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("IMAGE") == true)
        #expect(lines.dropFirst().map { String($0.prefix { $0 != " " }) } == ["base:1", "images:app"])
        #expect(try rast(["ctr", "images", "-q"] + data).standardOutput.split(separator: "\n").count == 2)

        let removed = try rast(["ctr", "rmi"] + data + ["images:app"])
        #expect(removed.status == 0, "\(removed.standardError)")
        #expect(removed.standardOutput.contains("removed images:app"))
        #expect(removed.standardOutput.contains("freed 1 layers"), "the base layer stays for base:1: \(removed.standardOutput)")
        let pruned = try rast(["ctr", "prune", "-a"] + data)
        #expect(pruned.standardOutput.contains("removed base:1"))
        #expect(try FileManagerShim.contents(of: scratch.appending("data/oci/layers")).isEmpty)
        let missing = try rast(["ctr", "rmi"] + data + ["nothing"])
        #expect(missing.status == 1)
        #expect(missing.standardError.contains("no image 'nothing' in the store"))

        let ps = try rast(["ctr", "ps", "-a"] + data)
        #expect(ps.status == 0)
        #expect(ps.standardOutput.split(separator: "\n").count == 1, "only the header: \(ps.standardOutput)")
    }

    @Test func runRefusesBadOptionsWithASentence() throws {
        let cases: [([String], String)] = [
            (["run"], "Name the image to run"),
            (["run", "--network", "bridge", "bb"], "--network must be none or host, not 'bridge'"),
            (["run", "-d", "-t", "bb"], "-d cannot be combined with -i or -t"),
            (["run", "--memory", "lots", "bb"], "--memory lots: expected a size"),
            (["run", "--name=.x", "bb"], "a name starts with a letter or digit"),
            (["run", "--snapshot", "1"], "Give the command to run in the snapshot"),
            (["exec", "c1"], "Give the command to run after the container"),
        ]
        for (arguments, message) in cases {
            let result = try rast(["container"] + arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.standardError.contains(message), "\(arguments): \(result.standardError)")
        }
    }

    @Test func aVolumeWithARelativePathIsNamed() throws {
        try Require.root()
        let scratch = try Scratch("rast-ctr-cli")
        let result = try rast(["container", "run", "--data", scratch.path, "-v", "data:/data", "bb", "true"])
        #expect(result.status == 1)
        #expect(result.standardError.contains("-v data:/data: both paths must be absolute"), "\(result.standardError)")
    }

    @Test func theReplRunsCommandsFromItsInput() throws {
        try Require.root()
        let scratch = try Scratch("rast-ctr-cli")
        let result = try rast(["container", "repl", "--data", scratch.path],
                              input: "help\nimages\nbogus\nps -a\n\"unterminated\nhelp rm\nexit\nps\n")
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("Commands (each takes"))
        #expect(result.standardOutput.contains("IMAGE"))
        #expect(result.standardOutput.contains("CONTAINER ID"))
        #expect(result.standardOutput.contains("Kill running containers first."), "help rm shows rm's options")
        #expect(result.standardError.contains("unknown command 'bogus'; type help"))
        #expect(result.standardError.contains("unterminated quote"))
        #expect(result.standardOutput.components(separatedBy: "CONTAINER ID").count == 2, "nothing runs after exit")
    }
}
