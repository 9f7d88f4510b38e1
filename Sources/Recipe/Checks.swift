import Foundation
import TOML

/// Checks of single values. Each returns nil when the value is fine, or the sentence that
/// says what is wrong (without the key, which the caller adds). Public for rast-install,
/// which checks its options the way recipes are checked.
package enum Checks {
    static func isLowerAlphanumeric(_ c: Character) -> Bool {
        c.isASCII && (c.isLowercase || c.isNumber)
    }

    static func recipeName(_ name: String) -> String? {
        guard let first = name.first, isLowerAlphanumeric(first), name.count <= 63,
              name.allSatisfy({ isLowerAlphanumeric($0) || $0 == "-" }) else {
            return "'\(name)' is not a valid recipe name: use up to 63 lower-case letters, digits and hyphens, starting with a letter or digit"
        }
        return nil
    }

    /// RFC 1123 host name label.
    package static func hostname(_ name: String) -> String? {
        let allowed = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        guard !name.isEmpty, name.count <= 63, allowed, !name.hasPrefix("-"), !name.hasSuffix("-") else {
            return "'\(name)' is not a valid host name: use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123)"
        }
        return nil
    }

    package static func timezone(_ zone: String) -> String? {
        let parts = zone.split(separator: "/", omittingEmptySubsequences: false)
        let valid = !zone.isEmpty && parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".."
                && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_+-".contains($0)) }
        }
        return valid ? nil : "'\(zone)' is not a time zone name such as UTC or Europe/Berlin"
    }

    static func locale(_ locale: String) -> String? {
        let valid = !locale.isEmpty && locale.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_.@-".contains($0)) }
        return valid ? nil : "'\(locale)' is not a locale name such as C.UTF-8 or en_US.UTF-8"
    }

    static func kernelCommandLine(_ text: String) -> String? {
        text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
            ? "the kernel command line must be one line without control characters" : nil
    }

    /// Linux user and group names as useradd accepts them by default.
    package static func accountName(_ name: String, what: String) -> String? {
        guard let first = name.first, first.isASCII, first.isLowercase || first == "_", name.count <= 32,
              name.allSatisfy({ isLowerAlphanumeric($0) || $0 == "_" || $0 == "-" }) else {
            return "'\(name)' is not a valid \(what) name: use up to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'"
        }
        return nil
    }

    /// Arch package names: lower-case letters, digits and @._+-, not starting with - or '.'.
    static func packageName(_ name: String) -> String? {
        let valid = name.allSatisfy { isLowerAlphanumeric($0) || "@._+-".contains($0) }
        guard !name.isEmpty, valid, !name.hasPrefix("-"), !name.hasPrefix(".") else {
            return "'\(name)' is not a valid package name: use lower-case letters, digits and @ . _ + -, not starting with a hyphen or a dot"
        }
        return nil
    }

    static func repositoryName(_ name: String) -> String? {
        let valid = name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber, valid else {
            return "'\(name)' is not a valid repository name: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        }
        return nil
    }

    static func serverURL(_ url: String) -> String? {
        let schemes = ["https://", "http://", "ftp://", "file://"]
        guard let scheme = schemes.first(where: { url.hasPrefix($0) }), url.count > scheme.count,
              !url.contains(where: { $0.isWhitespace }) else {
            return "'\(url)' is not a server URL: use https://, http://, ftp:// or file://"
        }
        return nil
    }

    /// pacman.conf SigLevel: Never, Optional, Required, TrustedOnly or TrustAll, each
    /// optionally prefixed with Package or Database.
    static func sigLevelTokens(_ text: String) -> (tokens: [String], problem: String?) {
        let tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        let levels = ["Never", "Optional", "Required", "TrustedOnly", "TrustAll"]
        let valid = Set(levels + levels.map { "Package" + $0 } + levels.map { "Database" + $0 })
        if tokens.isEmpty {
            return ([], "a SigLevel needs at least one of Never, Optional, Required, TrustedOnly, TrustAll")
        }
        for token in tokens where !valid.contains(token) {
            var message = "'\(token)' is not a SigLevel option"
            if let suggestion = closestMatch(to: token, among: valid.sorted()) {
                message += "; did you mean '\(suggestion)'?"
            } else {
                message += ": use Never, Optional, Required, TrustedOnly or TrustAll, optionally prefixed with Package or Database"
            }
            return (tokens, message)
        }
        return (tokens, nil)
    }

    /// crypt(3) hashes: `$ID$[PARAMS$]SALT$HASH`, with the length of HASH each scheme has
    /// (a hash cut short can never match a password). The value is not repeated in the message.
    package static func cryptHash(_ hash: String) -> String? {
        let problem = "the value does not look like a crypt(3) hash ($ID$SALT$HASH with ID 1, 2b, 5, 6, y or gy); make one with `openssl passwd -6`"
        let fields = hash.split(separator: "$", omittingEmptySubsequences: false)
        // Characters of the encoded hash per scheme; bcrypt's last field is salt and hash.
        let hashLength: [Substring: (Int, String)] = [
            "1": (22, "MD5"), "5": (43, "SHA-256"), "6": (86, "SHA-512"), "y": (43, "yescrypt"), "gy": (43, "gost-yescrypt"),
            "7": (43, "scrypt"), "2a": (53, "bcrypt"), "2b": (53, "bcrypt"), "2y": (53, "bcrypt"),
        ]
        guard fields.count >= 4, fields[0].isEmpty, let (length, scheme) = hashLength[fields[1]], let last = fields.last, !last.isEmpty else {
            return problem
        }
        let alphabet = fields.dropFirst(2).allSatisfy { field in
            field.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "./=,".contains($0)) }
        }
        guard alphabet else { return problem }
        if fields[1].hasPrefix("2") {
            // $2b$CC$ + 22 characters of salt and 31 of hash.
            guard fields.count == 4, fields[2].count == 2, let cost = Int(fields[2]), (4...31).contains(cost) else {
                return "the value is not a bcrypt hash: it must be $2b$ and a cost from 04 to 31, then 53 characters"
            }
        }
        guard last.count == length else {
            return "the value is a $\(fields[1])$ (\(scheme)) hash whose hash part has \(last.count) characters instead of \(length) (cut short or padded?); make one with `openssl passwd -6`"
        }
        return nil
    }

    static let sshKeyTypes = [
        "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss",
    ]

    /// An OpenSSH public key line: `TYPE BASE64 [COMMENT]`, whose body names the same type.
    package static func sshKey(_ line: String) -> String? {
        let fields = line.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else {
            return "an SSH public key has the form 'TYPE BASE64 [COMMENT]', as in ~/.ssh/id_ed25519.pub"
        }
        let type = String(fields[0])
        guard sshKeyTypes.contains(type) else {
            return "unknown SSH key type '\(type)': use one of \(sshKeyTypes.joined(separator: ", "))"
        }
        guard let body = Data(base64Encoded: String(fields[1])) else {
            return "the body of the \(type) key is not valid base64"
        }
        // The body starts with the key type again, as a length-prefixed string.
        let bytes = [UInt8](body)
        guard bytes.count >= 4 else { return "the body of the \(type) key is too short" }
        let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
        guard length <= bytes.count - 4 else { return "the body of the \(type) key is truncated" }
        let inner = String(decoding: bytes[4..<(4 + length)], as: UTF8.self)
        guard inner == type else {
            return "the key says '\(type)' but its body holds a '\(inner)' key"
        }
        if type == "ssh-ed25519", bytes.count != 4 + length + 4 + 32 {
            return "the body of the ssh-ed25519 key does not hold a 32-byte public key"
        }
        return nil
    }

    /// An octal permission string such as "0644" or "755".
    static func fileMode(_ text: String) -> (mode: UInt32?, problem: String?) {
        guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }),
              let mode = UInt32(text, radix: 8) else {
            return (nil, "'\(text)' is not a file mode: use three or four octal digits such as \"0644\"")
        }
        return (mode, nil)
    }

    static func isSHA256(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy { $0.isHexDigit }
    }

    static func isPowerOfTwo(_ value: Int64) -> Bool {
        value > 0 && value & (value - 1) == 0
    }
}
