import Alpm
import Foundation
import Packages
import SnapshotTree
import SystemSupport

/// A pacman-style operation: `-S`, `-R` or `-Q` with its modifier letters and targets.
package struct PacmanOperation: Sendable, Equatable {
    package enum Kind: Character, Sendable {
        case sync = "S", remove = "R", query = "Q"
    }

    package let kind: Kind
    /// The letters after the operation ("yu" for -Syu).
    package let modifiers: String
    package let targets: [String]
    /// `--needed`: skip targets that are up to date.
    package let needed: Bool

    static let allowed: [Kind: String] = [.sync: "yusiq", .remove: "nsc", .query: "isdteqlm"]

    /// The modifier letters an operation takes ("yusiq" for -S).
    package static func allowedModifiers(_ kind: Kind) -> String? { allowed[kind] }

    /// Parses "-Syu" and the targets; unknown or contradictory letters are refused.
    package init(_ flag: String, targets: [String], needed: Bool = false) throws {
        guard flag.hasPrefix("-"), !flag.hasPrefix("--"), flag.count >= 2,
              let kind = Kind(rawValue: flag[flag.index(after: flag.startIndex)]) else {
            throw UserError("'\(flag)' is not a pacman operation rast knows (-S, -R, -Q with their letters)")
        }
        let modifiers = String(flag.dropFirst(2))
        let allowed = Self.allowed[kind] ?? ""
        for letter in modifiers where !allowed.contains(letter) {
            throw UserError("rast \(flag): '-\(kind.rawValue)\(letter)' is not supported; -\(kind.rawValue) takes \(allowed.map { "-\(kind.rawValue)\($0)" }.joined(separator: ", "))")
        }
        self.kind = kind
        self.modifiers = modifiers
        self.targets = targets
        self.needed = needed
        if kind == .sync, has("s") || has("i") {
            if has("s"), has("i") { throw UserError("rast \(flag): search (-Ss) and information (-Si) are separate operations") }
            if has("y") || has("u") {
                throw UserError("rast \(flag): -Ss and -Si only read; refresh or upgrade with rast -Sy or rast -Syu first")
            }
        }
        if kind == .sync, has("q"), !has("s") { throw UserError("rast \(flag): -q goes with -Ss") }
        if kind == .sync, !has("s"), !has("i"), !has("u"), !has("y"), targets.isEmpty {
            throw UserError("rast -S: name the packages to install (rast -S hello), or upgrade with rast -Syu")
        }
        if kind == .remove, targets.isEmpty { throw UserError("rast -R: name the packages to remove") }
    }

    /// Only reads (-Q..., -Ss, -Si): no root needed, nothing changes.
    package var isQuery: Bool { kind == .query || (kind == .sync && (has("s") || has("i"))) }

    package func has(_ letter: Character) -> Bool { modifiers.contains(letter) }
    package func count(_ letter: Character) -> Int { modifiers.filter { $0 == letter }.count }

    /// "rast -Syu hello", as the new snapshot's description.
    package var commandLine: String {
        (["rast", "-\(kind.rawValue)\(modifiers)"] + (needed ? ["--needed"] : []) + targets).joined(separator: " ")
    }
}

extension PackageCommands {
    // MARK: pacman-style operations on the booted snapshot

    /// Runs a pacman-style operation. Changes (-S, -Syu, -R, ...) become a new snapshot
    /// branched from the booted one, deployed when the transaction succeeded; queries read the
    /// booted snapshot. Returns false when a query matched nothing (pacman exits 1 then).
    @discardableResult
    package func pacman(_ operation: PacmanOperation) throws -> Bool {
        switch operation.kind {
        case .sync:
            if operation.has("s") { return try searchRepositories(operation.targets, quiet: operation.has("q")) }
            if operation.has("i") { return try repositoryInfo(operation.targets) }
            try pacmanSync(operation)
            return true
        case .remove:
            try pacmanRemove(operation)
            return true
        case .query:
            return try query(operation)
        }
    }

    private func pacmanSync(_ operation: PacmanOperation) throws {
        let current = try currentSnapshot()
        let refresh = operation.count("y")
        if operation.targets.isEmpty, !operation.has("u") {
            // -Sy alone refreshes the booted snapshot's databases; it changes no package.
            try self.refresh(current)
            return
        }
        var summary: TransactionSummary?
        let id = try changeAsNewSnapshot(from: current, description: operation.commandLine) { workspace in
            if refresh > 0 {
                try workspace.session.refresh(force: refresh > 1)
            } else {
            }
            let result = try install(operation.targets, in: workspace, upgradeAll: operation.has("u"),
                                     flags: operation.needed ? [.needed] : [])
            summary = result
            return !result.isEmpty
        }
        try deployNew(id, from: current, summary: summary)
    }

