import TOML

/// One service: a long-running program that rast's supervisor (s6) starts at boot, restarts
/// by its policy, and logs. A definition is a TOML file `/etc/rast/services/NAME.toml` in a
/// snapshot (so every snapshot has its own set), or a `[[services]]` table of a recipe.
/// The format is documented in docs/services.md.
package struct ServiceDefinition: Sendable, Equatable {
    /// How the program is given.
    package enum Program: Sendable, Equatable {
        /// An argument vector: the program (a path, or a name looked up in PATH) and its arguments.
        case arguments([String])
        /// A command line run by `/bin/sh -c`.
        case shell(String)
    }

    package enum RestartPolicy: String, Sendable, CaseIterable, Codable {
        /// Restart whenever the program ends.
        case always
        /// Restart when it fails (exit status other than 0, or killed by a signal).
        case onFailure = "on-failure"
        /// Never restart; the service stays down after the program ends.
        case never
    }

    /// How rast learns that a started service is ready (its dependents wait for this).
    package enum Readiness: Sendable, Equatable {
        /// A listening TCP socket on this port (IPv4 or IPv6, any address).
        case tcp(port: Int)
        /// A command (run by `/bin/sh -c`) that exits 0 once the service is ready.
        case command(String)
    }

    /// Rotation of the service's log, `/var/log/NAME/current` and the archived files beside it.
    package struct Logging: Sendable, Equatable {
        /// Rotate when `current` reaches this many bytes.
        package var maxSize: Int64
        /// How many rotated files to keep.
        package var keep: Int

        package init(maxSize: Int64 = 1 << 20, keep: Int = 10) {
            self.maxSize = maxSize
            self.keep = keep
        }
    }

    /// The file name without `.toml`: lower-case letters, digits, `-` and `_`.
    package var name: String
    package var description: String
    package var program: Program
    /// Nil runs the program as root.
    package var user: String?
    /// Environment variables, in the order written.
    package var environment: [(name: String, value: String)]
    /// Absolute; nil starts in `/`.
    package var workingDirectory: String?
    /// Services that must be up and ready before this one starts.
    package var depends: [String]
    package var restart: RestartPolicy
    /// The delay before the first restart after a failure, in milliseconds; it doubles with
    /// every further failure in a row, up to `restartDelayMax`.
    package var restartDelay: Int
    package var restartDelayMax: Int
    /// How long a stopping service gets after SIGTERM before SIGKILL, in milliseconds.
    package var stopTimeout: Int
    package var readiness: Readiness?
    package var logging: Logging
    /// False: defined but not started at boot.
    package var enabled: Bool

    package init(name: String, description: String = "", program: Program, user: String? = nil,
                environment: [(name: String, value: String)] = [], workingDirectory: String? = nil, depends: [String] = [],
                restart: RestartPolicy = .always, restartDelay: Int = 1000, restartDelayMax: Int = 30_000,
                stopTimeout: Int = 10_000, readiness: Readiness? = nil, logging: Logging = Logging(), enabled: Bool = true) {
        self.name = name
        self.description = description
        self.program = program
        self.user = user
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.depends = depends
        self.restart = restart
        self.restartDelay = restartDelay
        self.restartDelayMax = restartDelayMax
        self.stopTimeout = stopTimeout
        self.readiness = readiness
        self.logging = logging
        self.enabled = enabled
    }

    package static func == (lhs: ServiceDefinition, rhs: ServiceDefinition) -> Bool {
        lhs.name == rhs.name && lhs.description == rhs.description && lhs.program == rhs.program && lhs.user == rhs.user
            && lhs.environment.map(\.name) == rhs.environment.map(\.name) && lhs.environment.map(\.value) == rhs.environment.map(\.value)
            && lhs.workingDirectory == rhs.workingDirectory && lhs.depends == rhs.depends && lhs.restart == rhs.restart
            && lhs.restartDelay == rhs.restartDelay && lhs.restartDelayMax == rhs.restartDelayMax && lhs.stopTimeout == rhs.stopTimeout
            && lhs.readiness == rhs.readiness && lhs.logging == rhs.logging && lhs.enabled == rhs.enabled
    }

    /// The program as one line, for listings.
    package var commandLine: String {
        switch program {
        case .shell(let text): return text
        case .arguments(let words): return words.map(ShellQuoting.quoteIfNeeded).joined(separator: " ")
        }
    }

    /// Service names: what s6 and the file system accept without surprises.
    package static func nameProblem(_ name: String) -> String? {
        guard let first = name.first else { return "a service name cannot be empty" }
        if name.count > 64 { return "'\(name)' is too long for a service name (at most 64 characters)" }
        let allowed = name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "_" }
        if !allowed || !(first.isASCII && (first.isLowercase || first.isNumber)) {
            return "'\(name)' is not a service name: use lower-case letters, digits, '-' and '_', starting with a letter or digit"
        }
        return nil
    }

    /// The keys a definition may have.
    package static let keys = [
        "description", "command", "user", "environment", "working_directory", "depends", "restart",
        "restart_delay", "restart_delay_max", "stop_timeout", "ready", "log", "enabled",
    ]
}

/// A definition as read from a file, with where its parts were written (for errors that
/// involve other definitions, such as an unknown dependency or a cycle).
package struct LocatedDefinition: Sendable {
    package var definition: ServiceDefinition
    /// The file it came from (or the recipe).
    package var file: String
    /// Where the definition starts (1:1 of its file, or its `[[services]]` header).
    package var position: TOMLPosition
    /// The position of each `depends` entry, in order.
    package var dependsPositions: [TOMLPosition]
    /// The key path prefix of errors ("" for a file, "services[2]." in a recipe).
    package var keyPrefix: String

    package var name: String { definition.name }
}

extension LocatedDefinition {
    /// A stand-in for a service that no definition file describes (a recipe's `[network]`
    /// makes sshd and dhcp): others may depend on it; it is placed at 1:1 of `file`, and its
    /// problems are keyed under `keyPrefix`.
    package init(standIn name: String, file: String, keyPrefix: String) {
        self.init(definition: ServiceDefinition(name: name, program: .shell("true")), file: file,
                  position: TOMLPosition(file: file, line: 1, column: 1), dependsPositions: [], keyPrefix: keyPrefix)
    }
}

/// Quoting for the generated shell scripts.
package enum ShellQuoting {
    /// `'text'`, with embedded single quotes written as `'\''`.
    package static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The word as it is when it needs no quoting, else quoted.
    package static func quoteIfNeeded(_ text: String) -> String {
        let plain = !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0)) }
        return plain ? text : quote(text)
    }
}
