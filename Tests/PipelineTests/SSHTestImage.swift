import Foundation
import Pipeline
import Recipe
import Services
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

/// The default recipe as a reachable machine, built once per test process and shared by the
/// tests that log in to it (ServiceBootTests, VirtualMachineTests): raw only, a key made here
/// as admin's SSH key, a console password for admin and root (SSH refuses passwords and root), `no_timer_check` (under TCG on a busy
/// machine the kernel's check of the timer interrupt can fail, "IO-APIC + timer doesn't
/// work!"; it tests QEMU, not the image), and ServiceBootTests' three services. Tests that
/// change the image work on a copy (`copy(to:)`).
struct SSHTestImage: Sendable {
    let raw: String
    let key: String
    let manifest: Manifest
    static let consolePassword = "console-Passw0rd"

    private static let built: Result<SSHTestImage, any Error> = Result { try build() }

    static func shared() throws -> SSHTestImage {
        try ImageTestSupport.requirements()
        try Require.programs("ssh", "ssh-keygen", "openssl", "s6-svscan", "dropbear", "patchelf")
        return try built.get()
    }

    /// ServiceBootTests' services: alpha listens after 2 s, beta needs alpha, failing always fails.
    static let services = [
        ServiceDefinition(name: "alpha", description: "takes 2 s to listen",
                          program: .shell("sleep 2; echo 'alpha: listening now'; exec httpd -f -p 127.0.0.1:7001 -h /etc"),
                          restartDelay: 1000, restartDelayMax: 4000, readiness: .tcp(port: 7001)),
        ServiceDefinition(name: "beta", description: "needs alpha",
                          program: .shell("if grep -q ':1B59 00000000:0000 0A' /proc/net/tcp; then echo 'beta: alpha was listening when beta started'; else echo 'beta: alpha was not listening'; fi; exec sleep 100000"),
                          depends: ["alpha"]),
        ServiceDefinition(name: "failing", description: "always fails",
                          program: .shell("echo 'failing: cannot open /nonexistent/config'; exit 3"),
                          restartDelay: 500, restartDelayMax: 2000),
    ]

    private static func build() throws -> SSHTestImage {
        let directory = try TemporaryDirectory.forTestProcess(prefix: "rast-ssh-image")
        let out = directory.appending("out")
        let key = directory.appending("id_ed25519")
        let publicKey = try SSHClient.generateKey(at: key, comment: "rast-test@127.0.0.1")
        let hash = try Command("openssl", ["passwd", "-6", consolePassword]).output()
        let recipe = try ImageTestSupport.recipe("minimal", output: out) { recipe in
            recipe.output.formats = [.raw]
            recipe.system.kernelCommandLine += " no_timer_check"
            recipe.users[0].sshKeys = [publicKey]
            recipe.users[0].passwordHash = hash
            recipe.system.rootPasswordHash = hash
            recipe.services += services
        }
        let result = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
        return SSHTestImage(raw: out + "/minimal.raw", key: key, manifest: result.manifest)
    }

    /// A copy of the raw image (sparse) in `directory`, named minimal.raw, with its manifest
    /// beside it (rast-build vm reads the users from there).
    func copy(to directory: String) throws -> String {
        try Files.createDirectory(directory)
        let path = directory + "/minimal.raw"
        try Command("cp", ["--sparse=always", "--reflink=auto", raw, path]).run()
        try Command("cp", [String(raw.dropLast(".raw".count)) + ".manifest.json", directory + "/"]).run()
        return path
    }
}
