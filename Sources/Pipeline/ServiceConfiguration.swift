import Foundation
import Recipe
import Services
import SystemSupport

/// The configure stage's part for `[network]` and `[[services]]`: the network settings the
/// boot scripts read, and the service definitions of snapshot 0 (the recipe's, plus
/// `network` for DHCP and `sshd`), written where rast and the boot scripts expect them.
///
/// Images with busybox init supervise services with s6 (`rast service`); an image that boots
/// systemd instead (Arch's packages) gets systemd's own units enabled for DHCP and sshd, and
/// cannot take `[[services]]`.
///
/// The defaults (DHCP and sshd when the recipe has no `[network]`) apply where the image can
/// honour them: without s6, udhcpc or an SSH server they are skipped with a note, while the
/// same settings written in the recipe are errors.
package struct ServiceConfiguration {
    package let recipe: Recipe
    /// The root of snapshot 0 being configured.
    package let root: String
    package let progress: ProgressReporter

    package init(recipe: Recipe, root: String, progress: ProgressReporter = SilentProgress()) {
        self.recipe = recipe
        self.root = root
        self.progress = progress
    }

    /// `[network]` as the image can have it: defaults it cannot honour are dropped (with a note).
    var network: NetworkSpec {
        var network = recipe.network
        let explicitMode = recipe.position(of: "network.mode") != nil
        let explicitSSHD = recipe.position(of: "network.sshd") != nil
        // s6 images run udhcpc and dropbear or sshd; systemd images networkd and OpenSSH's unit.
        let dhcpPossible = supervisor == .systemd || (supervisor == .s6 && hasUDHCPC)
        let sshdPossible = supervisor == .systemd ? sshServer == .openssh : supervisor == .s6 && sshServer != nil
        if network.mode == .dhcp, !explicitMode, !dhcpPossible {
            network.mode = .none
        }
        if network.sshd, !explicitSSHD, !sshdPossible {
            network.sshd = false
        }
        return network
    }

    var hasUDHCPC: Bool { Files.exists(root + "/usr/bin/udhcpc") || Files.exists(root + "/usr/sbin/udhcpc") }

    package enum Supervisor: Equatable {
        case s6
        case systemd
        case none
    }

    /// What supervises services in the image.
    package var supervisor: Supervisor {
        if Files.exists(root + "/usr/bin/s6-svscan") { return .s6 }
        if Files.exists(root + "/usr/lib/systemd/systemd") { return .systemd }
        return .none
    }

    package enum SSHServer: Equatable {
        case dropbear
        case openssh
    }

    package var sshServer: SSHServer? {
        if Files.exists(root + "/usr/lib/dropbear/rast-sshd") { return .dropbear }
        if Files.exists(root + "/usr/bin/sshd") || Files.exists(root + "/usr/sbin/sshd") { return .openssh }
        return nil
    }

    /// The definitions snapshot 0 gets: `network` (DHCP), `sshd`, then the recipe's.
    package func definitions() throws -> [ServiceDefinition] {
        let network = self.network
        var definitions: [ServiceDefinition] = []
        if network.mode == .dhcp {
            guard hasUDHCPC else {
                throw UserError("network.mode = \"dhcp\" needs busybox's udhcpc in the image, which has none; install busybox or set network.mode")
            }
            definitions.append(ServiceDefinition(
                name: "network", description: "DHCP on \(network.interface) (busybox udhcpc)",
                program: .arguments(["udhcpc", "-f", "-i", network.interface, "-s", "/usr/share/udhcpc/default.script"]),
                readiness: .command("ip -4 addr show dev \(network.interface) | grep -q 'inet '")))
        }
        if network.sshd {
            switch sshServer {
            case .dropbear:
                definitions.append(ServiceDefinition(
                    name: "sshd", description: "SSH server (dropbear): key logins only, no root login",
                    program: .arguments(["/usr/lib/dropbear/rast-sshd", String(network.sshPort)]),
                    readiness: .tcp(port: network.sshPort)))
            case .openssh:
                let key = "/var/lib/sshd/ssh_host_ed25519_key"
                definitions.append(ServiceDefinition(
                    name: "sshd", description: "SSH server (OpenSSH): key logins only, no root login",
                    program: .shell("mkdir -p -m 700 /var/lib/sshd && { [ -s \(key) ] || ssh-keygen -q -t ed25519 -N '' -f \(key); } && exec $(command -v sshd) -D -e -p \(network.sshPort) -h \(key) -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o PermitRootLogin=no"),
                    readiness: .tcp(port: network.sshPort)))
            case nil:
                throw UserError("network.sshd = true, but the image has no SSH server: add dropbear (or openssh) to packages.install, or set network.sshd = false")
            }
        }
        return definitions + recipe.services
    }

    /// Writes everything into snapshot 0.
    package func write() throws {
        let network = self.network
        if network.mode != recipe.network.mode {
            progress.note("configure: no DHCP service (the image has no \(supervisor == .none ? "s6 to supervise it" : "udhcpc")); add a [network] table to choose")
        }
        if network.sshd != recipe.network.sshd {
            progress.note("configure: no SSH server (the image has no \(supervisor == .none ? "s6 to supervise one" : "dropbear or openssh")); add s6 and dropbear to packages.install for one")
        }
        let etc = root + "/etc"
        try Files.createDirectory(etc + "/rast")
        try Files.write(etc + "/rast/network.conf", string: networkConf())
        if network.mode == .static, !network.dns.isEmpty {
            if Files.exists(etc + "/resolv.conf") || isSymlink(etc + "/resolv.conf") { unlink(etc + "/resolv.conf") }
            try Files.write(etc + "/resolv.conf", string: network.dns.map { "nameserver \($0)\n" }.joined())
        }
        switch supervisor {
        case .s6:
            let definitions = try definitions()
            guard !definitions.isEmpty else { return }
            let directory = root + ServiceSet.directory
            try Files.createDirectory(directory)
            for definition in definitions {
                let origin = recipe.services.contains(where: { $0.name == definition.name })
                    ? "from the recipe's [[services]]" : "for the recipe's [network]"
                try Files.write(directory + "/\(definition.name).toml",
                                string: "# Written by rast-build \(origin) (\((recipe.file as NSString).lastPathComponent)); see docs/services.md.\n" + definition.tomlText)
            }
        case .systemd:
            try enableSystemdUnits()
        case .none:
            let names = network.serviceNames + recipe.services.map(\.name)
            if !names.isEmpty {
                throw UserError("the recipe asks for services (\(names.joined(separator: ", "))), but the image has no supervisor: add s6 to packages.install, or set network.mode = \"none\" and network.sshd = false")
            }
        }
    }

    /// /etc/rast/network.conf: shell variables the boot script reads.
    package func networkConf() -> String {
        let network = self.network
        var lines = [
            "# The recipe's [network], read by /etc/init.d/rcS (written by rast-build).",
            "NETWORK_MODE=\(network.mode.rawValue)",
            "NETWORK_INTERFACE=\(network.interface)",
        ]
        if let address = network.address { lines.append("NETWORK_ADDRESS=\(address)") }
        if let gateway = network.gateway { lines.append("NETWORK_GATEWAY=\(gateway)") }
        if !network.dns.isEmpty { lines.append("NETWORK_DNS=\"\(network.dns.joined(separator: " "))\"") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// systemd images (Arch's packages): systemd-networkd for DHCP and OpenSSH's sshd.service,
    /// with password and root logins off; `[[services]]` need s6 and are refused.
    func enableSystemdUnits() throws {
        if !recipe.services.isEmpty {
            throw UserError("[[services]] are supervised by s6, and this image boots systemd without s6: install s6, or write systemd units with [[files]]")
        }
        let wants = root + "/etc/systemd/system/multi-user.target.wants"
        let network = self.network
        if network.mode == .dhcp {
            try Files.createDirectory(root + "/etc/systemd/network")
            try Files.write(root + "/etc/systemd/network/20-rastos.network",
                            string: "# The recipe's [network] (written by rast-build).\n[Match]\nName=\(network.interface) en*\n\n[Network]\nDHCP=yes\n")
            try enableUnit("systemd-networkd.service", in: wants)
        }
        if network.sshd {
            guard sshServer == .openssh, Files.exists(root + "/usr/lib/systemd/system/sshd.service") else {
                throw UserError("network.sshd = true, but the image has no OpenSSH server with a systemd unit: add openssh to packages.install, or set network.sshd = false")
            }
            let config = root + "/etc/ssh/sshd_config"
            let existing = (try? Files.readString(config)) ?? ""
            // sshd takes the first value it reads for a keyword: these go first.
            try Files.write(config, string: "# rastOS (rast-build): key logins only, no root login.\nPort \(network.sshPort)\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\n" + existing, mode: 0o644)
            try enableUnit("sshd.service", in: wants)
        }
    }

    func enableUnit(_ name: String, in directory: String) throws {
        try Files.createDirectory(directory)
        let link = directory + "/" + name
        if isSymlink(link) || Files.exists(link) { return }
        try SystemError.check("symlink", path: link) { symlink("/usr/lib/systemd/system/" + name, link) }
    }

    func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }
}
