import Foundation
import ImageSupport
import Recipe
import SnapshotTree
import SystemSupport

/// What `rast-install` changes on the installed system. Every field is optional; nothing set
/// means the disk is a byte-for-byte copy of the image (grown to the disk).
package struct Personalisation: Sendable, Equatable {
    package var hostname: String?
    /// A zone name such as Europe/Berlin (/etc/localtime points into /usr/share/zoneinfo).
    package var timezone: String?
    /// A user to add (or, when the image has one of that name, to give the keys and password).
    package var user: String?
    /// Extra groups of `user` (created when missing).
    package var groups: [String]
    /// OpenSSH public keys for the user's ~/.ssh/authorized_keys.
    package var sshKeys: [String]
    /// crypt(3) hash of the user's password.
    package var passwordHash: String?
    /// crypt(3) hash of root's password.
    package var rootPasswordHash: String?
    /// New disk GUID, partition UUIDs and btrfs filesystem UUID, so that two disks installed
    /// from one image can sit in one machine.
    package var newIdentifiers: Bool

    package init(hostname: String? = nil, timezone: String? = nil, user: String? = nil, groups: [String] = [],
                sshKeys: [String] = [], passwordHash: String? = nil, rootPasswordHash: String? = nil,
                newIdentifiers: Bool = false) {
        self.hostname = hostname
        self.timezone = timezone
        self.user = user
        self.groups = groups
        self.sshKeys = sshKeys
        self.passwordHash = passwordHash
        self.rootPasswordHash = rootPasswordHash
        self.newIdentifiers = newIdentifiers
    }

    /// True when the deployed snapshot's files change (host name, time zone, accounts).
    package var changesFiles: Bool {
        hostname != nil || timezone != nil || user != nil || rootPasswordHash != nil
    }

    /// Checks every value the way a recipe's are checked; the error names the option.
    package func validate() throws {
        func check(_ option: String, _ value: String, secret: Bool = false, _ problem: (String) -> String?) throws {
            if let reason = problem(value) {
                throw InstallError.invalidOption(option: option, value: secret ? nil : value, reason: reason)
            }
        }
        if let hostname { try check("--hostname", hostname, Checks.hostname) }
        if let timezone { try check("--timezone", timezone, Checks.timezone) }
        if let user {
            try check("--user", user) { Checks.accountName($0, what: "user") }
            if user == "root" {
                throw InstallError.invalidOption(option: "--user", value: user, reason: "root is not a user to add; set its password with --root-password-hash")
            }
        } else {
            let needsUser = [("--ssh-key", !sshKeys.isEmpty), ("--password-hash", passwordHash != nil), ("--group", !groups.isEmpty)]
            if let (option, _) = needsUser.first(where: { $0.1 }) {
                throw InstallError.invalidOption(option: option, value: nil, reason: "it applies to the user named with --user, and no --user was given")
            }
        }
        for group in groups { try check("--group", group) { Checks.accountName($0, what: "group") } }
        for key in sshKeys { try check("--ssh-key", key, Checks.sshKey) }
        if let passwordHash { try check("--password-hash", passwordHash, secret: true, Checks.cryptHash) }
        if let rootPasswordHash { try check("--root-password-hash", rootPasswordHash, secret: true, Checks.cryptHash) }
    }

    /// One line per change, for the plan.
    package var summary: [String] {
        var lines: [String] = []
        if let hostname { lines.append("host name \(hostname)") }
        if let timezone { lines.append("time zone \(timezone)") }
        if let user {
            var text = "user \(user)"
            if !groups.isEmpty { text += " (groups \(groups.joined(separator: ", ")))" }
            text += sshKeys.isEmpty ? ", no SSH key" : ", \(sshKeys.count) SSH key\(sshKeys.count == 1 ? "" : "s")"
            text += passwordHash == nil ? ", no password" : ", password set"
            lines.append(text)
        }
        if rootPasswordHash != nil { lines.append("root password set") }
        if newIdentifiers {
            lines.append("new disk GUID, partition UUIDs and btrfs filesystem UUID; boot entries, fstab and boot loaders follow")
        }
        return lines
    }

    /// Reads OpenSSH public keys from a file (authorized_keys or id_*.pub format): one per
    /// line, blank lines and # comments skipped.
    package static func sshKeys(fromFile path: String) throws -> [String] {
        guard let text = try? Files.readString(path) else {
            throw InstallError.invalidOption(option: "--ssh-key-file", value: path, reason: "the file cannot be read")
        }
        let keys = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !keys.isEmpty else {
            throw InstallError.invalidOption(option: "--ssh-key-file", value: path, reason: "the file holds no SSH public key")
        }
        for (index, key) in keys.enumerated() {
            if let reason = Checks.sshKey(key) {
                throw InstallError.invalidOption(option: "--ssh-key-file", value: path, reason: "key \(index + 1): \(reason)")
            }
        }
        return keys
    }
}

