import Foundation
import SystemSupport
import VirtualMachine

/// What a boot test expects the guest to report.
package struct BootExpectation: Sendable, Codable, Equatable {
    /// The snapshot `rast current` must print.
    package var current: Int?
    /// The lines `rast tree` must print.
    package var tree: [String]?

    package init(current: Int?, tree: [String]?) {
        self.current = current
        self.tree = tree
    }
}

/// One boot of an image in QEMU, checked from inside the guest.
package struct BootTestResult: Sendable, Codable {
    package let image: String
    package let format: String
    package let firmware: String
    package let passed: Bool
    package let seconds: Double
    package let accelerator: String
    package let outcome: String
    package let consoleLog: String
    package let reportedCurrent: String?
    package let reportedTree: [String]
    /// `RAST-REPORT` lines the extra checks printed.
    package let otherReports: [String]
    /// The SSH login check, when the test had one.
    package var login: LoginResult? = nil
}

/// An SSH login from this machine into the booted guest: QEMU user networking with
/// `restrict=on` and the guest's SSH port forwarded from 127.0.0.1 (nothing else is reachable
/// either way). The host logs in as `user` with `identity` (the private half of a key the image
/// authorises), runs `commands`, and checks that a password login (with a password the guest
/// sets for the check) and a root login (with the same key authorised for root) are refused.
package struct LoginCheck: Sendable {
    package var user: String
    /// The private key.
    package var identity: String
    package var guestPort: Int
    /// Run over SSH as `user`, in order; their output is in the result, and one that fails
    /// fails the test.
    package var commands: [String]

    package init(user: String, identity: String, guestPort: Int = 22, commands: [String] = ["rast tree", "rast service list"]) {
        self.user = user
        self.identity = identity
        self.guestPort = guestPort
        self.commands = commands
    }

    /// The password the guest gives `user` for the duration of the check.
    package static let checkPassword = "rast-login-check-Passw0rd"
}

/// What the login check found.
package struct LoginResult: Sendable, Codable {
    package struct CommandOutput: Sendable, Codable {
        package let command: String
        package let status: Int32
        package let output: String
    }

    /// Seconds from QEMU's start to the first successful login.
    package var secondsToLogin: Double?
    /// The methods the server offers before authentication ("publickey").
    package var offeredAuthentications: [String] = []
    package var passwordLoginRefused = false
    package var rootLoginRefused = false
    package var commands: [CommandOutput] = []
    /// Why the check failed; nil when it passed.
    package var failure: String?
}

