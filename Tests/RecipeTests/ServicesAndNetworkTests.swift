import Foundation
@testable import Recipe
import Services
import Testing
import TOML

/// `[[services]]` and `[network]`.
@Suite struct ServicesAndNetworkTests {
    @Test func defaultsAreDHCPAndAnSSHServer() throws {
        let recipe = try decode(minimalText)
        #expect(recipe.network == NetworkSpec(mode: .dhcp, interface: "eth0", sshd: true, sshPort: 22))
        #expect(recipe.network.serviceNames == ["network", "sshd"])
        #expect(recipe.services.isEmpty)
    }

    @Test func servicesAreDefinitionsWithANameAndMayDependOnNetworkAndSSHD() throws {
        let recipe = try decode(minimalText + """
            [[services]]
            name = "web"
            command = ["httpd", "-f", "-p", "80"]
            depends = ["network", "cache"]
            ready = { tcp = 80 }

            [[services]]
            name = "cache"
            command = "exec sleep 1000"
            restart = "on-failure"
            """)
        #expect(recipe.services.map(\.name) == ["web", "cache"])
        #expect(recipe.services[0].depends == ["network", "cache"])
        #expect(recipe.services[0].readiness == .tcp(port: 80))
        #expect(recipe.services[1].restart == .onFailure)
    }

    @Test func badServicesAreReportedWithRecipePositionsAndKeys() {
        let found = problems(minimalText + """
            [[services]]
            name = "web"
            command = "httpd"
            depends = ["db"]
            restrat = "always"

            [[services]]
            name = "web"
            command = "x"

            [[services]]
            name = "sshd"
            command = "dropbear"

            [[services]]
            name = "a"
            depends = ["b"]
            command = "x"

            [[services]]
            name = "b"
            depends = ["a"]
            command = "x"

            [[services]]
            name = "nothing"
            """).map(\.description)
        #expect(found == [
            "r.toml:7:12: error: services[0].depends[0]: unknown service 'db' (defined are a, b, network, sshd)",
            "r.toml:8:1: error: services[0].restrat: unknown key 'restrat'; did you mean 'restart'?",
            "r.toml:11:8: error: services[1].name: duplicate service name 'web' (first defined at 5:8, services[0].name)",
            "r.toml:15:8: error: services[2].name: 'sshd' is the service that network.sshd = true defines; choose another name or turn that off",
            "r.toml:25:12: error: services[4].depends[0]: the dependencies form a cycle (a → b → a); no service of it could ever start",
            "r.toml:28:1: error: services[5].command: missing required key 'command': the program to run (a string for /bin/sh -c, or an array of the program and its arguments)",
        ], "\(found.joined(separator: "\n"))")
    }

    @Test func staticNetwork() throws {
        let recipe = try decode(minimalText + """
            [network]
            mode = "static"
            interface = "ens3"
            address = "192.168.7.20/24"
            gateway = "192.168.7.1"
            dns = ["192.168.7.1", "9.9.9.9"]
            sshd = false
            """)
        #expect(recipe.network == NetworkSpec(mode: .static, interface: "ens3", address: "192.168.7.20/24", gateway: "192.168.7.1",
                                              dns: ["192.168.7.1", "9.9.9.9"], sshd: false))
        #expect(recipe.network.serviceNames.isEmpty)
    }

    @Test func badNetworkSettings() {
        #expect(problem(minimalText + "[network]\nmode = \"wifi\"\n")?.description
            == "r.toml:5:8: error: network.mode: 'wifi' is not a network mode: use \"dhcp\", \"static\" or \"none\"")
        #expect(problem(minimalText + "[network]\nmode = \"static\"\n")?.description
            == "r.toml:4:1: error: network.address: missing required key 'address' in [network]: a static network needs the interface's address, such as \"192.168.1.10/24\"")
        #expect(problem(minimalText + "[network]\nmode = \"static\"\naddress = \"10.0.0.300/24\"\n")?.description
            == "r.toml:6:11: error: network.address: '10.0.0.300/24' is not an IPv4 address with a prefix length, such as \"192.168.1.10/24\"")
        #expect(problem(minimalText + "[network]\ngateway = \"10.0.0.1\"\n")?.description
            == "r.toml:5:11: error: network.gateway: 'gateway' applies only to mode = \"static\"")
        #expect(problem(minimalText + "[network]\nssh_port = 0\n")?.description
            == "r.toml:5:12: error: network.ssh_port: 0 is not a TCP port: use 1 to 65535")
        #expect(problem(minimalText + "[network]\nshd = true\n")?.description
            == "r.toml:5:1: error: network.shd: unknown key 'shd'; did you mean 'sshd'?")
    }
}
