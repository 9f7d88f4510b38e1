import Foundation
import SystemSupport
import VirtualMachine

extension BootTest {
    /// The boot test with an SSH login: QEMU runs beside us with the guest's SSH port
    /// forwarded from 127.0.0.1; the host tries to log in from the start (so the time to the
    /// first login is measured from QEMU's start), then waits for the guest to be ready for the
    /// rest of the check, runs the commands, checks the refusals, and lets the guest finish.
    func runWithLogin(_ login: LoginCheck, progress: ProgressReporter) throws -> BootTestResult {
        let scratch = try TemporaryDirectory(prefix: "rast-boot")
        defer { try? scratch.remove() }
        let scriptPath = scratch.appending("check.sh")
        try Files.write(scriptPath, string: checkScript)
        let port = try QEMU.freeLocalPort()
        var configuration = MachineConfiguration()
        configuration.firmware = firmware
        configuration.memory = memory
        configuration.disks = [.init(path: image, format: format, snapshot: !persistent)] + extraDisks
        configuration.firmwareConfig = [(name: "opt/rast/check", file: scriptPath)]
        configuration.network = .user(forwards: [.init(hostPort: port, guestPort: login.guestPort)])
        configuration.probeKernel = probeKernel
        configuration.qemu = qemu
        let name = imageName ?? image
        progress.begin("boot test: \((name as NSString).lastPathComponent) (\(format)) with \(firmware.rawValue.uppercased()) firmware in QEMU, SSH login as \(login.user) on 127.0.0.1:\(port)")
        let machine = try RunningMachine(configuration, consoleLog: consoleLog)
        defer { machine.stop() }
        let deadline = Stopwatch.now() + timeout
        func remaining() -> Double { max(0, deadline - Stopwatch.now()) }
        func guestGaveUp() -> Bool {
            !machine.isRunning || machine.consoleLines.contains { $0.hasPrefix(Self.failurePrefix) || $0.contains("Kernel panic - not syncing") }
        }

        var result = LoginResult()
        let ssh = SSHClient(port: port, user: login.user, identity: login.identity)
        var outcome: String?
        if try ssh.waitUntilLoggedIn(timeout: remaining(), giveUp: guestGaveUp) != nil {
            result.secondsToLogin = machine.elapsed
            let (ready, _) = machine.waitForConsole(timeout: remaining()) { $0.hasPrefix("RAST-LOGIN: waiting") || $0.hasPrefix(Self.failurePrefix) }
            if case .line(let line, _) = ready, line.hasPrefix("RAST-LOGIN: waiting") {
                for command in login.commands {
                    let output = try ssh.run(command)
                    result.commands.append(.init(command: command, status: output.status, output: output.standardOutput + output.standardError))
                    if output.status != 0, result.failure == nil {
                        result.failure = "`\(command)` over SSH as \(login.user) exited with status \(output.status): \(output.combinedTail(lines: 5))"
                    }
                }
                result.offeredAuthentications = try ssh.offeredAuthentications()
                result.passwordLoginRefused = try !ssh.passwordLoginSucceeds(password: LoginCheck.checkPassword)
                var root = ssh
                root.user = "root"
                result.rootLoginRefused = try root.run("true").status != 0
                if result.failure == nil {
                    if !result.passwordLoginRefused {
                        result.failure = "a password login as \(login.user) succeeded"
                    } else if result.offeredAuthentications.contains("password") || result.offeredAuthentications.contains("keyboard-interactive") {
                        result.failure = "the server offers password logins (\(result.offeredAuthentications.joined(separator: ",")))"
                    } else if !result.rootLoginRefused {
                        result.failure = "a root login with \(login.user)'s key succeeded"
                    }
                }
                // Let the guest finish (as the user: /tmp is writable for everyone).
                let done = try ssh.run("touch /tmp/rast-login-done")
                if done.status != 0, result.failure == nil {
                    result.failure = "could not tell the guest that the login check is done: \(done.combinedTail(lines: 3))"
                }
            } else {
                outcome = describe(ready)
            }
        } else if !guestGaveUp() {
            result.failure = "no SSH login as \(login.user) on 127.0.0.1:\(port) within \(Int(timeout)) seconds"
        }

        // The guest reports PASS or FAIL and powers off (or the host gave up and stops it).
        var passed = false
        if result.failure == nil, outcome == nil {
            let (end, _) = machine.waitForConsole(timeout: remaining()) {
                $0.contains(Self.successMarker) || $0.hasPrefix(Self.failurePrefix)
            }
            if case .line(let line, _) = end, line.contains(Self.successMarker) {
                passed = true
                _ = machine.waitForExit(timeout: 30)
            } else {
                outcome = describe(end)
            }
        } else if outcome == nil, let failure = machine.consoleLines.first(where: { $0.hasPrefix(Self.failurePrefix) }) {
            outcome = "the guest reported failure: \(failure)"
        }
        machine.stop()

        var current: String?
        var tree: [String] = []
        var others: [String] = []
        let prefix = "RAST-REPORT "
        for line in machine.consoleLines where line.hasPrefix(prefix) {
            let report = String(line.dropFirst(prefix.count))
            if report.hasPrefix("current ") { current = String(report.dropFirst("current ".count)) }
            else if report.hasPrefix("tree ") { tree.append(String(report.dropFirst("tree ".count))) }
            else if !report.hasPrefix("status ") { others.append(report) }
        }
        var description = outcome ?? result.failure.map { "the SSH login check failed: \($0)" } ?? "the guest reported success (\(Self.successMarker))"
        if passed, let failure = result.failure {
            passed = false
            description = "the SSH login check failed: \(failure)"
        }
        if passed, let expected = expectation.current, current != String(expected) {
            passed = false
            description = "the guest reported snapshot \(current ?? "nothing") as current, expected \(expected)"
        }
        if passed, let expected = expectation.tree, expected != tree {
            passed = false
            description = "the guest's `rast tree` differs from the image's tree: expected \(expected), reported \(tree)"
        }
        if !passed, result.failure == nil, outcome == nil { result.failure = description }
        let seconds = machine.elapsed
        progress.end("boot test: \((name as NSString).lastPathComponent) (\(format), \(firmware.rawValue.uppercased()))", summary: passed
            ? "passed in \(String(format: "%.1f", seconds)) s (\(machine.accelerator)); SSH login after \(String(format: "%.1f", result.secondsToLogin ?? 0)) s"
            : "FAILED: \(description)")
        var report = BootTestResult(image: name, format: format, firmware: firmware.rawValue, passed: passed, seconds: seconds,
                                    accelerator: machine.accelerator, outcome: description, consoleLog: consoleLog,
                                    reportedCurrent: current, reportedTree: tree, otherReports: others)
        report.login = result
        return report
    }

    private func describe(_ event: RunningMachine.ConsoleEvent) -> String {
        switch event {
        case .line(let line, _): return line.hasPrefix(Self.failurePrefix) ? "the guest reported failure: \(line)" : line
        case .kernelPanic(let line): return "the guest kernel panicked: \(line)"
        case .exited(let status): return "QEMU exited (status \(status)) before the guest reported success"
        case .timedOut: return "the guest did not report success within \(Int(timeout)) seconds"
        }
    }
}
