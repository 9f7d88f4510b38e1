import Containers
import Foundation
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Restart policies: their parsing, where they are refused, and the generated s6 service
/// directories under the real s6 on this machine. The program the run script starts stands in
/// for `rast container _supervised` (crun cannot run containers on the build hosts; the
/// booted image of ContainerBootTests runs real containers this way).
@Suite(.serialized) struct RestartSupervisionTests {
    @Test func policiesParse() throws {
        #expect(try RestartPolicy(parsing: "no") == .no)
        #expect(try RestartPolicy(parsing: "always") == .always)
        #expect(try RestartPolicy(parsing: "on-failure") == .onFailure(maximum: nil))
        #expect(try RestartPolicy(parsing: "on-failure:3") == .onFailure(maximum: 3))
        #expect(RestartPolicy.onFailure(maximum: 3).description == "on-failure:3")
        for bad in ["sometimes", "on-failure:0", "on-failure:x", "Always", ""] {
            #expect(throws: ContainerError.self) { try RestartPolicy(parsing: bad) }
        }
        do {
            _ = try RestartPolicy(parsing: "unless-stopped")
            Issue.record("unless-stopped was taken")
        } catch {
            #expect("\(error)" == "--restart unless-stopped: expected no, always, on-failure or on-failure:MAX")
        }
        // Kept in the record as its text; records without it still read.
        var options = RunOptions()
        options.restart = .onFailure(maximum: 2)
        let data = try JSONEncoder().encode(options)
        #expect(String(decoding: data, as: UTF8.self).contains("\"restart\":\"on-failure:2\""))
        #expect(try JSONDecoder().decode(RunOptions.self, from: data) == options)
        #expect(try JSONDecoder().decode(RunOptions.self, from: Data(#"{"environment":[],"volumes":[],"tmpfs":[],"hooks":[],"network":"none","command":[],"remove":false,"detach":true,"interactive":false,"tty":false,"readOnly":false,"userNamespace":false}"#.utf8)).restart == nil)
    }