    private func pacmanRemove(_ operation: PacmanOperation) throws {
        let current = try currentSnapshot()
        var flags: TransactionFlags = []
        if operation.has("n") { flags.insert(.noSave) }
        if operation.has("s") { flags.insert(.recurse) }
        if operation.count("s") > 1 { flags.insert(.recurseAll) }
        if operation.has("c") { flags.insert(.cascade) }
        var summary: TransactionSummary?
        let id = try changeAsNewSnapshot(from: current, description: operation.commandLine) { workspace in
            let result = try workspace.session.run(PackageRequest(remove: operation.targets, flags: flags))
            summary = result
            return !result.isEmpty
        }
        try deployNew(id, from: current, summary: summary)
    }

    /// Deploys a snapshot a pacman-style change made, or says that nothing needed changing.
    func deployNew(_ id: Int?, from current: Int, summary: TransactionSummary?) throws {
        guard let id else {
            output("nothing to do; no snapshot was made")
            return
        }
        report(summary, in: "snapshot \(id)")
        let pending = try store.nextSnapshot()
        do {
            try store.deploy(id)
        } catch {
            throw UserError("snapshot \(id) was made from \(current) but deploying it failed (`rast deploy \(id)` retries): \(error)", cause: error)
        }
        output("snapshot \(id) (from \(current)) is deployed and boots next; snapshot \(current) is unchanged (`rast rollback` keeps booting it)")
        if let pending, pending != current, pending != id {
            // Changes branch from the booted snapshot: a deployment still waiting for its boot is replaced.
            output("note: snapshot \(pending) was to boot next and is replaced by \(id), which does not have its changes (it stays in the tree: `rast deploy \(pending)`)")
        }
    }

    // MARK: Queries

    /// `-Q`, `-Qi`, `-Qs`, `-Qdt`, `-Qe`, `-Qq`, `-Ql`, `-Qm` on the booted snapshot.
    func query(_ operation: PacmanOperation) throws -> Bool {
        let current = try currentSnapshot()
        let reader = try self.reader(current)
        let session = reader.session
        let details = operation.has("i") || operation.has("l") || operation.has("t")
        var packages: [AlpmPackage]
        var notFound: [String] = []
        if operation.has("s") {
            packages = try session.handle.searchInstalled(operation.targets)
            if details { packages = packages.compactMap { session.handle.installedPackage(named: $0.name) } }
        } else if operation.targets.isEmpty {
            packages = session.installedPackages(details: details)
        } else {
            packages = []
            for target in operation.targets {
                if let package = session.handle.installedPackage(satisfying: target) {
                    packages.append(package)
                } else {
                    notFound.append(target)
                }
            }
        }
        if operation.has("d") { packages = packages.filter { $0.reason == .dependency } }
        if operation.has("e") { packages = packages.filter { $0.reason == .explicit } }
        if operation.has("t") {
            packages = packages.filter { ($0.requiredBy ?? []).isEmpty && (operation.count("t") < 2 || ($0.optionalFor ?? []).isEmpty) }
        }
        if operation.has("m") {
            let index = try session.repositoryIndex().names
            packages = packages.filter { !index.contains($0.name) }
        }
        for package in packages {
            if operation.has("i") {
                output(PackageFormatter.info(package))
            } else if operation.has("l") {
                for file in package.files ?? [] { output("\(package.name) /\(file.path)") }
            } else if operation.has("q") {
                output(package.name)
            } else if operation.has("s") {
                output("local/\(package.nameAndVersion)\n    \(package.description)")
            } else {
                output(package.nameAndVersion)
            }
        }
        if !notFound.isEmpty {
            throw UserError(notFound.map { "package '\($0)' was not found in snapshot \(current)" }.joined(separator: "\n"))
        }
        return !packages.isEmpty
    }

