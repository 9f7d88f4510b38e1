// crun's command line, the container runtime under `rast container`: rast writes bundles and
// drives crun's lifecycle (create, start, state, kill, delete, run, exec, list); crun sets up
// the namespaces, cgroups, mounts and capabilities.
import Foundation
import SystemSupport

/// What `crun state` says about a container.
package struct RuntimeState: Codable, Sendable, Equatable {
    package var id: String
    package var pid: Int32?
    /// creating, created, running or stopped.
    package var status: String
    package var bundle: String?
}

/// One crun state directory (`--root`).
package struct Crun: Sendable {
    package var program: String
    /// crun's state directory (tmpfs: it is empty after a reboot).
    package var root: String

    package static let defaultRoot = "/run/rast/crun"

    package init(program: String = "crun", root: String = Crun.defaultRoot) {
        self.program = program
        self.root = root
    }

    private func command(_ arguments: [String], input: Command.Input = .null) throws -> Command {
        guard let path = Command.find(program) else { throw ContainerError.runtimeMissing(program) }
        return Command(path, ["--root", root] + arguments, input: input)
    }

    private func check(_ arguments: [String]) throws {
        let result = try command(arguments).run(check: false)
        guard result.status == 0 else {
            throw ContainerError.runtime(command: "crun \(arguments.joined(separator: " "))", status: result.status,
                                         output: result.combinedTail(lines: 5).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Creates the container; its process waits for `start`. The container's standard
    /// input, output and error are this process's.
    package func create(_ id: String, bundle: String, pidFile: String) throws {
        let arguments = ["create", "--bundle", bundle, "--pid-file", pidFile, id]
        let result = try command(arguments, input: .inherit).run(output: .inherit, check: false)
        guard result.status == 0 else {
            throw ContainerError.runtime(command: "crun create \(id)", status: result.status, output: "see the container's log")
        }
    }

    package func start(_ id: String) throws { try check(["start", id]) }

    /// Creates, starts and waits for the container in the foreground, with this process's
    /// terminal or standard streams; returns its exit status (128 + signal when killed).
    package func run(_ id: String, bundle: String, standardInput: Bool) throws -> Int32 {
        try command(["run", "--bundle", bundle, id], input: standardInput ? .inherit : .null).run(output: .inherit, check: false).status
    }

    /// Runs a further process in a running container; returns its exit status.
    package func exec(_ id: String, arguments: [String], tty: Bool, environment: [String], workingDirectory: String?, user: String?) throws -> Int32 {
        var options = ["exec"]
        if tty { options.append("--tty") }
        for entry in environment { options += ["--env", entry] }
        if let workingDirectory { options += ["--cwd", workingDirectory] }
        if let user { options += ["--user", user] }
        return try command(options + [id] + arguments, input: .inherit).run(output: .inherit, check: false).status
    }

    /// The container's state, or nil when crun does not know it.
    package func state(_ id: String) throws -> RuntimeState? {
        let result = try command(["state", id]).run(check: false)
        guard result.status == 0 else { return nil }
        return try JSONDecoder().decode(RuntimeState.self, from: Data(result.standardOutput.utf8))
    }

    /// Every container crun knows in its state directory.
    package func list() throws -> [RuntimeState] {
        let result = try command(["list", "--format", "json"]).run(check: false)
        guard result.status == 0, !result.standardOutput.isEmpty else { return [] }
        return (try? JSONDecoder().decode([RuntimeState].self, from: Data(result.standardOutput.utf8))) ?? []
    }

    /// Sends `signal` (a name such as TERM or a number) to the container's init, or with
    /// `all` to every process in it.
    package func kill(_ id: String, signal: String, all: Bool = false) throws {
        try check(["kill"] + (all ? ["--all"] : []) + [id, signal])
    }

    /// Deletes crun's state of the container and its cgroup; `force` kills it first.
    package func delete(_ id: String, force: Bool = false) throws {
        try check(["delete"] + (force ? ["--force"] : []) + [id])
    }
}
