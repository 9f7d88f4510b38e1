import Alpm
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What one libalpm transaction should do: pacman's -S, -U, -R and -Su in one description.
package struct PackageRequest: Sendable, Equatable {
    /// Names from the repositories (`name`, `repo/name`, `name>=1.0`, provisions, groups).
    package var install: [String]
    /// Package files (`pacman -U`).
    package var files: [String]
    /// Installed packages to remove. Not combined with additions.
    package var remove: [String]
    /// Add every available upgrade (`-Su`).
    package var upgradeAll: Bool
    package var flags: TransactionFlags

    package init(install: [String] = [], files: [String] = [], remove: [String] = [], upgradeAll: Bool = false,
                flags: TransactionFlags = []) {
        self.install = install
        self.files = files
        self.remove = remove
        self.upgradeAll = upgradeAll
        self.flags = flags
    }

    package var isEmpty: Bool { install.isEmpty && files.isEmpty && remove.isEmpty && !upgradeAll }

    /// "install hello, upgrade everything", for messages.
    package var label: String {
        var parts: [String] = []
        if !install.isEmpty || !files.isEmpty {
            parts.append("install " + (install + files.map { ($0 as NSString).lastPathComponent }).joined(separator: " "))
        }
        if !remove.isEmpty { parts.append("remove " + remove.joined(separator: " ")) }
        if upgradeAll { parts.append("upgrade every package") }
        return parts.joined(separator: ", ")
    }
}

/// A transaction that failed: what was asked, libalpm's error (missing dependencies,
/// conflicts, file conflicts and invalid packages, each by name) or the scriptlets that failed.
package enum PackageTransactionError: CausedError, CustomStringConvertible, Sendable {
    case alpm(request: String, error: AlpmError)
    case scriptlets(request: String, failures: [ScriptletFailure])
    case notFound(request: String, targets: [String], hint: String?)

    /// libalpm's error, when the transaction failed there.
    package var cause: (any Error)? {
        if case .alpm(_, let error) = self { return error }
        return nil
    }

    package var description: String {
        switch self {
        case .alpm(let request, let error):
            return "\(request) failed: \(error)"
        case .scriptlets(let request, let failures):
            return "\(request) failed: " + failures.map(\.description).joined(separator: "; ")
        case .notFound(let request, let targets, let hint):
            return "\(request) failed: no repository has \(targets.joined(separator: ", "))" + (hint.map { " (\($0))" } ?? "")
        }
    }

    /// The libalpm error behind it, if any.
    package var alpmError: AlpmError? {
        if case .alpm(_, let error) = self { return error }
        return nil
    }
}

extension PackageSession {
    /// Resolves `request` (dependencies, conflicts) and, unless `dryRun`, downloads, checks and
    /// applies it. Returns what the transaction adds and removes (empty: nothing to do).
    @discardableResult
    package func run(_ request: PackageRequest, dryRun: Bool = false, quiet: Bool = false) throws -> TransactionSummary {
        let label = request.label
        let transaction: AlpmTransaction
        do {
            transaction = try handle.transaction(flags: request.flags)
        } catch let error as AlpmError {
            throw PackageTransactionError.alpm(request: label, error: error)
        }
        do {
            for target in request.install { try transaction.addSyncTarget(target) }
            for file in request.files { try transaction.addPackageFile(file) }
            for name in request.remove { try transaction.removePackage(named: name) }
            if request.upgradeAll { try transaction.sysupgrade() }
            try transaction.prepare()
            let summary = transaction.summary
            if !dryRun, !summary.isEmpty {
                let stopwatch = Stopwatch()
                if !quiet { progress.begin("packages: " + describe(summary)) }
                scriptletFailures = []
                recentScriptletOutput = []
                try transaction.commit()
                if failOnScriptletErrors, !scriptletFailures.isEmpty {
                    throw PackageTransactionError.scriptlets(request: label, failures: scriptletFailures)
                }
                if !quiet { progress.end("packages", summary: "\(summary.added.count) installed or upgraded, \(summary.removed.count) removed in \(stopwatch.formatted)") }
            }
            try transaction.release()
            return summary
        } catch let error as AlpmError {
            try? transaction.release()
            throw PackageTransactionError.alpm(request: label, error: relativeToRoot(error))
        } catch {
            try? transaction.release()
            throw error
        }
    }

    /// libalpm names files by their path on this machine (inside a working copy); a person
    /// wants the path in the system: /usr/bin/hello.
    func relativeToRoot(_ error: AlpmError) -> AlpmError {
        var root = handle.configuration.root
        if !root.hasSuffix("/") { root += "/" }
        func strip(_ text: String) -> String { text.replacingOccurrences(of: root, with: "/") }
        let problems = error.problems.map { problem -> AlpmError.Problem in
            guard case .fileConflict(var conflict) = problem else { return problem }
            conflict.path = strip(conflict.path)
            return .fileConflict(conflict)
        }
        return AlpmError(function: error.function, subject: error.subject.map(strip), code: error.code,
                         problems: problems, details: error.details.map(strip))
    }

    /// "install hello 1.0-1, upgrade libhello 1.0-1 -> 1.1-1, remove clash 1.0-1".
    func describe(_ summary: TransactionSummary) -> String {
        summary.lines.joined(separator: ", ")
    }

