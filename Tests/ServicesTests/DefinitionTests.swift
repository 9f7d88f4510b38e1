import Foundation
import Services
import SystemSupport
import TestSupport
import Testing
import TOML

/// Definition files: what they may say, and every way of getting one wrong.
@Suite struct DefinitionTests {
    static func parse(_ text: String, name: String = "web", file: String = "/etc/rast/services/web.toml") throws(ServiceErrors) -> ServiceDefinition {
        try ServiceDefinition.parse(bytes: Array(text.utf8), file: file, name: name).definition
    }

    static func problems(_ text: String, name: String = "web") -> [String] {
        do {
            _ = try parse(text, name: name, file: "\(name).toml")
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func everyKeyIsRead() throws {
        let definition = try Self.parse("""
            # A web server.
            description = "static files"
            command = ["httpd", "-f", "-p", "8080", "-h", "/srv/www"]
            user = "www"
            working_directory = "/srv/www"
            depends = ["network", "storage"]
            restart = "on-failure"
            restart_delay = "500ms"
            restart_delay_max = "1m"
            stop_timeout = 3
            enabled = false
            ready = { tcp = 8080 }
            log = { max_size = "64K", keep = 3 }

            [environment]
            LANG = "C.UTF-8"
            GREETING = "it's \\"quoted\\""
            """)
        #expect(definition.name == "web")
        #expect(definition.description == "static files")
        #expect(definition.program == .arguments(["httpd", "-f", "-p", "8080", "-h", "/srv/www"]))
        #expect(definition.user == "www")
        #expect(definition.workingDirectory == "/srv/www")
        #expect(definition.depends == ["network", "storage"])
        #expect(definition.restart == .onFailure)
        #expect(definition.restartDelay == 500)
        #expect(definition.restartDelayMax == 60_000)
        #expect(definition.stopTimeout == 3000)
        #expect(definition.enabled == false)
        #expect(definition.readiness == .tcp(port: 8080))
        #expect(definition.logging == ServiceDefinition.Logging(maxSize: 64 << 10, keep: 3))
        #expect(definition.environment.map(\.name) == ["LANG", "GREETING"])
        #expect(definition.environment.map(\.value) == ["C.UTF-8", "it's \"quoted\""])
    }

    @Test func defaults() throws {
        let definition = try Self.parse("command = \"sleep 1000\"\n")
        #expect(definition.program == .shell("sleep 1000"))
        #expect(definition.restart == .always)
        #expect(definition.restartDelay == 1000)
        #expect(definition.restartDelayMax == 30_000)
        #expect(definition.enabled)
        #expect(definition.user == nil)
        #expect(definition.readiness == nil)
        #expect(definition.logging == ServiceDefinition.Logging(maxSize: 1 << 20, keep: 10))
    }

    @Test func unknownKeyIsRefusedWithItsPositionAndASuggestion() {
        #expect(Self.problems("command = \"true\"\n  dependz = [\"a\"]\n")
            == ["web.toml:2:3: error: dependz: unknown key 'dependz'; did you mean 'depends'?"])
        #expect(Self.problems("command = \"true\"\nready = { tcp = 80, timeout = 3 }\n")
            == ["web.toml:2:21: error: ready.timeout: unknown key 'timeout'; the keys here are 'tcp', 'command'"])
    }

