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

    /// A container that crun cannot start here still exists (exited) and keeps its image.
    @Test func anImageInUseIsNotRemoved() throws {
        try Require.root()
        try Require.programs("crun")
        let scratch = try Scratch("rast-ctr-cli")
        let builder = try OCILayoutBuilder(layout: scratch.appending("images"), scratch: scratch.appending("layers"))
        try builder.image("app", layers: [[.file("bin/app", "#!/bin/sh\n", mode: 0o755)]], cmd: ["/bin/app"])
        let data = ["--data", scratch.appending("data")]
        #expect(try rast(["ctr", "pull"] + data + ["--name", "app", "oci:\(builder.layout):app"]).status == 0)
        let run = try rast(["ctr", "run"] + data + ["--name", "c1", "app"])
        #expect(run.status != 0, "crun cannot run containers on the build hosts")
        let ps = try rast(["ctr", "ps", "-a"] + data)
        #expect(ps.standardOutput.contains(" c1"), "\(ps.standardOutput)")
        #expect(ps.standardOutput.contains("exited ("))
        let refused = try rast(["ctr", "rmi"] + data + ["app"])
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("image app is used by a container"), "\(refused.standardError)")
        let kept = try rast(["ctr", "prune", "-a"] + data)
        #expect(!kept.standardOutput.contains("removed app"))
        #expect(try rast(["ctr", "rm"] + data + ["c1"]).standardOutput == "c1\n")
        #expect(try rast(["ctr", "rmi"] + data + ["app"]).status == 0)
    }

    /// Line editing on a terminal (a pty): Backspace, Ctrl-U, the history and Ctrl-D.
    @Test func theReplEditsLinesOnATerminal() throws {
        try Require.root()
        try Require.programs("python3")
        let scratch = try Scratch("rast-ctr-cli")
        let binary = RecipeCommandTests.root + "/.build/debug/rast"
        // Python's pty module gives the REPL a terminal and types the keys one at a time.
        let driver = #"""
            import os, pty, sys, time
            pid, fd = pty.fork()
            if pid == 0:
                os.environ["TERM"] = "xterm"
                os.execv(sys.argv[1], [sys.argv[1], "container", "repl", "--data", sys.argv[2]])
            out = b""
            def pump(t):
                global out
                end = time.time() + t
                while time.time() < end:
                    try:
                        import select
                        r, _, _ = select.select([fd], [], [], 0.05)
                        if r: out += os.read(fd, 65536)
                    except OSError:
                        return
            pump(3)
            for keys in [b"psx\x7f\r", b"images\x15ps -a\r", b"\x1b[A\r", b"hlepx\x1b[D\x1b[3~\x1b[D\x1b[D\x7f\x1b[Cl\r", b"\x04"]:
                os.write(fd, keys); pump(2)
            os.waitpid(pid, 0)
            sys.stdout.write(out.decode(errors="replace"))
            """#
        let result = try Command("python3", ["-c", driver, binary, scratch.path]).run(check: false, timeout: 60)
        let output = result.standardOutput
        #expect(output.components(separatedBy: "CONTAINER ID").count == 4, "ps, ps -a and ps -a again from the history: \(output)")
        #expect(!output.contains("IMAGE    ID"), "Ctrl-U dropped 'images'")
        #expect(output.contains("Commands (each takes"), "'hlep' edited into 'help'")
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
            (["run", "--restart", "always", "bb"], "--restart always: needs -d"),
            (["run", "-d", "--rm", "--restart", "on-failure:2", "bb"], "--restart on-failure:2: cannot be combined with --rm"),
            (["run", "-d", "--restart", "sometimes", "bb"], "--restart sometimes: expected no, always, on-failure or on-failure:MAX"),
            (["run", "-d", "--restart", "on-failure:0", "bb"], "must be a number of at least 1, not '0'"),
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

    @Test func restartIsRefusedBelowData() throws {
        try Require.root()
        let scratch = try Scratch("rast-ctr-cli")
        let result = try rast(["container", "run", "--data", scratch.path, "-d", "--restart", "always", "bb", "true"])
        #expect(result.status == 1)
        #expect(result.standardError.contains("--restart always: containers below --data cannot be restarted"), "\(result.standardError)")
        #expect(try FileManagerShim.contents(of: scratch.path + "/containers").filter { $0 != "lock" } == [], "nothing was made")
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
