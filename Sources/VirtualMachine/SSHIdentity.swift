import Foundation
import SystemSupport

/// Finding the private key that logs in to an image: the image says which public keys a user
/// accepts (its manifest records the recipe's `ssh_keys`); the key pair is the one in
/// `~/.ssh` whose public half is among them.
package enum SSHIdentity {
    /// The user's key directory: `$HOME/.ssh` (root's is /root/.ssh).
    package static var defaultDirectory: String {
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.ssh"
    }

    /// The key material of an OpenSSH public key line ("ssh-ed25519 AAAA... comment" →
    /// "ssh-ed25519 AAAA..."), skipping options in front of an authorized_keys line; nil when
    /// the line holds no key.
    package static func keyMaterial(_ line: String) -> String? {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let index = fields.firstIndex(where: { $0.hasPrefix("ssh-") || $0.hasPrefix("ecdsa-") || $0.hasPrefix("sk-") }),
              index + 1 < fields.count else { return nil }
        return fields[index] + " " + fields[index + 1]
    }

    /// The private key in `directory` whose `.pub` file holds one of `authorizedKeys`; nil when
    /// none does.
    package static func privateKey(matching authorizedKeys: [String], in directory: String = defaultDirectory) -> String? {
        let wanted = Set(authorizedKeys.compactMap(keyMaterial))
        guard !wanted.isEmpty, let names = try? FileManagerShim.contents(of: directory) else { return nil }
        for name in names.sorted() where name.hasSuffix(".pub") {
            let privateKey = directory + "/" + String(name.dropLast(4))
            guard Files.exists(privateKey), let text = try? Files.readString(directory + "/" + name) else { continue }
            if text.split(separator: "\n").contains(where: { keyMaterial(String($0)).map(wanted.contains) == true }) {
                return privateKey
            }
        }
        return nil
    }

    /// The key `ssh` itself would try first: `~/.ssh/id_ed25519`, `id_ecdsa` or `id_rsa`.
    package static func defaultKey(in directory: String = defaultDirectory) -> String? {
        ["id_ed25519", "id_ecdsa", "id_rsa"].map { directory + "/" + $0 }.first(where: Files.exists)
    }
}
