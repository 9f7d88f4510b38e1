import Foundation
import SystemSupport
import TOML

/// What `rast service setup` did at boot.
package struct SetupReport: Sendable {
    /// The supervised services, in dependency order.
    package var supervised: [String]
    /// Enabled services that were not set up, with the reason.
    package var refused: [(name: String, reason: String)]
    /// Every problem in the definitions (file:line:column).
    package var problems: [ServiceError]
    package var disabled: [String]
}

extension Supervisor {
    /// Turns the definitions in `definitionsDirectory` (the booted snapshot's
    /// /etc/rast/services) into service directories in the scan directory, which s6-svscan
    /// then supervises. A definition with a problem is reported (file:line:column) and left
    /// out, and so are the services that depend on it; the others are set up.
    package func setUp(definitionsDirectory: String = ServiceSet.directory, passwd: String = "/etc/passwd") throws -> SetupReport {
        let existing = supervisedNames()
        guard existing.isEmpty else {
            throw UserError("services are set up already in \(paths.scanDirectory) (\(existing.joined(separator: ", "))); setup runs once, at boot")
        }
        let (set, loadErrors) = ServiceSet.load(directory: definitionsDirectory)
        var problems = loadErrors + set.problems()
        let users = Set(((try? Files.readString(passwd)) ?? "").split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
        var usable: [LocatedDefinition] = []
        var refused: [(String, String)] = []
        for name in set.names {
            guard let service = set[name] else { continue }
            if let user = service.definition.user, !users.contains(user) {
                problems.append(ServiceError(position: service.position, keyPath: "user", message: "user '\(user)' does not exist in \(passwd)"))
                if service.definition.enabled { refused.append((name, "its user '\(user)' does not exist")) }
                continue
            }
            usable.append(service)
        }
        let checked = ServiceSet(usable)
        let order = checked.startOrder
        for name in checked.names where checked[name]?.definition.enabled == true && !order.contains(name) {
            refused.append((name, "a dependency is missing, disabled, refused or part of a cycle"))
        }
        try Files.createDirectory(paths.scanDirectory)
        for name in order {
            guard let service = checked[name] else { continue }
            let text = (try? Files.readString(service.file)) ?? service.definition.tomlText
            try ServiceDirectory.write(service.definition, source: service.file, definitionText: text, paths: paths)
        }
        let disabled = set.names.filter { set[$0]?.definition.enabled == false }
        return SetupReport(supervised: order, refused: refused.sorted { $0.0 < $1.0 }, problems: ServiceErrors(problems).errors, disabled: disabled)
    }
}

extension ServiceDefinition {
    /// The definition as a TOML file (what the image builder writes for a recipe's
    /// `[[services]]`); parsing it gives the definition back.
    package var tomlText: String {
        func string(_ text: String) -> String { TOMLDocument.basicString(text) }
        var lines: [String] = []
        if !description.isEmpty { lines.append("description = \(string(description))") }
        switch program {
        case .shell(let text): lines.append("command = \(string(text))")
        case .arguments(let words): lines.append("command = [\(words.map(string).joined(separator: ", "))]")
        }
        if let user { lines.append("user = \(string(user))") }
        if let workingDirectory { lines.append("working_directory = \(string(workingDirectory))") }
        if !depends.isEmpty { lines.append("depends = [\(depends.map(string).joined(separator: ", "))]") }
        if restart != .always { lines.append("restart = \(string(restart.rawValue))") }
        if restartDelay != 1000 { lines.append("restart_delay = \(string(Self.formatDuration(restartDelay)))") }
        if restartDelayMax != max(30_000, restartDelay) { lines.append("restart_delay_max = \(string(Self.formatDuration(restartDelayMax)))") }
        if stopTimeout != 10_000 { lines.append("stop_timeout = \(string(Self.formatDuration(stopTimeout)))") }
        if !enabled { lines.append("enabled = false") }
        switch readiness {
        case .tcp(let port): lines.append("ready = { tcp = \(port) }")
        case .command(let text): lines.append("ready = { command = \(string(text)) }")
        case nil: break
        }
        if logging != Logging() { lines.append("log = { max_size = \(logging.maxSize), keep = \(logging.keep) }") }
        if !environment.isEmpty {
            lines.append("")
            lines.append("[environment]")
            for variable in environment { lines.append("\(variable.name) = \(string(variable.value))") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
