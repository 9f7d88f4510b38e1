import Alpm
import Foundation
import Packages
import SnapshotTree
import SystemSupport

/// A root rast installs packages in (a working copy, a deployment slot, a snapshot) and the
/// paths its pacman.conf names, seen from rast: /etc is the snapshot's etc, /var and /home
/// are the shared @var and @home, everything else is inside the root.
struct PackageRoot {
    /// Where each snapshot keeps its package database when pacman.conf does not say.
    static let defaultDatabasePath = "/usr/share/rast/db"
    static let defaultCacheDirectory = "/var/cache/pacman/pkg"

    /// The root directory libalpm installs into.
    let root: String
    /// The root's /etc on this machine.
    let etc: String
    /// The shared @var and @home; nil reads them inside the root (read-only snapshots that
    /// have no access to the top level).
    let variable: String?
    let home: String?

    init(root: String, etc: String? = nil, layout: Layout?) {
        self.root = root
        self.etc = etc ?? root + "/etc"
        // A layout opened through the mounted /.snapshots has no top level to reach @var through.
        let hasTop = layout.map { $0.top != $0.snapshots } ?? false
        variable = hasTop ? layout?.variable : nil
        home = hasTop ? layout?.home : nil
    }

    /// The path on this machine of `path` in the root.
    func hostPath(_ path: String) -> String {
        var normalized = "/" + path.drop { $0 == "/" }
        while normalized.count > 1, normalized.hasSuffix("/") { normalized.removeLast() }
        func under(_ prefix: String) -> Substring? {
            if normalized == prefix { return "" }
            if normalized.hasPrefix(prefix + "/") { return normalized.dropFirst(prefix.count) }
            return nil
        }
        if let rest = under("/etc") { return etc + rest }
        if let variable, let rest = under("/var") { return variable + rest }
        if let home, let rest = under("/home") { return home + rest }
        return root + (normalized == "/" ? "" : normalized)
    }

    /// The root's pacman.conf (pacman's defaults when it has none), its paths read in the root.
    func pacmanConfig() throws -> PacmanConfig {
        let path = etc + "/pacman.conf"
        guard Files.exists(path) else { return PacmanConfig() }
        return try PacmanConfig.load(path: path, resolve: hostPath)
    }

    /// rast's per-snapshot settings (/etc/rast.conf).
    var snapshotConfig: SnapshotConfig { SnapshotConfig.load(etcDirectory: etc) }

    /// The package database on this machine.
    func databasePath(_ config: PacmanConfig) throws -> String {
        let path = config.databasePath ?? Self.defaultDatabasePath
        let normalized = "/" + path.drop { $0 == "/" }
        if normalized == "/var" || normalized.hasPrefix("/var/") {
            throw UserError("\(etc)/pacman.conf sets DBPath = \(path), which is in the shared /var: every snapshot would share one package database. rastOS keeps it inside each snapshot: set DBPath = \(Self.defaultDatabasePath)/")
        }
        return hostPath(path)
    }

    func cacheDirectories(_ config: PacmanConfig) -> [String] {
        (config.cacheDirectories.isEmpty ? [Self.defaultCacheDirectory] : config.cacheDirectories).map(hostPath)
    }

    /// Every libalpm setting, from pacman.conf. `databasePath` overrides (a scratch copy for dry runs).
    func alpmConfiguration(_ config: PacmanConfig, databasePath: String? = nil, logFile: String? = nil) throws -> AlpmConfiguration {
        let hookDirectories = ["/usr/share/libalpm/hooks"] + (config.hookDirectories.isEmpty ? ["/etc/pacman.d/hooks"] : config.hookDirectories)
        return AlpmConfiguration(
            root: root, databasePath: try databasePath ?? self.databasePath(config),
            cacheDirectories: cacheDirectories(config), hookDirectories: hookDirectories.map(hostPath),
            gpgDirectory: hostPath(config.gpgDirectory ?? "/etc/pacman.d/gnupg"),
            logFile: logFile ?? hostPath(config.logFile ?? "/var/log/pacman.log"),
            architectures: config.effectiveArchitectures, defaultSigLevel: try config.resolvedSigLevel(),
            localFileSigLevel: try config.resolvedLocalFileSigLevel(), remoteFileSigLevel: try config.resolvedRemoteFileSigLevel(),
            checkSpace: config.checkSpace, parallelDownloads: config.parallelDownloads ?? 1,
            disableDownloadTimeout: config.disableDownloadTimeout, ignorePackages: config.ignorePackages,
            noUpgrade: config.noUpgrade, noExtract: config.noExtract)
    }
}

/// A change to the packages of a snapshot that failed: the snapshot (and, for a change that
/// makes a new snapshot, the deployment) stayed as it was.
package struct PackageCommandError: CausedError, CustomStringConvertible, Sendable {
    package let snapshot: Int
    /// The change was to become a new snapshot branched from `snapshot`.
    package let newSnapshot: Bool
    package let reason: String
    /// The error the reason describes.
    package let cause: (any Error)?

    package init(snapshot: Int, newSnapshot: Bool, reason: String, cause: (any Error)? = nil) {
        self.snapshot = snapshot
        self.newSnapshot = newSnapshot
        self.reason = reason
        self.cause = cause
    }

    package var description: String {
        let outcome = newSnapshot
            ? "no snapshot was made; snapshot \(snapshot) and the deployment are unchanged"
            : "snapshot \(snapshot) is unchanged (its working copy was discarded)"
        return "\(reason)\n\(outcome)"
    }
}