    /// `-Ss TERM...`: the booted snapshot's repository databases (as last refreshed).
    func searchRepositories(_ terms: [String], quiet: Bool) throws -> Bool {
        let reader = try self.reader(try currentSnapshot())
        let installed = Dictionary(reader.session.installedPackages().map { ($0.name, $0.version) }, uniquingKeysWith: { a, _ in a })
        let found = try reader.session.handle.search(terms)
        for package in found {
            if quiet {
                output(package.name)
                continue
            }
            var line = "\(package.repository ?? "?")/\(package.nameAndVersion)"
            if !package.groups.isEmpty { line += " (\(package.groups.joined(separator: " ")))" }
            if let version = installed[package.name] { line += version == package.version ? " [installed]" : " [installed: \(version)]" }
            output(line + "\n    " + package.description)
        }
        return !found.isEmpty
    }

    /// `-Si PKG...`.
    func repositoryInfo(_ names: [String]) throws -> Bool {
        let reader = try self.reader(try currentSnapshot())
        var missing: [String] = []
        var shown = false
        let all = try reader.session.handle.syncPackages()
        for name in names.isEmpty ? all.map(\.name) : names {
            let repository = name.contains("/") ? String(name.prefix { $0 != "/" }) : nil
            let bare = name.contains("/") ? String(name.drop { $0 != "/" }.dropFirst()) : name
            if let package = try reader.session.handle.syncPackage(named: bare, repository: repository) {
                output(PackageFormatter.info(package))
                shown = true
            } else {
                missing.append(name)
            }
        }
        if !missing.isEmpty {
            throw UserError(missing.map { "package '\($0)' was not found in the repositories" }.joined(separator: "\n"))
        }
        return shown
    }

    // MARK: rast pkg

    /// `rast pkg install --check-conflicts`: runs the whole transaction (dependencies, package
    /// and file conflicts, signatures, scriptlets) in a throw-away copy of the booted snapshot
    /// and reports what it would do; nothing is kept.
    package func checkInstall(_ targets: [String]) throws {
        let current = try currentSnapshot()
        let (id, root) = try store.prepareNewSnapshot(from: current)
        defer { try? store.discardWorkingCopy(id) }
        do {
            let workspace = try PackageWorkspace(packageRoot: PackageRoot(root: root, layout: layout),
                                                 binds: [(layout.variable, "/var"), (layout.home, "/home")], progress: progress)
            defer { workspace.close() }
            let summary = try install(targets, in: workspace)
            for line in summary.lines { output("would \(line)") }
        } catch let error as InterruptedError {
            throw error
        } catch {
            throw UserError("\(targets.joined(separator: " ")) cannot be installed in snapshot \(current): \(error)\nnothing was changed", cause: error)
        }
        output("no conflicts: \(targets.joined(separator: " ")) can be installed in snapshot \(current); nothing was changed")
    }

    /// `rast pkg update --test`: refreshes copies of the booted snapshot's databases and prints
    /// what `-Syu` would change. Nothing in the snapshot (or anywhere else) is written.
    package func updateTest() throws {
        let current = try currentSnapshot()
        let packageRoot = PackageRoot(root: layout.root(current), etc: layout.etc(current), layout: layout)
        let config = try packageRoot.pacmanConfig()
        let scratch = try ScratchDatabase(copying: try packageRoot.databasePath(config))
        let work = try TemporaryDirectory(prefix: "rast-update-test")
        defer { try? work.remove() }
        var configuration = try packageRoot.alpmConfiguration(config, databasePath: scratch.path, logFile: work.appending("pacman.log"))
        // gpg writes into its home directory even to verify: give it a copy.
        let gnupg = work.appending("gnupg")
        try Files.createDirectory(gnupg, mode: 0o700)
        if Files.isDirectory(configuration.gpgDirectory) { try TreeCopy.copyContents(of: configuration.gpgDirectory, into: gnupg) }
        configuration.gpgDirectory = gnupg
        defer { try? PacmanKeyring(directory: gnupg).stopAgent() }
        let session = try PackageSession(configuration: configuration, repositories: config.repositoryConfigs(), progress: progress)
        defer { try? session.handle.close() }
        try session.refresh()
        let summary = try session.run(PackageRequest(upgradeAll: true), dryRun: true)
        for line in summary.lines { output("would \(line)") }
        if summary.isEmpty { output("snapshot \(current) is up to date") }
        output("nothing was changed (test run)")
    }

