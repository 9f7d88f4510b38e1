import Alpm
import BootEntries
import Btrfs
import Dispatch
import Foundation
@testable import HostCommands
import Packages
import SnapshotTree
import Synchronization
import SystemSupport
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The packages the package-command tests install, built with makepkg once per test process.
enum TestPackages {
    static let base = PKGBUILDSpec(name: "base", description: "the base of the test snapshots",
                                   files: ["usr/share/base/version": "1.0\n"])
    static let base11 = PKGBUILDSpec(name: "base", version: "1.1", description: "the base of the test snapshots",
                                     files: ["usr/share/base/version": "1.1\n"])
    static let hello = PKGBUILDFixtures.hello(version: "1.0")
    static let hello11 = PKGBUILDFixtures.hello(version: "1.1")
    static let libhello = PKGBUILDFixtures.libhello
    static let clash = PKGBUILDFixtures.clash
    static let filethief = PKGBUILDFixtures.filethief
    static let needy = PKGBUILDFixtures.needy
    /// Its post_install fails.
    static let failing = PKGBUILDSpec(
        name: "failing", description: "a scriptlet that fails", files: ["usr/share/failing/README": "failing\n"],
        installScript: """
        post_install() {
          echo "failing: configuring"
          echo "failing: cannot configure the frobnicator"
          exit 1
        }
        """)
    /// Needs libhello; its pre_install announces itself and then waits, for the SIGKILL test.
    static let slow = PKGBUILDSpec(
        name: "slow", description: "takes its time", depends: ["libhello"], files: ["usr/share/slow/README": "slow\n"],
        installScript: """
        pre_install() {
          echo "slow: pre_install started"
          sleep 120
        }
        """)

    /// A library that is renamed: newlib replaces, conflicts with and provides oldlib, as
    /// every Arch package rename does; app 1.1 moves from oldlib to newlib.
    static let oldlib = PKGBUILDSpec(name: "oldlib", description: "the library before its rename",
                                     files: ["usr/lib/oldlib.txt": "oldlib 1.0\n"])
    static let newlib = PKGBUILDSpec(name: "newlib", description: "the library after its rename",
                                     conflicts: ["oldlib"], provides: ["oldlib"], replaces: ["oldlib"],
                                     files: ["usr/lib/newlib.txt": "newlib 1.0\n"])
    static let app10 = PKGBUILDSpec(name: "app", version: "1.0", description: "uses the library", depends: ["oldlib"],
                                    files: ["usr/share/app/version": "1.0\n"])
    static let app11 = PKGBUILDSpec(name: "app", version: "1.1", description: "uses the library", depends: ["newlib"],
                                    files: ["usr/share/app/version": "1.1\n"])

    /// What the repository of a fresh fixture holds.
    static let standard = [base, hello, libhello, clash, filethief, needy, failing, slow]
    static let all = standard + [base11, hello11, oldlib, newlib, app10, app11] + SearchTestPackages.all

    struct Built: Sendable {
        let pool: String
        func file(_ spec: PKGBUILDSpec) -> String { pool + "/" + spec.packageFileName }
    }

    static func built() throws -> Built { try cached.get() }

    private static let cached: Result<Built, any Error> = Result {
        try Require.root()
        try Require.programs("makepkg", "runuser", "useradd", "fakeroot", "bsdtar", "repo-add", "pacman", "busybox")
        let base = try TemporaryDirectory(prefix: "rast-hostpkg-fixture")
        directory.withLock { $0 = base.path }
        atexit { if let path = TestPackages.directory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) } }
        let stopwatch = Stopwatch()
        let directories = try all.map { try $0.write(in: base.appending("pkgbuilds")) }
        let makepkg = Makepkg(jobs: 1, logDirectory: base.appending("logs"))
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: directories.count) { index in
            do {
                _ = try makepkg.build(directories[index], into: base.appending("pool"))
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        let errors = failures.withLock { $0 }
        if !errors.isEmpty { throw UserError("building the test packages failed:\n" + errors.joined(separator: "\n")) }
        print("fixture: built \(all.count) packages with makepkg in \(stopwatch.formatted)")
        return Built(pool: base.appending("pool"))
    }
    private static let directory = Mutex<String?>(nil)
}

