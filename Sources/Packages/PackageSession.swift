import Alpm
import Foundation
import SystemSupport

/// A repository as pacman.conf describes it.
package struct RepositoryConfig: Sendable, Equatable {
    package var name: String
    /// Server URLs with `$repo` and `$arch` already substituted or not (both work).
    package var servers: [String]
    /// pacman's SigLevel words ("Required DatabaseOptional", "Never"); nil: the default.
    package var sigLevel: [String]?
    /// What the repository is used for (pacman.conf's Usage).
    package var usage: DatabaseUsage

    package init(name: String, servers: [String], sigLevel: [String]? = nil, usage: DatabaseUsage = .all) {
        self.name = name
        self.servers = servers
        self.sigLevel = sigLevel
        self.usage = usage
    }

    package static func == (lhs: RepositoryConfig, rhs: RepositoryConfig) -> Bool {
        lhs.name == rhs.name && lhs.servers == rhs.servers && lhs.sigLevel == rhs.sigLevel && lhs.usage.rawValue == rhs.usage.rawValue
    }
}

package enum SigLevelParser {
    /// Parses pacman's SigLevel words on top of `base` (pacman.conf semantics: Package*/
    /// Database* prefixes limit a word to one kind; TrustAll/TrustedOnly set the trust flags).
    package static func parse(_ words: [String], base: SigLevel = .required) throws -> SigLevel {
        var level = base
        for word in words {
            var kinds: [(SigLevel, SigLevel, SigLevel, SigLevel)] = [
                (.package, .packageOptional, .packageMarginalOK, .packageUnknownOK),
                (.database, .databaseOptional, .databaseMarginalOK, .databaseUnknownOK),
            ]
            var value = word
            if word.hasPrefix("Package") { kinds = [kinds[0]]; value = String(word.dropFirst("Package".count)) }
            else if word.hasPrefix("Database") { kinds = [kinds[1]]; value = String(word.dropFirst("Database".count)) }
            for (check, optional, marginal, unknown) in kinds {
                switch value {
                case "Never": level.remove(check); level.remove(optional)
                case "Optional": level.insert(check); level.insert(optional)
                case "Required": level.insert(check); level.remove(optional)
                case "TrustedOnly": level.remove(marginal); level.remove(unknown)
                case "TrustAll": level.insert(marginal); level.insert(unknown)
                default: throw UserError("'\(word)' is not a pacman SigLevel (Never, Optional, Required, TrustedOnly, TrustAll, with an optional Package or Database prefix)")
                }
            }
        }
        return level
    }

    package static func requiresSignatures(_ level: SigLevel) -> Bool {
        level.contains(.package) || level.contains(.database)
    }
}

