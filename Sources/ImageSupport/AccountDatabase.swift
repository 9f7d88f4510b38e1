import Foundation
import Recipe
import SystemSupport

/// The account files of a root (/etc/passwd, shadow, group, gshadow), edited as text the way
/// useradd would, so that the configure stage needs no tools inside the image.
package struct AccountDatabase: Sendable, Equatable {
    package var passwd: [[String]]
    package var shadow: [[String]]
    package var group: [[String]]
    package var gshadow: [[String]]

    package init(passwd: String, shadow: String, group: String, gshadow: String) {
        func rows(_ text: String, fields: Int) -> [[String]] {
            text.split(separator: "\n").filter { !$0.isEmpty && !$0.hasPrefix("#") }.map { line in
                var parts = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                while parts.count < fields { parts.append("") }
                return parts
            }
        }
        self.passwd = rows(passwd, fields: 7)
        self.shadow = rows(shadow, fields: 9)
        self.group = rows(group, fields: 4)
        self.gshadow = rows(gshadow, fields: 4)
    }

    /// Reads the four files of `etc` (missing files count as empty).
    package static func load(etc: String) -> AccountDatabase {
        func read(_ name: String) -> String { (try? Files.readString(etc + "/" + name)) ?? "" }
        return AccountDatabase(passwd: read("passwd"), shadow: read("shadow"), group: read("group"), gshadow: read("gshadow"))
    }

    /// Writes them back atomically with the usual modes.
    package func save(etc: String) throws {
        func text(_ rows: [[String]]) -> String { rows.map { $0.joined(separator: ":") }.joined(separator: "\n") + "\n" }
        try Files.writeAtomically(etc + "/passwd", string: text(passwd), mode: 0o644)
        try Files.writeAtomically(etc + "/group", string: text(group), mode: 0o644)
        try Files.writeAtomically(etc + "/shadow", string: text(shadow), mode: 0o600)
        try Files.writeAtomically(etc + "/gshadow", string: text(gshadow), mode: 0o600)
    }

    package func user(_ name: String) -> [String]? { passwd.first { $0[0] == name } }
    package func groupEntry(_ name: String) -> [String]? { group.first { $0[0] == name } }

    /// Sets root's password hash, or locks root (`!*`) when there is none.
    package mutating func setRootPassword(hash: String?) {
        setPassword(user: "root", hash: hash ?? "!*")
    }

    /// Sets a user's password hash, adding a shadow entry when the user has none.
    package mutating func setPassword(user: String, hash: String) {
        if let index = shadow.firstIndex(where: { $0[0] == user }) {
            shadow[index][1] = hash
        } else {
            shadow.append([user, hash, String(Self.daysSinceEpoch), "", "", "", "", "", ""])
        }
    }

    static var daysSinceEpoch: Int { Int(Date().timeIntervalSince1970 / 86400) }

    /// Adds a group (with a free gid from 1000) unless it exists; returns its gid.
    @discardableResult
    package mutating func ensureGroup(_ name: String, gid: Int? = nil) -> Int {
        if let existing = groupEntry(name), let id = Int(existing[2]) { return id }
        let used = Set(group.compactMap { Int($0[2]) })
        var id = gid ?? 1000
        while used.contains(id) { id += 1 }
        group.append([name, "x", String(id), ""])
        gshadow.append([name, "!", "", ""])
        return id
    }

    /// Adds `user` as a member of group `name`.
    package mutating func addMember(_ user: String, to name: String) {
        ensureGroup(name)
        guard let index = group.firstIndex(where: { $0[0] == name }) else { return }
        var members = group[index][3].split(separator: ",").map(String.init)
        if !members.contains(user) { members.append(user) }
        group[index][3] = members.joined(separator: ",")
        if let shadowIndex = gshadow.firstIndex(where: { $0[0] == name }) { gshadow[shadowIndex][3] = group[index][3] }
    }

    /// Adds a user the way `useradd -m -U` would: a personal group, a uid from 1000 (or the
    /// recipe's), membership in the extra groups, and no password unless a hash is given: `*`,
    /// which no password matches, not the lock mark `!` (SSH servers without PAM, such as
    /// dropbear, refuse even key logins to locked accounts).
    /// Returns (uid, gid).
    @discardableResult
    package mutating func addUser(_ spec: UserSpec) throws -> (uid: Int, gid: Int) {
        guard user(spec.name) == nil else {
            throw UserError("user \(spec.name) already exists in the image's /etc/passwd")
        }
        let usedUIDs = Set(passwd.compactMap { Int($0[2]) })
        var uid = spec.uid ?? 1000
        if spec.uid == nil { while usedUIDs.contains(uid) { uid += 1 } }
        if spec.uid != nil, usedUIDs.contains(uid) {
            throw UserError("uid \(uid) of user \(spec.name) is already taken in the image's /etc/passwd")
        }
        let gid = ensureGroup(spec.name, gid: groupEntry(spec.name) == nil && !Set(group.compactMap { Int($0[2]) }).contains(uid) ? uid : nil)
        passwd.append([spec.name, "x", String(uid), String(gid), spec.name, "/home/\(spec.name)", spec.shell])
        setPassword(user: spec.name, hash: spec.passwordHash ?? "*")
        for extra in spec.groups { addMember(spec.name, to: extra) }
        return (uid, gid)
    }
}
