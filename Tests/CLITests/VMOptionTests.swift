import Foundation
import SystemSupport
import Testing
import TestSupport

/// `rast-build vm` and `rast vm` check their machine options the same way (VirtualMachine's
/// MachineSettings), before anything is read or started.
@Suite struct VMOptionTests {
    func run(_ program: String, _ arguments: [String]) throws -> CommandResult {
        let binary = RecipeCommandTests.root + "/.build/debug/" + program
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        return try Command(binary, arguments).run(check: false)
    }

    @Test(arguments: [
        (["--firmware", "efi"], "--firmware must be bios or uefi, not 'efi'."),
        (["--memory", "lots"], "--memory must be a size such as 512M or 2G, not 'lots'."),
        (["--cpus", "0"], "--cpus must be 1 to 64, not 0."),
        (["--ssh-port", "70000"], "--ssh-port must be a TCP port (1-65535), not 70000."),
    ])
    func badMachineOptionsAreRefusedByBoth(options: [String], message: String) throws {
        let built = try run("rast-build", ["vm", "/nonexistent/disk.img"] + options)
        #expect(built.status != 0)
        #expect(built.standardError.contains(message), "\(built.standardError)")
        let host = try run("rast", ["vm", "1", "--root", "/nonexistent"] + options)
        #expect(host.status != 0)
        #expect(host.standardError.contains(message), "\(host.standardError)")
    }
}
