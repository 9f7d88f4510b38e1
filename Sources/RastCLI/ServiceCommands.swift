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
    /// Commands that act on the running system refuse --root.
    func requireLive(_ command: String) throws {
        if root != nil {
            throw ValidationError("rast service \(command) acts on the running system; --root does not apply (rast service list --root DIR shows an image's definitions)")
        }
    }
}

/// Prints every problem of a definition on its own line (file:line:column: error: ...).
func reportingDefinitionErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let errors as ServiceErrors {
        for error in errors.errors { EntryPoint.printError(error.description) }
        EntryPoint.printError("rast: \(errors.errors.count) problem\(errors.errors.count == 1 ? "" : "s") in the service definitions; nothing was changed")
        throw ExitCode(1)
    }
}

struct SnapshotOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The snapshot to act on (default: the booted one).", valueName: "N"))
    var snapshot: Int?
}

struct ServiceList: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List the services: state, pid, uptime, restarts (or, with --snapshot, a snapshot's definitions).")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @OptionGroup var format: JSONFlag
    func run() throws {
        if target.snapshot != nil || options.root != nil {
            try options.read { try $0.listServices(snapshot: target.snapshot, json: format.json) }
        } else {
            try ServiceCommands().list(json: format.json)
        }
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
        try options.requireLive("status")
        try ServiceCommands().status(name, json: format.json, logLines: lines)
    }
}

struct ServiceStart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a service and wait until it is ready.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.requireLive("start")
        try ServiceCommands().start(name)
    }
}

struct ServiceStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a service (it stays down until started or the next boot).")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.requireLive("stop")
        try ServiceCommands().stop(name)
    }
}

struct ServiceRestart: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Stop a service and start it again.")
    @OptionGroup var options: TreeOptions
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.requireLive("restart")
        try ServiceCommands().restart(name)
    }
}

struct ServiceEnable: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enable", abstract: "Start a service at boot: in a new snapshot from the booted one (deployed), or in --snapshot N.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Argument(help: "The service.") var name: String
    func run() throws {
        try reportingDefinitionErrors {
            try options.write("service enable") { try $0.setServiceEnabled(name, true, snapshot: target.snapshot) }
        }
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
        try reportingDefinitionErrors {
            try options.write("service disable") { try $0.setServiceEnabled(name, false, snapshot: target.snapshot) }
        }
    }
}

struct ServiceLogs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Show a service's log (/var/log/NAME/); -f follows it.")
    @OptionGroup var options: TreeOptions
    @Option(name: [.customShort("n"), .customLong("lines")], help: "How many of the last lines to show.") var lines = 20
    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing new lines until interrupted.") var follow = false
    @Argument(help: "The service.") var name: String
    func run() throws {
        try options.requireLive("logs")
        do {
            try ServiceCommands().logs(name, lines: lines, follow: follow)
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
        try reportingDefinitionErrors {
            try options.write("service add") { try $0.addServices(files, snapshot: target.snapshot, replace: replace) }
        }
    }
}

struct ServiceRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a service's definition from a snapshot.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    @Argument(help: "The service.") var name: String
    func run() throws {
        try reportingDefinitionErrors {
            try options.write("service remove") { try $0.removeService(name, snapshot: target.snapshot) }
        }
    }
}

struct ServiceCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Check the definitions (the running system's, or --snapshot N's); exit 1 on problems.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var target: SnapshotOption
    func run() throws {
        let fine: Bool
        if target.snapshot != nil || options.root != nil {
            fine = try options.read { try $0.checkServices(snapshot: target.snapshot) }
        } else {
            fine = ServiceCommands().check()
        }
        if !fine { throw ExitCode(1) }
    }
}

struct ServiceSetup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "setup", abstract: "At boot: turn /etc/rast/services into supervised service directories (run by the boot scripts).")
    @OptionGroup var options: TreeOptions
    func run() throws {
        try options.requireLive("setup")
        try ServiceCommands().setup { EntryPoint.printError($0) }
    }
}
