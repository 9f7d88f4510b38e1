import Foundation
import Synchronization
import SystemSupport

/// A QEMU x86-64 machine with a serial console, for boot tests.
public struct MachineConfiguration: Sendable {
    public enum Firmware: String, Sendable, CaseIterable {
        case bios, uefi
    }

    public struct Disk: Sendable {
        public var path: String
        public var format: String      // raw | qcow2
        /// Writes go to a temporary overlay, leaving the file untouched.
        public var snapshot: Bool
        public var interface: String   // virtio | ide | none (with a device)

        public init(path: String, format: String = "raw", snapshot: Bool = false, interface: String = "virtio") {
            self.path = path
            self.format = format
            self.snapshot = snapshot
            self.interface = interface
        }
    }

    public var firmware: Firmware = .bios
    public var disks: [Disk] = []
    /// Direct kernel boot (no firmware boot loader).
    public var kernel: String?
    public var initrd: String?
    public var kernelArguments: String?
    /// Files the guest reads from /sys/firmware/qemu_fw_cfg/by_name/NAME/raw.
    public var firmwareConfig: [(name: String, file: String)] = []
    public var memory: String = "512M"
    public var cpus: Int = 1
    /// No network card (the default), or QEMU's user networking (see `Network`).
    public var network: Network = .none

    public init() {}

    /// The guest's network.
    public enum Network: Sendable, Equatable {
        case none
        /// A virtio network card on QEMU's user networking with `restrict=on`: the guest gets
        /// an address by DHCP but reaches nothing outside QEMU; each forward makes a TCP port
        /// of the guest reachable on 127.0.0.1 of this machine, and nowhere else.
        case user(forwards: [PortForward])
    }

    /// 127.0.0.1:hostPort on this machine → guestPort in the guest (TCP).
    public struct PortForward: Sendable, Equatable {
        public var hostPort: Int
        public var guestPort: Int

        public init(hostPort: Int, guestPort: Int) {
            self.hostPort = hostPort
            self.guestPort = guestPort
        }
    }

    /// QEMU's arguments for the network.
    public var networkArguments: [String] {
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
public enum BootOutcome: Sendable, Equatable, CustomStringConvertible {
    case success(marker: String)
    case failureMarker(line: String)
    case kernelPanic(line: String)
    case exitedEarly(status: Int32)
    case timedOut(seconds: Double)

    public var succeeded: Bool {
        if case .success = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .success(let marker): return "the guest reported success (\(marker))"
        case .failureMarker(let line): return "the guest reported failure: \(line)"
        case .kernelPanic(let line): return "the guest kernel panicked: \(line)"
        case .exitedEarly(let status): return "QEMU exited (status \(status)) before the guest reported success"
        case .timedOut(let seconds): return "the guest did not report success within \(Int(seconds)) seconds"
        }
    }
}

public struct BootReport: Sendable {
    public let outcome: BootOutcome
    public let seconds: Double
    public let accelerator: String
    public let consoleLog: String
    /// Console lines that started with the report prefix (e.g. `RAST-REPORT `), in order.
    public let reports: [String]
}

public enum QEMUError: Error, CustomStringConvertible {
    case missingFirmware(String)

    public var description: String {
        switch self {
        case .missingFirmware(let path):
            return "UEFI firmware \(path) is missing (apt-get install ovmf)"
        }
    }
}

/// Runs QEMU and watches the serial console.
public enum QEMU {
    public static let program = "qemu-system-x86_64"
    public static let ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    public static let ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"

    private static let probed = Mutex<String?>(nil)

    /// `kvm` when KVM really runs a guest here, else `tcg`. `RAST_ACCEL` overrides.
    /// /dev/kvm can exist while KVM hangs or asserts (nested virtualisation missing), so the
    /// probe boots a 512-byte boot sector that prints a word on the serial port, with a timeout.
    public static func accelerator() -> String {
        if let forced = ProcessInfo.processInfo.environment["RAST_ACCEL"], ["kvm", "tcg"].contains(forced) {
            return forced
        }
        if let known = probed.withLock({ $0 }) { return known }
        let result = probeKVM() ? "kvm" : "tcg"
        probed.withLock { $0 = result }
        RastLog.logger.debug("QEMU accelerator: \(result)")
        return result
    }

