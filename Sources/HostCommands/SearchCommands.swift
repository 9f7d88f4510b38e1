import Alpm
import Foundation
import Packages
import Search
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rast search`: packages (repository databases and installed), /etc and service definitions
/// of a snapshot, ranked by `Search`; and the file lists of installed packages (`--files`).
///
/// Each snapshot has an index, `@.snapshots/rast/search/snapshot-N.index`, brought up to date
/// before every search: a segment per repository database (its SHA-256), one for the installed
/// packages (the entries of the local database), one per file of /etc (size and modification
/// time). Only what changed is read and embedded again; a new snapshot starts from the index
/// of the snapshot that was searched last.
package final class SearchCommands {
    package enum Scope: String, Sendable, CaseIterable {
        case packages, config, services, files

        var kinds: Set<SearchDocument.Kind> {
            switch self {
            case .packages: return [.package]
            case .config: return [.config]
            case .services: return [.service]
            case .files: return []
            }
        }
    }

    package struct Hit: Sendable, Equatable, Encodable {
        package let kind: String
        package let name: String
        package let location: String
        package let text: String
        package let repository: String?
        package let version: String?
        package let installed: String?
        package let score: Float
    }

    package let host: HostSession
    package let environment: [String: String]
    var store: SnapshotStore { host.store }
    var layout: Layout { store.layout }

    package init(host: HostSession, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.host = host
        self.environment = environment
    }

    /// The snapshot a search reads: the one named, else the booted one.
    package func snapshot(_ id: Int?) throws -> Int {
        try host.namedOrCurrentSnapshot(id, noneDeployed: "no snapshot is deployed yet; name one with --snapshot N")
    }

    /// The running system's /etc for the booted snapshot, else the snapshot's etc-N.
    func etcDirectory(_ id: Int) throws -> String {
        if host.live, store.bootedSlot != nil, try store.currentSnapshot() == id { return "/etc" }
        return layout.etc(id)
    }

    func indexPath(_ id: Int) -> String { Self.indexPath(id, layout: layout) }

    static func indexPath(_ id: Int, layout: Layout) -> String { layout.stateDirectory + "/search/snapshot-\(id).index" }

    /// Removes the indexes of deleted snapshots (`rast del` calls it). The index is derived data:
    /// a failure to remove one is logged, never fatal.
    static func removeIndexes(of ids: [Int], layout: Layout) {
        for id in ids {
            let path = indexPath(id, layout: layout)
            if unlink(path) != 0, errno != ENOENT {
                RastLog.logger.warning("search: could not remove \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Indexes whose snapshot no longer exists (deleted by an older rast, or by astOS's `ast`):
    /// removed before a search writes its own.
    func removeOrphanedIndexes() throws {
        let directory = layout.stateDirectory + "/search"
        guard let names = try? FileManagerShim.contents(of: directory) else { return }
        let state = try store.state()
        let orphans = names.compactMap { name -> Int? in
            guard name.hasPrefix("snapshot-"), name.hasSuffix(".index"),
                  let id = Int(name.dropFirst("snapshot-".count).dropLast(".index".count)) else { return nil }
            return state.contains(id) ? nil : id
        }
        Self.removeIndexes(of: orphans, layout: layout)
    }

    /// The engine over snapshot `id`, its index updated first.
    package func engine(_ id: Int, table: EmbeddingTable? = nil) throws -> (engine: SearchEngine, report: SearchIndex.UpdateReport) {
        var clock = Stopwatch()
        let table = try table ?? EmbeddingTable(path: EmbeddingTable.locate(environment: environment))
        RastLog.logger.debug("search: table loaded in \(Self.milliseconds(clock.elapsed))")
        clock = Stopwatch()
        let etc = try etcDirectory(id)
        let packageRoot = PackageRoot(root: layout.root(id), etc: etc, layout: layout)
        var sources: [SearchIndex.Source] = []
        let reader = LazyReader(packageRoot: packageRoot)

        let config = try packageRoot.pacmanConfig()
        let databases = try packageRoot.databasePath(config)
        for repository in config.repositoryConfigs() {
            let file = databases + "/sync/" + repository.name + ".db"
            let fingerprint = Files.exists(file) ? try SHA256.hash(file: file) : "absent"
            sources.append(SearchIndex.Source(key: "repository:" + repository.name, fingerprint: fingerprint) {
                try reader.get().session.handle.syncPackages(repository: repository.name).map { package in
                    SearchDocument.package(name: package.name, description: package.description,
                                           provides: package.provides.map(\.name), groups: package.groups,
                                           repository: repository.name, version: package.version)
                }
            })
        }
        let local = (try? FileManagerShim.contents(of: databases + "/local"))?.sorted() ?? []
        sources.append(SearchIndex.Source(key: "installed", fingerprint: SHA256.hash(local.joined(separator: "\n"))) {
            try reader.get().installedPackages().map { package in
                SearchDocument.package(name: package.name, description: package.description,
                                       provides: package.provides.map(\.name), groups: package.groups,
                                       version: package.version, installedVersion: package.version)
            }
        })
        for file in ConfigChunker.files(under: etc) {
            let path = "/etc/" + file.path
            let onDisk = etc + "/" + file.path
            sources.append(SearchIndex.Source(key: "etc:" + path, fingerprint: file.fingerprint) {
                var documents = ConfigChunker.chunks(ofFile: onDisk, path: path)
                if file.path.hasPrefix("rast/services/"), file.path.hasSuffix(".toml"),
                   let service = ConfigChunker.service(ofFile: onDisk, path: path) {
                    documents.insert(service, at: 0)
                }
                return documents
            })
        }
        RastLog.logger.debug("search: sources of snapshot \(id) fingerprinted in \(Self.milliseconds(clock.elapsed))")
        clock = Stopwatch()
        try removeOrphanedIndexes()
        let path = indexPath(id)
        let seed = layout.stateDirectory + "/search/last"
        let seeds = (try? Files.readString(seed)).map { [$0.trimmingWhitespace] }.map { $0.filter { $0 != path } } ?? []
        let result = try SearchIndex.update(path: path, sources: sources, table: table, seeds: seeds) { RastLog.logger.debug("\($0)") }
        RastLog.logger.debug("search: index of snapshot \(id) (\(result.engine.documents.count) documents) up to date in \(Self.milliseconds(clock.elapsed)): \(result.report.rebuilt.count) segments rebuilt, \(result.report.kept) kept")
        try? Files.writeAtomically(seed, string: path + "\n", mode: 0o600)
        return result
    }

    /// Searches snapshot `id` (default: the booted one). Returns the hits, best first.
    package func search(_ query: String, scopes: Set<Scope>, limit: Int, snapshot id: Int? = nil) throws -> [Hit] {
        let id = try snapshot(id)
        var hits: [Hit] = []
        let kinds = scopes.isEmpty ? Set(SearchDocument.Kind.allCases) : Set(scopes.flatMap(\.kinds))
        if !kinds.isEmpty {
            let engine = try engine(id).engine
            let clock = Stopwatch()
            let results = engine.search(query, kinds: kinds, limit: limit)
            RastLog.logger.debug("search: ranked in \(Self.milliseconds(clock.elapsed))")
            hits = results.map { result in
                let document = result.document
                return Hit(kind: document.kind.label, name: document.name, location: document.location, text: document.text,
                           repository: document.repository.isEmpty ? nil : document.repository,
                           version: document.version.isEmpty ? nil : document.version,
                           installed: document.installedVersion.isEmpty ? nil : document.installedVersion, score: result.score)
            }
        }
        if scopes.contains(.files) || (scopes.isEmpty && query.contains("/")) {
            hits = try searchFiles(query, snapshot: id, limit: limit) + hits
        }
        return Array(hits.prefix(limit))
    }

    /// The files of installed packages whose path ends with or contains `query`: an exact path
    /// first (which package owns it), then by path length.
    func searchFiles(_ query: String, snapshot id: Int, limit: Int) throws -> [Hit] {
        let packageRoot = PackageRoot(root: layout.root(id), etc: try etcDirectory(id), layout: layout)
        let reader = try PackageReader(packageRoot: packageRoot)
        let wanted = query.trimmingWhitespace.lowercased()
        let bare = String(wanted.drop { $0 == "/" })
        var found: [(rank: Int, hit: Hit)] = []
        for package in reader.installedPackages(details: true) {
            for file in package.files ?? [] where !file.path.hasSuffix("/") {
                let path = file.path.lowercased()
                let rank: Int
                if path == bare {
                    rank = 0
                } else if path.hasSuffix("/" + bare) {
                    rank = 1
                } else if path.contains(bare) {
                    rank = 2
                } else {
                    continue
                }
                let text = rank == 0 ? "/\(file.path) is owned by \(package.name) \(package.version)" : "\(package.name) \(package.version) owns /\(file.path)"
                found.append((rank * 10_000 + path.count, Hit(kind: "file", name: package.name, location: "/" + file.path, text: text,
                                                                 repository: nil, version: package.version, installed: package.version,
                                                                 score: Float(3 - rank))))
            }
        }
        return found.sorted { $0.rank != $1.rank ? $0.rank < $1.rank : $0.hit.location < $1.hit.location }.prefix(limit).map(\.hit)
    }

    static func milliseconds(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }

    /// The text `rast search` prints.
    package static func format(_ hits: [Hit]) -> [String] {
        hits.map { hit in
            switch hit.kind {
            case "package":
                var line = "\(hit.repository ?? "local")/\(hit.name) \(hit.version ?? hit.installed ?? "")"
                if let installed = hit.installed { line += installed == hit.version || hit.version == nil ? " [installed]" : " [installed: \(installed)]" }
                return line + "\n    " + hit.text
            case "file":
                return "\(hit.location)  (\(hit.name) \(hit.version ?? ""))"
            default:
                return "\(hit.kind) \(hit.location)\n    " + hit.text
            }
        }
    }
}

/// A package reader opened on first use (a search whose databases did not change needs none).
final class LazyReader {
    let packageRoot: PackageRoot
    private var reader: PackageReader?

    init(packageRoot: PackageRoot) { self.packageRoot = packageRoot }

    func get() throws -> PackageReader {
        if let reader { return reader }
        let opened = try PackageReader(packageRoot: packageRoot)
        reader = opened
        return opened
    }
}

extension String {
    var trimmingWhitespace: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}

extension SearchCommands {
    /// What `rast "SENTENCE"` means, resolved against snapshot `id` (default: the booted one).
    package func plan(_ sentence: String, snapshot id: Int? = nil) throws -> Intent.Plan {
        let engine = try engine(try snapshot(id)).engine
        return Intent.plan(sentence, resolver: IndexResolver(engine: engine))
    }
}