/// A rastOS snapshot tree on a real btrfs loop filesystem, whose snapshot 0 got a package
/// database by installing `base` with libalpm, with a repository built by makepkg served over
/// HTTP on 127.0.0.1 and named in snapshot 0's /etc/pacman.conf. Snapshot 1 (a branch of 0)
/// is deployed, so it is the current snapshot (on an image the slot that boots next stands
/// in for the booted one).
final class PackageTree {
    static let settings = BootMenuSettings(loader: .grub, filesystemUUID: "11111111-2222-4333-8444-555555555555",
                                           rootPartitionUUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", kernelArguments: "console=ttyS0")
    static let templates = BootTemplates(directory: ProjectPaths.root + "/bootloader")
    static let repositoryName = "rasttest"

    let built: TestPackages.Built
    let fs: BtrfsFixture
    let layout: Layout
    let scratch: Scratch
    let repository: LocalRepository
    let server: HTTPServer
    private let lines = Mutex<[String]>([])

    var top: String { layout.top }

    /// `pacmanOptions` and `repositoryOptions` are extra pacman.conf lines for [options] and
    /// the repository section; `rastConf` is snapshot 0's /etc/rast.conf.
    /// `publish` fills the repository instead of a plain `repo-add` (signed repositories).
    init(packages: [PKGBUILDSpec] = TestPackages.standard, sigLevel: String = "Never", rastConf: String? = nil,
         publish: ((LocalRepository, [String]) throws -> Void)? = nil, prepareRoot: ((String) throws -> Void)? = nil) throws {
        built = try TestPackages.built()
        scratch = try Scratch("rast-pkgtree")
        repository = try LocalRepository(name: Self.repositoryName, directory: scratch.appending("repo"))
        if let publish {
            try publish(repository, packages.map(built.file))
        } else {
            try repository.add(packages.map(built.file))
        }
        server = try HTTPServer(root: repository.directory)
        fs = try BtrfsFixture(size: "768M")
        layout = Layout(top: fs.mountPoint)
        do {
            try makeBase(sigLevel: sigLevel, rastConf: rastConf, prepareRoot: prepareRoot)
        } catch {
            close()
            throw error
        }
    }

    private func makeBase(sigLevel: String, rastConf: String?, prepareRoot: ((String) throws -> Void)?) throws {
        let store = SnapshotStore(layout: layout, templates: Self.templates)
        let root = try store.beginBase()
        for directory in ["bin", "etc", "boot", "proc", "sys", "dev", "run", "tmp", "var", "home", "usr/share/rast"] {
            try Files.createDirectory(root + "/" + directory)
        }
        try TargetRoot.create(root)  // a static busybox as /bin/sh, for scriptlets
        try Command("cp", ["/bin/busybox", root + "/bin/busybox"]).run()
        for applet in try Command("/bin/busybox", ["--list"]).output().split(separator: "\n") where applet != "sh" && applet != "busybox" {
            try SystemError.check("symlink", path: root + "/bin/\(applet)") { symlink("busybox", root + "/bin/\(applet)") }
        }
        try Files.write(root + "/etc/hostname", string: "pkgtree\n")
        try Files.write(root + "/boot/vmlinuz-linux-test", string: "not really a kernel\n")
        try Files.write(root + "/etc/pacman.conf", string: pacmanConf(sigLevel: sigLevel))
        if let rastConf { try Files.write(root + "/etc/rast.conf", string: rastConf) }
        try prepareRoot?(root)

        // snapshot 0 gets its package database the way an image build gives it one.
        let mounts = try ChrootMounts(root: root, binds: [(layout.variable, "/var"), (layout.home, "/home")])
        defer { mounts.release() }
        let session = try PackageSession(
            root: root, databasePath: root + "/usr/share/rast/db", cacheDirectory: layout.variable + "/cache/pacman/pkg",
            gpgDirectory: root + "/etc/pacman.d/gnupg", logFile: layout.variable + "/log/pacman.log",
            repositories: [RepositoryConfig(name: Self.repositoryName, servers: [server.baseURL], sigLevel: ["Never"])],
            progress: SilentProgress())
        try session.refresh()
        try session.install(["base"])
        try session.handle.close()
        mounts.release()

        try store.commitBase(boot: Self.settings)
        let one = try store.copy(0, parent: 0, description: "base system")
        try store.deploy(one)
        store.unlock()
    }

    func pacmanConf(sigLevel: String, extraRepositoryLines: String = "") -> String {
        """
        # test pacman.conf
        [options]
        DBPath = /usr/share/rast/db/
        CacheDir = /var/cache/pacman/pkg/
        Architecture = auto
        SigLevel = \(sigLevel)
        LocalFileSigLevel = Optional

        [\(Self.repositoryName)]
        Server = \(server.baseURL)
        \(extraRepositoryLines)
        """
    }

    /// A locked session on the tree, collecting what commands print. `bootedSlot` pretends
    /// the running system booted from that slot (for live installs).
    func host(bootedSlot: String? = nil) throws -> HostSession {
        let store = SnapshotStore(layout: layout, bootedSlot: bootedSlot, templates: Self.templates)
        let host = HostSession(store: store, live: bootedSlot != nil) { [unowned self] line in lines.withLock { $0.append(line) } }
        try host.lock(wait: false)
        return host
    }

    /// Package commands on a fresh locked session; it unlocks when released.
    func commands(bootedSlot: String? = nil) throws -> PackageCommands {
        PackageCommands(host: try host(bootedSlot: bootedSlot), progress: SilentProgress(), environment: [:])
    }

    /// Runs `body` with the tree's store locked, as a rast command holds it (set-up such as new
    /// snapshots or edits through a working copy); it unlocks afterwards, also on failure.
    @discardableResult
    func withStore<T>(_ body: (SnapshotStore) throws -> T) throws -> T {
        let store = SnapshotStore(layout: layout, templates: Self.templates)
        try store.acquire(wait: false)
        defer { store.unlock() }
        return try body(store)
    }

    /// Everything commands printed so far; `takeOutput` clears it.
    func takeOutput() -> [String] {
        lines.withLock { lines in
            defer { lines = [] }
            return lines
        }
    }

    func state() throws -> TreeState { try SnapshotStore(layout: layout).state() }

    /// "name version" of what the real pacman sees installed in snapshot `id` (or a slot).
    func installed(_ id: Int) throws -> [String] { try installed(name: String(id)) }

    func installed(name: String) throws -> [String] {
        let work = scratch.appending("pacman-\(UUID().uuidString)")
        try Files.createDirectory(work)
        let pacman = try RealPacman(root: layout.root(name), databasePath: layout.root(name) + "/usr/share/rast/db", scratch: work)
        return try pacman.installed()
    }

    /// `pacman -Qi NAME` in snapshot `id`.
    func info(_ id: Int, _ package: String) throws -> String {
        let work = scratch.appending("pacman-\(UUID().uuidString)")
        try Files.createDirectory(work)
        let pacman = try RealPacman(root: layout.root(id), databasePath: layout.root(id) + "/usr/share/rast/db", scratch: work)
        return try pacman.run(["-Qi", package]).standardOutput
    }

    /// The entries of snapshot `id`'s installed-package database.
    func databaseEntries(_ id: Int) throws -> [String] {
        try FileManagerShim.contents(of: layout.root(id) + "/usr/share/rast/db/local").filter { $0 != "ALPM_DB_VERSION" }.sorted()
    }

    /// Subvolume IDs of snapshot `id`'s triple: a commit replaces them, so equal IDs mean unchanged.
    func identity(_ id: Int) throws -> [UInt64] { try layout.triple(id).map { try Btrfs.subvolumeID($0) } }

    func workingCopies() throws -> [String] { try SnapshotStore(layout: layout).workingCopies() }

    func check() throws -> CheckReport { try SnapshotStore(layout: layout).check() }

    /// Adds packages to the served repository (an older version of the same package is replaced).
    func publish(_ specs: PKGBUILDSpec...) throws {
        try repository.add(specs.map(built.file))
    }

    func close() {
        server.stop()
        fs.close()
    }
}
