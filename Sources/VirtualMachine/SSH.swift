import Foundation
import SystemSupport

/// OpenSSH's `ssh` pointed at a guest's forwarded port on 127.0.0.1: batch mode, the given
/// key only, no configuration files, known hosts or agents of this machine (a guest makes new
/// host keys on its first boot, so there is nothing to check them against).
package struct SSHClient: Sendable {
    package var port: Int
    package var user: String
    /// The private key; nil offers no key.
    package var identity: String?
    package var host = "127.0.0.1"
    package var connectTimeout = 5

    package init(port: Int, user: String, identity: String?) {
        self.port = port
        self.user = user
        self.identity = identity
    }

    /// ssh's options for a command `command` (or none).
    package func arguments(options extra: [String] = [], command: String? = nil) -> [String] {
        var arguments = ["-F", "/dev/null", "-p", String(port),
                         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
                         "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=\(connectTimeout)", "-o", "IdentityAgent=none"]
        if let identity {
            arguments += ["-o", "IdentitiesOnly=yes", "-i", identity]
        } else {
            arguments += ["-o", "PubkeyAuthentication=no"]
        }
        arguments += extra
        arguments.append("\(user)@\(host)")
        if let command { arguments.append(command) }
        return arguments
    }

    /// Runs `command` in the guest (by the user's login shell); the result is not checked.
    package func run(_ command: String, timeout: Double = 120) throws -> CommandResult {
        try Command("ssh", arguments(options: ["-o", "BatchMode=yes"], command: command), input: .null).run(check: false, timeout: timeout)
    }

    /// Tries to log in (running `true`) until it works; returns the seconds it took, or nil
    /// when `timeout` passed first or `giveUp` said so. Each attempt waits at most 2 s for
    /// the server: before the guest listens, QEMU accepts the connection and then has nothing
    /// to hand it to.
    package func waitUntilLoggedIn(timeout: Double, giveUp: () -> Bool = { false }) throws -> Double? {
        let stopwatch = Stopwatch()
        var quick = self
        quick.connectTimeout = 2
        while stopwatch.elapsed < timeout {
            try checkCancelled()
            if giveUp() { return nil }
            let result = try quick.run("true", timeout: 30)
            if result.status == 0 { return stopwatch.elapsed }
            usleep(250_000)
        }
        return nil
    }

    /// The authentication methods the server lets this user continue with before any is
    /// tried ("publickey", "password", ...), as `ssh -v` reports them.
    package func offeredAuthentications() throws -> [String] {
        let result = try Command("ssh", arguments(options: ["-v", "-o", "BatchMode=yes", "-o", "PreferredAuthentications=none",
                                                            "-o", "LogLevel=DEBUG1"], command: "true"), input: .null)
            .run(check: false, timeout: 60)
        let marker = "Authentications that can continue: "
        // ssh -v ends its lines with "\r\n", which Swift sees as one character.
        let lines = result.standardError.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
        guard let line = lines.first(where: { $0.contains(marker) }),
              let range = line.range(of: marker) else { return [] }
        return line[range.upperBound...].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Tries a password login (with the password given through SSH_ASKPASS, no key); true
    /// when the server let it in.
    package func passwordLoginSucceeds(password: String) throws -> Bool {
        let scratch = try TemporaryDirectory(prefix: "rast-askpass")
        defer { try? scratch.remove() }
        let askpass = scratch.appending("askpass")
        try Files.write(askpass, string: "#!/bin/sh\nprintf '%s\\n' \(shellQuote(password))\n", mode: 0o700)
        var client = self
        client.identity = nil
        let command = Command("ssh", client.arguments(options: ["-o", "BatchMode=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
                                                                "-o", "NumberOfPasswordPrompts=1"], command: "true"),
                              environment: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"], input: .null)
        return try command.run(check: false, timeout: 60).status == 0
    }

    /// Makes an ed25519 key pair at `path` (and `path.pub`); returns the public key line.
    package static func generateKey(at path: String, comment: String) throws -> String {
        try Command("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]).run()
        return try Files.readString(path + ".pub").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func shellQuote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