    /// `rast pkg clean --unused-deps`: removes dependencies nothing needs (`pacman -Qdtq`, with
    /// what only they needed) in a new snapshot that is deployed.
    package func cleanUnusedDependencies() throws {
        let current = try currentSnapshot()
        var summary: TransactionSummary?
        let id = try changeAsNewSnapshot(from: current, description: "rast pkg clean --unused-deps") { workspace in
            let unused = workspace.session.unusedDependencies()
            guard !unused.isEmpty else { return false }
            let result = try workspace.session.run(PackageRequest(remove: unused, flags: [.recurse, .noSave]))
            summary = result
            return !result.isEmpty
        }
        if id == nil {
            output("no unused dependencies in snapshot \(current)")
            return
        }
        try deployNew(id, from: current, summary: summary)
    }

    /// `rast pkg fix-keys`: a new keyring for snapshot `id` (default: the booted one), populated
    /// from its keyring packages (`pacman-key --init; pacman-key --populate`).
    package func fixKeys(_ id: Int?) throws {
        let target = try id ?? currentSnapshot()
        var names: [String] = []
        try changeInPlace(target, command: "pkg fix-keys") { workspace in
            let keyring = PacmanKeyring(directory: workspace.session.handle.configuration.gpgDirectory)
            try keyring.reinitialize()
            names = try keyring.populate(from: workspace.packageRoot.hostPath("/usr/share/pacman/keyrings"))
            return true
        }
        output("snapshot \(target): new keyring with the keys of \(names.joined(separator: ", "))")
    }

    /// `rast pkg bootstrap ROOT PKG...`: installs packages into a directory that is not part of
    /// a snapshot tree (what pacstrap does), with the repositories of `configFile`.
    package static func bootstrap(root: String, packages: [String], configFile: String, cacheDirectory: String?,
                                 progress: ProgressReporter, output: (String) -> Void) throws {
        try Privileges.requireRoot(for: "rast pkg bootstrap")
        try Files.createDirectory(root)
        let packageRoot = PackageRoot(root: root, layout: nil)
        let config = try PacmanConfig.load(path: configFile)
        var configuration = try packageRoot.alpmConfiguration(config)
        if let cacheDirectory { configuration.cacheDirectories = [cacheDirectory] }
        let mounts = try ChrootMounts(root: root)
        defer { mounts.release() }
        let session = try PackageSession(configuration: configuration, repositories: config.repositoryConfigs(), progress: progress)
        defer { try? session.handle.close() }
        session.failOnScriptletErrors = true
        try session.refresh()
        let summary = try session.run(PackageRequest(install: packages))
        output("\(root): \(summary.added.count) packages installed")
    }
}

/// pacman's `-Qi`/`-Si` layout.
enum PackageFormatter {
    static func info(_ package: AlpmPackage) -> String {
        func list(_ values: [String]) -> String { values.isEmpty ? "None" : values.joined(separator: "  ") }
        func date(_ seconds: Int64?) -> String {
            guard let seconds, seconds > 0 else { return "None" }
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.dateFormat = "EEE dd MMM yyyy HH:mm:ss zzz"
            return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        }
        var fields: [(String, String)] = []
        if package.origin == .syncDatabase { fields.append(("Repository", package.repository ?? "?")) }
        fields += [
            ("Name", package.name), ("Version", package.version), ("Description", package.description),
            ("Architecture", package.architecture ?? "None"), ("URL", package.url ?? "None"),
            ("Licenses", list(package.licenses)), ("Groups", list(package.groups)),
            ("Provides", list(package.provides.map(\.description))), ("Depends On", list(package.depends.map(\.description))),
            ("Optional Deps", list(package.optionalDepends.map(\.description))),
        ]
        if package.origin == .localDatabase {
            fields.append(("Required By", list(package.requiredBy ?? [])))
            fields.append(("Optional For", list(package.optionalFor ?? [])))
        }
        fields += [("Conflicts With", list(package.conflicts.map(\.description))), ("Replaces", list(package.replaces.map(\.description)))]
        if package.origin == .syncDatabase { fields.append(("Download Size", ByteCount.format(package.downloadSize))) }
        fields += [("Installed Size", ByteCount.format(package.installedSize)), ("Packager", package.packager ?? "Unknown Packager"),
                   ("Build Date", date(package.buildDate))]
        if package.origin == .localDatabase {
            fields.append(("Install Date", date(package.installDate)))
            fields.append(("Install Reason", package.reason == .dependency ? "Installed as a dependency for another package" : "Explicitly installed"))
            fields.append(("Install Script", package.hasInstallScript ? "Yes" : "No"))
        }
        return fields.map { $0.0.padding(toLength: 16, withPad: " ", startingAt: 0) + ": " + $0.1 }.joined(separator: "\n") + "\n"
    }
}