/// Writes a personalisation into the root of a working copy (its /etc) and the shared @home,
/// the way the configure stage of rast-build does for a recipe.
struct PersonalisationWriter {
    let personalisation: Personalisation
    /// The working copy's root.
    let root: String
    /// The filesystem's @home.
    let home: String
    let progress: ProgressReporter

    func apply() throws {
        let etc = root + "/etc"
        if let hostname = personalisation.hostname {
            try Files.writeAtomically(etc + "/hostname", string: hostname + "\n", mode: 0o644)
        }
        if let timezone = personalisation.timezone { try setTimezone(timezone, etc: etc) }
        guard personalisation.user != nil || personalisation.rootPasswordHash != nil else { return }

        var accounts = AccountDatabase.load(etc: etc)
        if let hash = personalisation.rootPasswordHash { accounts.setPassword(user: "root", hash: hash) }
        if let name = personalisation.user {
            let uid: Int
            let gid: Int
            if let existing = accounts.user(name), let existingUID = Int(existing[2]), let existingGID = Int(existing[3]) {
                (uid, gid) = (existingUID, existingGID)
                if let hash = personalisation.passwordHash { accounts.setPassword(user: name, hash: hash) }
                for group in personalisation.groups { accounts.addMember(name, to: group) }
                progress.note("personalise: the image already has user \(name); its keys and password are updated")
            } else {
                (uid, gid) = try accounts.addUser(UserSpec(name: name, groups: personalisation.groups,
                                                           passwordHash: personalisation.passwordHash,
                                                           sshKeys: personalisation.sshKeys))
            }
            try writeHome(name, uid: uid, gid: gid)
        }
        try accounts.save(etc: etc)
    }

    /// /etc/localtime points at the zone; an image with a zone database must have the zone.
    private func setTimezone(_ zone: String, etc: String) throws {
        let database = root + "/usr/share/zoneinfo"
        if Files.isDirectory(database) {
            guard Files.exists(database + "/" + zone) else {
                throw InstallError.invalidOption(option: "--timezone", value: zone, reason: "the image has no such time zone (\(database.dropFirst(root.count))/\(zone) is missing)")
            }
        } else {
            progress.note("personalise: the image has no time zone database (/usr/share/zoneinfo); /etc/localtime names \(zone) for when one is installed")
        }
        unlink(etc + "/localtime")
        try SystemError.check("symlink", path: etc + "/localtime") { symlink("/usr/share/zoneinfo/" + zone, etc + "/localtime") }
    }

    /// The home directory in @home (shared by all snapshots), with the keys added to
    /// authorized_keys (keys already there stay, none twice).
    private func writeHome(_ name: String, uid: Int, gid: Int) throws {
        let directory = home + "/" + name
        try Files.createDirectory(directory)
        if !personalisation.sshKeys.isEmpty {
            let file = directory + "/.ssh/authorized_keys"
            var keys = ((try? Files.readString(file)) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            for key in personalisation.sshKeys where !keys.contains(key) { keys.append(key) }
            try Files.createDirectory(directory + "/.ssh", mode: 0o700)
            try Files.writeAtomically(file, string: keys.joined(separator: "\n") + "\n", mode: 0o600)
            try SystemError.check("chmod", path: directory + "/.ssh") { chmod(directory + "/.ssh", 0o700) }
        }
        try Command("chown", ["-R", "\(uid):\(gid)", directory]).run()
        try SystemError.check("chmod", path: directory) { chmod(directory, 0o700) }
    }
}
