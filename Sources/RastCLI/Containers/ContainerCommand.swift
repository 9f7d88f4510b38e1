import ArgumentParser
import CommandLineSupport
import Containers
import Foundation
import HostCommands
import OCI
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rast container` (alias `rast ctr`): OCI images and containers run by crun.
struct ContainerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "container",
        abstract: "Run containers from OCI images (or from snapshots) with crun.",
        discussion: """
            Images come from registries (docker.io/library/busybox, 127.0.0.1:5000/app:1) or from \
            OCI layout directories (oci:DIR[:REF]); their layers are stored once, as btrfs snapshots, \
            in /var/lib/rast/oci. Containers live in /var/lib/rast/containers, on the shared /var, \
            so they are no part of system snapshots and survive rast itself.
            """,
        subcommands: [
            ContainerRun.self, ContainerPs.self, ContainerLogs.self, ContainerExec.self, ContainerStop.self, ContainerKill.self,
            ContainerRm.self, ContainerInspect.self, ContainerStats.self, ContainerPull.self, ContainerImages.self,
            ContainerRmi.self, ContainerPrune.self, ContainerInfo.self, ContainerRepl.self, ContainerBoot.self, ContainerMonitor.self, ContainerSupervised.self,
        ],
        aliases: ["ctr"])
}

/// Where the stores are (tests and recipes point it elsewhere).
struct ContainerOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: ArgumentHelp("The directory holding oci/ and containers/.", valueName: "DIR", visibility: .hidden))
    var data = "/var/lib/rast"

    func host() throws -> ContainerHost {
        try ContainerHost(dataDirectory: data)
    }
}

struct ContainerRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a command in a new container.",
        discussion: "Options go before the image; everything after the image is the command and its arguments.")
    @OptionGroup var store: ContainerOptions
    @Option(name: .long, help: "A name for the container (default: its short ID).") var name: String?
    @Flag(name: .long, help: "Remove the container when it exits.") var rm = false
    @Flag(name: [.customShort("d"), .long], help: "Run in the background and print the container's ID.") var detach = false
    @Flag(name: [.customShort("i"), .long], help: "Keep standard input open.") var interactive = false
    @Flag(name: [.customShort("t"), .long], help: "Give the container a terminal.") var tty = false
    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Set an environment variable (KEY=VALUE, or KEY to pass rast's).", valueName: "KEY=VALUE"))
    var env: [String] = []
    @Option(name: [.customShort("v"), .long], help: ArgumentHelp("Bind-mount a host path (append :ro for read-only).", valueName: "HOST:CONTAINER[:ro]"))
    var volume: [String] = []
    @Option(name: .long, help: ArgumentHelp("Mount an empty tmpfs at DIR (writable also with --read-only).", valueName: "DIR")) var tmpfs: [String] = []
    @Option(name: .long, help: ArgumentHelp("Run a host program at a point of the container's life (createRuntime, poststart, poststop); it reads the container's state on stdin.", valueName: "STAGE=PROGRAM[,ARG...]"))
    var hook: [String] = []
    @Option(name: [.customShort("w"), .long], help: "The working directory in the container.") var workdir: String?
    @Option(name: [.customShort("u"), .long], help: ArgumentHelp("Run as USER[:GROUP] (names or numbers).", valueName: "USER[:GROUP]")) var user: String?
    @Option(name: .long, help: ArgumentHelp("Memory limit (e.g. 64M, 1G); the kernel's OOM killer ends processes beyond it.", valueName: "SIZE")) var memory: String?
    @Option(name: .long, help: "CPU limit in CPUs (e.g. 0.5).") var cpus: Double?
    @Option(name: .customLong("pids-limit"), help: "The most processes the container may have.") var pidsLimit: Int64?
    @Option(name: .long, help: "none (a network namespace with only loopback, the default) or host.") var network = "none"
    @Flag(name: .customLong("read-only"), help: "Mount the container's root filesystem read-only.") var readOnly = false
    @Flag(name: .long, help: "Run in a user namespace: root in the container is a subordinate ID on the host (/etc/subuid).") var userns = false
    @Option(name: .long, help: "The container's host name (default: its name).") var hostname: String?
    @Option(name: .long, help: ArgumentHelp("Replace the image's entrypoint (one program; arguments follow the image).", valueName: "PROGRAM")) var entrypoint: String?
    @Option(name: .long, help: ArgumentHelp("Run from system snapshot N: its read-only root with a writable snapshot on top.", valueName: "N")) var snapshot: Int?
    @Option(name: .long, help: ArgumentHelp("Restart the container when it ends: no (the default), always, on-failure or on-failure:MAX. s6 supervises it; needs -d.", valueName: "POLICY"))
    var restart = "no"
    @Flag(name: .customLong("plain-http"), help: "Pull from the registry over HTTP instead of HTTPS.") var plainHTTP = false
    @Argument(help: "The image (or, with --snapshot, the command).") var image: String?
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (default: the image's).") var command: [String] = []

    /// The network asked for; validate() rejects any other word.
    private func networkChoice() throws -> RunOptions.Network {
        guard let choice = RunOptions.Network(rawValue: network) else {
            throw ValidationError("--network must be none or host, not '\(network)'.")
        }
        return choice
    }

    func validate() throws {
        if image == nil, snapshot == nil { throw ValidationError("Name the image to run (or a snapshot with --snapshot N).") }
        if snapshot != nil, image == nil { throw ValidationError("Give the command to run in the snapshot after the options.") }
        _ = try networkChoice()
        if let memory, ByteCount.parse(memory) == nil { throw ValidationError("--memory \(memory): expected a size such as 64M or 1G.") }
        if let cpus, cpus <= 0 { throw ValidationError("--cpus must be more than 0.") }
        if let pidsLimit, pidsLimit < 1 { throw ValidationError("--pids-limit must be at least 1.") }
        if detach, tty || interactive { throw ValidationError("-d cannot be combined with -i or -t: a detached container has no terminal.") }
        do {
            var options = RunOptions()
            options.remove = rm
            options.detach = detach
            options.restart = try RestartPolicy(parsing: restart)
            try options.checkRestart()
        } catch {
            throw ValidationError("\(error).")
        }
        if let name, !RunOptions.isValidName(name) {
            throw ValidationError("--name \(name): a name starts with a letter or digit and holds only letters, digits, '_', '.' and '-'.")
        }
    }

    func options() throws -> RunOptions {
        var options = RunOptions()
        options.name = name
        options.remove = rm
        options.detach = detach
        options.interactive = interactive
        options.tty = tty
        options.environment = env
        options.volumes = try volume.map(RunOptions.Volume.init(parsing:))
        options.tmpfs = tmpfs
        options.hooks = try hook.map(RunOptions.Hook.init(parsing:))
        options.workingDirectory = workdir
        options.user = user
        options.memory = memory.flatMap(ByteCount.parse)
        options.cpus = cpus
        options.pidsLimit = pidsLimit
        options.network = try networkChoice()
        options.readOnly = readOnly
        options.userNamespace = userns
        options.hostname = hostname
        options.entrypoint = entrypoint.map { [$0] }
        options.command = snapshot != nil ? [image].compactMap { $0 } + command : command
        let policy = try RestartPolicy(parsing: restart)
        options.restart = policy == .no ? nil : policy
        return options
    }

    func run() throws {
        let host = try store.host()
        let status = try host.run(image: snapshot == nil ? image : nil, snapshot: snapshot, options: try options(), plainHTTP: plainHTTP)
        if status != 0 { throw ExitCode(status) }
    }
}

struct ContainerPs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List running containers (-a: all).", aliases: ["ls", "list"])
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("a"), .long], help: "Also list containers that are not running.") var all = false
    @Flag(name: [.customShort("q"), .long], help: "Only the IDs.") var quiet = false
    @Flag(name: .long, help: "Print JSON.") var json = false
    func run() throws { try store.host().ps(all: all, quiet: quiet, json: json) }
}

struct ContainerLogs: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print a detached container's output.")
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("f"), .long], help: "Keep printing new output until the container exits.") var follow = false
    @Argument(help: "The container.") var container: String
    func run() throws { try store.host().logs(container, follow: follow) }
}

struct ContainerExec: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command in a running container.")
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("i"), .long], help: "Keep standard input open.") var interactive = false
    @Flag(name: [.customShort("t"), .long], help: "Give the command a terminal.") var tty = false
    @Option(name: [.customShort("e"), .long], help: "Set an environment variable (KEY=VALUE).") var env: [String] = []
    @Option(name: [.customShort("w"), .long], help: "The working directory.") var workdir: String?
    @Option(name: [.customShort("u"), .long], help: "Run as USER[:GROUP].") var user: String?
    @Argument(help: "The container.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments.") var command: [String] = []
    func validate() throws {
        if command.isEmpty { throw ValidationError("Give the command to run after the container.") }
    }
    func run() throws {
        let status = try store.host().exec(container, arguments: command, tty: tty, environment: env, workingDirectory: workdir, user: user)
        if status != 0 { throw ExitCode(status) }
    }
}

struct ContainerStop: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop containers: the stop signal (SIGTERM), then SIGKILL after a timeout.")
    @OptionGroup var store: ContainerOptions
    @Option(name: [.customShort("t"), .long], help: "Seconds to wait before SIGKILL.") var time: Double = 10
    @Argument(help: "The containers.") var containers: [String]
    func validate() throws {
        if containers.isEmpty { throw ValidationError("Name the containers to stop.") }
        if time < 0 { throw ValidationError("--time must not be negative.") }
    }
    func run() throws { try store.host().stop(containers, timeout: time) }
}

struct ContainerKill: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal to containers (default SIGKILL).")
    @OptionGroup var store: ContainerOptions
    @Option(name: [.customShort("s"), .long], help: "The signal (name or number).") var signal = "KILL"
    @Argument(help: "The containers.") var containers: [String]
    func validate() throws {
        if containers.isEmpty { throw ValidationError("Name the containers to signal.") }
    }
    func run() throws {
        let name = signal.uppercased().hasPrefix("SIG") ? String(signal.dropFirst(3)) : signal
        try store.host().kill(containers, signal: name)
    }
}

struct ContainerRm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove containers and their files.")
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("f"), .long], help: "Kill running containers first.") var force = false
    @Argument(help: "The containers.") var containers: [String]
    func validate() throws {
        if containers.isEmpty { throw ValidationError("Name the containers to remove.") }
    }
    func run() throws { try store.host().remove(containers, force: force) }
}

struct ContainerInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print what rast and crun know about containers, as JSON.")
    @OptionGroup var store: ContainerOptions
    @Argument(help: "The containers.") var containers: [String]
    func validate() throws {
        if containers.isEmpty { throw ValidationError("Name the containers to inspect.") }
    }
    func run() throws { try store.host().inspect(containers) }
}

struct ContainerStats: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show memory, CPU and process counts from the containers' cgroups.")
    @OptionGroup var store: ContainerOptions
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Argument(help: "The containers (default: every running one).") var containers: [String] = []
    func run() throws { try store.host().stats(containers, json: json) }
}

struct ContainerPull: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull", abstract: "Fetch an image from a registry or an OCI layout (oci:DIR[:REF]) into the store.")
    @OptionGroup var store: ContainerOptions
    @Option(name: .long, help: "Store it under this name (default: the reference, or DIRNAME:REF for a layout).") var name: String?
    @Option(name: .long, help: ArgumentHelp("Registry credentials.", valueName: "USER:PASSWORD")) var creds: String?
    @Flag(name: .customLong("plain-http"), help: "Speak HTTP instead of HTTPS to the registry (loopback registries always use HTTP).") var plainHTTP = false
    @Argument(help: "The image: REGISTRY/REPOSITORY[:TAG][@DIGEST], or oci:DIR[:REF].") var image: String
    func validate() throws {
        if let creds, !creds.contains(":") { throw ValidationError("--creds takes USER:PASSWORD.") }
    }
    func run() throws {
        try store.host().pull(image, name: name, credentials: creds.map(RegistryCredentials.init(parsing:)), plainHTTP: plainHTTP)
    }
}

struct ContainerImages: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List the stored images.")
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("q"), .long], help: "Only the IDs.") var quiet = false
    @Flag(name: .long, help: "Print JSON.") var json = false
    func run() throws { try store.host().images(quiet: quiet, json: json) }
}

struct ContainerRmi: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rmi", abstract: "Remove images, and the layers no other image uses.")
    @OptionGroup var store: ContainerOptions
    @Argument(help: "The images (names or ID prefixes).") var images: [String]
    func validate() throws {
        if images.isEmpty { throw ValidationError("Name the images to remove.") }
    }
    func run() throws { try store.host().removeImages(images) }
}

struct ContainerPrune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Delete layers and blobs no image uses (-a: also images no container uses).")
    @OptionGroup var store: ContainerOptions
    @Flag(name: [.customShort("a"), .long], help: "Also remove every image no container uses.") var all = false
    func run() throws { try store.host().prune(all: all) }
}

struct ContainerInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show the runtime, cgroups and stores.")
    @OptionGroup var store: ContainerOptions
    func run() throws { try store.host().info() }
}

struct ContainerBoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot", abstract: "Start the containers /etc/rast/containers.json defines (the boot hook runs this).")
    @OptionGroup var store: ContainerOptions
    @Option(name: .long, help: "The list of containers.") var file = BootContainers.path
    func run() throws { try store.host().bootContainers(path: file) }
}

/// The monitor a detached container runs under (started by `run -d`).
struct ContainerMonitor: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_monitor", abstract: "Wait for a detached container.", shouldDisplay: false)
    @OptionGroup var store: ContainerOptions
    @Argument var id: String
    func run() throws {
        let host = try ContainerHost(dataDirectory: store.data, progress: SilentProgress())
        try host.engine.monitor(id)
    }
}

/// The run program of a restarting container's s6 service (`run --restart`).
struct ContainerSupervised: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "_supervised", abstract: "Run a container under s6.", shouldDisplay: false)
    @OptionGroup var store: ContainerOptions
    @Argument var id: String
    func run() throws {
        let host = try ContainerHost(dataDirectory: store.data, progress: SilentProgress())
        let status = try host.engine.superviseRun(id)
        if status != 0 { throw ExitCode(status) }
    }
}
