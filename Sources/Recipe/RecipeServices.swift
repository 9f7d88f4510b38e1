import Services
import TOML

/// The `[network]` table: how the first interface is configured at boot, and the SSH server.
package struct NetworkSpec: Sendable, Equatable {
    package enum Mode: String, Sendable, CaseIterable {
        /// busybox udhcpc, supervised as the service `network`.
        case dhcp
        /// A fixed address set by the boot scripts.
        case `static`
        /// Only the loopback interface.
        case none
    }

    package var mode: Mode
    package var interface: String
    /// `ADDRESS/PREFIX` (static only).
    package var address: String?
    package var gateway: String?
    package var dns: [String]
    /// An SSH server (the service `sshd`): key logins only, no root login.
    package var sshd: Bool
    package var sshPort: Int

    package init(mode: Mode = .dhcp, interface: String = "eth0", address: String? = nil, gateway: String? = nil,
                dns: [String] = [], sshd: Bool = true, sshPort: Int = 22) {
        self.mode = mode
        self.interface = interface
        self.address = address
        self.gateway = gateway
        self.dns = dns
        self.sshd = sshd
        self.sshPort = sshPort
    }

    /// The services the image builder defines for this table (beside the recipe's own).
    package var serviceNames: [String] {
        (mode == .dhcp ? ["network"] : []) + (sshd ? ["sshd"] : [])
    }
}

extension RecipeDecoder {
    func decodeNetwork(_ top: TableReader) -> NetworkSpec {
        var network = NetworkSpec()
        guard let table = top.table("network", known: RecipeSchema.network.keyNames) else { return network }
        if let located = table.string("mode") {
            if let mode = NetworkSpec.Mode(rawValue: located.value) {
                network.mode = mode
            } else {
                diagnostics.error("'\(located.value)' is not a network mode: use \"dhcp\", \"static\" or \"none\"", at: located.position, key: located.keyPath)
            }
        }
        if let located = table.string("interface") {
            let valid = (1...15).contains(located.value.count)
                && located.value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
            if valid {
                network.interface = located.value
            } else {
                diagnostics.error("'\(located.value)' is not an interface name: 1 to 15 letters, digits, '.', '_' and '-' (the first interface is eth0)",
                                  at: located.position, key: located.keyPath)
            }
        }
        if network.mode != .static {
            for key in RecipeSchema.staticNetworkKeys {
                if let value = table.value(key) {
                    diagnostics.error("'\(key)' applies only to mode = \"static\"", at: value.position, key: value.keyPath)
                }
            }
        } else {
            if let located = table.string("address") {
                if Self.isIPv4Prefix(located.value) {
                    network.address = located.value
                } else {
                    diagnostics.error("'\(located.value)' is not an IPv4 address with a prefix length, such as \"192.168.1.10/24\"",
                                      at: located.position, key: located.keyPath)
                }
            } else if !table.has("address") {
                table.missing("address", "a static network needs the interface's address, such as \"192.168.1.10/24\"")
            }
            if let located = table.string("gateway") {
                if Self.isIPv4(located.value) {
                    network.gateway = located.value
                } else {
                    diagnostics.error("'\(located.value)' is not an IPv4 address", at: located.position, key: located.keyPath)
                }
            }
            for server in table.stringArray("dns")?.value ?? [] {
                if Self.isIPv4(server.value) {
                    network.dns.append(server.value)
                } else {
                    diagnostics.error("'\(server.value)' is not an IPv4 address", at: server.position, key: server.keyPath)
                }
            }
        }
        if let sshd = table.boolean("sshd") { network.sshd = sshd.value }
        if let port = table.integer("ssh_port") {
            if (1...65535).contains(port.value) {
                network.sshPort = Int(port.value)
            } else {
                diagnostics.error("\(port.value) is not a TCP port: use 1 to 65535", at: port.position, key: port.keyPath)
            }
        }
        return network
    }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }

    static func isIPv4Prefix(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let length = Int(parts[1]), (0...32).contains(length), parts[1].allSatisfy(\.isNumber) else { return false }
        return isIPv4(String(parts[0]))
    }

    /// `[[services]]`: each a definition as in /etc/rast/services/NAME.toml plus its `name`;
    /// checked with the same rules, together with the services `[network]` makes.
    func decodeServices(_ top: TableReader, network: NetworkSpec, file: String) -> [ServiceDefinition] {
        guard let elements = top.tables("services") else { return [] }
        var definitions: [LocatedDefinition] = []
        var names: [Located<String>] = []
        var errors: [ServiceError] = []
        for element in elements {
            let path = element.keyPath
            let table = element.value
            diagnostics.positions[path] = table.position
            guard let nameValue = table["name"] else {
                diagnostics.error("missing required key 'name' in this services entry: the service's name", at: table.position, key: path + ".name")
                continue
            }
            guard let name = nameValue.string else {
                diagnostics.error("expected a string, found \(nameValue.typeDescription)", at: nameValue.position, key: path + ".name")
                continue
            }
            if let problem = ServiceDefinition.nameProblem(name) {
                diagnostics.error(problem, at: nameValue.position, key: path + ".name")
                continue
            }
            if network.serviceNames.contains(name) {
                let why = name == "sshd" ? "network.sshd = true" : "network.mode = \"dhcp\""
                diagnostics.error("'\(name)' is the service that \(why) defines; choose another name or turn that off",
                                  at: nameValue.position, key: path + ".name")
                continue
            }
            let locatedName = Located(value: name, position: nameValue.position, keyPath: path + ".name")
            if let first = names.first(where: { $0.value == name }) {
                diagnostics.duplicate("service name '\(name)'", second: locatedName, first: first)
                continue
            }
            names.append(locatedName)
            if let definition = ServiceDefinition.decode(table, name: name, file: file, keyPrefix: path + ".", extraKeys: RecipeSchema.services.keyNames, errors: &errors) {
                definitions.append(definition)
            }
        }
        // Dependencies may name the services [network] makes.
        let generated = network.serviceNames.map { LocatedDefinition(standIn: $0, file: file, keyPrefix: "network.") }
        errors += ServiceSet(definitions + generated).problems()
        diagnostics.errors += errors
        return definitions.map(\.definition)
    }
}