/// libalpm working on one root: the image builder's snapshot 0, or a working copy that
/// `rast` changes. Repositories are registered, progress goes to a `ProgressReporter`, and
/// every transaction either commits or leaves the root's database untouched.
package final class PackageSession {
    package let handle: AlpmHandle
    package let progress: ProgressReporter
    package let repositories: [RepositoryConfig]

    /// Treat an install scriptlet that exits non-zero as a failed transaction (pacman only
    /// prints "command failed to execute correctly"). rast sets it: its transactions run in a
    /// working copy that is thrown away on failure, so a half-configured package never lands.
    package var failOnScriptletErrors = false {
        didSet { installLogHandler() }
    }
    /// Scriptlets that failed during the last commit.
    package internal(set) var scriptletFailures: [ScriptletFailure] = []
    /// The package libalpm is working on, for naming a failing scriptlet.
    var currentPackage: String?
    /// The last lines scriptlets printed, for the error message.
    var recentScriptletOutput: [String] = []

    /// - Parameters:
    ///   - root: the root packages go into.
    ///   - databasePath: the package database (inside the root for rast's snapshots).
    ///   - cacheDirectory: where downloaded packages are kept.
    ///   - gpgDirectory: the keyring for signature checks.
    package init(root: String, databasePath: String, cacheDirectory: String, gpgDirectory: String, logFile: String,
                repositories: [RepositoryConfig], progress: ProgressReporter) throws {
        for directory in [databasePath, cacheDirectory, (logFile as NSString).deletingLastPathComponent] {
            try Files.createDirectory(directory)
        }
        let configuration = AlpmConfiguration(
            root: root, databasePath: databasePath, cacheDirectories: [cacheDirectory],
            hookDirectories: [root + "/usr/share/libalpm/hooks", root + "/etc/pacman.d/hooks"],
            gpgDirectory: gpgDirectory, logFile: logFile, defaultSigLevel: .required)
        handle = try AlpmHandle(configuration)
        self.progress = progress
        self.repositories = repositories
        for repository in repositories {
            let level = try repository.sigLevel.map { try SigLevelParser.parse($0) } ?? .useDefault
            try handle.registerSyncDatabase(repository.name, servers: repository.servers, sigLevel: level, usage: repository.usage)
        }
        installProgressHandlers()
        installLogHandler()
    }

    /// A session with every libalpm setting given (from a pacman.conf: see `PacmanConfig`).
    /// Each repository's SigLevel words apply on top of pacman's default SigLevel.
    package init(configuration: AlpmConfiguration, repositories: [RepositoryConfig], progress: ProgressReporter) throws {
        for directory in configuration.cacheDirectories + [configuration.databasePath, (configuration.logFile as NSString).deletingLastPathComponent] {
            try Files.createDirectory(directory)
        }
        handle = try AlpmHandle(configuration)
        self.progress = progress
        self.repositories = repositories
        for repository in repositories {
            let level = try SigLevelParser.parse(repository.sigLevel ?? [], base: PacmanConfig.defaultSigLevel)
            try handle.registerSyncDatabase(repository.name, servers: repository.servers, sigLevel: level, usage: repository.usage)
        }
        installProgressHandlers()
        installLogHandler()
    }

    private func installProgressHandlers() {
        let progress = self.progress
        handle.progressHandler = { event in
            guard let package = event.package, !package.isEmpty else { return }
            let verb: String
            switch event.step {
            case .install: verb = "installing"
            case .upgrade: verb = "upgrading"
            case .downgrade: verb = "downgrading"
            case .reinstall: verb = "reinstalling"
            case .remove: verb = "removing"
            default: return
            }
            progress.update(ProgressUpdate(task: "packages: \(verb)", completed: Int64(event.current - 1) * 100 + Int64(event.percent),
                                           total: Int64(event.total) * 100, unit: .percent,
                                           detail: "\(package) (\(event.current)/\(event.total))"))
        }
        handle.downloadHandler = { event in
            if case .progress(let downloaded, let total) = event.kind, total > 0 {
                progress.update(ProgressUpdate(task: "packages: downloading", completed: downloaded, total: total,
                                               unit: .bytes, detail: event.file))
            }
        }
        handle.eventHandler = { [unowned self] event in
            switch event {
            case .packageOperation(let operation, false):
                currentPackage = operation.name
            case .scriptletOutput(let line):
                recentScriptletOutput.append(line)
                if recentScriptletOutput.count > 20 { recentScriptletOutput.removeFirst() }
                progress.note(line)
            case .hookRun(let name, _, let position, let total, false): progress.note("hook \(position)/\(total): \(name)")
            case .pacnewCreated(let path): progress.note("warning: \(path) installed as .pacnew")
            case .pacsaveCreated(let path): progress.note("warning: saved \(path) as .pacsave")
            default: break
            }
        }
    }

    /// libalpm's log: errors are watched for failing scriptlets; with RAST_DEBUG everything
    /// goes to the debug log. Unset otherwise, so libalpm's chatter is not even formatted.
    private func installLogHandler() {
        let debug = RastLog.logger.logLevel <= .debug
        guard failOnScriptletErrors || debug else {
            handle.logHandler = nil
            return
        }
        handle.logHandler = { [unowned self] level, message in
            let line = message.trimmingCharacters(in: .whitespacesAndNewlines)
            if debug { RastLog.logger.debug("libalpm: \(line)") }
            // _alpm_run_chroot's words when a scriptlet (or hook command) exits non-zero.
            if level == .error, line.contains("command failed to execute correctly") {
                scriptletFailures.append(ScriptletFailure(package: currentPackage ?? "?", output: recentScriptletOutput))
            }
        }
    }

    /// Refreshes the repositories' databases, naming the repository that does not answer.
    package func refresh(force: Bool = false) throws {
        progress.begin("packages: synchronising \(repositories.map(\.name).joined(separator: ", "))")
        do {
            _ = try handle.updateDatabases(force: force)
        } catch {
            throw UserError("cannot synchronise the package databases (\(repositories.map { "\($0.name) at \($0.servers.joined(separator: ", "))" }.joined(separator: "; "))): \(error)", cause: error)
        }
    }

    /// Installs `targets` with their dependencies; a target no repository has is named.
    @discardableResult
    package func install(_ targets: [String], flags: TransactionFlags = []) throws -> TransactionSummary {
        let stopwatch = Stopwatch()
        progress.begin("packages: installing \(targets.joined(separator: " "))")
        let summary = try handle.install(targets, flags: flags)
        progress.end("packages: installed", summary: "\(summary.added.count) packages in \(stopwatch.formatted)")
        return summary
    }

    /// Installed packages with their versions, sorted by name.
    package func installed() -> [(name: String, version: String)] {
        handle.installedPackages().map { ($0.name, $0.version) }
    }
}

/// An install scriptlet that exited non-zero.
package struct ScriptletFailure: Sendable, Equatable, CustomStringConvertible {
    package let package: String
    /// What the scriptlets printed just before (the last lines).
    package let output: [String]

    package var description: String {
        "the install scriptlet of \(package) failed" + (output.isEmpty ? "" : ":\n    " + output.joined(separator: "\n    "))
    }
}
