// Restarting containers (`run -d --restart`, boot containers with `restart`): s6 supervises
// them, as it does rast's services. Each gets a service directory in s6-svscan's scan
// directory (/run/rast/service/container-ID, tmpfs: gone after a reboot):
//
//   run          appends to the container's log and execs `rast container _supervised ID`,
//                which creates and starts the container with crun, waits for it as its
//                subreaper and records its exit; s6-supervise sees the container's status
//   finish       the policy: nothing when s6 was told to stop it (`s6-svc -d`), exit 125 (stay
//                down) after status 0 with on-failure or after MAX restarts, else counts the
//                restart in data/restarts and lets s6 start `run` again (s6 waits at least a
//                second between two starts: that is the backoff)
//   data/container   marks the directory as a container's (`rast service` leaves it alone)
//   data/restarts    how often s6 restarted it (the record copies it at each start)
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// When s6 starts a container again after it ended.
package enum RestartPolicy: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Never (the default): no supervision.
    case no
    /// After every exit, until `rast container stop` or `rm`.
    case always
    /// After a non-zero exit status (or a signal), at most `maximum` times when given.
    case onFailure(maximum: Int?)

    /// Parses `no`, `always`, `on-failure` or `on-failure:MAX` (MAX at least 1).
    package init(parsing text: String) throws {
        switch text {
        case "no": self = .no
        case "always": self = .always
        case "on-failure": self = .onFailure(maximum: nil)
        default:
            if text.hasPrefix("on-failure:") {
                let count = text.dropFirst("on-failure:".count)
                guard let maximum = Int(count), maximum >= 1 else {
                    throw ContainerError.invalidOption("--restart \(text)", reason: "the most restarts after on-failure: must be a number of at least 1, not '\(count)'")
                }
                self = .onFailure(maximum: maximum)
            } else {
                throw ContainerError.invalidOption("--restart \(text)", reason: "expected no, always, on-failure or on-failure:MAX")
            }
        }
    }

    package var description: String {
        switch self {
        case .no: return "no"
        case .always: return "always"
        case .onFailure(let maximum): return "on-failure" + (maximum.map { ":\($0)" } ?? "")
        }
    }

    /// Whether s6 supervises the container.
    package var isSupervised: Bool { self != .no }

    package init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try RestartPolicy(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    package func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The s6 service directories of restarting containers.
package struct RestartSupervision: Sendable {
    package static let defaultScanDirectory = "/run/rast/service"
    package static let searchPath = "/usr/local/bin:/usr/bin:/bin"

    package let scanDirectory: String

    package init(scanDirectory: String = RestartSupervision.defaultScanDirectory) {
        self.scanDirectory = scanDirectory
    }

    /// True when s6-svscan runs on the scan directory (its control pipe exists).
    package var isRunning: Bool { Files.exists(scanDirectory + "/.s6-svscan/control") }

    /// Waits up to `seconds` for s6-svscan (the boot hook may just have started it).
    package func waitUntilRunning(seconds: Double) -> Bool {
        let deadline = Stopwatch.now() + seconds
        while !isRunning {
            guard Stopwatch.now() < deadline else { return false }
            usleep(50_000)
        }
        return true
    }

    package static func serviceName(_ id: String) -> String { "container-" + id }
    package func directory(_ id: String) -> String { scanDirectory + "/" + Self.serviceName(id) }
    package func exists(_ id: String) -> Bool { Files.exists(directory(id) + "/run") }

    /// How often s6 restarted the container (its finish script counts).
    package func restarts(_ id: String) -> Int {
        Int(((try? Files.readString(directory(id) + "/data/restarts")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Whether s6 is to keep the container up (nil when it has no service or s6 does not say).
    package func wantedUp(_ id: String) -> Bool? {
        guard exists(id), let result = try? Command("s6-svstat", ["-o", "wantedup", directory(id)]).run(check: false),
              result.status == 0 else { return nil }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    /// Whether s6 says the service's run program runs (nil when it does not say).
    package func isUp(_ id: String) -> Bool? {
        guard exists(id), let result = try? Command("s6-svstat", ["-o", "up", directory(id)]).run(check: false),
              result.status == 0 else { return nil }
        return result.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    // MARK: Scripts

    /// The service directory's files (relative path, contents, mode).
    package static func files(id: String, name: String, policy: RestartPolicy, rast: String, dataDirectory: String,
                             log: String) -> [(path: String, contents: String, mode: mode_t)] {
        [
            ("run", runScript(id: id, name: name, policy: policy, rast: rast, dataDirectory: dataDirectory, log: log), 0o755),
            ("finish", finishScript(name: name, policy: policy, log: log), 0o755),
            ("data/container", id + "\n", 0o644),
        ]
    }

    static let header = "# Generated by `rast container` for a container with a restart policy (docs/containers.md)."

    package static func runScript(id: String, name: String, policy: RestartPolicy, rast: String, dataDirectory: String, log: String) -> String {
        """
        #!/bin/sh
        # Container \(name) (\(id.prefix(12))), restart = \(policy): s6 runs it in the foreground.
        \(header)
        PATH=\(quote(searchPath))
        export PATH
        exec </dev/null >>\(quote(log)) 2>&1
        exec \(quote(rast)) container _supervised --data \(quote(dataDirectory)) \(id)

        """
    }

    /// s6-supervise runs it when `run` ended: $1 is its exit status (the container's, 128+N
    /// when signal N ended the container), 256 when signal $2 ended `run` itself. Exit 125
    /// tells s6 to leave the service down.
    package static func finishScript(name: String, policy: RestartPolicy, log: String) -> String {
        var lines = [
            "#!/bin/sh",
            "# Container \(name): restart = \(policy).",
            header,
            "PATH=\(quote(searchPath))",
            "export PATH",
            "exec >>\(quote(log)) 2>&1",
            "if [ \"$1\" = 256 ]; then result=\"was killed by signal $2\"; else result=\"exited with status $1\"; fi",
            "# Stopped on request (rast container stop and rm take the service down first).",
            "if [ \"$(s6-svstat -o wantedup . 2>/dev/null)\" = false ]; then exit 0; fi",
            "restarts=$(cat data/restarts 2>/dev/null || echo 0)",
        ]
        switch policy {
        case .no:
            lines += ["echo \"rast: container \(name) $result; restart = no: it stays down\"", "exit 125"]
        case .always:
            break
        case .onFailure(let maximum):
            lines += [
                "if [ \"$1\" = 0 ]; then",
                "    echo \"rast: container \(name) $result; restart = on-failure: it stays down\"",
                "    exit 125",
                "fi",
            ]
            if let maximum {
                lines += [
                    "if [ \"$restarts\" -ge \(maximum) ]; then",
                    "    echo \"rast: container \(name) $result; restarted $restarts times already (on-failure:\(maximum)): it stays down\"",
                    "    exit 125",
                    "fi",
                ]
            }
        }
        if policy != .no {
            lines += [
                "restarts=$((restarts + 1))",
                "echo \"$restarts\" > data/restarts.new && mv -f data/restarts.new data/restarts",
                "echo \"rast: container \(name) $result; restart $restarts\"",
                "exit 0",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    // MARK: Changing the scan directory

    /// Writes the service directory (complete under a hidden name, which s6-svscan ignores,
    /// then renamed) and tells s6-svscan to pick it up.
    package func install(id: String, name: String, policy: RestartPolicy, rast: String, dataDirectory: String, log: String) throws {
        let final = directory(id)
        let staging = scanDirectory + "/." + Self.serviceName(id) + ".new"
        if Files.exists(staging) { try Files.removeTree(staging) }
        for file in Self.files(id: id, name: name, policy: policy, rast: rast, dataDirectory: dataDirectory, log: log) {
            let path = staging + "/" + file.path
            try Files.createDirectory((path as NSString).deletingLastPathComponent)
            try Files.write(path, string: file.contents, mode: file.mode)
        }
        try Files.createDirectory(staging + "/supervise", mode: 0o755)
        try SystemError.check("rename", path: final) { rename(staging, final) }
        try Command("s6-svscanctl", ["-a", scanDirectory]).run()
    }

    /// Tells s6 not to start the container again (`s6-svc -d`; s6 signals `run`, which
    /// ignores it: the caller stops the container).
    package func down(_ id: String) throws {
        guard exists(id) else { return }
        try Command("s6-svc", ["-d", directory(id)]).run()
    }

    /// Removes the service: hidden first (s6-svscan does not start a supervisor for it
    /// again), its supervisor told to exit, then the directory deleted.
    package func remove(_ id: String) throws {
        let final = directory(id)
        guard Files.exists(final) else { return }
        let hidden = scanDirectory + "/." + Self.serviceName(id) + ".removed"
        if Files.exists(hidden) { try Files.removeTree(hidden) }
        try SystemError.check("rename", path: final) { rename(final, hidden) }
        _ = try? Command("s6-svc", ["-dx", hidden]).run(check: false)
        _ = try? Command("s6-svscanctl", ["-an", scanDirectory]).run(check: false)
        let deadline = Stopwatch.now() + 10
        while Stopwatch.now() < deadline, (try? Command("s6-svok", [hidden]).run(check: false))?.status == 0 { usleep(50_000) }
        try Files.removeTree(hidden)
    }
}
