import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A virtual machine for a person: QEMU in the foreground with the guest's serial console on
/// our terminal (`-serial mon:stdio`: Ctrl-A X quits, Ctrl-A C is QEMU's monitor, Ctrl-C goes
/// to the guest), running until the guest powers off or the person quits. Reboots in the guest
/// reboot the machine. `rast-build vm` and `rast vm` are built on it; the boot tests use
/// `QEMU.boot` and `RunningMachine`, which read the console themselves.
package struct ConsoleMachine {
    package var configuration: MachineConfiguration
    /// Decided by the caller, normally with `QEMU.decideAccelerator(for:consoleLog:)`.
    package var accelerator: String

    package init(_ configuration: MachineConfiguration, accelerator: String) {
        var configuration = configuration
        configuration.console = .terminal
        self.configuration = configuration
        self.accelerator = accelerator
    }

    /// QEMU's command line (with `varsCopy` as the UEFI variable store).
    package func command(varsCopy: String?) -> Command {
        Command(configuration.program, QEMU.arguments(for: configuration, accelerator: accelerator, varsCopy: varsCopy))
    }

    /// Runs QEMU until it ends; `started` gets QEMU's process id once it runs (for a state file;
    /// when it throws, QEMU is stopped and the error passed on). A signal to this process stops
    /// QEMU (SIGTERM, then SIGKILL).
    package func run(started: (Int32) throws -> Void = { _ in }) throws -> Termination {
        // A directory only for UEFI's variable store (a killed caller leaves it behind).
        var scratch: TemporaryDirectory?
        defer { try? scratch?.remove() }
        var varsCopy: String?
        if configuration.firmware == .uefi {
            let directory = try TemporaryDirectory(prefix: "rast-vm")
            scratch = directory
            guard Files.exists(QEMU.ovmfCode), Files.exists(QEMU.ovmfVars) else { throw QEMUError.missingFirmware(QEMU.ovmfCode) }
            varsCopy = directory.appending("OVMF_VARS.fd")
            try Command("cp", [QEMU.ovmfVars, directory.appending("OVMF_VARS.fd")]).run()
        }
        let process = try ForegroundProcess(command(varsCopy: varsCopy))
        do {
            try started(process.pid)
        } catch {
            kill(process.pid, SIGTERM)
            _ = try? process.wait(grace: 2)
            throw error
        }
        return try process.wait()
    }
}
