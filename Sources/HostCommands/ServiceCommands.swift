import Foundation
import Services
import SnapshotTree
import SystemSupport

/// `rast service` on the running system: the booted snapshot's definitions
/// (/etc/rast/services) and the supervision tree that runs them (s6 on /run/rast/service).
/// Changes to definitions go through a snapshot: see `HostSession.changeServices`.
package struct ServiceCommands {
    /// The running system's definitions.
    package var definitionsDirectory: String
    package var supervisor: Supervisor
    package var output: (String) -> Void

    package init(definitionsDirectory: String = ServiceSet.directory, supervisor: Supervisor = Supervisor(),
                output: @escaping (String) -> Void = { print($0) }) {
        self.definitionsDirectory = definitionsDirectory
        self.supervisor = supervisor
        self.output = output
    }

    /// One line of `rast service list`.
    package struct Entry: Codable, Sendable, Equatable {
        package var name: String
        package var description: String
        package var enabled: Bool
        /// nil when the list describes a snapshot that is not running.
        package var state: ServiceState?
        package var pid: Int?
        /// Seconds up (when up) or down (when down).
        package var seconds: Int?
        package var restarts: Int?
        package var lastExit: String?
        package var depends: [String]
        package var command: String
    }

    /// The running system's services: every definition with what the supervisor says.
    package func entries() throws -> [Entry] {
        let (set, _) = ServiceSet.load(directory: definitionsDirectory)
        var names = Set(set.names)
        names.formUnion(supervisor.supervisedNames())
        return try names.sorted().map { name in
            let definition = runningDefinition(name) ?? set[name]?.definition
            let status = try supervisor.status(name)
            var state: ServiceState
            if let status {
                state = status.state
            } else if definition?.enabled == false {
                state = .disabled
            } else {
                state = .inactive
            }
            if set[name]?.definition.enabled == false, status == nil { state = .disabled }
            return Entry(name: name, description: definition?.description ?? "", enabled: set[name]?.definition.enabled ?? false,
                         state: state, pid: status?.pid, seconds: status?.seconds, restarts: status?.restarts,
                         lastExit: status?.lastExit, depends: definition?.depends ?? [], command: definition?.commandLine ?? "")
        }
    }

    /// The definition a supervised service was started from (it may differ from /etc now).
    func runningDefinition(_ name: String) -> ServiceDefinition? {
        let path = supervisor.paths.serviceDirectory(name) + "/data/definition.toml"
        guard let bytes = try? Files.read(path) else { return nil }
        return try? ServiceDefinition.parse(bytes: bytes, file: path, name: name).definition
    }

    package func list(json: Bool) throws {
        let entries = try entries()
        if json {
            output(try ServiceCommands.json(entries))
        } else {
            output(ServiceCommands.table(entries))
        }
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Aligned columns: SERVICE STATE PID UP RESTARTS DESCRIPTION (state columns only for a
    /// running system).
    static func table(_ entries: [Entry]) -> String {
        guard !entries.isEmpty else { return "no services are defined" }
        let live = entries.contains { $0.state != nil }
        var rows: [[String]] = live ? [["SERVICE", "STATE", "PID", "UP", "RESTARTS", "DESCRIPTION"]] : [["SERVICE", "ENABLED", "DEPENDS", "DESCRIPTION"]]
        for entry in entries {
            if live {
                let up = entry.state == .running || entry.state == .starting
                rows.append([entry.name, entry.state?.rawValue ?? "-", entry.pid.map(String.init) ?? "-",
                             up ? entry.seconds.map(duration) ?? "-" : "-", entry.restarts.map(String.init) ?? "-", entry.description])
            } else {
                rows.append([entry.name, entry.enabled ? "yes" : "no", entry.depends.isEmpty ? "-" : entry.depends.joined(separator: ","),
                             entry.description])
            }
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    /// "45s", "3m 2s", "2h 5m", "3d 4h".
    static func duration(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m \(seconds % 60)s" }
        if seconds < 86_400 { return "\(seconds / 3600)h \(seconds % 3600 / 60)m" }
        return "\(seconds / 86_400)d \(seconds % 86_400 / 3600)h"
    }

    /// What `rast service status NAME --json` prints.
    package struct Details: Codable, Sendable {
        package var entry: Entry
        package var ready: Bool?
        package var wantedUp: Bool?
        package var consecutiveFailures: Int?
        package var restart: String
        package var readiness: String?
        package var definition: String
        package var log: String
        package var recentLog: [String]
    }

    package func details(_ name: String, logLines: Int?) throws -> Details {
        guard let entry = try entries().first(where: { $0.name == name }) else {
            let known = ServiceSet.load(directory: definitionsDirectory).set.names
            throw UserError("no service '\(name)' is defined in \(definitionsDirectory)" + (known.isEmpty ? "" : " (defined are \(known.joined(separator: ", ")))"))
        }
        let (set, _) = ServiceSet.load(directory: definitionsDirectory)
        let definition = runningDefinition(name) ?? set[name]?.definition
        let status = try supervisor.status(name)
        var restart = "-"
        var readiness: String?
        if let definition {
            switch definition.restart {
            case .never: restart = "never"
            case .always, .onFailure:
                restart = "\(definition.restart.rawValue), after \(ServiceDefinition.formatDuration(definition.restartDelay)) doubling up to \(ServiceDefinition.formatDuration(definition.restartDelayMax))"
            }
            switch definition.readiness {
            case .tcp(let port): readiness = "when TCP port \(port) listens"
            case .command(let text): readiness = "when `\(text)` succeeds"
            case nil: readiness = nil
            }
        }
        // The last lines of the log go with a failing service, or when asked for.
        let count = logLines ?? (entry.state == .failed ? 10 : 0)
        return Details(entry: entry, ready: status?.ready, wantedUp: status?.wantedUp, consecutiveFailures: status?.consecutiveFailures,
                       restart: restart, readiness: readiness, definition: set[name]?.file ?? definitionsDirectory + "/\(name).toml",
                       log: supervisor.logFile(name), recentLog: supervisor.logLines(name, count: count))
    }

    package func status(_ name: String, json: Bool, logLines: Int?) throws {
        let details = try details(name, logLines: logLines)
        if json {
            output(try ServiceCommands.json(details))
            return
        }
        let entry = details.entry
        var state = entry.state?.rawValue ?? "-"
        var facts: [String] = []
        if let pid = entry.pid { facts.append("pid \(pid)") }
        if let seconds = entry.seconds, entry.state != .disabled, entry.state != .inactive {
            facts.append(entry.pid != nil ? "up \(Self.duration(seconds))" : "down \(Self.duration(seconds))")
        }
        if entry.state == .starting { facts.append(entry.depends.isEmpty ? "not ready yet" : "waiting for \(entry.depends.joined(separator: ", ")) or its readiness check") }
        if !facts.isEmpty { state += " (" + facts.joined(separator: ", ") + ")" }
        var lines = [entry.description.isEmpty ? entry.name : "\(entry.name) - \(entry.description)"]
        func field(_ label: String, _ value: String) { lines.append("  " + (label + ":").padding(toLength: 12, withPad: " ", startingAt: 0) + value) }
        field("state", state)
        if let restarts = entry.restarts {
            var text = "\(restarts) since boot"
            if let failures = details.consecutiveFailures, failures > 0 { text += ", \(failures) failure\(failures == 1 ? "" : "s") in a row" }
            field("restarts", text)
        }
        field("last exit", entry.lastExit ?? "-")
        field("command", entry.command)
        field("depends", entry.depends.isEmpty ? "-" : entry.depends.joined(separator: ", "))
        field("restart", details.restart)
        if let readiness = details.readiness { field("ready", readiness) }
        field("definition", details.definition)
        field("log", details.log)
        if !details.recentLog.isEmpty {
            lines.append("  last log lines:")
            lines += details.recentLog.map { "    " + $0 }
        }
        output(lines.joined(separator: "\n"))
    }

    package func start(_ name: String) throws {
        try requireRunning(name, action: "start")
        try supervisor.start(name)
        output("\(name) is running")
    }

    package func stop(_ name: String) throws {
        try requireRunning(name, action: "stop")
        try supervisor.stop(name)
        output("\(name) is stopped")
    }

    package func restart(_ name: String) throws {
        try requireRunning(name, action: "restart")
        try supervisor.restart(name)
        output("\(name) was restarted")
    }

    func requireRunning(_ name: String, action: String) throws {
        try Privileges.requireRoot(for: "rast service \(action)")
        guard supervisor.isSupervised(name) else {
            let (set, _) = ServiceSet.load(directory: definitionsDirectory)
            if let definition = set[name]?.definition {
                if !definition.enabled {
                    throw UserError("service '\(name)' is disabled in the booted snapshot, so it is not supervised; `rast service enable \(name)` enables it from the next boot")
                }
                throw UserError("service '\(name)' is defined but not supervised in this boot (defined after boot, or refused at boot: `rast service check` shows problems); it starts at the next boot")
            }
            throw SupervisorError.notSupervised(name: name, scanDirectory: supervisor.paths.scanDirectory)
        }
    }

    /// `rast service logs NAME [-n N] [-f]`.
    package func logs(_ name: String, lines: Int, follow: Bool) throws {
        let path = supervisor.logFile(name)
        guard Files.exists(path) || supervisor.isSupervised(name) else {
            throw UserError("service '\(name)' has no log (\(path) does not exist)")
        }
        for line in supervisor.logLines(name, count: lines) { output(line) }
        if follow { try supervisor.follow(name, output: output) }
    }

    /// `rast service setup`: at boot, the definitions become supervised service directories.
    /// Problems are printed (file:line:column); returns false when there were any.
    @discardableResult
    package func setup(problem: (String) -> Void) throws -> Bool {
        try Privileges.requireRoot(for: "rast service setup")
        let report = try supervisor.setUp(definitionsDirectory: definitionsDirectory)
        for error in report.problems { problem("rast: \(error)") }
        for (name, reason) in report.refused { problem("rast: service \(name) is not started: \(reason)") }
        output(report.supervised.isEmpty ? "rast: no services to supervise" : "rast: supervising \(report.supervised.joined(separator: ", ")) (in dependency order)")
        return report.problems.isEmpty && report.refused.isEmpty
    }

    /// `rast service check`: the running system's definitions; false when something is wrong.
    package func check() -> Bool {
        let (set, errors) = ServiceSet.load(directory: definitionsDirectory)
        let problems = ServiceErrors(errors + set.problems()).errors
        if problems.isEmpty {
            output("\(set.names.count) service definition\(set.names.count == 1 ? "" : "s") in \(definitionsDirectory): no problems")
        } else {
            output(problems.map(\.description).joined(separator: "\n"))
        }
        return problems.isEmpty
    }
}

// MARK: Definitions in snapshots

extension HostSession {
    /// Where snapshot `id` keeps its definitions (its /etc, which is authoritative).
    package func servicesDirectory(of id: Int) -> String {
        store.layout.etc(id) + "/rast/services"
    }

    /// The snapshot a service command acts on: `snapshot`, else the booted one (on an image,
    /// the one that boots next).
    func serviceTarget(_ snapshot: Int?) throws -> Int {
        try namedOrCurrentSnapshot(snapshot, noneDeployed: "no snapshot is deployed, so there is no current snapshot; name one with --snapshot N")
    }

    /// `rast service list --snapshot N` (or with --root): the definitions of a snapshot.
    package func serviceEntries(snapshot: Int?) throws -> [ServiceCommands.Entry] {
        let id = try serviceTarget(snapshot)
        let (set, _) = ServiceSet.load(directory: servicesDirectory(of: id))
        return set.names.compactMap { set[$0]?.definition }.map {
            ServiceCommands.Entry(name: $0.name, description: $0.description, enabled: $0.enabled, state: nil, pid: nil, seconds: nil,
                                  restarts: nil, lastExit: nil, depends: $0.depends, command: $0.commandLine)
        }
    }

    package func listServices(snapshot: Int?, json: Bool) throws {
        let entries = try serviceEntries(snapshot: snapshot)
        output(json ? try ServiceCommands.json(entries) : ServiceCommands.table(entries))
    }

    /// `rast service check --snapshot N`.
    package func checkServices(snapshot: Int?) throws -> Bool {
        let id = try serviceTarget(snapshot)
        let directory = servicesDirectory(of: id)
        let (set, errors) = ServiceSet.load(directory: directory)
        let problems = ServiceErrors(errors + set.problems()).errors
        output(problems.isEmpty ? "snapshot \(id): \(set.names.count) service definition\(set.names.count == 1 ? "" : "s"), no problems"
                                : problems.map(\.description).joined(separator: "\n"))
        return problems.isEmpty
    }

    /// `rast service enable|disable NAME`.
    package func setServiceEnabled(_ name: String, _ enabled: Bool, snapshot: Int?) throws {
        let id = try serviceTarget(snapshot)
        let directory = servicesDirectory(of: id)
        let (set, loadErrors) = ServiceSet.load(directory: directory)
        guard let service = set[name] else {
            if let broken = loadErrors.first(where: { ($0.position.file as NSString).lastPathComponent == "\(name).toml" }) {
                throw ServiceErrors(loadErrors.filter { $0.position.file == broken.position.file })
            }
            throw UserError("snapshot \(id) has no service '\(name)' (\(set.names.isEmpty ? "it defines none" : "defined are " + set.names.joined(separator: ", ")))")
        }
        let verb = enabled ? "enable" : "disable"
        if service.definition.enabled == enabled {
            output("service \(name) is already \(verb)d in snapshot \(id); nothing changed")
            return
        }
        let text = try Files.readString(service.file)
        let edited = try DefinitionEditing.settingEnabled(enabled, in: text, file: service.file)
        try changeServices(in: id, newSnapshot: snapshot == nil, command: "rast service \(verb) \(name)",
                           files: [name: edited], existing: set, existingErrors: loadErrors)
    }

    /// `rast service add FILE...`: the files become definitions (NAME.toml) of the snapshot.
    package func addServices(_ files: [String], snapshot: Int?, replace: Bool) throws {
        let id = try serviceTarget(snapshot)
        let (set, loadErrors) = ServiceSet.load(directory: servicesDirectory(of: id))
        var texts: [String: String] = [:]
        var errors: [ServiceError] = []
        for file in files {
            let base = (file as NSString).lastPathComponent
            guard base.hasSuffix(".toml") else { throw UserError("\(file): a definition file is named NAME.toml (the service's name)") }
            let name = String(base.dropLast(".toml".count))
            guard texts[name] == nil else { throw UserError("\(file): service '\(name)' is given twice") }
            if set[name] != nil, !replace {
                throw UserError("snapshot \(id) already defines '\(name)'; pass --replace to replace its definition")
            }
            let bytes = try Files.read(file)
            do {
                _ = try ServiceDefinition.parse(bytes: bytes, file: file, name: name)
            } catch {
                errors += error.errors
            }
            texts[name] = String(decoding: bytes, as: UTF8.self)
        }
        if !errors.isEmpty { throw ServiceErrors(errors) }
        try changeServices(in: id, newSnapshot: snapshot == nil, command: "rast service add " + texts.keys.sorted().joined(separator: " "),
                           files: texts, existing: set, existingErrors: loadErrors, sources: Dictionary(uniqueKeysWithValues: files.map {
                               (String(($0 as NSString).lastPathComponent.dropLast(".toml".count)), $0)
                           }))
    }

    /// `rast service remove NAME`.
    package func removeService(_ name: String, snapshot: Int?) throws {
        let id = try serviceTarget(snapshot)
        let (set, loadErrors) = ServiceSet.load(directory: servicesDirectory(of: id))
        guard set[name] != nil else { throw UserError("snapshot \(id) has no service '\(name)'") }
        try changeServices(in: id, newSnapshot: snapshot == nil, command: "rast service remove \(name)",
                           files: [name: nil], existing: set, existingErrors: loadErrors)
    }

    /// Applies definition changes (`files`: NAME → new text, nil to delete) to snapshot `id`,
    /// after checking the whole resulting set: a change that would leave a definition broken
    /// (a dependency on something missing or disabled, a cycle) is refused with the places
    /// involved, and nothing changes. With `newSnapshot`, the change becomes a new child of
    /// `id` that is deployed (the safe way, as `rast -S` does); otherwise `id` itself changes
    /// through its working copy.
    func changeServices(in id: Int, newSnapshot: Bool, command: String, files: [String: String?],
                        existing: ServiceSet, existingErrors: [ServiceError], sources: [String: String] = [:]) throws {
        var definitions = existing.services
        var errors: [ServiceError] = []
        let directory = servicesDirectory(of: id)
        for (name, text) in files {
            guard let text else {
                definitions[name] = nil
                continue
            }
            do {
                definitions[name] = try ServiceDefinition.parse(bytes: Array(text.utf8), file: sources[name] ?? directory + "/\(name).toml", name: name)
            } catch {
                errors += error.errors
            }
        }
        let before = Set(existing.problems().map(\.description))
        // Problems the change brings; ones the snapshot had already are not its fault.
        errors += ServiceSet(Array(definitions.values)).problems().filter { !before.contains($0.description) }
        if !errors.isEmpty { throw ServiceErrors(errors) }

        let write: (String) throws -> Void = { root in
            let target = root + "/etc/rast/services"
            try Files.createDirectory(target)
            for (name, text) in files {
                let path = target + "/\(name).toml"
                if let text {
                    try Files.writeAtomically(path, string: text)
                } else if Files.exists(path) {
                    try SystemError.check("unlink", path: path) { unlink(path) }
                }
            }
        }
        if newSnapshot {
            let (newID, root) = try store.prepareNewSnapshot(from: id)
            do {
                try write(root)
                try store.commitWorkingCopy(newID, adding: SnapshotRecord(id: newID, parent: id, description: command))
            } catch {
                try? store.discardWorkingCopy(newID)
                throw error
            }
            do {
                try store.deploy(newID)
            } catch {
                throw UserError("snapshot \(newID) was made from \(id) but deploying it failed (`rast deploy \(newID)` retries): \(error)", cause: error)
            }
            output("snapshot \(newID) (from \(id)): \(command); it is deployed and takes effect at the next boot; snapshot \(id) is unchanged (`rast rollback` keeps booting it)")
        } else {
            let root = try store.prepareWorkingCopy(id, command: command)
            do {
                try write(root)
                try store.commitWorkingCopy(id)
            } catch {
                try? store.discardWorkingCopy(id)
                throw error
            }
            output("snapshot \(id): \(command)")
        }
        if !existingErrors.isEmpty {
            output("note: snapshot \(id) has definitions with problems (`rast service check --snapshot \(id)`):\n" + existingErrors.map(\.description).joined(separator: "\n"))
        }
    }
}