/// The boot test (DESIGN.md, "In-guest checks"): QEMU boots the image with a serial console;
/// the image's boot hook (/etc/rc.d/50-rast-check.sh, from the rast package) finds a check
/// script handed over through QEMU's fw_cfg, runs it and powers off. The script runs
/// `rast current`, `rast tree` and `rast status`, prints their output as `RAST-REPORT` lines
/// and ends with `RAST-CHECK: PASS` or `RAST-CHECK: FAIL reason`. The test passes when the
/// guest says PASS and what it reported matches the expectation; a kernel panic, QEMU
/// exiting early or a timeout fail it. The image is booted with `snapshot=on`: the test
/// never changes it.
package struct BootTest: Sendable {
    package static let successMarker = "RAST-CHECK: PASS"
    package static let failurePrefix = "RAST-CHECK: FAIL"

    package var image: String
    package var format: String
    package var firmware: MachineConfiguration.Firmware
    package var timeout: Double
    package var memory: String
    package var expectation: BootExpectation
    /// Shell lines run in the guest after the reports and before PASS (a failing command fails the check).
    package var extraChecks: String
    /// Run the check on the image itself instead of a throw-away overlay (for tests that boot again).
    package var persistent: Bool
    /// How the guest ends after PASS: `poweroff -f`, or `reboot -f` (QEMU runs with -no-reboot,
    /// so a reboot ends this run and the next boot is the next run on the same image).
    package var finish: String
    /// More disks after the image (/dev/vdb, /dev/vdc, ...), e.g. a package repository for the guest.
    package var extraDisks: [MachineConfiguration.Disk]
    package var consoleLog: String
    /// The image's kernel (bzImage), for proving that KVM boots it before the first boot.
    package var probeKernel: String?
    /// The QEMU program (nil: `$RAST_QEMU` or qemu-system-x86_64).
    package var qemu: String?
    /// The image's name in the result and progress lines, when `image` is a temporary file
    /// that is renamed to it after the test (nil: `image`).
    package var imageName: String?
    /// An SSH login into the guest while it runs (nil: the guest has no network card).
    package var login: LoginCheck? = nil

    package init(image: String, format: String, firmware: MachineConfiguration.Firmware, timeout: Double = 300,
                memory: String = "512M", expectation: BootExpectation = BootExpectation(current: nil, tree: nil),
                extraChecks: String = "", persistent: Bool = false, finish: String = "poweroff -f",
                extraDisks: [MachineConfiguration.Disk] = [], consoleLog: String) {
        self.extraDisks = extraDisks
        self.image = image
        self.format = format
        self.firmware = firmware
        self.timeout = timeout
        self.memory = memory
        self.expectation = expectation
        self.extraChecks = extraChecks
        self.persistent = persistent
        self.finish = finish
        self.consoleLog = consoleLog
    }

    /// The script the guest runs.
    package var checkScript: String {
        var script = """
            #!/bin/sh
            # rast-build boot test, run by /etc/rc.d/50-rast-check.sh in the guest.
            export PATH=/usr/local/bin:/usr/bin
            fail() { echo "\(Self.failurePrefix) $*"; poweroff -f; sleep 30; }
            command -v rast >/dev/null || fail "rast is not installed in the image"
            report() { while IFS= read -r line; do echo "RAST-REPORT $1 $line"; done < "$2"; }
            rast current > /tmp/rast-current 2>&1 || fail "rast current: $(cat /tmp/rast-current)"
            report current /tmp/rast-current
            rast tree > /tmp/rast-tree 2>&1 || fail "rast tree: $(cat /tmp/rast-tree)"
            report tree /tmp/rast-tree
            rast status > /tmp/rast-status 2>&1 || fail "rast status: $(cat /tmp/rast-status)"
            report status /tmp/rast-status

            """
        if let current = expectation.current {
            script += "[ \"$(cat /tmp/rast-current)\" = \"\(current)\" ] || fail \"booted snapshot $(cat /tmp/rast-current), expected \(current)\"\n"
        }
        if !extraChecks.isEmpty {
            // In a subshell with `set -e`: the first failing command ends the checks, and the
            // failure is reported with its status instead of the script just stopping.
            script += "(\nset -e\n" + extraChecks + "\n) || fail \"the extra checks failed (exit status $?)\"\n"
        }
        if let login { script += Self.loginScript(login) }
        script += "echo \"\(Self.successMarker)\"\nsync\n\(finish)\n"
        return script
    }

    /// The guest's part of the login check: a password for the user and the user's keys for
    /// root (both logins must be refused), sshd ready, then wait until the host is done, and
    /// put everything back.
    static func loginScript(_ login: LoginCheck) -> String {
        let user = login.user
        return """
            # SSH login check: the host logs in as \(user) over the forwarded port.
            cp -p /etc/shadow /tmp/rast-login-shadow || fail "cannot save /etc/shadow"
            hash=$(mkpasswd -m sha512 '\(LoginCheck.checkPassword)') && sed -i "s|^\(user):[^:]*:|\(user):$hash:|" /etc/shadow || fail "cannot set a password for \(user)"
            # / is read-only: root's keys go to a tmpfs over /root for the check.
            mount -t tmpfs -o mode=0700 rast-login-root /root && mkdir -m 700 /root/.ssh &&
                cp /home/\(user)/.ssh/authorized_keys /root/.ssh/authorized_keys || fail "cannot give root the keys of \(user)"
            if [ -d /run/rast/service/sshd ]; then
                s6-svwait -U -t 120000 /run/rast/service/sshd || fail "sshd did not become ready: $(rast service status sshd 2>&1 | tr '\\n' ' ')"
            fi
            echo "RAST-LOGIN: waiting"
            n=0
            until [ -e /tmp/rast-login-done ]; do
                sleep 0.2
                n=$((n + 1))
                [ "$n" -lt 3000 ] || fail "the host did not finish its SSH login check within 600 seconds"
            done
            cp -p /tmp/rast-login-shadow /etc/shadow
            umount /root

            """
    }

    package func run(progress: ProgressReporter = SilentProgress()) throws -> BootTestResult {
        if let login { return try runWithLogin(login, progress: progress) }
        let scratch = try TemporaryDirectory(prefix: "rast-boot")
        defer { try? scratch.remove() }
        let scriptPath = scratch.appending("check.sh")
        try Files.write(scriptPath, string: checkScript)
        var machine = MachineConfiguration()
        machine.firmware = firmware
        machine.memory = memory
        machine.disks = [.init(path: image, format: format, snapshot: !persistent)] + extraDisks
        machine.firmwareConfig = [(name: "opt/rast/check", file: scriptPath)]
        machine.probeKernel = probeKernel
        machine.qemu = qemu
        let name = imageName ?? image
        progress.begin("boot test: \((name as NSString).lastPathComponent) (\(format)) with \(firmware.rawValue.uppercased()) firmware in QEMU")
        let report = try QEMU.boot(machine, successMarker: Self.successMarker, failurePrefix: Self.failurePrefix,
                                   timeout: timeout, consoleLog: consoleLog, progress: progress)
        var current: String?
        var tree: [String] = []
        var others: [String] = []
        for line in report.reports {
            if !line.hasPrefix("current "), !line.hasPrefix("tree "), !line.hasPrefix("status ") { others.append(line) }
            if line.hasPrefix("current ") { current = String(line.dropFirst("current ".count)) }
            if line.hasPrefix("tree ") { tree.append(String(line.dropFirst("tree ".count))) }
        }
        var outcome = report.outcome.description
        var passed = report.outcome.succeeded
        if passed, let expected = expectation.current, current != String(expected) {
            passed = false
            outcome = "the guest reported snapshot \(current ?? "nothing") as current, expected \(expected)"
        }
        if passed, let expected = expectation.tree, expected != tree {
            passed = false
            outcome = "the guest's `rast tree` differs from the image's tree:\n  expected:\n    \(expected.joined(separator: "\n    "))\n  reported:\n    \(tree.joined(separator: "\n    "))"
        }
        progress.end("boot test: \((name as NSString).lastPathComponent) (\(format), \(firmware.rawValue.uppercased()))", summary: passed ? "passed in \(String(format: "%.1f", report.seconds)) s (\(report.accelerator))" : "FAILED: \(outcome)")
        return BootTestResult(image: name, format: format, firmware: firmware.rawValue, passed: passed, seconds: report.seconds,
                              accelerator: report.accelerator, outcome: outcome, consoleLog: consoleLog,
                              reportedCurrent: current, reportedTree: tree, otherReports: others)
    }
}
