import ArgumentParser
import CommandLineSupport
import HostCommands
import Services
import SystemSupport

// `rast service`: services of the running system (s6 supervision) and the definitions in
// snapshots (/etc/rast/services/NAME.toml). See docs/services.md.

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Services: list, status, start/stop/restart, enable/disable, logs.",
        discussion: """
            Each snapshot defines its services in /etc/rast/services/NAME.toml; at boot they are \
            supervised by s6, started in dependency order, restarted by their policy and logged to \
            /var/log/NAME/. start, stop, restart, status and logs act on the running system; enable, \
            disable, add and remove change a snapshot: by default a new snapshot from the booted one, \
            deployed (like rast -S), or --snapshot N in place.
            """,
        subcommands: [
            ServiceList.self, ServiceStatus.self, ServiceStart.self, ServiceStop.self, ServiceRestart.self,
            ServiceEnable.self, ServiceDisable.self, ServiceLogs.self, ServiceAdd.self, ServiceRemove.self,
            ServiceCheck.self, ServiceSetup.self,
        ])
}

extension TreeOptions {
    /// `rast service COMMAND` on the running system's services; --root is refused.
    @discardableResult
    func running<T>(_ command: String, _ body: (ServiceCommands) throws -> T) throws -> T {
        if root != nil {
            throw ValidationError("rast service \(command) acts on the running system; --root does not apply (rast service list --root DIR shows an image's definitions)")
        }
        return try body(ServiceCommands())
    }

    /// `rast service COMMAND` changing a snapshot's definitions. Every problem of a definition
    /// is printed on its own line (file:line:column: error: ...).
    func changeDefinitions(_ command: String, _ body: (HostSession) throws -> Void) throws {
        do {
            try write("service " + command, body)
        } catch let errors as ServiceErrors {
            for error in errors.errors { EntryPoint.printError(error.description) }
            EntryPoint.printError("rast: \(errors.errors.count) problem\(errors.errors.count == 1 ? "" : "s") in the service definitions; nothing was changed")
            throw ExitCode(1)
        }
    }
}

struct SnapshotOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The snapshot to act on (default: the booted one).", valueName: "N"))
    var snapshot: Int?

    /// With --snapshot or --root, `inSnapshot` reads a snapshot's definitions (the booted one's
    /// when no --snapshot); else `running` asks the running system.
    func definitions<T>(_ options: TreeOptions, inSnapshot: (HostSession, Int?) throws -> T,
                        running: (ServiceCommands) throws -> T) throws -> T {
        if snapshot != nil || options.root != nil {
            return try options.read { try inSnapshot($0, snapshot) }
        }
        return try running(ServiceCommands())
    }
}

struct ServiceList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the services: state, pid, uptime, restarts (or, with --snapshot, a snapshot's definitions).")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @OptionGroup var format: JSONFlag
    func run() throws {
        try target.definitions(options, inSnapshot: { try $0.listServices(snapshot: $1, json: format.json) },
                               running: { try $0.list(json: format.json) })
    }
}

struct ServiceStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show a service: state, pid, uptime, restarts, last exit, and the last log lines of a failing one.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var format: JSONFlag
    @Option(name: [.customShort("n"), .customLong("lines")], help: "Show this many log lines (default: 10 for a failed service, else none).")
    var lines: Int?
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.running("status") { try $0.status(name, json: format.json, logLines: lines) }
    }
}

struct ServiceStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a service and wait until it is ready.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.running("start") { try $0.start(name) }
    }
}

struct ServiceStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a service (it stays down until started or the next boot).")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.running("stop") { try $0.stop(name) }
    }
}

struct ServiceRestart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop a service and start it again.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.running("restart") { try $0.restart(name) }
    }
}

struct ServiceEnable: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Start a service at boot: in a new snapshot from the booted one (deployed), or in --snapshot N.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.changeDefinitions("enable") { try $0.setServiceEnabled(name, true, snapshot: target.snapshot) }
    }
}

struct ServiceDisable: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disable",
        abstract: "Do not start a service at boot: in a new snapshot from the booted one (deployed), or in --snapshot N.",
        discussion: "The running service keeps running until the next boot; `rast service stop NAME` stops it now.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.changeDefinitions("disable") { try $0.setServiceEnabled(name, false, snapshot: target.snapshot) }
    }
}

struct ServiceLogs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a service's log (/var/log/NAME/); -f follows it.")
    @OptionGroup var options: TreeOptions
    @Option(name: [.customShort("n"), .customLong("lines")], help: "How many of the last lines to show.") var lines = 20
    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing new lines until interrupted.") var follow = false
    @Argument(help: "The service.") var name: String
    func run() throws {
        do {
            try options.running("logs") { try $0.logs(name, lines: lines, follow: follow) }
        } catch is InterruptedError where follow {
            return
        }
    }
}

struct ServiceAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Add definition files (NAME.toml) to a snapshot, checked first: a bad one changes nothing.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Flag(name: .long, help: "Replace a definition of the same name.") var replace = false
    @Argument(help: "Definition files, each NAME.toml.") var files: [String] = []
    func validate() throws {
        if files.isEmpty { throw ValidationError("Name the definition files to add (NAME.toml).") }
    }
    func run() throws {
        try options.changeDefinitions("add") { try $0.addServices(files, snapshot: target.snapshot, replace: replace) }
    }
}

struct ServiceRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a service's definition from a snapshot.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.changeDefinitions("remove") { try $0.removeService(name, snapshot: target.snapshot) }
    }
}

struct ServiceCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Check the definitions (the running system's, or --snapshot N's); exit 1 on problems.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    func run() throws {
        let fine = try target.definitions(options, inSnapshot: { try $0.checkServices(snapshot: $1) }, running: { $0.check() })
        if !fine { throw ExitCode(1) }
    }
}

struct ServiceSetup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup", abstract: "At boot: turn /etc/rast/services into supervised service directories (run by the boot scripts).")
    @OptionGroup var options: TreeOptions
    func run() throws {
        try options.running("setup") { services in try services.setup { EntryPoint.printError($0) } }
    }
}