    @Test func missingCommandIsRefused() {
        #expect(Self.problems("description = \"nothing to run\"\n")
            == ["web.toml:1:1: error: command: missing required key 'command': the program to run (a string for /bin/sh -c, or an array of the program and its arguments)"])
        #expect(Self.problems("command = []\n") == ["web.toml:1:11: error: command: the command is empty: give the program and its arguments"])
        #expect(Self.problems("command = \"  \"\n") == ["web.toml:1:11: error: command: the command is empty"])
    }

    @Test func wrongTypesAndValues() {
        #expect(Self.problems("command = 5\n")
            == ["web.toml:1:11: error: command: expected a string (run by /bin/sh -c) or an array of strings (the program and its arguments), found an integer"])
        #expect(Self.problems("command = \"x\"\nrestart = \"sometimes\"\n")
            == ["web.toml:2:11: error: restart: 'sometimes' is not a restart policy: use \"always\", \"on-failure\" or \"never\""])
        #expect(Self.problems("command = \"x\"\nrestart_delay = \"5 seconds\"\n")
            == ["web.toml:2:17: error: restart_delay: '5 seconds' is not a duration: use seconds as an integer, or a string such as \"500ms\", \"5s\", \"2m\" (at most a day)"])
        #expect(Self.problems("command = \"x\"\nready = { tcp = 70000 }\n")
            == ["web.toml:2:17: error: ready.tcp: 70000 is not a TCP port: use 1 to 65535"])
        #expect(Self.problems("command = \"x\"\nready = { tcp = 1, command = \"true\" }\n")
            == ["web.toml:2:30: error: ready.command: give either 'tcp' or 'command', not both"])
        #expect(Self.problems("command = \"x\"\nworking_directory = \"srv\"\n")
            == ["web.toml:2:21: error: working_directory: 'srv' is not an absolute path"])
        #expect(Self.problems("command = \"x\"\nuser = \"Root\"\n")
            == ["web.toml:2:8: error: user: 'Root' is not a user name: up to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'"])
        #expect(Self.problems("command = \"x\"\ndepends = [\"web\"]\n")
            == ["web.toml:2:12: error: depends[0]: a service cannot depend on itself"])
        #expect(Self.problems("command = \"x\"\n[environment]\n1X = \"y\"\n")
            == ["web.toml:3:1: error: environment.1X: '1X' is not an environment variable name: letters, digits and '_', not starting with a digit"])
        #expect(Self.problems("command = \"x\"\nrestart_delay = \"10s\"\nrestart_delay_max = \"2s\"\n")
            == ["web.toml:3:21: error: restart_delay_max: the longest delay (2s) is shorter than restart_delay (10s)"])
        #expect(Self.problems("command = \"x\"", name: "Bad Name")
            == ["Bad Name.toml:1:1: error: the file name: 'Bad Name' is not a service name: use lower-case letters, digits, '-' and '_', starting with a letter or digit (the file is NAME.toml)"])
    }

    @Test func syntaxErrorsCarryTheirPosition() {
        #expect(Self.problems("command = \"unterminated\n") .first?.hasPrefix("web.toml:1:11: error: ") == true)
    }

    @Test func everyProblemIsReportedAtOnce() {
        let problems = Self.problems("restart = 1\nbogus = true\nready = \"tcp\"\n")
        #expect(problems.count == 4, "\(problems)")
    }

    @Test func durations() throws {
        #expect(try Self.parse("command = \"x\"\nrestart_delay = 2\n").restartDelay == 2000)
        #expect(try Self.parse("command = \"x\"\nrestart_delay = \"250ms\"\n").restartDelay == 250)
        #expect(try Self.parse("command = \"x\"\nrestart_delay = \"2m\"\nrestart_delay_max = \"1h\"\n").restartDelay == 120_000)
        #expect(try Self.parse("command = \"x\"\nrestart_delay = \"1.5s\"\n").restartDelay == 1500)
    }

    @Test func renderedDefinitionsReadBackTheSame() throws {
        let definitions = [
            ServiceDefinition(name: "web", description: "a \"quoted\"\nline", program: .arguments(["httpd", "-f", "it's"]), user: "www",
                              environment: [("A", "1"), ("B", "two words")], workingDirectory: "/srv", depends: ["network"],
                              restart: .never, restartDelay: 250, restartDelayMax: 2000, stopTimeout: 5000,
                              readiness: .command("test -e /run/web.pid"), logging: .init(maxSize: 8192, keep: 2), enabled: false),
            ServiceDefinition(name: "plain", program: .shell("exec sleep 100")),
            ServiceDefinition(name: "sshd", program: .arguments(["/usr/lib/dropbear/rast-sshd", "22"]), readiness: .tcp(port: 22)),
        ]
        for definition in definitions {
            let text = definition.tomlText
            #expect(try Self.parse(text, name: definition.name) == definition, "\(text)")
        }
    }

    @Test func enablingAndDisablingKeepsTheRestOfTheFile() throws {
        let original = "# The web server.\n# Second comment.\ncommand = \"httpd -f\"   # runs in the foreground\n\n[environment]\nA = \"1\"\n"
        let disabled = try DefinitionEditing.settingEnabled(false, in: original, file: "web.toml")
        #expect(disabled == "# The web server.\n# Second comment.\nenabled = false\ncommand = \"httpd -f\"   # runs in the foreground\n\n[environment]\nA = \"1\"\n")
        #expect(try Self.parse(disabled).enabled == false)
        let enabled = try DefinitionEditing.settingEnabled(true, in: disabled, file: "web.toml")
        #expect(enabled == disabled.replacingOccurrences(of: "enabled = false", with: "enabled = true"))
        #expect(try Self.parse(enabled).enabled)
        let spaced = try DefinitionEditing.settingEnabled(false, in: "command = \"x\"\n  enabled   =   true # on\n", file: "web.toml")
        #expect(spaced == "command = \"x\"\n  enabled   =   false # on\n")
    }
}

