import Foundation
import Synchronization
import SystemSupport

/// A QEMU x86-64 machine with a serial console, for boot tests.
package struct MachineConfiguration: Sendable {
    package enum Firmware: String, Sendable, CaseIterable {
        case bios, uefi
    }

    package struct Disk: Sendable {
        package var path: String
        package var format: String      // raw | qcow2
        /// Writes go to a temporary overlay, leaving the file untouched.
        package var snapshot: Bool
        package var interface: String   // virtio | ide | none (with a device)

        package init(path: String, format: String = "raw", snapshot: Bool = false, interface: String = "virtio") {
            self.path = path
            self.format = format
            self.snapshot = snapshot
            self.interface = interface
        }
    }

    package var firmware: Firmware = .bios
    package var disks: [Disk] = []
    /// Direct kernel boot (no firmware boot loader).
    package var kernel: String?
    package var initrd: String?
    package var kernelArguments: String?
    /// Files the guest reads from /sys/firmware/qemu_fw_cfg/by_name/NAME/raw.
    package var firmwareConfig: [(name: String, file: String)] = []
    package var memory: String = "512M"
    package var cpus: Int = 1
    /// The QEMU program; nil: `$RAST_QEMU`, else `qemu-system-x86_64` from PATH.
    package var qemu: String?
    /// A Linux kernel (bzImage) for the accelerator probe, booted once per process before the
    /// first boot. Without it, the first KVM boot is watched instead (see `QEMU.boot`).
    package var probeKernel: String?

    package init() {}

    /// The QEMU program this configuration runs.
    package var program: String { qemu ?? QEMU.defaultProgram }

    /// No network card (the default), or QEMU's user networking (see `Network`).
    package var network: Network = .none

    /// Where the serial console goes (see `Console`).
    package var console: Console = .watched
    /// A reboot in the guest ends QEMU (`-no-reboot`), as the boot tests want; false lets
    /// the machine reboot (a person's virtual machine).
    package var rebootEndsMachine = true

    /// The serial console.
    package enum Console: Sendable, Equatable {
        /// On QEMU's stdout, which the caller reads (the boot tests); no monitor.
        case watched
        /// On QEMU's stdin and stdout, multiplexed with QEMU's monitor (`-serial mon:stdio`):
        /// a person's terminal, where Ctrl-A X quits, Ctrl-A C switches to the monitor and
        /// Ctrl-C goes to the guest.
        case terminal
    }

    /// The guest's network.
    package enum Network: Sendable, Equatable {
        case none
        /// A virtio network card on QEMU's user networking with `restrict=on`: the guest gets
        /// an address by DHCP but reaches nothing outside QEMU; each forward makes a TCP port
        /// of the guest reachable on 127.0.0.1 of this machine, and nowhere else.
        case user(forwards: [PortForward])
    }

    /// 127.0.0.1:hostPort on this machine → guestPort in the guest (TCP).
    package struct PortForward: Sendable, Equatable {
        package var hostPort: Int
        package var guestPort: Int

        package init(hostPort: Int, guestPort: Int) {
            self.hostPort = hostPort
            self.guestPort = guestPort
        }
    }

    /// QEMU's arguments for the network.
    package var networkArguments: [String] {
        switch network {
        case .none:
            return ["-nic", "none"]
        case .user(let forwards):
            let rules = forwards.map { ",hostfwd=tcp:127.0.0.1:\($0.hostPort)-:\($0.guestPort)" }.joined()
            return ["-nic", "user,model=virtio-net-pci,restrict=on" + rules]
        }
    }
}

