import Foundation
import SystemSupport

/// pacman's keyring (GPGDir) of a root, set up the way `pacman-key --init` and
/// `pacman-key --populate` do it, with gpg directly: a local master key that certifies the
/// keys a distribution's keyring package marks as trusted.
///
/// A keyring package ships, in `/usr/share/pacman/keyrings`, `NAME.gpg` (the public keys),
/// `NAME-trusted` (`FINGERPRINT:LEVEL:` lines, the keys to trust) and `NAME-revoked`
/// (fingerprints to disable).
package struct PacmanKeyring: Sendable {
    /// The keyring directory on this machine (a root's /etc/pacman.d/gnupg).
    package let directory: String

    package init(directory: String) {
        self.directory = directory
    }

    /// Deletes the keyring and makes a new one with a fresh local master key.
    package func reinitialize() throws {
        try stopAgent()
        if Files.exists(directory) { try Files.removeTree(directory) }
        try Files.createDirectory(directory, mode: 0o755)
        try Files.writeAtomically(directory + "/gpg.conf", string: """
            # written by rast fix-keys, as pacman-key --init writes it
            no-greeting
            no-permission-warning
            keyserver hkps://keyserver.ubuntu.com
            keyserver-options timeout=10
            keyserver-options import-clean
            keyserver-options no-self-sigs-only

            """)
        try gpg(["--gen-key"], input: """
            Key-Type: eddsa
            Key-Curve: ed25519
            Key-Usage: sign
            Name-Real: Pacman Keyring Master Key
            Name-Email: pacman@localhost
            Expire-Date: 0
            %no-protection
            %commit

            """, what: "generating the keyring's master key")
    }

    /// Imports every keyring in `keyringDirectory`, certifies its trusted keys with the master
    /// key and disables its revoked ones. Returns the keyring names.
    @discardableResult
    package func populate(from keyringDirectory: String) throws -> [String] {
        guard Files.isDirectory(keyringDirectory) else {
            throw KeyringError(operation: "populating the keyring", detail: "\(keyringDirectory) does not exist (install the distribution's keyring package, e.g. archlinux-keyring)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: keyringDirectory)
            .filter { $0.hasSuffix(".gpg") }.map { String($0.dropLast(4)) }.sorted()
        guard !names.isEmpty else {
            throw KeyringError(operation: "populating the keyring", detail: "\(keyringDirectory) holds no NAME.gpg keyring")
        }
        for name in names {
            let base = keyringDirectory + "/" + name
            try gpg(["--import", base + ".gpg"], what: "importing \(base).gpg")
            if let trusted = try? Files.readString(base + "-trusted") {
                let entries = Self.entries(trusted)
                if !entries.isEmpty {
                    try gpg(["--import-ownertrust"], input: entries.map { $0.joined(separator: ":") + ":" }.joined(separator: "\n") + "\n",
                            what: "setting the owner trust from \(base)-trusted")
                }
                for entry in entries {
                    try gpg(["--yes", "--quick-lsign-key", entry[0]], what: "certifying key \(entry[0]) of \(name)")
                }
            }
            if let revoked = try? Files.readString(base + "-revoked") {
                for entry in Self.entries(revoked) {
                    try gpg(["--command-fd", "0", "--edit-key", entry[0]], input: "disable\nquit\n",
                            what: "disabling revoked key \(entry[0]) of \(name)")
                }
            }
        }
        try gpg(["--check-trustdb"], what: "updating the trust database")
        try stopAgent()
        return names
    }

    /// Stops the gpg-agent a keyring operation started (it would keep files open in the root).
    package func stopAgent() throws {
        guard Files.isDirectory(directory) else { return }
        _ = try? Command("gpgconf", ["--homedir", directory, "--kill", "all"]).run(check: false)
    }

    /// The fields of non-comment lines ("FPR:4:" -> ["FPR", "4"]).
    static func entries(_ text: String) -> [[String]] {
        text.split(separator: "\n").compactMap { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            let fields = trimmed.split(separator: ":", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
            return fields.isEmpty ? nil : fields
        }
    }

    private func gpg(_ arguments: [String], input: String? = nil, what: String) throws {
        guard Command.find("gpg") != nil else {
            throw KeyringError(operation: what, detail: "gpg is not installed (apt-get install gnupg, pacman -S gnupg)")
        }
        let command = Command("gpg", ["--homedir", directory, "--batch", "--no-tty"] + arguments,
                              environment: ["LANG": "C"], input: input.map { .bytes(Array($0.utf8)) } ?? .null)
        let result = try command.run(check: false)
        guard result.status == 0 else {
            throw KeyringError(operation: what, detail: "gpg exited with status \(result.status): \(result.combinedTail(lines: 8))")
        }
    }
}

package struct KeyringError: Error, CustomStringConvertible, Sendable {
    package let operation: String
    package let detail: String

    package var description: String { "\(operation) failed: \(detail)" }
}
