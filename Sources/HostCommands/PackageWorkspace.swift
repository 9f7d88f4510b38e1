import Alpm
import Foundation
import Packages
import SnapshotTree
import SystemSupport

/// libalpm opened on a writable root (a working copy or the running deployment) with what
/// install scriptlets need mounted: /proc, /sys, /dev, the shared /var and /home. Databases of
/// repositories that have none yet are downloaded first.
/// `close()` releases the handle and the mounts; it runs before the copy is committed.
final class PackageWorkspace {
    let packageRoot: PackageRoot
    let config: PacmanConfig
    let session: PackageSession
    private var mounts: ChrootMounts?

    init(packageRoot: PackageRoot, binds: [(source: String, target: String)], progress: ProgressReporter) throws {
        self.packageRoot = packageRoot
        config = try packageRoot.pacmanConfig()
        for warning in config.warnings { progress.note("warning: \(warning)") }
        let configuration = try packageRoot.alpmConfiguration(config)
        let mounts = try ChrootMounts(root: packageRoot.root, binds: binds)
        do {
            try PackageSession.downloadMissingDatabases(configuration: configuration, repositories: config.repositoryConfigs(), progress: progress)
            session = try PackageSession(configuration: configuration, repositories: config.repositoryConfigs(), progress: progress)
        } catch {
            mounts.release()
            throw error
        }
        session.failOnScriptletErrors = true
        self.mounts = mounts
    }

    var cacheDirectories: [String] { packageRoot.cacheDirectories(config) }

    func close() {
        try? session.handle.close()
        // A signature check may have started a gpg-agent in the root's keyring.
        if Files.isDirectory(session.handle.configuration.gpgDirectory) {
            try? PacmanKeyring(directory: session.handle.configuration.gpgDirectory).stopAgent()
        }
        mounts?.release()
        mounts = nil
    }

    deinit { close() }
}

/// libalpm on a snapshot for queries: nothing is written (no transaction is ever opened,
/// databases are not refreshed, signatures were checked when the databases were downloaded).
final class PackageReader {
    let packageRoot: PackageRoot
    let session: PackageSession
    private let scratch: ScratchDatabase?

    init(packageRoot: PackageRoot) throws {
        self.packageRoot = packageRoot
        let config = try packageRoot.pacmanConfig()
        var databasePath = try packageRoot.databasePath(config)
        // A root without a package database reads as one with no packages.
        if !Files.exists(databasePath + "/local") {
            let empty = try ScratchDatabase(copying: databasePath)
            scratch = empty
            databasePath = empty.path
        } else {
            scratch = nil
        }
        var configuration = try packageRoot.alpmConfiguration(config, databasePath: databasePath, logFile: "/dev/null")
        configuration.cacheDirectories = []
        configuration.gpgDirectory = "/nonexistent/rast-read-only"
        let repositories = config.repositoryConfigs().map { RepositoryConfig(name: $0.name, servers: $0.servers, sigLevel: ["Never"], usage: $0.usage) }
        session = try PackageSession(configuration: configuration, repositories: repositories, progress: SilentProgress())
    }

    /// Installed packages, sorted by name.
    func installedPackages(details: Bool = false) -> [AlpmPackage] {
        withExtendedLifetime(self) { session.installedPackages(details: details) }
    }
}