/// A snapshot's definitions together: dependencies, cycles, start order.
@Suite struct ServiceSetTests {
    static func set(_ files: [String: String]) throws -> ServiceSet {
        try ServiceSet(files.map { name, text in
            try ServiceDefinition.parse(bytes: Array(text.utf8), file: "\(name).toml", name: name)
        })
    }

    struct Dependencies: Sendable, CustomTestStringConvertible {
        let name: String
        let files: [String: String]
        let problems: [String]
        let startOrder: [String]
        var testDescription: String { name }
    }

    /// A dependency that cannot be met is refused where it is written; the start order puts
    /// dependencies first and leaves out what cannot start (in a cycle, or depending on a
    /// missing or disabled service).
    @Test(arguments: [
        Dependencies(name: "unknown dependency",
                     files: ["a": "command = \"x\"\n", "b": "command = \"x\"\ndepends = [\"a\", \"nope\"]\n"],
                     problems: ["b.toml:2:17: error: depends[1]: unknown service 'nope' (defined are a)"],
                     startOrder: ["a"]),
        Dependencies(name: "disabled dependency",
                     files: ["a": "command = \"x\"\nenabled = false\n", "b": "command = \"x\"\ndepends = [\"a\"]\n"],
                     problems: ["b.toml:2:12: error: depends[0]: 'a' is disabled, so 'b' would never start; enable it or remove the dependency"],
                     startOrder: []),
        Dependencies(name: "cycle", files: [
            "a": "command = \"x\"\ndepends = [\"c\"]\n",
            "b": "command = \"x\"\ndepends = [\"a\"]\n",
            "c": "command = \"x\"\ndepends = [\"b\"]\n",
            "d": "command = \"x\"\ndepends = [\"a\"]\n",
        ], problems: ["b.toml:2:12: error: depends[0]: the dependencies form a cycle (a → c → b → a); no service of it could ever start"],
                     startOrder: []),
        Dependencies(name: "no problems", files: [
            "web": "command = \"x\"\ndepends = [\"db\", \"network\"]\n",
            "db": "command = \"x\"\ndepends = [\"network\"]\n",
            "network": "command = \"x\"\n",
            "cron": "command = \"x\"\n",
            "off": "command = \"x\"\nenabled = false\n",
        ], problems: [], startOrder: ["cron", "network", "db", "web"]),
    ])
    func dependencyProblemsAndStartOrder(_ example: Dependencies) throws {
        let set = try Self.set(example.files)
        #expect(set.problems().map(\.description) == example.problems)
        #expect(set.startOrder == example.startOrder)
    }

    @Test func aDirectoryOfDefinitionsLoadsWithItsErrors() throws {
        let scratch = try TemporaryDirectory(prefix: "rast-services")
        defer { try? scratch.remove() }
        try Files.write(scratch.appending("good.toml"), string: "command = \"x\"\n")
        try Files.write(scratch.appending("bad.toml"), string: "command = \"x\"\nrestrat = \"never\"\n")
        try Files.write(scratch.appending("README"), string: "not a definition\n")
        let (set, errors) = ServiceSet.load(directory: scratch.path, displayDirectory: "/etc/rast/services")
        #expect(set.names == ["good"])
        #expect(errors.map(\.description) == ["/etc/rast/services/bad.toml:2:1: error: restrat: unknown key 'restrat'; did you mean 'restart'?"])
        #expect(ServiceSet.load(directory: scratch.appending("missing")).set.isEmpty)
    }
}

/// The s6 service directories made from definitions.
@Suite struct ServiceDirectoryTests {
    static let paths = SupervisionPaths(scanDirectory: "/run/rast/service", logDirectory: "/var/log")

    static func files(_ definition: ServiceDefinition) -> [String: ServiceDirectory.File] {
        Dictionary(uniqueKeysWithValues: ServiceDirectory.files(for: definition, source: "/etc/rast/services/\(definition.name).toml",
                                                                definitionText: definition.tomlText, paths: paths).map { ($0.path, $0) })
    }

