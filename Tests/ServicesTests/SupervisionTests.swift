import Foundation
import HostCommands
import Services
import SystemSupport
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The generated service directories under the real s6 (Debian's s6-svscan, the same
/// binaries the image carries), on this machine: services that listen stay on 127.0.0.1.
@Suite(.serialized) struct SupervisionTests {
    /// A supervision tree in a scratch directory, stopped and waited for at the end.
    final class Tree {
        let scratch: TemporaryDirectory
        let paths: SupervisionPaths
        let definitions: String
        var scanner: BackgroundProcess?
        var supervisor: Supervisor { Supervisor(paths: paths) }

        init() throws {
            try Require.programs("s6-svscan", "s6-svstat", "s6-svc", "s6-log", "s6-notifyoncheck", "busybox")
            scratch = try TemporaryDirectory(prefix: "rast-s6")
            paths = SupervisionPaths(scanDirectory: scratch.appending("scan"), logDirectory: scratch.appending("log"),
                                     searchPath: "/usr/local/bin:/usr/bin:/bin")
            definitions = scratch.appending("services")
            try Files.createDirectory(definitions)
        }

        func define(_ name: String, _ text: String) throws {
            try Files.write(definitions + "/\(name).toml", string: text)
        }

        func start() throws -> SetupReport {
            let report = try supervisor.setUp(definitionsDirectory: definitions)
            scanner = try BackgroundProcess(Command("s6-svscan", [paths.scanDirectory])) { line in print("s6-svscan: \(line)") }
            return report
        }

        func waitFor(_ name: String, timeout: Double = 20, _ what: String, until condition: (RuntimeStatus) -> Bool) throws -> RuntimeStatus {
            try supervisor.wait(name, until: condition, action: what, timeout: timeout)
            return try #require(try supervisor.status(name))
        }

        func log(_ name: String) -> [String] { supervisor.logLines(name, count: 200) }

        /// The log once it has a line ending in `suffix` (s6-log writes a moment after the
        /// program did), or as it is after `timeout` seconds.
        func log(_ name: String, awaiting suffix: String, timeout: Double = 10) -> [String] {
            let stopwatch = Stopwatch()
            var lines = log(name)
            while !lines.contains(where: { $0.hasSuffix(suffix) }), stopwatch.elapsed < timeout {
                usleep(50_000)
                lines = log(name)
            }
            return lines
        }

        deinit {
            if let scanner {
                // Terminate: every service down, loggers drained, s6-svscan exits.
                _ = try? Command("s6-svscanctl", ["-t", paths.scanDirectory]).run(check: false)
                if scanner.wait(timeout: 15) == nil { scanner.stop() }
            }
            try? scratch.remove()
        }
    }

    @Test func dependencyOrderRestartsBackoffAndFailures() throws {
        let tree = try Tree()
        let port = try LoopbackListener.closedPort()
        let hex = String(format: "%04X", port)
        let www = tree.scratch.appending("www")
        try Files.createDirectory(www)
        // alpha takes a while before it listens; beta depends on it and records what it saw.
        try tree.define("alpha", """
            description = "slow to get ready"
            command = "sleep 1.5; echo 'alpha: listening now'; exec busybox httpd -f -p 127.0.0.1:\(port) -h \(www)"
            ready = { tcp = \(port) }
            restart_delay = "500ms"
            restart_delay_max = "4s"
            """)
        try tree.define("beta", """
            command = "if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q ':\(hex) [0-9A-F:]* 0A'; then echo 'beta: alpha was listening when beta started'; else echo 'beta: alpha was not listening'; fi; exec sleep 1000"
            depends = ["alpha"]
            """)
        try tree.define("failing", """
            command = "echo 'failing: cannot open /nonexistent/config'; exit 3"
            restart_delay = "200ms"
            restart_delay_max = "800ms"
            """)
        try tree.define("once", "command = \"echo 'once: done'\"\nrestart = \"on-failure\"\n")
        try tree.define("never", "command = \"echo 'never: giving up'; exit 4\"\nrestart = \"never\"\n")
        try tree.define("off", "command = \"sleep 1000\"\nenabled = false\n")
        try tree.define("broken", "command = \"sleep 1000\"\nrestrat = \"always\"\n")
        try tree.define("orphan", "command = \"sleep 1000\"\ndepends = [\"broken\"]\n")

        let report = try tree.start()
        #expect(report.supervised == ["alpha", "beta", "failing", "never", "once"])
        #expect(report.disabled == ["off"])
        #expect(report.refused.map(\.name) == ["orphan"])
        #expect(report.problems.map(\.description).contains("\(tree.definitions)/broken.toml:2:1: error: restrat: unknown key 'restrat'; did you mean 'restart'?"))
        #expect(report.problems.contains { $0.description.hasPrefix("\(tree.definitions)/orphan.toml:2:12: error: depends[0]: unknown service 'broken'") })

        // beta starts only once alpha is ready.
        let beta = try tree.waitFor("beta", "run") { $0.state == .running }
        #expect(beta.pid != nil)
        let alpha = try #require(try tree.supervisor.status("alpha"))
        #expect(alpha.state == .running)
        let betaLog = tree.log("beta", awaiting: "beta: alpha was listening when beta started")
        #expect(betaLog.contains { $0.hasSuffix("beta: alpha was listening when beta started") }, "\(betaLog)")
        #expect(betaLog.contains { $0.hasSuffix("rast: beta waits for alpha to be ready") }, "\(betaLog)")

        // kill -9 of alpha's process: restarted after the backoff (500 ms), counted, and ready again.
        let oldPID = try #require(alpha.pid)
        let killed = Stopwatch()
        kill(pid_t(oldPID), SIGKILL)
        let restarted = try tree.waitFor("alpha", timeout: 10, "restart") { $0.up && $0.pid != nil && $0.pid != oldPID }
        let restartSeconds = killed.elapsed
        #expect(restartSeconds < 3, "alpha came back \(restartSeconds) s after kill -9")
        #expect(restartSeconds >= 0.45, "alpha waited its 500 ms backoff (\(restartSeconds) s)")
        #expect(restarted.restarts == 1)
        #expect(restarted.lastSignal == 9)
        #expect(restarted.lastExit == "killed by signal 9 (SIGKILL)")
        _ = try tree.waitFor("alpha", "become ready again") { $0.state == .running }
        print("supervision: alpha restarted \(String(format: "%.2f", restartSeconds)) s after kill -9")

        // A service that always fails: failed, restarted with a growing delay, its output logged.
        let failing = try tree.waitFor("failing", "fail three times") { $0.restarts >= 3 && $0.state == .failed }
        #expect(failing.lastExitStatus == 3)
        #expect(failing.lastExit == "exited with status 3")
        #expect(failing.consecutiveFailures >= 3)
        let failingLog = tree.log("failing", awaiting: "restart 3 in 0.800 s")
        #expect(failingLog.contains { $0.hasSuffix("failing: cannot open /nonexistent/config") })
        for (number, delay) in [(1, "0.200"), (2, "0.400"), (3, "0.800")] {
            #expect(failingLog.contains { $0.hasSuffix("rast: failing exited with status 3; restart \(number) in \(delay) s") }, "\(failingLog)")
        }

        // on-failure after a clean exit, and never after a failure: down for good, not restarted.
        let once = try tree.waitFor("once", "end") { !$0.wantedUp }
        #expect(once.state == .stopped)
        #expect(once.lastExitStatus == 0)
        #expect(once.restarts == 0)
        let never = try tree.waitFor("never", "end") { !$0.wantedUp }
        #expect(never.state == .failed)
        #expect(never.lastExitStatus == 4)
        #expect(never.restarts == 0)
        #expect(tree.log("never", awaiting: "it stays down").contains { $0.hasSuffix("rast: never exited with status 4; restart = never: it stays down") })

        // stop, start and restart.
        try tree.supervisor.stop("beta")
        let stopped = try #require(try tree.supervisor.status("beta"))
        #expect(stopped.state == .stopped)
        #expect(!stopped.up)
        try tree.supervisor.start("beta")
        let started = try #require(try tree.supervisor.status("beta"))
        #expect(started.state == .running)
        let before = try #require(started.pid)
        try tree.supervisor.restart("beta")
        let after = try #require(try tree.supervisor.status("beta"))
        #expect(after.state == .running)
        #expect(after.pid != before)
        #expect(after.restarts == 0, "a restart that was asked for is not a failure restart")
        #expect(throws: SupervisorError.self) { try tree.supervisor.start("off") }
    }

    /// Logs rotate at their size into timestamped files; `logLines` reads across them;
    /// `follow` prints what comes; `rast service list` and `status` show the states.
    @Test func logsRotateAndFollowAndTheCommandsShowTheState() throws {
        let tree = try Tree()
        // 300 numbered lines of 40 bytes at once (12 KB: three rotations at 4 KiB), then one line every 100 ms.
        try tree.define("chatty", """
            description = "talks a lot"
            command = "i=0; while [ $i -lt 300 ]; do printf 'line %04d ..............................\\n' $i; i=$((i + 1)); done; while true; do echo tick; sleep 0.1; done"
            log = { max_size = "4K", keep = 5 }
            """)
        try tree.define("failing", "command = \"echo 'failing: no configuration'; exit 2\"\nrestart_delay = \"300ms\"\nrestart_delay_max = \"600ms\"\n")
        try tree.define("off", "command = \"sleep 100\"\nenabled = false\n")
        _ = try tree.start()
        _ = try tree.waitFor("failing", "fail twice") { $0.restarts >= 2 && $0.state == .failed }
        let logs = tree.paths.logDirectory("chatty")
        var rotated: [String] = []
        let stopwatch = Stopwatch()
        while stopwatch.elapsed < 20 {
            rotated = try FileManagerShim.contents(of: logs).filter { $0.hasPrefix("@") }
            if rotated.count >= 2, tree.supervisor.logLines("chatty", count: 1).first?.hasSuffix("tick") == true { break }
            usleep(100_000)
        }
        #expect(rotated.count >= 2 && rotated.count <= 5, "rotated files: \(rotated)")
        let all = tree.supervisor.logLines("chatty", count: 1000).filter { $0.contains("line ") }
        let numbers = all.compactMap { line in line.split(separator: " ").first { $0.count == 4 && $0.allSatisfy(\.isNumber) }.flatMap { Int($0) } }
        #expect(numbers.count >= 200, "lines kept across the rotated files: \(numbers.count)")
        #expect(numbers == Array(numbers.sorted()), "in order")
        #expect(numbers.last == 299)

        var followed: [String] = []
        try tree.supervisor.follow("chatty", output: { followed.append($0) }, stop: { followed.count >= 3 })
        #expect(followed.count >= 3 && followed.allSatisfy { $0.hasSuffix("tick") }, "\(followed)")

        var printed: [String] = []
        let commands = ServiceCommands(definitionsDirectory: tree.definitions, supervisor: tree.supervisor) { printed.append($0) }
        try commands.list(json: false)
        let table = printed.joined(separator: "\n").split(separator: "\n").map(String.init)
        #expect(table.first?.split(separator: " ", omittingEmptySubsequences: true) == ["SERVICE", "STATE", "PID", "UP", "RESTARTS", "DESCRIPTION"])
        #expect(table.contains { $0.hasPrefix("chatty") && $0.contains(" running ") && $0.hasSuffix("talks a lot") }, "\(table)")
        #expect(table.contains { $0.hasPrefix("failing") && $0.contains(" failed ") }, "\(table)")
        #expect(table.contains { $0.hasPrefix("off") && $0.contains(" disabled ") }, "\(table)")
        printed = []
        try commands.status("failing", json: false, logLines: nil)
        let status = printed.joined(separator: "\n")
        #expect(status.contains("state:      failed"), "\(status)")
        #expect(status.contains("last exit:  exited with status 2"), "\(status)")
        #expect(status.contains("last log lines:"), "\(status)")
        #expect(status.contains("failing: no configuration"), "\(status)")
        printed = []
        try commands.status("chatty", json: true, logLines: 2)
        let json = try JSONSerialization.jsonObject(with: Data(printed.joined().utf8)) as? [String: Any]
        let entry = json?["entry"] as? [String: Any]
        #expect(entry?["state"] as? String == "running")
        #expect((entry?["pid"] as? Int ?? 0) > 0)
        #expect((json?["recentLog"] as? [String])?.count == 2)
        #expect(throws: UserError.self) { try commands.status("nonexistent", json: false, logLines: nil) }
    }
}
