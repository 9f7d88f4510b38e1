import Foundation
import TOML

extension RecipeDecoder {
    // MARK: [system], [[users]], [[files]]

    func decodeSystem(_ top: TableReader, recipeName: String) -> SystemSpec {
        var system = SystemSpec(hostname: recipeName, timezone: "UTC", locale: "C.UTF-8", kernelCommandLine: "",
                                rootPasswordHash: nil)
        guard let table = top.table("system", known: RecipeSchema.system.keyNames) else {
            return system
        }
        if let located = table.string("hostname"), check(located, Checks.hostname) { system.hostname = located.value }
        if let located = table.string("timezone"), check(located, Checks.timezone) { system.timezone = located.value }
        if let located = table.string("locale"), check(located, Checks.locale) { system.locale = located.value }
        if let located = table.string("kernel_cmdline"), check(located, Checks.kernelCommandLine) {
            system.kernelCommandLine = located.value
        }
        if let located = table.string("root_password_hash"), check(located, Checks.cryptHash) {
            system.rootPasswordHash = located.value
        }
        return system
    }

    func decodeUsers(_ top: TableReader) -> [UserSpec] {
        guard let tables = top.arrayOfTables("users", known: RecipeSchema.users.keyNames) else { return [] }
        var users: [UserSpec] = []
        var names: [Located<String>] = []
        var uids: [Located<Int64>] = []
        for table in tables {
            var user = UserSpec(name: "", uid: nil, groups: [], shell: "/bin/sh", passwordHash: nil, sshKeys: [])
            if let name = table.requiredString("name"), check(name, { Checks.accountName($0, what: "user") }) {
                if name.value == "root" {
                    diagnostics.error("root is not a [[users]] entry: set its password with system.root_password_hash",
                                      at: name.position, key: name.keyPath)
                } else {
                    names.append(name)
                    user.name = name.value
                }
            }
            if let uid = table.integer("uid") {
                if (1...65533).contains(uid.value) {
                    user.uid = Int(uid.value)
                    uids.append(uid)
                } else {
                    diagnostics.error("uid \(uid.value) is out of range: use 1 to 65533 (0 is root, 65534 is nobody)",
                                      at: uid.position, key: uid.keyPath)
                }
            }
            if let groups = table.stringArray("groups") {
                for group in groups.value { check(group, { Checks.accountName($0, what: "group") }) }
                user.groups = groups.value.map(\.value)
            }
            if let shell = table.string("shell") {
                if shell.value.hasPrefix("/") {
                    user.shell = shell.value
                } else {
                    diagnostics.error("'\(shell.value)' is not an absolute path: give the shell as /bin/sh or /usr/bin/bash",
                                      at: shell.position, key: shell.keyPath)
                }
            }
            if let hash = table.string("password_hash"), check(hash, Checks.cryptHash) {
                user.passwordHash = hash.value
            }
            if let keys = table.stringArray("ssh_keys") {
                for key in keys.value { check(key, Checks.sshKey) }
                user.sshKeys = keys.value.map(\.value)
            }
            users.append(user)
        }
        reportDuplicates(names) { "user name '\($0)'" }
        reportDuplicates(uids) { "uid \($0)" }
        return users
    }

    func decodeFiles(_ top: TableReader) -> [FileOverlay] {
        guard let tables = top.arrayOfTables("files", known: RecipeSchema.files.keyNames) else { return [] }
        var overlays: [FileOverlay] = []
        var destinations: [Located<String>] = []
        for table in tables {
            var overlay = FileOverlay(source: "", destination: "", mode: nil)
            if let source = table.requiredString("source") {
                if source.value.isEmpty {
                    diagnostics.error("the source path is empty", at: source.position, key: source.keyPath)
                }
                overlay.source = resolve(source.value)
            }
            if let destination = table.requiredString("destination") {
                let components = destination.value.split(separator: "/")
                if !destination.value.hasPrefix("/") {
                    diagnostics.error("'\(destination.value)' is not an absolute path in the image, such as /etc/motd",
                                      at: destination.position, key: destination.keyPath)
                } else if components.isEmpty || components.contains("..") || components.contains(".") {
                    diagnostics.error("'\(destination.value)' must name a file or directory below / without '.' or '..'",
                                      at: destination.position, key: destination.keyPath)
                } else {
                    overlay.destination = "/" + components.joined(separator: "/")
                    destinations.append(destination.with(overlay.destination))
                }
            }
            if let mode = table.string("mode") {
                let (value, problem) = Checks.fileMode(mode.value)
                if let problem { diagnostics.error(problem, at: mode.position, key: mode.keyPath) }
                overlay.mode = value
            }
            overlays.append(overlay)
        }
        reportDuplicates(destinations) { "destination \($0)" }
        return overlays
    }
}
