import Foundation

/// What a person may ask of a machine on the command line (`rast-build vm`, `rast vm`):
/// checked once here, so both commands refuse the same values with the same words.
package struct MachineSettings: Sendable {
    package let firmware: MachineConfiguration.Firmware
    package let memory: String
    package let cpus: Int
    package let sshPort: Int?

    /// A refusal naming the option and the value.
    package struct Invalid: Error, CustomStringConvertible {
        package let description: String
    }

    package init(firmware: String, memory: String, cpus: Int, sshPort: Int?) throws(Invalid) {
        guard let choice = MachineConfiguration.Firmware(rawValue: firmware) else {
            throw Invalid(description: "--firmware must be bios or uefi, not '\(firmware)'.")
        }
        guard memory.range(of: #"^[1-9][0-9]*[KMGT]?$"#, options: .regularExpression) != nil else {
            throw Invalid(description: "--memory must be a size such as 512M or 2G, not '\(memory)'.")
        }
        guard (1...64).contains(cpus) else { throw Invalid(description: "--cpus must be 1 to 64, not \(cpus).") }
        if let sshPort, !(1...65535).contains(sshPort) {
            throw Invalid(description: "--ssh-port must be a TCP port (1-65535), not \(sshPort).")
        }
        self.firmware = choice
        self.memory = memory
        self.cpus = cpus
        self.sshPort = sshPort
    }
}
