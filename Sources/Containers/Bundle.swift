// An OCI bundle for crun: the container's directory with `config.json` beside `rootfs/`.
// The configuration follows what Docker and `crun spec` do by default: new PID, IPC, UTS,
// mount and cgroup namespaces (and network, user when asked), Docker's default
// capabilities, masked and read-only /proc paths, a device allow list, no new privileges,
// and the limits asked for in a cgroup of its own (/sys/fs/cgroup/rast/ID).
import Foundation
import OCI
import SystemSupport

package enum Bundle {
    package static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// Docker's default capability set.
    package static let defaultCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
    ]

    /// The cgroup (below the cgroup2 root) of a container.
    package static func cgroupPath(id: String) -> String { "/rast/\(id)" }

    /// The runtime configuration of a container whose root filesystem is at `rootfs`.
    /// `image` is the image's run configuration (nil for a snapshot's root).
    package static func spec(id: String, name: String, options: RunOptions, image: ImageConfiguration.RunConfig?,
                            imageName: String, rootfs: String, idMapping: RuntimeSpec.IDMapping? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> RuntimeSpec {
        let args = (options.entrypoint ?? image?.entrypoint ?? []) + (options.command.isEmpty ? (options.entrypoint == nil ? image?.cmd ?? [] : []) : options.command)
        guard !args.isEmpty else { throw ContainerError.noCommand(image: imageName) }
        let hostname = options.hostname ?? name

        // Environment: the image's, a default PATH, HOSTNAME, TERM for terminals, then -e.
        var env: [(String, String)] = []
        func set(_ entry: String) {
            let key = String(entry.prefix { $0 != "=" })
            env.removeAll { $0.0 == key }
            env.append((key, entry))
        }
        for entry in image?.env ?? [] { set(entry) }
        if !env.contains(where: { $0.0 == "PATH" }) { set(defaultPath) }
        set("HOSTNAME=\(hostname)")
        if options.tty { set("TERM=xterm") }
        for entry in options.environment {
            if entry.contains("=") { set(entry) } else if let value = environment[entry] { set("\(entry)=\(value)") }
        }

        let user = try resolveUser(options.user ?? image?.user ?? "", rootfs: rootfs)
        var cwd = options.workingDirectory ?? image?.workingDir ?? "/"
        if cwd.isEmpty { cwd = "/" }
        guard cwd.hasPrefix("/") else { throw ContainerError.invalidOption("-w \(cwd)", reason: "the working directory must be absolute") }

        var namespaces = ["pid", "ipc", "uts", "mount", "cgroup"].map(RuntimeSpec.Namespace.init)
        if options.network == .none { namespaces.append(.init("network")) }
        if idMapping != nil { namespaces.append(.init("user")) }

        var mounts: [RuntimeSpec.Mount] = [
            .init(destination: "/proc", type: "proc", source: "proc", options: nil),
            .init(destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
            .init(destination: "/dev/pts", type: "devpts", source: "devpts",
                  options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] + (idMapping == nil ? ["gid=5"] : [])),
            .init(destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            .init(destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"]),
        ]
        // sysfs belongs to the network namespace: in a user namespace sharing the host's
        // network it cannot be mounted, so the host's is bound read-only instead.
        if idMapping != nil && options.network == .host {
            mounts.append(.init(destination: "/sys", type: "bind", source: "/sys", options: ["rbind", "nosuid", "noexec", "nodev", "ro"]))
        } else {
            mounts.append(.init(destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"]))
            mounts.append(.init(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"]))
        }
        for directory in options.tmpfs {
            guard directory.hasPrefix("/"), !directory.split(separator: "/").contains("..") else {
                throw ContainerError.invalidOption("--tmpfs \(directory)", reason: "the path must be absolute, without '..'")
            }
            mounts.append(.init(destination: directory, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"]))
        }
        for volume in options.volumes {
            mounts.append(.init(destination: volume.container, type: "bind", source: volume.host,
                                options: ["rbind", "rprivate"] + (volume.readOnly ? ["ro"] : ["rw"])))
        }

        var resources = RuntimeSpec.Resources()
        resources.devices = [RuntimeSpec.DeviceRule(allow: false, type: nil, major: nil, minor: nil, access: "rwm")]
        for (type, major, minor) in [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1), ("c", 5, 2)] {
            resources.devices?.append(.init(allow: true, type: type, major: Int64(major), minor: Int64(minor), access: "rwm"))
        }
        resources.devices?.append(.init(allow: true, type: "c", major: 136, minor: nil, access: "rwm"))
        if let memory = options.memory { resources.memory = RuntimeSpec.Memory(limit: memory, swap: nil) }
        if let cpus = options.cpus {
            resources.cpu = RuntimeSpec.CPU(quota: Int64((cpus * 100_000).rounded()), period: 100_000)
        }
        if let pids = options.pidsLimit { resources.pids = RuntimeSpec.Pids(limit: pids) }

        var hooks: RuntimeSpec.Hooks?
        if !options.hooks.isEmpty {
            func list(_ stage: String) -> [RuntimeSpec.Hook]? {
                let chosen = options.hooks.filter { $0.stage == stage }
                    .map { RuntimeSpec.Hook(path: $0.arguments[0], args: $0.arguments, timeout: 60) }
                return chosen.isEmpty ? nil : chosen
            }
            hooks = RuntimeSpec.Hooks(createRuntime: list("createRuntime"), poststart: list("poststart"), poststop: list("poststop"))
        }
        let capabilities = user.uid == 0 ? defaultCapabilities : []
        return RuntimeSpec(
            process: .init(terminal: options.tty, user: user, args: args, env: env.map(\.1), cwd: cwd,
                           capabilities: .init(bounding: defaultCapabilities, effective: capabilities, permitted: capabilities, ambient: nil),
                           rlimits: [.init(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024)], noNewPrivileges: true),
            root: .init(path: "rootfs", readonly: options.readOnly),
            hostname: hostname,
            mounts: mounts,
            linux: .init(namespaces: namespaces,
                         uidMappings: idMapping.map { [$0] }, gidMappings: idMapping.map { [$0] },
                         resources: resources, cgroupsPath: cgroupPath(id: id),
                         maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                       "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
                         readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]),
            hooks: hooks,
            annotations: ["org.opencontainers.image.ref.name": imageName, "io.rastos.container.name": name])
    }

    /// Writes `config.json` into the bundle directory atomically.
    package static func write(_ spec: RuntimeSpec, to bundle: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Only root reads it: the environment may hold secrets.
        try Files.writeAtomically(bundle + "/config.json", bytes: Array(try encoder.encode(spec)), mode: 0o600)
    }

    /// `USER[:GROUP]` as numbers: names are looked up in the container's /etc/passwd and
    /// /etc/group; a user without a group gets its primary group from /etc/passwd (or 0).
    package static func resolveUser(_ text: String, rootfs: String) throws -> RuntimeSpec.User {
        guard !text.isEmpty else { return RuntimeSpec.User(uid: 0, gid: 0, additionalGids: nil) }
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let passwd = (try? Files.readString(rootfs + "/etc/passwd")) ?? ""
        let group = (try? Files.readString(rootfs + "/etc/group")) ?? ""
        func entries(_ file: String) -> [[String]] {
            file.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        }
        var uid: UInt32
        var gid: UInt32 = 0
        if let number = UInt32(parts[0]) {
            uid = number
            if let entry = entries(passwd).first(where: { $0.count > 3 && $0[2] == parts[0] }), let primary = UInt32(entry[3]) { gid = primary }
        } else if let entry = entries(passwd).first(where: { $0.count > 3 && $0[0] == parts[0] }), let number = UInt32(entry[2]) {
            uid = number
            gid = UInt32(entry[3]) ?? 0
        } else {
            throw ContainerError.user(text, reason: "no user '\(parts[0])' in the container's /etc/passwd")
        }
        if parts.count == 2 {
            if let number = UInt32(parts[1]) {
                gid = number
            } else if let entry = entries(group).first(where: { $0.count > 2 && $0[0] == parts[1] }), let number = UInt32(entry[2]) {
                gid = number
            } else {
                throw ContainerError.user(text, reason: "no group '\(parts[1])' in the container's /etc/group")
            }
        }
        return RuntimeSpec.User(uid: uid, gid: gid, additionalGids: nil)
    }

    /// The subordinate ID range of root (/etc/subuid), or 100000:65536.
    package static func subordinateRange(file: String = "/etc/subuid") -> RuntimeSpec.IDMapping {
        for line in ((try? Files.readString(file)) ?? "").split(separator: "\n") {
            let fields = line.split(separator: ":").map(String.init)
            if fields.count == 3, fields[0] == "root" || fields[0] == "0", let start = UInt32(fields[1]), let count = UInt32(fields[2]), count > 0 {
                return RuntimeSpec.IDMapping(containerID: 0, hostID: start, size: count)
            }
        }
        return RuntimeSpec.IDMapping(containerID: 0, hostID: 100_000, size: 65536)
    }
}
