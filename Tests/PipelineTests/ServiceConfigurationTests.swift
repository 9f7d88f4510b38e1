import Foundation
import Pipeline
import Recipe
import Services
import SystemSupport
import TestSupport
import Testing

/// What the configure stage writes for `[network]` and `[[services]]`, into a directory that
/// stands in for snapshot 0 (with the files that tell which supervisor and SSH server it has).
@Suite struct ServiceConfigurationTests {
    static func root(_ files: [String]) throws -> TemporaryDirectory {
        let root = try TemporaryDirectory(prefix: "rast-configure")
        for file in files {
            try Files.createDirectory((root.appending(file) as NSString).deletingLastPathComponent)
            try Files.write(root.appending(file), string: "#!/bin/sh\n", mode: 0o755)
        }
        try Files.createDirectory(root.appending("etc"))
        return root
    }

    static func recipe(_ extra: String) throws -> Recipe {
        try Recipe.parse(text: "name = \"t\"\n[packages]\ninstall = [\"busybox\"]\n" + extra, file: "t.toml", baseDirectory: "/srv")
    }

    static let busyboxWithS6AndDropbear = ["usr/bin/s6-svscan", "usr/bin/udhcpc", "usr/lib/dropbear/rast-sshd"]

    @Test func defaultsGiveDHCPAndSSHDAsServices() throws {
        let root = try Self.root(Self.busyboxWithS6AndDropbear)
        defer { try? root.remove() }
        let recipe = try Self.recipe("[[services]]\nname = \"web\"\ncommand = \"httpd -f\"\ndepends = [\"network\"]\n")
        try ServiceConfiguration(recipe: recipe, root: root.path).write()
        let directory = root.appending("etc/rast/services")
        #expect(try FileManagerShim.contents(of: directory).sorted() == ["network.toml", "sshd.toml", "web.toml"])
        let (set, errors) = ServiceSet.load(directory: directory)
        #expect(errors.isEmpty)
        #expect(set.problems().isEmpty)
        #expect(set.startOrder == ["network", "sshd", "web"])
        #expect(set["network"]?.definition.program == .arguments(["udhcpc", "-f", "-i", "eth0", "-s", "/usr/share/udhcpc/default.script"]))
        #expect(set["sshd"]?.definition.program == .arguments(["/usr/lib/dropbear/rast-sshd", "22"]))
        #expect(set["sshd"]?.definition.readiness == .tcp(port: 22))
        #expect(try Files.readString(directory + "/web.toml").hasPrefix("# Written by rast-build from the recipe's [[services]] (t.toml)"))
        #expect(try Files.readString(root.appending("etc/rast/network.conf")).contains("NETWORK_MODE=dhcp\nNETWORK_INTERFACE=eth0\n"))
    }

    @Test func staticNetworkIsForTheBootScript() throws {
        let root = try Self.root(Self.busyboxWithS6AndDropbear)
        defer { try? root.remove() }
        let recipe = try Self.recipe("[network]\nmode = \"static\"\naddress = \"10.1.2.3/24\"\ngateway = \"10.1.2.1\"\ndns = [\"10.1.2.1\"]\nssh_port = 2222\n")
        try ServiceConfiguration(recipe: recipe, root: root.path).write()
        #expect(try FileManagerShim.contents(of: root.appending("etc/rast/services")) == ["sshd.toml"])
        #expect(try Files.readString(root.appending("etc/rast/network.conf"))
            == "# The recipe's [network], read by /etc/init.d/rcS (written by rast-build).\nNETWORK_MODE=static\nNETWORK_INTERFACE=eth0\nNETWORK_ADDRESS=10.1.2.3/24\nNETWORK_GATEWAY=10.1.2.1\nNETWORK_DNS=\"10.1.2.1\"\n")
        #expect(try Files.readString(root.appending("etc/resolv.conf")) == "nameserver 10.1.2.1\n")
        #expect(try Files.readString(root.appending("etc/rast/services/sshd.toml")).contains("\"/usr/lib/dropbear/rast-sshd\", \"2222\""))
    }

    @Test func defaultsTheImageCannotHaveAreSkippedButWrittenOnesAreErrors() throws {
        let bare = try Self.root(["usr/bin/udhcpc"])
        defer { try? bare.remove() }
        try ServiceConfiguration(recipe: try Self.recipe(""), root: bare.path).write()
        #expect(!Files.exists(bare.appending("etc/rast/services")))
        #expect(try Files.readString(bare.appending("etc/rast/network.conf")).contains("NETWORK_MODE=none"))
        #expect(throws: UserError.self) {
            try ServiceConfiguration(recipe: try Self.recipe("[network]\nsshd = true\n"), root: bare.path).write()
        }
        #expect(throws: UserError.self) {
            try ServiceConfiguration(recipe: try Self.recipe("[[services]]\nname = \"x\"\ncommand = \"true\"\n"), root: bare.path).write()
        }
        let noSSH = try Self.root(["usr/bin/s6-svscan", "usr/bin/udhcpc"])
        defer { try? noSSH.remove() }
        try ServiceConfiguration(recipe: try Self.recipe(""), root: noSSH.path).write()
        #expect(try FileManagerShim.contents(of: noSSH.appending("etc/rast/services")) == ["network.toml"])
    }

    @Test func systemdImagesGetNetworkdAndOpenSSHUnits() throws {
        let root = try Self.root(["usr/lib/systemd/systemd", "usr/bin/sshd", "usr/lib/systemd/system/sshd.service"])
        defer { try? root.remove() }
        try Files.createDirectory(root.appending("etc/ssh"))
        try Files.write(root.appending("etc/ssh/sshd_config"), string: "#PermitRootLogin prohibit-password\n")
        try ServiceConfiguration(recipe: try Self.recipe(""), root: root.path).write()
        let wants = root.appending("etc/systemd/system/multi-user.target.wants")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: wants + "/sshd.service") == "/usr/lib/systemd/system/sshd.service")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: wants + "/systemd-networkd.service") == "/usr/lib/systemd/system/systemd-networkd.service")
        let config = try Files.readString(root.appending("etc/ssh/sshd_config"))
        #expect(config.hasPrefix("# rastOS (rast-build): key logins only, no root login.\nPort 22\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"))
        #expect(config.hasSuffix("#PermitRootLogin prohibit-password\n"))
        #expect(try Files.readString(root.appending("etc/systemd/network/20-rastos.network")).contains("DHCP=yes"))
    }
}