/// How a boot ended.
package enum BootOutcome: Sendable, Equatable, CustomStringConvertible {
    case success(marker: String)
    case failureMarker(line: String)
    case kernelPanic(line: String)
    case exitedEarly(status: Int32)
    case timedOut(seconds: Double)

    package var succeeded: Bool {
        if case .success = self { return true }
        return false
    }

    package var description: String {
        switch self {
        case .success(let marker): return "the guest reported success (\(marker))"
        case .failureMarker(let line): return "the guest reported failure: \(line)"
        case .kernelPanic(let line): return "the guest kernel panicked: \(line)"
        case .exitedEarly(let status): return "QEMU exited (status \(status)) before the guest reported success"
        case .timedOut(let seconds): return "the guest did not report success within \(Int(seconds)) seconds"
        }
    }
}

package struct BootReport: Sendable {
    package let outcome: BootOutcome
    package let seconds: Double
    package let accelerator: String
    package let consoleLog: String
    /// Console lines that started with the report prefix (e.g. `RAST-REPORT `), in order.
    package let reports: [String]
    /// The boot started under KVM, stayed silent, and ran again under TCG.
    package var fellBackFromKVM = false
}

package enum QEMUError: Error, CustomStringConvertible {
    case missingFirmware(String)

    package var description: String {
        switch self {
        case .missingFirmware(let path):
            return "UEFI firmware \(path) is missing (apt-get install ovmf)"
        }
    }
}

