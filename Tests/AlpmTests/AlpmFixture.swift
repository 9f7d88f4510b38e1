import Alpm
import Dispatch
import Foundation
import Packages
import Synchronization
import SystemSupport
import TestSupport

/// The fixture packages, built with makepkg once per test process (on first use) into a
/// pool, plus a repository `fixture` holding every 1.0 package (hello 1.1 stays in the pool
/// for the upgrade test). Removed when the process exits.
struct BuiltFixture: Sendable {
    let base: String
    let pool: String
    let repository: LocalRepository

    /// The package file makepkg built for `spec`.
    func file(_ spec: PKGBUILDSpec) -> String { pool + "/" + spec.packageFileName }

    static func shared() throws -> BuiltFixture { try cached.get() }

    private static let cached: Result<BuiltFixture, any Error> = Result { try build() }

    private static func build() throws -> BuiltFixture {
        try Require.root()
        try Require.programs("makepkg", "runuser", "useradd", "fakeroot", "bsdtar", "repo-add", "pacman")
        let stopwatch = Date()
        let base = try TemporaryDirectory.forTestProcess(prefix: "rast-alpm-fixture")
        let pool = base.appending("pool")
        let specs = PKGBUILDFixtures.all
        let directories = try specs.map { try $0.write(in: base.appending("pkgbuilds")) }
        let makepkg = Makepkg(jobs: 2, logDirectory: base.appending("logs"))
        // Two builds at a time (two cores); each one is mostly fakeroot and zstd.
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: directories.count) { index in
            do {
                _ = try makepkg.build(directories[index], into: pool)
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        let errors = failures.withLock { $0 }
        if !errors.isEmpty {
            throw UserError("building the libalpm test fixture failed:\n" + errors.joined(separator: "\n"))
        }
        let repository = try LocalRepository(name: "fixture", directory: base.appending("repo"))
        let fixture = BuiltFixture(base: base.path, pool: pool, repository: repository)
        try repository.add(specs.filter { !($0.name == "hello" && $0.version == "1.1") }.map(fixture.file))
        let seconds = String(format: "%.1f", Date().timeIntervalSince(stopwatch))
        print("fixture: built \(specs.count) packages with makepkg in \(seconds) s into \(pool)")
        return fixture
    }
}

/// One test's world: a fresh root (with a static busybox as /bin/sh), a package database
/// outside it (as rast keeps it inside a snapshot), a repository served over HTTP on
/// 127.0.0.1, and an `AlpmHandle` with every path inside the scratch directory.
final class AlpmWorld {
    let fixture: BuiltFixture
    let scratch: Scratch
    let root: String
    let databasePath: String
    let server: HTTPServer
    let repositoryName: String
    let handle: AlpmHandle
    let pacman: RealPacman
    var events: [AlpmEvent] = []
    var progress: [AlpmProgress] = []
    var downloads: [AlpmDownloadEvent] = []
    var logLines: [(AlpmLogLevel, String)] = []

    /// `repository` defaults to the shared fixture repository.
    init(repository: LocalRepository? = nil, sigLevel: SigLevel = .never) throws {
        fixture = try BuiltFixture.shared()
        scratch = try Scratch("rast-alpm")
        root = scratch.appending("root")
        try TargetRoot.create(root)
        databasePath = scratch.appending("snapshot/usr/share/rast/db")
        let served = repository ?? fixture.repository
        repositoryName = served.name
        server = try HTTPServer(root: served.directory)
        let configuration = AlpmConfiguration(
            root: root, databasePath: databasePath, cacheDirectories: [scratch.appending("cache")],
            hookDirectories: [scratch.appending("hooks")], gpgDirectory: scratch.appending("gnupg"),
            logFile: scratch.appending("log/alpm.log"), architectures: ["x86_64"], defaultSigLevel: sigLevel,
            localFileSigLevel: .never, remoteFileSigLevel: .never)
        handle = try AlpmHandle(configuration)
        pacman = try RealPacman(root: root, databasePath: databasePath, scratch: scratch.path,
                                repositories: [(served.name, server.baseURL)])
        handle.eventHandler = { [unowned self] in events.append($0) }
        handle.progressHandler = { [unowned self] in progress.append($0) }
        handle.downloadHandler = { [unowned self] in downloads.append($0) }
        handle.logHandler = { [unowned self] level, line in
            if level >= .warning { logLines.append((level, line)) }
        }
        try handle.registerSyncDatabase(served.name, servers: [server.baseURL])
        try handle.updateDatabases()
    }

    deinit { server.stop() }

    var url: String { server.baseURL }

    /// "name version" of what the real pacman sees installed.
    func pacmanInstalled() throws -> [String] { try pacman.installed() }

    /// Every file below the package database with its contents, to prove it unchanged.
    func databaseSnapshot() throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        guard let enumerator = FileManager.default.enumerator(atPath: databasePath) else { return [:] }
        while let relative = enumerator.nextObject() as? String {
            let path = databasePath + "/" + relative
            if relative.hasPrefix("sync/") { continue }
            result[relative] = Files.isDirectory(path) ? [] : try Files.read(path)
        }
        return result
    }
}
