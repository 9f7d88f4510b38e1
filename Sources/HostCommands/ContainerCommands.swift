import Containers
import Foundation
import OCI
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rast container`: images and containers on this system (or below `--data DIR`), with
/// output for people (tables) or programs (`--json`).
package final class ContainerHost {
    package let engine: ContainerEngine
    package let output: (String) -> Void
    package let progress: ProgressReporter

    /// The store directories: below /var/lib/rast on a running system.
    package init(dataDirectory: String = "/var/lib/rast", crunRoot: String = Crun.defaultRoot,
                output: @escaping (String) -> Void = { print($0) }, progress: ProgressReporter = TerminalProgress()) throws {
        try Privileges.requireRoot(for: "rast container")
        let images = try ImageStore(root: dataDirectory + "/oci")
        let containers = try ContainerStore(root: dataDirectory + "/containers", crun: Crun(root: crunRoot))
        engine = ContainerEngine(containers: containers, images: images)
        engine.monitorCommand = { ["/proc/self/exe", "container", "_monitor", "--data", dataDirectory, $0] }
        if dataDirectory == "/var/lib/rast", crunRoot == Crun.defaultRoot {
            let rast = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/usr/bin/rast"
            engine.supervisedCommand = (rast, dataDirectory)
        } else {
            engine.supervision = nil
        }
        self.output = output
        self.progress = progress
    }

    func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // MARK: - Images

    /// Pulls an image from a registry or an `oci:DIR[:REF]` layout.
    @discardableResult
    package func pull(_ text: String, name: String? = nil, credentials: RegistryCredentials? = nil, plainHTTP: Bool = false) throws -> StoredImage {
        let source = try ImageSource(parsing: text)
        var client: RegistryClient?
        if case .registry(let reference) = source {
            client = try RegistryClient(credentials: credentials.map { [reference.registry: $0] } ?? [:],
                                        plainHTTP: plainHTTP ? [reference.registry] : [])
        }
        let stopwatch = Stopwatch()
        let image = try engine.images.pull(source, name: name, client: client, progress: progress)
        output("\(image.name): \(image.id) (\(image.chainIDs.count) layers, \(ByteCount.format(image.size))) in \(stopwatch.formatted)")
        return image
    }

    package func images(quiet: Bool, json: Bool) throws {
        let images = try engine.images.images()
        if json { return output(try self.json(images)) }
        if quiet { return images.forEach { output($0.id.short) } }
        var rows = [["IMAGE", "ID", "LAYERS", "SIZE", "CREATED"]]
        for image in images {
            rows.append([image.name, image.id.short, String(image.chainIDs.count), ByteCount.format(image.size), Self.ago(image.created)])
        }
        output(Self.table(rows))
    }

    package func removeImages(_ names: [String]) throws {
        let used = Set(try engine.containers.records().compactMap(\.imageID))
        for name in names {
            let image = try engine.images.image(name)
            if used.contains(image.id.description), try engine.images.images().filter({ $0.id == image.id }).count == 1 {
                throw UserError("image \(image.name) is used by a container; remove the container first (rast container ps -a)")
            }
        }
        let cleanup = try engine.images.remove(names)
        for name in cleanup.images { output("removed \(name)") }
        output("freed \(cleanup.layers) layers and \(cleanup.blobs) blobs (\(ByteCount.format(cleanup.bytes)))")
    }

    /// Deletes what no image uses; with `all`, also the images no container uses.
    package func prune(all: Bool) throws {
        var names: [String] = []
        if all {
            let used = Set(try engine.containers.records().compactMap(\.imageID))
            names = try engine.images.images().filter { !used.contains($0.id.description) }.map(\.name)
        }
        let cleanup = try engine.images.prune(images: names)
        for name in cleanup.images { output("removed \(name)") }
        output("freed \(cleanup.layers) layers and \(cleanup.blobs) blobs (\(ByteCount.format(cleanup.bytes)))")
    }

    // MARK: - Containers

    /// Runs a container from an image (pulled first when the store lacks it) or from system
    /// snapshot `snapshot`. Returns the exit status of a foreground container.
    package func run(image: String?, snapshot: Int?, options: RunOptions, plainHTTP: Bool = false) throws -> Int32 {
        // A restart policy s6 cannot honour is refused before anything is pulled or made.
        try options.checkRestart()
        if options.isSupervised { _ = try engine.runningSupervision(options) }
        let source: ContainerEngine.RootSource
        if let snapshot {
            let layout = Layout(mountedSnapshots: "/.snapshots")
            let path = layout.root(snapshot)
            guard Files.isDirectory(path) else { throw SnapshotError.noSuchSnapshot(snapshot) }
            source = .snapshot(snapshot, path: path)
        } else if let image {
            do {
                source = .image(try engine.images.image(image))
            } catch OCIError.imageNotFound {
                source = .image(try pull(image, plainHTTP: plainHTTP))
            }
        } else {
            throw UserError("name an image, or a snapshot with --snapshot N")
        }
        let record = try engine.create(from: source, options: options)
        let status = try engine.start(record)
        if options.detach { output(record.id) }
        return status
    }

    package func ps(all: Bool, quiet: Bool, json: Bool) throws {
        let records = try engine.containers.records().filter { all || $0.status == .running }
        if json { return output(try self.json(records)) }
        if quiet { return records.forEach { output($0.shortID) } }
        var rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAME"]]
        for record in records {
            var command = record.command.joined(separator: " ")
            if command.count > 30 { command = String(command.prefix(29)) + "…" }
            rows.append([record.shortID, record.image, "\"\(command)\"", Self.ago(record.created), status(record), record.name])
        }
        output(Self.table(rows))
    }

    /// The status, with the restart count and a restart under way for supervised containers.
    func status(_ record: ContainerRecord) -> String {
        guard let policy = record.options.restart, policy.isSupervised else { return Self.status(record) }
        let restarts = "restart \(policy), restarts \(record.restarts ?? 0)"
        if record.status == .exited, let supervision = engine.supervision, supervision.wantedUp(record.id) == true {
            return "restarting (" + Self.status(record) + "; " + restarts + ")"
        }
        return Self.status(record) + " (" + restarts + ")"
    }

    static func status(_ record: ContainerRecord) -> String {
        switch record.status {
        case .created: return "created"
        case .running: return "running for \(Self.duration(Int64(time(nil)) - (record.started ?? record.created)))"
        case .exited:
            let code = record.exitCode.map { "exited (\($0))" } ?? "exited (?)"
            let when = record.finished.map { " " + ago($0) } ?? ""
            return code + when + (record.note.map { ": " + $0 } ?? "")
        }
    }

    @discardableResult
    package func stop(_ names: [String], timeout: Double) throws -> [String] {
        var stopped: [String] = []
        for name in names {
            if try engine.stop(name, timeout: timeout) {
                stopped.append(name)
                output(name)
            } else {
                output("\(name) is not running")
            }
        }
        return stopped
    }

    package func kill(_ names: [String], signal: String) throws {
        for name in names {
            try engine.kill(name, signal: signal)
            output(name)
        }
    }

    package func remove(_ names: [String], force: Bool) throws {
        for name in try engine.remove(names, force: force) { output(name) }
    }

    package func exec(_ name: String, arguments: [String], tty: Bool, environment: [String], workingDirectory: String?, user: String?) throws -> Int32 {
        try engine.exec(name, arguments: arguments, tty: tty, environment: environment, workingDirectory: workingDirectory, user: user)
    }

    package func logs(_ name: String, follow: Bool) throws {
        try engine.logs(name, follow: follow) { bytes in
            _ = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
        }
    }

    package func inspect(_ names: [String]) throws {
        struct Inspection: Encodable {
            let container: ContainerRecord
            let runtime: RuntimeState?
            let bundle: String
            let log: String
            /// The s6 service directory of a container with a restart policy, and whether s6
            /// keeps it up.
            let service: String?
            let serviceWantedUp: Bool?
        }
        var result: [Inspection] = []
        for name in names {
            let record = try engine.containers.find(name)
            let supervision = record.options.isSupervised ? engine.supervision : nil
            result.append(Inspection(container: record, runtime: try engine.containers.crun.state(record.id),
                                     bundle: engine.containers.directory(record.id), log: engine.containers.logPath(record.id),
                                     service: supervision.flatMap { $0.exists(record.id) ? $0.directory(record.id) : nil },
                                     serviceWantedUp: supervision?.wantedUp(record.id)))
        }
        output(try json(result))
    }

    package func stats(_ names: [String], json: Bool) throws {
        var rows = [["NAME", "MEMORY", "LIMIT", "OOM KILLS", "CPU", "PIDS", "PIDS LIMIT"]]
        var all: [String: ContainerStats] = [:]
        let targets = names.isEmpty ? try engine.containers.records().filter { $0.status == .running }.map(\.name) : names
        for name in targets {
            let stats = try engine.stats(name)
            all[name] = stats
            rows.append([name, stats.memoryBytes.map(ByteCount.format) ?? "-", stats.memoryLimit.map(ByteCount.format) ?? "max",
                         stats.oomKills.map(String.init) ?? "-", stats.cpuMicroseconds.map { String(format: "%.2f s", Double($0) / 1e6) } ?? "-",
                         stats.pids.map(String.init) ?? "-", stats.pidsLimit.map(String.init) ?? "max"])
        }
        output(json ? try self.json(all) : Self.table(rows))
    }

    /// What `info` in the REPL and `rast container info` print.
    package func info() throws {
        let crunVersion = (try? Command(engine.containers.crun.program, ["--version"]).output().split(separator: "\n").first.map(String.init)) ?? nil
        let cgroup2 = Files.exists("/sys/fs/cgroup/cgroup.controllers")
        let records = try engine.containers.records()
        var lines = [
            "runtime:      \(crunVersion ?? "crun is not installed")",
            "cgroups:      \(cgroup2 ? "v2 (" + ((try? Files.readString("/sys/fs/cgroup/cgroup.controllers"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") + ")" : "no cgroup2 at /sys/fs/cgroup")",
            "kernel:       \((try? Files.readString("/proc/sys/kernel/osrelease"))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?")",
            "images:       \(try engine.images.images().count) in \(engine.images.root) (\(engine.images.volumes.kind.rawValue))",
            "containers:   \(records.count) (\(records.filter { $0.status == .running }.count) running) in \(engine.containers.root)",
        ]
        lines.append("crun state:   \(engine.containers.crun.root)")
        output(lines.joined(separator: "\n"))
    }

    /// Starts the containers of /etc/rast/containers.json (the boot hook runs this): each
    /// one that is not running is (re)created from its image and started in the background.
    package func bootContainers(path: String = BootContainers.path) throws {
        let list = try BootContainers.load(path)
        var failures: [String] = []
        for entry in list.containers {
            let name = entry.options.name ?? entry.image
            do {
                if let existing = try? engine.containers.find(name) {
                    if existing.status == .running {
                        output("\(name): already running")
                        continue
                    }
                    _ = try engine.remove([existing.id], force: false)
                }
                var options = entry.options
                options.detach = true
                let record = try engine.create(from: .image(try engine.images.image(entry.image)), options: options)
                _ = try engine.start(record)
                output("\(name): started (\(record.shortID))")
            } catch {
                output("\(name): did not start: \(error)")
                failures.append(name)
            }
        }
        if !failures.isEmpty { throw UserError("containers that did not start: \(failures.joined(separator: ", "))") }
    }

    // MARK: - Formatting

    static func table(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        var widths = header.map(\.count)
        for row in rows { for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index] + 3, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }

    static func ago(_ time: Int64) -> String { duration(Int64(Glibc.time(nil)) - time) + " ago" }

    static func duration(_ seconds: Int64) -> String {
        switch seconds {
        case ..<60: return "\(max(0, seconds)) s"
        case ..<3600: return "\(seconds / 60) min"
        case ..<86400: return "\(seconds / 3600) h"
        default: return "\(seconds / 86400) days"
        }
    }
}