    static func probeKVM() -> Bool {
        guard Files.exists("/dev/kvm"), let scratch = try? TemporaryDirectory(prefix: "rast-kvm") else { return false }
        defer { try? scratch.remove() }
        var sector: [UInt8] = [0xBA, 0xF8, 0x03]                   // mov dx, 0x3f8
        for byte in Array("RASTKVM\n".utf8) { sector += [0xB0, byte, 0xEE] }  // mov al, c; out dx, al
        sector += [0xF4, 0xEB, 0xFD]                               // hlt; jmp hlt
        sector += [UInt8](repeating: 0, count: 510 - sector.count) + [0x55, 0xAA]
        let path = scratch.appending("probe.img")
        guard (try? Files.writeAtomically(path, bytes: sector)) != nil else { return false }
        // The same machine and CPU model as real boots: on hosts without nested virtualisation a
        // boot sector can run under KVM's default CPU while `-cpu host` asserts in QEMU.
        let command = Command(program, ["-accel", "kvm", "-machine", "q35", "-cpu", "host", "-display", "none", "-vga", "none", "-monitor", "none",
                                        "-serial", "stdio", "-no-reboot", "-nic", "none",
                                        "-drive", "file=\(path),format=raw,if=floppy"])
        guard let result = try? command.run(output: .linesUntil { $0.contains("RASTKVM") }, check: false, timeout: 8) else {
            return false
        }
        return result.stoppedByHandler
    }

    /// The argument list for a configuration.
    public static func arguments(for configuration: MachineConfiguration, accelerator: String, varsCopy: String?) -> [String] {
        var args = ["-accel", accelerator, "-machine", "q35", "-m", configuration.memory,
                    "-smp", String(configuration.cpus), "-display", "none", "-vga", "none", "-monitor", "none",
                    "-serial", "stdio", "-no-reboot"] + configuration.networkArguments
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
    /// `consoleLog`; lines starting with `reportPrefix` are collected.
    public static func boot(_ configuration: MachineConfiguration, successMarker: String, failurePrefix: String,
                            reportPrefix: String = "RAST-REPORT ", timeout: Double, consoleLog: String,
                            progress: ProgressReporter = SilentProgress()) throws -> BootReport {
        let accel = accelerator()
        let scratch = try TemporaryDirectory(prefix: "rast-qemu")
        defer { try? scratch.remove() }
        var varsCopy: String?
        if configuration.firmware == .uefi {
            guard Files.exists(ovmfCode), Files.exists(ovmfVars) else { throw QEMUError.missingFirmware(ovmfCode) }
            varsCopy = scratch.appending("OVMF_VARS.fd")
            try Command("cp", [ovmfVars, varsCopy!]).run()
        }
        let log = try LogFile(path: consoleLog)
        let stopwatch = Stopwatch()
        var outcome: BootOutcome?
        var reports: [String] = []
        let command = Command(program, arguments(for: configuration, accelerator: accel, varsCopy: varsCopy))
        log.write("# \(command)\n")
        let result = try command.run(output: .linesUntil { rawLine in
            let line = rawLine.filter { $0 != "\u{1B}" }
            log.write(line + "\n")
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
        let final: BootOutcome
        if let outcome {
            final = outcome
        } else if result.timedOut {
            final = .timedOut(seconds: timeout)
        } else {
            final = .exitedEarly(status: result.status)
        }
        log.write("# outcome: \(final) after \(stopwatch.formatted) (\(accel))\n")
        return BootReport(outcome: final, seconds: stopwatch.elapsed, accelerator: accel,
                          consoleLog: consoleLog, reports: reports)
    }
}