/// Runs QEMU and watches the serial console.
///
/// The accelerator: /dev/kvm can exist while KVM cannot run a guest here. How it fails differs
/// between machines of the same kind: QEMU asserts at once, or real-mode code runs while a
/// Linux kernel prints nothing at all. So KVM counts only once a Linux kernel reached its first
/// console line under it: the probe boots `probeKernel` (the image's own kernel) directly with a
/// short limit, and any KVM boot that stays silent after the firmware stage is stopped and run
/// again under TCG. The decision holds for the rest of the process (per QEMU program).
package enum QEMU {
    package static let ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    package static let ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
    /// How long the probe waits for the kernel's first console line.
    package static let probeSeconds: Double = 10
    /// How long a KVM boot may stay without a kernel console line before it counts as hung.
    package static let kvmSilenceSeconds: Double = 25

    /// `$RAST_QEMU` when set, else `qemu-system-x86_64`.
    package static var defaultProgram: String {
        if let program = ProcessInfo.processInfo.environment["RAST_QEMU"], !program.isEmpty { return program }
        return "qemu-system-x86_64"
    }

    /// Accelerators decided so far, per QEMU program.
    private static let decided = Mutex<[String: String]>([:])

    /// `RAST_ACCEL` (`kvm` or `tcg`) when set: used as it is, never probed or replaced.
    static var forcedAccelerator: String? {
        guard let forced = ProcessInfo.processInfo.environment["RAST_ACCEL"], ["kvm", "tcg"].contains(forced) else { return nil }
        return forced
    }

    /// The line a Linux kernel prints first on its console (`Linux version ...`), or any
    /// printk line with a timestamp.
    static func isKernelLine(_ line: String) -> Bool {
        if line.contains("Linux version ") { return true }
        guard let open = line.firstIndex(of: "["), let close = line[open...].firstIndex(of: "]") else { return false }
        let inside = line[line.index(after: open)..<close].trimmingCharacters(in: .whitespaces)
        let parts = inside.split(separator: ".")
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) }
    }

    /// The accelerator to start `configuration` with: `RAST_ACCEL`, an earlier decision, `tcg`
    /// without /dev/kvm, else the probe's answer when there is a `probeKernel`. Otherwise the
    /// answer is a tentative `kvm` that `boot` confirms or replaces: a watched boot is as good
    /// a probe as the probe (a direct kernel boot is one).
    package static func accelerator(for configuration: MachineConfiguration) -> String {
        if let forced = forcedAccelerator { return forced }
        let program = configuration.program
        if let known = decided.withLock({ $0[program] }) { return known }
        guard Files.exists("/dev/kvm") else { return remember("tcg", for: program) }
        guard let kernel = configuration.probeKernel else { return "kvm" }
        let works = probeKVM(program: program, kernel: kernel)
        RastLog.logger.debug("QEMU accelerator probe (\(program), kernel \(kernel)): KVM \(works ? "works" : "does not work")")
        return remember(works ? "kvm" : "tcg", for: program)
    }

    /// Like `accelerator(for:)`, for a kernel alone (decides once, before concurrent boots).
    @discardableResult
    package static func accelerator(probeKernel: String?, qemu: String? = nil) -> String {
        var configuration = MachineConfiguration()
        configuration.probeKernel = probeKernel
        configuration.qemu = qemu
        return accelerator(for: configuration)
    }

    /// The accelerator for a machine whose console we will not see (it goes to a person's
    /// terminal), decided as `boot` decides it: `accelerator(for:)`, and when that is only a
    /// tentative KVM, a short watched boot of the same machine first (its disks with
    /// throw-away writes, no network): KVM when a kernel line shows within
    /// `kvmSilenceSeconds`, else TCG. The console of that boot goes to `consoleLog`.
    package static func decideAccelerator(for configuration: MachineConfiguration, consoleLog: String,
                                         progress: ProgressReporter = SilentProgress(),
                                         kvmSilenceSeconds: Double = QEMU.kvmSilenceSeconds) throws -> String {
        let tentative = accelerator(for: configuration)
        let program = configuration.program
        guard tentative == "kvm", forcedAccelerator == nil, decided.withLock({ $0[program] }) == nil else { return tentative }
        var trial = configuration
        trial.disks = trial.disks.map { var disk = $0; disk.snapshot = true; return disk }
        trial.network = .none
        trial.console = .watched
        trial.rebootEndsMachine = true
        let scratch = try TemporaryDirectory(prefix: "rast-qemu")
        defer { try? scratch.remove() }
        var varsCopy: String?
        if trial.firmware == .uefi {
            guard Files.exists(ovmfCode), Files.exists(ovmfVars) else { throw QEMUError.missingFirmware(ovmfCode) }
            varsCopy = scratch.appending("OVMF_VARS.fd")
            try Command("cp", [ovmfVars, scratch.appending("OVMF_VARS.fd")]).run()
        }
        progress.note("QEMU: checking that KVM runs this machine's kernel (up to \(Int(kvmSilenceSeconds)) s; RAST_ACCEL=tcg or kvm skips the check)")
        let log = try LogFile(path: consoleLog)
        let command = Command(program, arguments(for: trial, accelerator: "kvm", varsCopy: varsCopy))
        log.write("# KVM check: \(command)\n")
        let started = Stopwatch()
        var kernelSeen = false
        let result = try command.run(output: .watch(interval: 1) { line in
            guard let line else { return started.elapsed >= kvmSilenceSeconds }
            log.write(line.filter { $0 != "\u{1B}" } + "\n")
            if isKernelLine(line) { kernelSeen = true }
            return kernelSeen
        }, check: false, timeout: kvmSilenceSeconds + 5)
        let chosen = kernelSeen ? "kvm" : "tcg"
        log.write("# KVM check: \(kernelSeen ? "a kernel line" : "no kernel line (\(result.termination))") after \(started.formatted): \(chosen)\n")
        if !kernelSeen {
            progress.note("QEMU: the machine printed no kernel line under KVM, so KVM does not run guests here; using TCG")
        }
        return remember(chosen, for: program)
    }

    @discardableResult
    static func remember(_ accelerator: String, for program: String) -> String {
        decided.withLock { $0[program] = accelerator }
        return accelerator
    }

    /// Boots `kernel` directly under KVM with the CPU model real boots use and waits up to
    /// `probeSeconds` for its first console line.
    static func probeKVM(program: String, kernel: String) -> Bool {
        var machine = MachineConfiguration()
        machine.memory = "256M"
        machine.kernel = kernel
        machine.kernelArguments = "console=ttyS0 panic=-1"
        let command = Command(program, arguments(for: machine, accelerator: "kvm", varsCopy: nil))
        guard let result = try? command.run(output: .linesUntil { isKernelLine($0) }, check: false, timeout: probeSeconds) else {
            return false
        }
        return result.stoppedByHandler
    }

    /// The argument list for a configuration.
    package static func arguments(for configuration: MachineConfiguration, accelerator: String, varsCopy: String?) -> [String] {
        var args = ["-accel", accelerator, "-machine", "q35", "-m", configuration.memory,
                    "-smp", String(configuration.cpus), "-display", "none", "-vga", "none"]
        switch configuration.console {
        case .watched: args += ["-monitor", "none", "-serial", "stdio"]
        case .terminal: args += ["-serial", "mon:stdio"]
        }
        if configuration.rebootEndsMachine { args.append("-no-reboot") }
        args += configuration.networkArguments
        if accelerator == "tcg" { args += ["-cpu", "max"] } else { args += ["-cpu", "host"] }
        if configuration.firmware == .uefi, let varsCopy {
            args += ["-drive", "if=pflash,format=raw,readonly=on,file=\(ovmfCode)",
                     "-drive", "if=pflash,format=raw,file=\(varsCopy)"]
        }
        for disk in configuration.disks {
            var spec = "file=\(disk.path),format=\(disk.format),if=\(disk.interface)"
            if disk.snapshot { spec += ",snapshot=on" }
            args += ["-drive", spec]
        }
        if let kernel = configuration.kernel { args += ["-kernel", kernel] }
        if let initrd = configuration.initrd { args += ["-initrd", initrd] }
        if let append = configuration.kernelArguments { args += ["-append", append] }
        for entry in configuration.firmwareConfig {
            args += ["-fw_cfg", "name=\(entry.name),file=\(entry.file)"]
        }
        return args
    }

    /// Boots the machine until the console shows `successMarker`, a line starting with
    /// `failurePrefix`, a kernel panic, QEMU's exit, or the timeout. The whole console goes to
    /// `consoleLog`; lines starting with `reportPrefix` are collected. A KVM boot (unless
    /// `RAST_ACCEL=kvm`) that shows no kernel console line within `kvmSilenceSeconds`, or ends
    /// before one, is stopped and run again under TCG; `progress` gets one line saying so.
    package static func boot(_ configuration: MachineConfiguration, successMarker: String, failurePrefix: String,
                            reportPrefix: String = "RAST-REPORT ", timeout: Double, consoleLog: String,
                            progress: ProgressReporter = SilentProgress(),
                            kvmSilenceSeconds: Double = QEMU.kvmSilenceSeconds) throws -> BootReport {
        let accel = accelerator(for: configuration)
        let log = try LogFile(path: consoleLog)
        let stopwatch = Stopwatch()
        var attempt = try bootOnce(configuration, accelerator: accel, watchForSilence: accel == "kvm" && forcedAccelerator == nil,
                                   silenceSeconds: kvmSilenceSeconds, successMarker: successMarker, failurePrefix: failurePrefix,
                                   reportPrefix: reportPrefix, timeout: timeout, log: log)
        var fellBack = false
        if attempt.kvmFailed {
            remember("tcg", for: configuration.program)
            let why = attempt.silent ? "printed no kernel line within \(Int(kvmSilenceSeconds)) s" : "ended before its kernel printed a line"
            progress.note("QEMU: the guest \(why) under KVM, so KVM does not run guests here; booting again with TCG (and using TCG from now on)")
            log.write("# KVM: the guest \(why); booting again with TCG\n")
            fellBack = true
            attempt = try bootOnce(configuration, accelerator: "tcg", watchForSilence: false, silenceSeconds: kvmSilenceSeconds,
                                   successMarker: successMarker, failurePrefix: failurePrefix, reportPrefix: reportPrefix,
                                   timeout: max(1, timeout - stopwatch.elapsed), log: log)
        } else if accel == "kvm", attempt.kernelSeen {
            remember("kvm", for: configuration.program)
        }
        let used = fellBack ? "tcg" : accel
        let final: BootOutcome
        if let outcome = attempt.outcome {
            final = outcome
        } else if attempt.result.timedOut {
            final = .timedOut(seconds: timeout)
        } else {
            final = .exitedEarly(status: attempt.result.status)
        }
        log.write("# outcome: \(final) after \(stopwatch.formatted) (\(used))\n")
        return BootReport(outcome: final, seconds: stopwatch.elapsed, accelerator: used,
                          consoleLog: consoleLog, reports: attempt.reports, fellBackFromKVM: fellBack)
    }

    private struct Attempt {
        var outcome: BootOutcome?
        var reports: [String]
        var result: CommandResult
        var kernelSeen: Bool
        var silent: Bool
        /// Watched under KVM and ended (silent, or QEMU quit) before any kernel line.
        var kvmFailed: Bool
    }

    /// One QEMU run. With `watchForSilence`, a run that shows no kernel line within
    /// `silenceSeconds` is stopped (and so is one QEMU ends first): `outcome` stays nil.
    private static func bootOnce(_ configuration: MachineConfiguration, accelerator accel: String, watchForSilence: Bool,
                                 silenceSeconds: Double, successMarker: String, failurePrefix: String, reportPrefix: String,
                                 timeout: Double, log: LogFile) throws -> Attempt {
        let scratch = try TemporaryDirectory(prefix: "rast-qemu")
        defer { try? scratch.remove() }
        var varsCopy: String?
        if configuration.firmware == .uefi {
            guard Files.exists(ovmfCode), Files.exists(ovmfVars) else { throw QEMUError.missingFirmware(ovmfCode) }
            let copy = scratch.appending("OVMF_VARS.fd")
            try Command("cp", [ovmfVars, copy]).run()
            varsCopy = copy
        }
        let started = Stopwatch()
        var outcome: BootOutcome?
        var reports: [String] = []
        var kernelSeen = false
        var silent = false
        let command = Command(configuration.program, arguments(for: configuration, accelerator: accel, varsCopy: varsCopy))
        log.write("# \(command)\n")
        let result = try command.run(output: .watch(interval: 1) { rawLine in
            guard let rawLine else {
                // No kernel line yet after the limit: KVM hangs here.
                if watchForSilence, !kernelSeen, started.elapsed >= silenceSeconds { silent = true }
                return silent
            }
            let line = rawLine.filter { $0 != "\u{1B}" }
            log.write(line + "\n")
            if !kernelSeen, isKernelLine(line) { kernelSeen = true }
            if line.hasPrefix(reportPrefix) { reports.append(String(line.dropFirst(reportPrefix.count))) }
            if line.contains(successMarker) {
                outcome = .success(marker: successMarker)
            } else if line.hasPrefix(failurePrefix) {
                outcome = .failureMarker(line: line)
            } else if line.contains("Kernel panic - not syncing") {
                outcome = .kernelPanic(line: line)
            }
            return outcome != nil
        }, check: false, timeout: timeout)
        if watchForSilence, !kernelSeen, outcome == nil {
            // Silent, or QEMU ended before the kernel printed because of KVM (an assertion in
            // its KVM code, "Could not access KVM kernel module"): not this guest's fault. Other
            // early exits (a missing disk) stay what they are.
            var kvmFailed = silent
            if case .signalled = result.termination { kvmFailed = true }
            if result.standardError.lowercased().contains("kvm") { kvmFailed = true }
            if kvmFailed {
                return Attempt(outcome: nil, reports: reports, result: result, kernelSeen: false, silent: silent, kvmFailed: true)
            }
        }
        return Attempt(outcome: outcome, reports: reports, result: result, kernelSeen: kernelSeen, silent: false, kvmFailed: false)
    }
}