    @Test func aServiceWithDependenciesAndAReadinessCheck() throws {
        let definition = ServiceDefinition(name: "web", program: .arguments(["httpd", "-f", "-h", "/srv/it's"]), user: "www",
                                           environment: [("LANG", "C.UTF-8")], workingDirectory: "/srv", depends: ["db", "network"],
                                           readiness: .tcp(port: 8080), logging: .init(maxSize: 65536, keep: 4))
        let files = Self.files(definition)
        #expect(Set(files.keys) == ["run", "finish", "notification-fd", "timeout-finish", "timeout-kill", "data/start", "data/check",
                                    "data/definition.toml", "log/run"])
        let run = try #require(files["run"]).contents
        #expect(run.contains("for service in '/run/rast/service/db' '/run/rast/service/network'; do"))
        #expect(run.contains("s6-svwait -U -a -t 2000 '/run/rast/service/db' '/run/rast/service/network' 2>/dev/null || sleep 0.2"))
        #expect(run.contains("exec s6-notifyoncheck -d -w 250 -n 0 ./data/start"))
        #expect(!run.contains("echo >&3"))
        let start = try #require(files["data/start"]).contents
        #expect(start.contains("cd '/srv' ||"))
        #expect(start.contains("export LANG='C.UTF-8'"))
        #expect(start.hasSuffix("exec s6-setuidgid 'www' 'httpd' '-f' '-h' '/srv/it'\\''s'\n"))
        #expect(try #require(files["data/check"]).contents.contains("/:1F90$/"))
        #expect(try #require(files["notification-fd"]).contents == "3\n")
        #expect(try #require(files["timeout-finish"]).contents == "35000\n")
        #expect(try #require(files["log/run"]).contents.contains("exec s6-log -b -- n4 s65536 T '/var/log/web'"))
        #expect(files["run"]?.mode == 0o755 && files["finish"]?.mode == 0o755 && files["data/start"]?.mode == 0o755)
    }

    @Test func withoutACheckTheServiceIsReadyWhenItRuns() throws {
        let files = Self.files(ServiceDefinition(name: "plain", program: .shell("exec sleep 100")))
        let run = try #require(files["run"]).contents
        #expect(run.contains("echo >&3\nexec 3>&-\nexec ./data/start"))
        #expect(!run.contains("s6-svwait"))
        #expect(files["data/check"] == nil)
        #expect(try #require(files["data/start"]).contents.hasSuffix("exec /bin/sh -c 'exec sleep 100'\n"))
    }

    @Test func finishScriptsFollowTheRestartPolicy() throws {
        let always = try #require(Self.files(ServiceDefinition(name: "a", program: .shell("x"), restartDelay: 200, restartDelayMax: 5000))["finish"]).contents
        #expect(!always.contains("exit 125"))
        #expect(always.contains("delay=200"))
        let onFailure = try #require(Self.files(ServiceDefinition(name: "a", program: .shell("x"), restart: .onFailure))["finish"]).contents
        #expect(onFailure.contains("if [ -z \"$failed\" ]; then"))
        #expect(onFailure.contains("exit 125"))
        let never = try #require(Self.files(ServiceDefinition(name: "a", program: .shell("x"), restart: .never))["finish"]).contents
        #expect(never.contains("restart = never: it stays down\"\nexit 125"))
        #expect(!never.contains("delay="))
    }

    /// The generated scripts are valid sh (busybox sh, as in the image, checks the syntax).
    @Test func generatedScriptsAreValidShell() throws {
        try Require.programs("busybox")
        let scratch = try TemporaryDirectory(prefix: "rast-service-dir")
        defer { try? scratch.remove() }
        let definitions = [
            ServiceDefinition(name: "web", program: .arguments(["httpd", "it's"]), user: "www", environment: [("A", "b'c")],
                              workingDirectory: "/srv/a b", depends: ["db"], readiness: .command("test -e '/run/x'")),
            ServiceDefinition(name: "once", program: .shell("echo 'hi'; exit 3"), restart: .onFailure),
            ServiceDefinition(name: "never", program: .shell("true"), restart: .never, readiness: .tcp(port: 22)),
        ]
        let paths = SupervisionPaths(scanDirectory: scratch.appending("scan"), logDirectory: scratch.appending("log"))
        try Files.createDirectory(paths.scanDirectory)
        for definition in definitions {
            try ServiceDirectory.write(definition, source: "\(definition.name).toml", definitionText: definition.tomlText, paths: paths)
            for script in ["run", "finish", "data/start", "log/run"] + (definition.readiness == nil ? [] : ["data/check"]) {
                let path = paths.serviceDirectory(definition.name) + "/" + script
                let result = try Command("busybox", ["sh", "-n", path]).run(check: false)
                #expect(result.status == 0, "\(path): \(result.standardError)")
            }
            #expect(Files.isDirectory(paths.serviceDirectory(definition.name) + "/supervise"))
        }
        #expect(Supervisor(paths: paths).supervisedNames() == ["never", "once", "web"])
        // A container's service directory (rast container run --restart) is no service.
        try Files.write(paths.serviceDirectory("container-0123") + "/run", string: "#!/bin/sh\n", mode: 0o755)
        try Files.write(paths.serviceDirectory("container-0123") + "/data/container", string: "0123\n")
        #expect(Supervisor(paths: paths).supervisedNames() == ["never", "once", "web"])
    }
}
