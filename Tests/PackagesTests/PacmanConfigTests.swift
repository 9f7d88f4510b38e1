import Alpm
import Foundation
import Packages
import SystemSupport
import TestSupport
import Testing

@Suite struct PacmanConfigTests {
    /// A system root with /etc/pacman.conf and a mirrorlist, the way Arch lays them out.
    static func root(_ scratch: Scratch, conf: String, mirrorlist: String? = nil) throws -> (root: String, conf: String) {
        let root = scratch.appending("root")
        try Files.write(root + "/etc/pacman.conf", string: conf)
        if let mirrorlist { try Files.write(root + "/etc/pacman.d/mirrorlist", string: mirrorlist) }
        return (root, root + "/etc/pacman.conf")
    }

    @Test func readsOptionsRepositoriesAndMirrorlistsInsideTheRoot() throws {
        let scratch = try Scratch("rast-pacmanconf")
        let (root, path) = try Self.root(scratch, conf: """
            #
            # /etc/pacman.conf of a rastOS snapshot
            [options]
            RootDir     = /
            DBPath      = /usr/share/rast/db/   # inside each snapshot
            CacheDir    = /var/cache/pacman/pkg/
            CacheDir    = /srv/cache/
            HookDir     = /etc/pacman.d/hooks/
            GPGDir      = /etc/pacman.d/gnupg/
            LogFile     = /var/log/pacman.log
            HoldPkg     = pacman glibc
            IgnorePkg   = linux
            IgnorePkg   = linux-headers
            NoUpgrade   = etc/hosts
            NoExtract   = usr/share/doc/*
            Architecture = auto
            Color
            ILoveCandy
            CheckSpace
            ParallelDownloads = 5
            SigLevel    = Required DatabaseOptional
            LocalFileSigLevel = Optional

            [core]
            Include = /etc/pacman.d/mirrorlist

            [extra]
            SigLevel = PackageRequired DatabaseNever
            Usage = Sync Search
            Include = /etc/pacman.d/mirrorlist

            [rast-local]
            SigLevel = Never
            Server = file:///srv/repo
            """,
            mirrorlist: "## mirrors\nServer = https://mirror.one/$repo/os/$arch\n#Server = https://disabled/$repo\nServer = https://mirror.two/archlinux/$repo/os/$arch\n")
        // Paths in the file are the snapshot's: resolve them inside its root.
        let config = try PacmanConfig.load(path: path) { root + $0 }
        #expect(config.rootDirectory == "/")
        #expect(config.databasePath == "/usr/share/rast/db/")
        #expect(config.cacheDirectories == ["/var/cache/pacman/pkg/", "/srv/cache/"])
        #expect(config.hookDirectories == ["/etc/pacman.d/hooks/"])
        #expect(config.gpgDirectory == "/etc/pacman.d/gnupg/")
        #expect(config.logFile == "/var/log/pacman.log")
        #expect(config.holdPackages == ["pacman", "glibc"])
        #expect(config.ignorePackages == ["linux", "linux-headers"])
        #expect(config.noUpgrade == ["etc/hosts"])
        #expect(config.noExtract == ["usr/share/doc/*"])
        #expect(config.architectures == [AlpmConfiguration.machineArchitecture])
        #expect(config.checkSpace)
        #expect(config.parallelDownloads == 5)
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        let arch = AlpmConfiguration.machineArchitecture
        #expect(config.repositories.map(\.name) == ["core", "extra", "rast-local"])
        #expect(config.repositories[0].servers == ["https://mirror.one/core/os/\(arch)", "https://mirror.two/archlinux/core/os/\(arch)"])
        #expect(config.repositories[1].servers == ["https://mirror.one/extra/os/\(arch)", "https://mirror.two/archlinux/extra/os/\(arch)"])
        #expect(config.repositories[2].servers == ["file:///srv/repo"])
        #expect(config.repositories[1].usage == ["Sync", "Search"])

        // Signature levels as pacman merges them: a section's words on top of the global ones.
        #expect(try config.resolvedSigLevel() == [.package, .database, .databaseOptional])
        #expect(try config.resolvedLocalFileSigLevel().contains(.packageOptional))
        let repositories = config.repositoryConfigs()
        func level(_ index: Int) throws -> SigLevel {
            try SigLevelParser.parse(repositories[index].sigLevel ?? [], base: PacmanConfig.defaultSigLevel)
        }
        #expect(try level(0) == [.package, .database, .databaseOptional])
        #expect(try level(1) == [.package])
        #expect(try level(2) == [])
        #expect(repositories[1].usage == [.sync, .search])
    }

    @Test func defaultsWhenTheFileSaysLittle() throws {
        let config = try PacmanConfig.parse("[options]\n[core]\nServer = file:///repo\n", path: "pacman.conf")
        #expect(config.databasePath == nil)
        #expect(try config.resolvedSigLevel() == PacmanConfig.defaultSigLevel)
        #expect(config.effectiveArchitectures == [AlpmConfiguration.machineArchitecture])
        #expect(config.repositories.map(\.servers) == [["file:///repo"]])
    }

