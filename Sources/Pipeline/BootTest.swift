import Foundation
import SystemSupport
import VirtualMachine

/// What a boot test expects the guest to report.
public struct BootExpectation: Sendable, Codable, Equatable {
    /// The snapshot `rast current` must print.
    public var current: Int?
    /// The lines `rast tree` must print.
    public var tree: [String]?

    public init(current: Int?, tree: [String]?) {
        self.current = current
        self.tree = tree
    }
}

/// One boot of an image in QEMU, checked from inside the guest.
public struct BootTestResult: Sendable, Codable {
    public let image: String
    public let format: String
    public let firmware: String
    public let passed: Bool
    public let seconds: Double
    public let accelerator: String
    public let outcome: String
    public let consoleLog: String
    public let reportedCurrent: String?
    public let reportedTree: [String]
    /// `RAST-REPORT` lines the extra checks printed.
    public let otherReports: [String]
}

/// The boot test (DESIGN.md, "In-guest checks"): QEMU boots the image with a serial console;
/// the image's boot hook (/etc/rc.d/50-rast-check.sh, from the rast package) finds a check
/// script handed over through QEMU's fw_cfg, runs it and powers off. The script runs
/// `rast current`, `rast tree` and `rast status`, prints their output as `RAST-REPORT` lines
/// and ends with `RAST-CHECK: PASS` or `RAST-CHECK: FAIL reason`. The test passes when the
/// guest says PASS and what it reported matches the expectation; a kernel panic, QEMU
/// exiting early or a timeout fail it. The image is booted with `snapshot=on`: the test
/// never changes it.
public struct BootTest: Sendable {
    public static let successMarker = "RAST-CHECK: PASS"
    public static let failurePrefix = "RAST-CHECK: FAIL"

    public var image: String
    public var format: String
    public var firmware: MachineConfiguration.Firmware
    public var timeout: Double
    public var memory: String
    public var expectation: BootExpectation
    /// Shell lines run in the guest after the reports and before PASS (a failing command fails the check).
    public var extraChecks: String
    /// Run the check on the image itself instead of a throw-away overlay (for tests that boot again).
    public var persistent: Bool
    /// How the guest ends after PASS: `poweroff -f`, or `reboot -f` (QEMU runs with -no-reboot,
    /// so a reboot ends this run and the next boot is the next run on the same image).
    public var finish: String
    /// More disks after the image (/dev/vdb, /dev/vdc, ...), e.g. a package repository for the guest.
    public var extraDisks: [MachineConfiguration.Disk]
    public var consoleLog: String
    /// The image's kernel (bzImage), for proving that KVM boots it before the first boot.
    public var probeKernel: String?
    /// The QEMU program (nil: `$RAST_QEMU` or qemu-system-x86_64).
    public var qemu: String?
    /// The image's name in the result and progress lines, when `image` is a temporary file
    /// that is renamed to it after the test (nil: `image`).
    public var imageName: String?

    public init(image: String, format: String, firmware: MachineConfiguration.Firmware, timeout: Double = 300,
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
    public var checkScript: String {
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
        script += "echo \"\(Self.successMarker)\"\nsync\n\(finish)\n"
        return script
    }

    public func run(progress: ProgressReporter = SilentProgress()) throws -> BootTestResult {
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
