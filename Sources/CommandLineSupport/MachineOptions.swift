import ArgumentParser
import VirtualMachine

/// The machine options `rast vm` and `rast-build vm` share. VirtualMachine's MachineSettings
/// checks them, with the command's --ssh-port, and words the refusals.
package struct MachineOptions: ParsableArguments {
    @Option(help: "bios or uefi.") package var firmware: String = "bios"
    @Option(help: "Guest memory (QEMU's notation: 512M, 2G).") package var memory: String = "1G"
    @Option(help: "Virtual CPUs.") package var cpus: Int = 2

    package init() {}

    /// The options and `sshPort`, checked; a refusal is a usage error.
    package func settings(sshPort: Int?) throws -> MachineSettings {
        do {
            return try MachineSettings(firmware: firmware, memory: memory, cpus: cpus, sshPort: sshPort)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