    @Test func includeGlobsAndNestedIncludes() throws {
        let scratch = try Scratch("rast-pacmanconf")
        try Files.write(scratch.appending("conf.d/10-a.conf"), string: "[a]\nServer = https://a.example/$repo\n")
        try Files.write(scratch.appending("conf.d/20-b.conf"), string: "[b]\nInclude = \(scratch.appending("mirrors"))\n")
        try Files.write(scratch.appending("mirrors"), string: "Server = https://b.example/$repo\n")
        let config = try PacmanConfig.parse("[options]\nInclude = \(scratch.appending("conf.d/*.conf"))\n", path: "main.conf")
        #expect(config.repositories.map(\.name) == ["a", "b"])
        #expect(config.repositories.map(\.servers) == [["https://a.example/a"], ["https://b.example/b"]])
    }

    @Test func mistakesAreNamedByFileAndLine() throws {
        let scratch = try Scratch("rast-pacmanconf")
        try Files.write(scratch.appending("mirrors"), string: "Server = https://ok.example\nServer = not-a-url\n")
        let cases: [(String, String)] = [
            ("[options]\nSigLevel = Required Sometimes\n", "pacman.conf:2: SigLevel: 'Sometimes' is not a SigLevel"),
            ("DBPath = /x\n[options]\n", "pacman.conf:1: 'DBPath' comes before any section"),
            ("[options]\n[core\n", "pacman.conf:2: malformed section header '[core'"),
            ("[options]\n[core]\nServer =\n", "pacman.conf:3: 'Server' has an empty value"),
            ("[options]\n[core]\nDBPath = /x\n", "pacman.conf:3: 'DBPath' belongs in [options], not in the repository section [core]"),
            ("[options]\nServer = https://x\n", "pacman.conf:2: 'Server' belongs in a [repository] section, not in [options]"),
            ("[options]\n[core]\nInclude = /nonexistent/mirrorlist\n", "pacman.conf:3: Include = /nonexistent/mirrorlist: no such file"),
            ("[options]\n[core]\nInclude = \(scratch.appending("mirrors"))\n", "\(scratch.appending("mirrors")):2: Server = not-a-url is not a URL"),
            ("[options]\nParallelDownloads = many\n", "pacman.conf:2: ParallelDownloads must be a positive number"),
            ("[options]\n[core]\n[core]\n", "pacman.conf:3: repository [core] is defined twice"),
            ("[options]\n[core]\nServer = https://m/$repo/os/$arch\n", "pacman.conf:3: Server = https://m/$repo/os/$arch uses $arch, but [options] sets no Architecture"),
            ("[options]\n[core]\nUsage = Sometimes\n", "pacman.conf:3: 'Sometimes' is not a Usage"),
        ]
        for (text, message) in cases {
            #expect {
                try PacmanConfig.parse(text, path: "pacman.conf")
            } throws: { error in
                let matches = "\(error)".hasPrefix(message)
                if !matches { print("pacman.conf error: expected \(message), got \(error)") }
                return matches && error is PacmanConfigError
            }
        }
        let unknown = try PacmanConfig.parse("[options]\nFrobnicate = yes\n[core]\nMirrorPolicy = random\n", path: "pacman.conf")
        #expect(unknown.warnings == ["pacman.conf:2: directive 'Frobnicate' in section [options] not recognized",
                                     "pacman.conf:4: directive 'MirrorPolicy' in section [core] not recognized"])
        #expect {
            try PacmanConfig.load(path: scratch.appending("missing.conf"))
        } throws: { "\($0)".hasPrefix(scratch.appending("missing.conf") + ": cannot read") }
    }

    @Test func cachedPackageFilesAreFoundByNameAndVersion() throws {
        let scratch = try Scratch("rast-pkgcache")
        let cache = scratch.appending("cache")
        for name in ["hello-1.0-1-x86_64.pkg.tar.zst", "hello-1.0-1-x86_64.pkg.tar.zst.sig", "hello-world-1.0-1-any.pkg.tar.zst",
                     "hello-1.1-1-x86_64.pkg.tar.zst.part", "epochal-2:1.0-1-any.pkg.tar.xz"] {
            try Files.write(cache + "/" + name, string: name)
        }
        #expect(PackageCache.find(name: "hello", version: "1.0-1", in: [cache]) == cache + "/hello-1.0-1-x86_64.pkg.tar.zst")
        #expect(PackageCache.find(name: "hello", version: "1.1-1", in: [cache]) == nil, "partial downloads do not count")
        #expect(PackageCache.find(name: "hello-world", version: "1.0-1", in: [scratch.appending("none"), cache]) == cache + "/hello-world-1.0-1-any.pkg.tar.zst")
        #expect(PackageCache.find(name: "epochal", version: "2:1.0-1", in: [cache]) == cache + "/epochal-2:1.0-1-any.pkg.tar.xz")
        let stored = try PackageCache.store(cache + "/hello-1.0-1-x86_64.pkg.tar.zst", in: scratch.appending("other"))
        #expect(stored == scratch.appending("other/hello-1.0-1-x86_64.pkg.tar.zst"))
        #expect(Files.exists(stored + ".sig"), "the signature travels with the package")
    }
}