    @Test func restartNeedsDetachAndNoRemove() throws {
        var options = RunOptions()
        options.restart = .always
        #expect(throws: ContainerError.invalidOption("--restart always", reason: "needs -d: s6 runs a restarting container in the background")) {
            try options.checkRestart()
        }
        options.detach = true
        try options.checkRestart()
        options.remove = true
        #expect(throws: ContainerError.invalidOption("--restart always", reason: "cannot be combined with --rm: a container that is removed when it exits cannot be restarted")) {
            try options.checkRestart()
        }
        options.restart = RestartPolicy.no
        try options.checkRestart()
    }

    @Test func scripts() {
        let run = RestartSupervision.runScript(id: "abc123", name: "web", policy: .always, rast: "/usr/bin/rast",
                                               dataDirectory: "/var/lib/rast", log: "/var/lib/rast/containers/abc123/log")
        #expect(run.contains("exec </dev/null >>'/var/lib/rast/containers/abc123/log' 2>&1\n"))
        #expect(run.hasSuffix("exec '/usr/bin/rast' container _supervised --data '/var/lib/rast' abc123\n"))
        let always = RestartSupervision.finishScript(name: "web", policy: .always, log: "/l")
        #expect(!always.contains("exit 125"), "always never stays down on its own")
        let limited = RestartSupervision.finishScript(name: "web", policy: .onFailure(maximum: 4), log: "/l")
        #expect(limited.contains("if [ \"$restarts\" -ge 4 ]; then"))
        #expect(limited.contains("if [ \"$1\" = 0 ]; then"))
    }

    /// s6-svscan on a scratch scan directory, terminated at the end.
    final class Tree {
        let scratch: TemporaryDirectory
        let supervision: RestartSupervision
        let scanner: BackgroundProcess

        init() throws {
            try Require.programs("s6-svscan", "s6-svscanctl", "s6-svstat", "s6-svc", "s6-svok")
            scratch = try TemporaryDirectory(prefix: "rast-ctr-s6")
            supervision = RestartSupervision(scanDirectory: scratch.appending("scan"))
            try Files.createDirectory(supervision.scanDirectory)
            scanner = try BackgroundProcess(Command("s6-svscan", [supervision.scanDirectory])) { line in print("s6-svscan: \(line)") }
        }

        /// A stand-in for rast: prints its arguments, exits with the status in `status-ID`.
        func install(_ id: String, policy: RestartPolicy, status: Int) throws {
            try Files.write(scratch.appending("status-\(id)"), string: "\(status)\n")
            let program = scratch.appending("rast-\(id)")
            try Files.write(program, string: "#!/bin/sh\necho \"ran $*\"\nexit $(cat \(scratch.appending("status-\(id)")))\n", mode: 0o755)
            try supervision.install(id: id, name: id, policy: policy, rast: program, dataDirectory: "/data", log: log(id))
        }

        func log(_ id: String) -> String { scratch.appending("log-\(id)") }
        func runs(_ id: String) -> Int {
            ((try? Files.readString(log(id))) ?? "").split(separator: "\n").filter { $0 == "ran container _supervised --data /data \(id)" }.count
        }

        func wait(_ what: String, timeout: Double = 20, until condition: () -> Bool) {
            let stopwatch = Stopwatch()
            while !condition() {
                if stopwatch.elapsed > timeout { Issue.record("timed out waiting for \(what)"); return }
                usleep(50_000)
            }
        }

        deinit {
            _ = try? Command("s6-svscanctl", ["-t", supervision.scanDirectory]).run(check: false)
            if scanner.wait(timeout: 15) == nil { scanner.stop() }
            try? scratch.remove()
        }
    }

    @Test func s6AppliesThePolicies() throws {
        try Require.root()
        let tree = try Tree()
        #expect(tree.supervision.waitUntilRunning(seconds: 10))
        try tree.install("fails", policy: .onFailure(maximum: 2), status: 1)
        try tree.install("succeeds", policy: .onFailure(maximum: nil), status: 0)
        try tree.install("always", policy: .always, status: 0)
        #expect(Files.exists(tree.supervision.directory("always") + "/data/container"))

        // on-failure:2 with exit 1: the first run and two restarts (s6 waits a second between
        // two), then it stays down.
        tree.wait("three runs of fails") { tree.runs("fails") == 3 && tree.supervision.wantedUp("fails") == false }
        usleep(2_500_000)
        #expect(tree.runs("fails") == 3)
        #expect(tree.supervision.restarts("fails") == 2)
        #expect(tree.supervision.wantedUp("fails") == false)
        let failLog = (try? Files.readString(tree.log("fails"))) ?? ""
        #expect(failLog.contains("rast: container fails exited with status 1; restarted 2 times already (on-failure:2): it stays down"), "\(failLog)")
        // on-failure with exit 0: once.
        #expect(tree.runs("succeeds") == 1)
        #expect(tree.supervision.restarts("succeeds") == 0)
        #expect(tree.supervision.wantedUp("succeeds") == false)
        // always: again and again, until it is taken down.
        #expect(tree.runs("always") >= 3)
        #expect(tree.supervision.wantedUp("always") == true)
        try tree.supervision.down("always")
        usleep(1_500_000)
        let runs = tree.runs("always")
        usleep(2_000_000)
        #expect(tree.runs("always") == runs, "a service taken down is not started again")
        // Counted by finish: one more when s6 was taken down between a finish and the next run.
        #expect((runs - 1...runs).contains(tree.supervision.restarts("always")), "\(tree.supervision.restarts("always")) restarts, \(runs) runs")

        // Removed: no directory (hidden or not) and no supervisor left.
        for id in ["fails", "succeeds", "always"] { try tree.supervision.remove(id) }
        #expect(try FileManagerShim.contents(of: tree.supervision.scanDirectory).filter { !$0.hasPrefix(".s6-svscan") } == [])
        let supervisors = try Command("ps", ["-eo", "args"]).run().standardOutput.split(separator: "\n")
            .filter { $0.hasPrefix("s6-supervise") && $0.contains("container-") }
        #expect(supervisors.isEmpty, "\(supervisors)")
    }
}