    /// Downloads the databases of repositories that have none yet (a repository just added to
    /// pacman.conf), leaving the others as they are, as `pacman -S` would find them. Call it
    /// before opening the session that uses them: libalpm decides whether a database exists
    /// when it is registered.
    package static func downloadMissingDatabases(configuration: AlpmConfiguration, repositories: [RepositoryConfig],
                                                progress: ProgressReporter) throws {
        let syncDirectory = configuration.databasePath + "/sync"
        let missing = repositories.filter { !Files.exists(syncDirectory + "/" + $0.name + ".db") }
        guard !missing.isEmpty else { return }
        let helper = try PackageSession(configuration: configuration, repositories: missing, progress: progress)
        try helper.refresh()
        try helper.handle.close()
    }

    /// Installed packages with every detail (`pacman -Qi`).
    package func installedPackages(details: Bool = false) -> [AlpmPackage] {
        handle.installedPackages(details: details)
    }

    /// Where a repository package of this name comes from, or nil.
    package func repositoryPackage(_ name: String) -> AlpmPackage? {
        (try? handle.syncPackage(named: name)) ?? nil
    }

    /// Whether some repository has a package named `dependency`'s name or providing it.
    package func repositoriesProvide(_ dependency: String) -> Bool {
        let name = AlpmDependency(parsing: dependency)?.name ?? dependency
        guard let packages = try? handle.syncPackages() else { return false }
        return packages.contains { $0.name == name || $0.provides.contains { $0.name == name } }
    }

    /// Whether an installed package is named `dependency`'s name or provides it.
    package func installedProvides(_ dependency: String) -> Bool {
        let name = AlpmDependency(parsing: dependency)?.name ?? dependency
        return handle.installedPackages().contains { $0.name == name || $0.provides.contains { $0.name == name } }
    }

    /// Installed dependencies nothing needs any more (`pacman -Qdtq`).
    package func unusedDependencies() -> [String] {
        handle.orphans().map(\.name)
    }
}

/// A package database that libalpm may lock and refresh while the real one stays untouched:
/// `local` points at the real installed-package database, `sync` is a copy. For dry runs on
/// read-only snapshots.
package final class ScratchDatabase {
    package let path: String
    private let directory: TemporaryDirectory

    package init(copying databasePath: String) throws {
        directory = try TemporaryDirectory(prefix: "rast-dbpath")
        path = directory.path
        let local = databasePath + "/local"
        if Files.exists(local) {
            try SystemError.check("symlink", path: path + "/local") { symlink(local, path + "/local") }
        }
        try Files.createDirectory(path + "/sync")
        if Files.isDirectory(databasePath + "/sync") {
            try TreeCopy.copyContents(of: databasePath + "/sync", into: path + "/sync")
        }
    }

    deinit { try? directory.remove() }
}

/// The package cache (pacman's CacheDir, on rastOS the shared /var/cache/pacman/pkg): every
/// package file any snapshot installed, downloaded or built.
package enum PackageCache {
    /// Copies `file` into `directory` (atomically; its .sig too) and returns the new path.
    package static func store(_ file: String, in directory: String) throws -> String {
        try Files.createDirectory(directory)
        let target = directory + "/" + (file as NSString).lastPathComponent
        if target != file {
            try copyFileAtomically(file, to: target)
            if Files.exists(file + ".sig") { try copyFileAtomically(file + ".sig", to: target + ".sig") }
        }
        return target
    }

    /// The cached file of package `name` at `version` (`NAME-VERSION-ARCH.pkg.tar.*`), if any.
    package static func find(name: String, version: String, in directories: [String]) -> String? {
        let prefix = name + "-" + version + "-"
        for directory in directories {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for file in names.sorted() where file.hasPrefix(prefix) && !file.hasSuffix(".sig") && !file.hasSuffix(".part") {
                // What follows the version is the architecture (no '-') and the extension.
                let rest = file.dropFirst(prefix.count)
                if let dot = rest.firstIndex(of: "."), !rest[..<dot].contains("-"), rest[dot...].hasPrefix(".pkg.tar") {
                    return directory + "/" + file
                }
            }
        }
        return nil
    }
}

extension PackageSession {
    /// Names every repository package has or provides, and the groups, for deciding which
    /// targets the repositories can satisfy without asking per target.
    package func repositoryIndex() throws -> (names: Set<String>, groups: Set<String>) {
        var names = Set<String>()
        var groups = Set<String>()
        let packages: [AlpmPackage]
        do {
            packages = try handle.syncPackages()
        } catch let error as AlpmError {
            throw PackageTransactionError.alpm(request: "reading the repository databases", error: error)
        }
        for package in packages {
            names.insert(package.name)
            for provision in package.provides { names.insert(provision.name) }
            for group in package.groups { groups.insert(group) }
        }
        return (names, groups)
    }

    /// Names every installed package has or provides.
    package func installedIndex() -> Set<String> {
        var names = Set<String>()
        for package in handle.installedPackages() {
            names.insert(package.name)
            for provision in package.provides { names.insert(provision.name) }
        }
        return names
    }

    /// Records installed packages as dependencies (`pacman -D --asdeps`): a database-only
    /// reinstall of the same files with every reason set to "dependency".
    package func markAsDependencies(install: [String], files: [String]) throws {
        guard !install.isEmpty || !files.isEmpty else { return }
        let request = PackageRequest(install: install, files: files, flags: [.dbOnly, .noScriptlet, .allDependencies])
        try run(request, quiet: true)
    }
}
