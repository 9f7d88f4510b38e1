import Foundation
import OCI
import SystemSupport

/// How `rast container run` runs a container; also kept in the container's record.
package struct RunOptions: Codable, Sendable, Equatable {
    package enum Network: String, Codable, Sendable, CaseIterable {
        /// A network namespace of its own with only the loopback interface.
        case none
        /// The host's network namespace.
        case host
    }

    /// A bind mount `HOST:CONTAINER[:ro]`.
    package struct Volume: Codable, Sendable, Equatable, CustomStringConvertible {
        package var host: String
        package var container: String
        package var readOnly: Bool

        /// Parses `HOST:CONTAINER[:ro|rw]`; both paths absolute, the host path existing.
        package init(parsing text: String) throws {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 2 || parts.count == 3 else {
                throw ContainerError.invalidOption("-v \(text)", reason: "expected HOST:CONTAINER or HOST:CONTAINER:ro")
            }
            host = parts[0]
            container = parts[1]
            readOnly = false
            if parts.count == 3 {
                guard parts[2] == "ro" || parts[2] == "rw" else {
                    throw ContainerError.invalidOption("-v \(text)", reason: "the mode '\(parts[2])' is neither ro nor rw")
                }
                readOnly = parts[2] == "ro"
            }
            guard host.hasPrefix("/"), container.hasPrefix("/") else {
                throw ContainerError.invalidOption("-v \(text)", reason: "both paths must be absolute")
            }
            guard !container.split(separator: "/").contains("..") else {
                throw ContainerError.invalidOption("-v \(text)", reason: "the container path may not contain '..'")
            }
        }

        package var description: String { "\(host):\(container)" + (readOnly ? ":ro" : "") }
    }

    /// A program crun runs at a point of the container's life: `STAGE=PROGRAM[,ARG...]` with
    /// STAGE createRuntime, poststart or poststop (the container's state comes on its stdin).
    package struct Hook: Codable, Sendable, Equatable {
        package static let stages = ["createRuntime", "poststart", "poststop"]
        package var stage: String
        package var arguments: [String]

        package init(parsing text: String) throws {
            guard let equals = text.firstIndex(of: "=") else {
                throw ContainerError.invalidOption("--hook \(text)", reason: "expected STAGE=PROGRAM[,ARG...]")
            }
            stage = String(text[..<equals])
            arguments = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard Self.stages.contains(stage) else {
                throw ContainerError.invalidOption("--hook \(text)", reason: "the stage '\(stage)' is none of \(Self.stages.joined(separator: ", "))")
            }
            guard let program = arguments.first, program.hasPrefix("/") else {
                throw ContainerError.invalidOption("--hook \(text)", reason: "the program must be an absolute path on the host")
            }
        }
    }

    package var name: String?
    package var remove = false
    package var detach = false
    package var interactive = false
    package var tty = false
    /// KEY=VALUE (or KEY, taken from rast's environment).
    package var environment: [String] = []
    package var volumes: [Volume] = []
    /// Directories that get an empty tmpfs of their own (writable also with --read-only).
    package var tmpfs: [String] = []
    package var hooks: [Hook] = []
    package var workingDirectory: String?
    /// USER[:GROUP], by name (from the container's /etc/passwd and /etc/group) or number.
    package var user: String?
    package var memory: Int64?
    package var cpus: Double?
    package var pidsLimit: Int64?
    package var network: Network = .none
    package var readOnly = false
    /// A user namespace mapping root to a subordinate ID range.
    package var userNamespace = false
    package var hostname: String?
    package var entrypoint: [String]?
    /// The command; empty takes the image's.
    package var command: [String] = []
    /// When s6 starts it again (detached containers only; nil is no).
    package var restart: RestartPolicy?

    /// Whether s6 supervises the container.
    package var isSupervised: Bool { restart?.isSupervised == true }

    /// Refuses a restart policy where it cannot apply: with --rm or without -d.
    package func checkRestart() throws {
        guard let restart, restart.isSupervised else { return }
        if remove { throw ContainerError.invalidOption("--restart \(restart)", reason: "cannot be combined with --rm: a container that is removed when it exits cannot be restarted") }
        if !detach { throw ContainerError.invalidOption("--restart \(restart)", reason: "needs -d: s6 runs a restarting container in the background") }
    }

    package init() {}

    /// Docker's name rule: a letter or digit, then letters, digits, '_', '.', '-'.
    package static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 128, first.properties.isAlphabetic || ("0"..."9").contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
    }
}
