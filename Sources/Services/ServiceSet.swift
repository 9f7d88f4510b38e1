import Foundation
import SystemSupport
import TOML

/// The definitions of one snapshot (or one recipe), checked together: every dependency must
/// name a defined service, an enabled service cannot depend on a disabled one, and the
/// dependencies form no cycle.
package struct ServiceSet: Sendable {
    /// By name.
    package let services: [String: LocatedDefinition]

    /// Where a snapshot keeps its definitions, relative to its root.
    package static let directory = "/etc/rast/services"

    package init(_ definitions: [LocatedDefinition]) {
        var byName: [String: LocatedDefinition] = [:]
        for definition in definitions { byName[definition.name] = definition }
        services = byName
    }

    package var names: [String] { services.keys.sorted() }
    package subscript(name: String) -> LocatedDefinition? { services[name] }
    package var isEmpty: Bool { services.isEmpty }

    /// Reads every `NAME.toml` in `directory` (a missing directory is an empty set). Files
    /// that do not parse are returned as errors; the set holds the others.
    package static func load(directory: String, displayDirectory: String? = nil) -> (set: ServiceSet, errors: [ServiceError]) {
        guard Files.isDirectory(directory) else { return (ServiceSet([]), []) }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".toml") }.sorted()
        var definitions: [LocatedDefinition] = []
        var errors: [ServiceError] = []
        for file in names {
            let path = directory + "/" + file
            let shown = (displayDirectory ?? directory) + "/" + file
            do {
                let bytes = try Files.read(path)
                definitions.append(try ServiceDefinition.parse(bytes: bytes, file: shown, name: String(file.dropLast(".toml".count))))
            } catch let problems as ServiceErrors {
                errors += problems.errors
            } catch {
                errors.append(ServiceError(position: TOMLPosition(file: shown, line: 1, column: 1), keyPath: "", message: "cannot be read: \(error)"))
            }
        }
        return (ServiceSet(definitions), errors)
    }

    /// Problems between definitions: unknown dependencies, dependencies on disabled services,
    /// cycles. Each is reported at the `depends` entry that causes it.
    package func problems() -> [ServiceError] {
        var errors: [ServiceError] = []
        let defined = names
        for name in defined {
            guard let service = services[name] else { continue }
            for (index, dependency) in service.definition.depends.enumerated() {
                let position = service.dependsPositions[safe: index] ?? service.position
                let key = service.keyPrefix + "depends[\(index)]"
                guard let target = services[dependency] else {
                    let list = defined.filter { $0 != name }
                    let known = list.isEmpty ? "no other service is defined" : "defined are " + list.joined(separator: ", ")
                    errors.append(ServiceError(position: position, keyPath: key, message: "unknown service '\(dependency)' (\(known))"))
                    continue
                }
                if service.definition.enabled, !target.definition.enabled {
                    errors.append(ServiceError(position: position, keyPath: key,
                                               message: "'\(dependency)' is disabled, so '\(name)' would never start; enable it or remove the dependency"))
                }
            }
        }
        errors += cycleErrors()
        return errors
    }

    /// Throws every problem of the set (and `extra` problems found while loading).
    package func validate(extra: [ServiceError] = []) throws(ServiceErrors) {
        let all = extra + problems()
        if !all.isEmpty { throw ServiceErrors(all) }
    }

    /// One error per cycle, at the dependency that closes it.
    func cycleErrors() -> [ServiceError] {
        var errors: [ServiceError] = []
        var state: [String: Int] = [:]   // 1 = on the current path, 2 = done
        var path: [String] = []
        func visit(_ name: String) {
            state[name] = 1
            path.append(name)
            if let service = services[name] {
                for (index, dependency) in service.definition.depends.enumerated() where services[dependency] != nil {
                    if state[dependency] == 1 {
                        let start = path.firstIndex(of: dependency) ?? 0
                        let loop = (path[start...] + [dependency]).joined(separator: " → ")
                        errors.append(ServiceError(position: service.dependsPositions[safe: index] ?? service.position,
                                                   keyPath: service.keyPrefix + "depends[\(index)]",
                                                   message: "the dependencies form a cycle (\(loop)); no service of it could ever start"))
                    } else if state[dependency] == nil {
                        visit(dependency)
                    }
                }
            }
            path.removeLast()
            state[name] = 2
        }
        for name in names where state[name] == nil { visit(name) }
        return errors
    }

    /// The enabled services in an order where every service comes after its dependencies
    /// (alphabetical among those that are free to start); services caught in a cycle or
    /// depending on a missing or disabled service are left out.
    package var startOrder: [String] {
        var started: [String] = []
        var remaining = names.filter { services[$0]?.definition.enabled == true }
        while true {
            let ready = remaining.filter { name in
                services[name]?.definition.depends.allSatisfy { started.contains($0) } == true
            }
            guard let next = ready.first else { break }
            started.append(next)
            remaining.removeAll { $0 == next }
        }
        return started
    }
}

extension Array {
    subscript(safe index: Int) -> Element? {
        indices.contains(index) ? self[index] : nil
    }
}
