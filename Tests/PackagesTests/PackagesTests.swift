import Alpm
import Archive
import Foundation
import Packages
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

func makeReachable(_ path: String) {
    // Scratch directories are 0700; the build user must be able to traverse into them.
    chmod(path, 0o755)
}

@Suite struct MakepkgTests {
    @Test func buildsAsTheBuildUserAndReturnsThePackage() throws {
        try Require.root()
        try Require.programs("makepkg", "runuser", "useradd", "bsdtar", "fakeroot")
        let scratch = try Scratch("rast-makepkg")
        makeReachable(scratch.path)
        let buildRoot = scratch.appending("build-areas")
        try Files.createDirectory(buildRoot)
        makeReachable(buildRoot)
        let spec = PKGBUILDFixtures.hello(version: "1.0")
        let directory = try spec.write(in: scratch.appending("pkgbuilds"))
        let destination = scratch.appending("out")
        var lines: [String] = []
        let makepkg = Makepkg(jobs: 2, buildRoot: buildRoot, packager: "rast tests <tests@rastos.invalid>")
        let result = try makepkg.build(directory, into: destination) { lines.append($0) }

        #expect(result.packages == [destination + "/" + spec.packageFileName])
        #expect(try FileManager.default.contentsOfDirectory(atPath: buildRoot).isEmpty, "the build area is removed")
        let log = try Files.readString(result.logFile)
        #expect(log.contains("Finished making: hello 1.0-1"))
        #expect(lines.contains { $0.contains("Creating package \"hello\"") })
        #expect(log.contains("runuser -u rast-build"))

        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        #expect(getpwnam_r("rast-build", &entry, &buffer, buffer.count, &found) == 0 && found != nil)
        #expect(entry.pw_uid != 0)

        let package = result.packages[0]
        var st = stat()
        #expect(stat(package, &st) == 0 && st.st_uid == 0, "the package belongs to root once moved")
        let metadata = try PackageArchive.read(package)
        #expect(metadata.name == "hello")
        #expect(metadata.fullVersion == "1.0-1")
        #expect(metadata.depends == ["libhello>=1.0"])
        #expect(metadata.backup == ["etc/hello.conf"])
        #expect(metadata.packager == "rast tests <tests@rastos.invalid>")
        #expect(metadata.architecture == "x86_64")
        let paths = try ArchiveReader.list(package).map(\.path)
        #expect(paths.contains("usr/bin/hello"))
        #expect(paths.contains(".MTREE"))
        print("makepkg: built \(spec.packageFileName) as rast-build in \(directory) -> \(package)")
    }

    @Test func failureNamesThePKGBUILDAndShowsTheLogTail() throws {
        try Require.root()
        try Require.programs("makepkg", "runuser", "useradd", "bsdtar", "fakeroot")
        let scratch = try Scratch("rast-makepkg")
        let spec = PKGBUILDSpec(name: "broken", files: ["usr/share/broken": "x\n"], failsToBuild: true)
        let directory = try spec.write(in: scratch.appending("pkgbuilds"))
        do {
            _ = try Makepkg(jobs: 2).build(directory, into: scratch.appending("out"))
            Issue.record("a failing build() must fail the build")
        } catch let error as MakepkgError {
            guard case .failed(let pkgbuild, let status, let logFile, let tail, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(pkgbuild == directory)
            #expect(status != 0)
            #expect(tail.contains("this build fails on purpose"))
            #expect(error.description.contains(directory))
            #expect(try Files.readString(logFile).contains("this build fails on purpose"))
            print("makepkg: failure reported as: \(error.description.split(separator: "\n").first ?? "")")
        }
        #expect(throws: MakepkgError.self) { try Makepkg().build(scratch.appending("nothing-here"), into: scratch.path) }
    }
}

@Suite struct LocalRepositoryTests {
    func package(_ name: String, version: String, in directory: String, depends: [String] = []) throws -> String {
        let staging = directory + "/staging-\(name)-\(version)"
        try Files.write(staging + "/usr/share/\(name)/VERSION", string: version + "\n")
        let metadata = PackageMetadata(name: name, version: version, description: "\(name) for repository tests",
                                       depends: depends, buildDate: 1_700_000_000)
        return try PackageArchive.write(stagingDirectory: staging, metadata: metadata, into: directory + "/built")
    }

    @Test func addsReplacesRemovesAndLists() throws {
        try Require.programs("repo-add", "repo-remove", "bsdtar")
        let scratch = try Scratch("rast-repo")
        let repository = try LocalRepository(name: "rasttest", directory: scratch.appending("repo"))
        #expect(Files.exists(repository.databasePath))
        #expect(readLink(repository.directory + "/rasttest.db") == "rasttest.db.tar.gz")
        #expect(try repository.packages().isEmpty, "a new repository has an empty database")

        let hello10 = try package("hello", version: "1.0", in: scratch.path, depends: ["libhello"])
        let hello11 = try package("hello", version: "1.1", in: scratch.path, depends: ["libhello"])
        let libhello = try package("libhello", version: "1.0", in: scratch.path)
        let added = try repository.add([hello10, libhello])
        #expect(added == [repository.directory + "/hello-1.0-1-x86_64.pkg.tar.zst",
                          repository.directory + "/libhello-1.0-1-x86_64.pkg.tar.zst"])
        var listed = try repository.packages()
        #expect(listed.map { "\($0.name) \($0.version)" } == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(listed.first?.depends == ["libhello"])
        #expect(listed.first?.sha256?.count == 64)

        // A rebuild replaces the old entry and deletes the old file (repo-add --remove).
        try repository.add([hello11])
        listed = try repository.packages()
        #expect(listed.map { "\($0.name) \($0.version)" } == ["hello 1.1-1", "libhello 1.0-1"])
        #expect(!Files.exists(repository.directory + "/hello-1.0-1-x86_64.pkg.tar.zst"))
        #expect(try repository.packageFiles().map { ($0 as NSString).lastPathComponent }
                == ["hello-1.1-1-x86_64.pkg.tar.zst", "libhello-1.0-1-x86_64.pkg.tar.zst"])
        // bsdtar agrees about what the database holds.
        let entries = try Command("bsdtar", ["-tf", repository.databasePath]).output().split(separator: "\n")
        #expect(entries.contains("hello-1.1-1/desc"))
        #expect(!entries.contains("hello-1.0-1/desc"))

        try repository.remove(["libhello"])
        #expect(try repository.packages().map(\.name) == ["hello"])
        #expect(!Files.exists(repository.directory + "/libhello-1.0-1-x86_64.pkg.tar.zst"))
        #expect(throws: RepositoryError.self) { try LocalRepository(name: "bad/name", directory: scratch.path) }
        #expect(throws: RepositoryError.self) { try repository.add([scratch.appending("missing.pkg.tar.zst")]) }
        print("repository: \(repository.name) in \(repository.directory) replaced hello 1.0-1 with 1.1-1")
    }
}

func readLink(_ path: String) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: path)
}

@Suite struct PackageArchiveTests {
    static let metadata = PackageMetadata(
        name: "linux-rast", version: "6.1.55", release: "2", description: "rastOS kernel (test build)",
        url: "https://rastos.invalid/kernel", licenses: ["GPL2"], depends: [], optionalDepends: ["linux-firmware: firmware files"],
        provides: ["linux=6.1.55"], conflicts: ["linux-other"], replaces: ["linux-old"], groups: ["rast-kernel"],
        backup: ["etc/rast-kernel.conf"], packager: "rast tests <tests@rastos.invalid>", buildDate: 1_700_000_123)

    /// A staging directory with the kinds of entries a kernel package has.
    /// Bytes of the regular files `makeStaging` writes besides the kernel (the hard link once).
    static let smallFileBytes = ["kernel/fs/btrfs/btrfs.ko:\n", "linux-rast\n", "cmdline = console=ttyS0\n",
                                 "#!/bin/sh\necho 6.1.55\n"].map(\.utf8.count).reduce(0, +)

    static func makeStaging(_ path: String) throws -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let kernel = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Files.createDirectory(path + "/usr/lib/modules/6.1.55-rast")
        try Files.writeAtomically(path + "/usr/lib/modules/6.1.55-rast/vmlinuz", bytes: kernel)
        try Files.write(path + "/usr/lib/modules/6.1.55-rast/modules.dep", string: "kernel/fs/btrfs/btrfs.ko:\n")
        try Files.write(path + "/usr/lib/modules/6.1.55-rast/pkgbase", string: "linux-rast\n")
        try Files.write(path + "/etc/rast-kernel.conf", string: "cmdline = console=ttyS0\n")
        try Files.write(path + "/usr/bin/rast-kernel-info", string: "#!/bin/sh\necho 6.1.55\n", mode: 0o755)
        try Files.createDirectory(path + "/usr/lib/modules/6.1.55-rast/extramodules")
        #expect(symlink("../lib/modules/6.1.55-rast/vmlinuz", path + "/usr/bin/vmlinuz-link") == 0)
        #expect(link(path + "/usr/lib/modules/6.1.55-rast/pkgbase", path + "/usr/lib/modules/6.1.55-rast/pkgbase.hardlink") == 0)
        return kernel
    }

    @Test func writtenPackageIsInstallableByPacmanAndAlpmAndAcceptedByRepoAdd() throws {
        try Require.root()
        try Require.programs("pacman", "repo-add", "bsdtar")
        let scratch = try Scratch("rast-pkgarchive")
        let staging = scratch.appending("staging")
        let kernel = try Self.makeStaging(staging)
        let install = "post_install() {\n  echo \"linux-rast: installed $1\"\n}\n"
        let path = try PackageArchive.write(stagingDirectory: staging, metadata: Self.metadata, installScript: install,
                                            into: scratch.appending("out"))
        #expect(path == scratch.appending("out/linux-rast-6.1.55-2-x86_64.pkg.tar.zst"))

        // Layout: metadata first, everything root-owned at the build date, sorted like makepkg.
        let entries = try ArchiveReader.list(path)
        #expect(Array(entries.prefix(3).map(\.path)) == [".INSTALL", ".MTREE", ".PKGINFO"])
        #expect(entries.allSatisfy { $0.owner == .root && $0.modificationTime == Self.metadata.buildDate })
        let paths = entries.map(\.path)
        #expect(paths == paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
        #expect(entries.first { $0.path == "usr/lib/modules/6.1.55-rast/pkgbase.hardlink" }?.kind == .hardlink)
        #expect(!Files.exists(staging + "/.PKGINFO"), "the staging directory is left alone")
        // Same staging directory and metadata, same bytes (the kernel stage caches on this).
        let again = try PackageArchive.write(stagingDirectory: staging, metadata: Self.metadata, installScript: install,
                                             into: scratch.appending("again"))
        #expect(try Files.read(again) == (try Files.read(path)), "package writing is reproducible")

        var read = try PackageArchive.read(path)
        #expect(read.installedSize == Int64(kernel.count + Self.smallFileBytes))
        #expect(read.base == "linux-rast")
        read.installedSize = nil
        read.base = nil
        #expect(read == Self.metadata)

        // The real pacman installs it, runs the scriptlet, and finds every file as .MTREE says.
        let pacmanRoot = scratch.appending("pacman-root")
        try TargetRoot.create(pacmanRoot)
        let dbpath = pacmanRoot + "/var/lib/pacman"
        try Files.createDirectory(dbpath)
        let pacman = try RealPacman(root: pacmanRoot, databasePath: dbpath, scratch: scratch.path)
        let installed = try pacman.run(["-U", path])
        #expect(installed.standardOutput.contains("linux-rast: installed 6.1.55-2"))
        #expect(try pacman.installed() == ["linux-rast 6.1.55-2"])
        let info = try pacman.run(["-Qi", "linux-rast"])
        #expect(info.standardOutput.contains("linux=6.1.55"))
        #expect(info.standardOutput.contains("rast-kernel"))
        let check = try pacman.run(["-Qkk", "linux-rast"], check: false)
        #expect(check.status == 0, "pacman -Qkk: \(check.standardOutput) \(check.standardError)")
        #expect(check.standardOutput.contains("0 altered files"))
        #expect(try Files.read(pacmanRoot + "/usr/lib/modules/6.1.55-rast/vmlinuz") == kernel)

        // Our libalpm wrapper installs it too.
        let alpmRoot = scratch.appending("alpm-root")
        try TargetRoot.create(alpmRoot)
        let handle = try AlpmHandle(.rooted(at: alpmRoot, sigLevel: .never))
        var scriptlet: [String] = []
        handle.eventHandler = { if case .scriptletOutput(let line) = $0 { scriptlet.append(line) } }
        let summary = try handle.installFiles([path])
        #expect(summary.added.map(\.description) == ["install linux-rast 6.1.55-2"])
        #expect(scriptlet == ["linux-rast: installed 6.1.55-2"])
        let package = try #require(handle.installedPackage(named: "linux-rast"))
        #expect(package.provides.map(\.description) == ["linux=6.1.55"])
        #expect(package.conflicts.map(\.description) == ["linux-other"])
        #expect(package.replaces.map(\.description) == ["linux-old"])
        #expect(package.groups == ["rast-kernel"])
        #expect(package.backup == ["etc/rast-kernel.conf"])
        #expect(package.installedSize == Int64(kernel.count + Self.smallFileBytes))
        #expect(package.files?.contains { $0.path == "usr/lib/modules/6.1.55-rast/extramodules/" } == true)
        #expect(readLink(alpmRoot + "/usr/bin/vmlinuz-link") == "../lib/modules/6.1.55-rast/vmlinuz")
        try handle.close()

        // repo-add accepts it.
        let repository = try LocalRepository(name: "kernel", directory: scratch.appending("repo"))
        try repository.add([path])
        let listed = try repository.packages()
        #expect(listed.map { "\($0.name) \($0.version)" } == ["linux-rast 6.1.55-2"])
        #expect(listed.first?.provides == ["linux=6.1.55"])
        print("package archive: \(path) installed by pacman -U (pacman -Qkk clean), by libalpm, and added by repo-add")
    }

    @Test func invalidMetadataIsRefusedByField() throws {
        let scratch = try Scratch("rast-pkgarchive")
        try Files.write(scratch.appending("staging/usr/share/x"), string: "x\n")
        let cases: [(String, (inout PackageMetadata) -> Void)] = [
            ("pkgname", { $0.name = "Bad Name" }),
            ("pkgver", { $0.version = "1.0-beta" }),
            ("pkgrel", { $0.release = "one" }),
            ("backup", { $0.backup = ["/etc/absolute.conf"] }),
            ("backup", { $0.backup = ["etc/not-in-staging.conf"] }),
            ("pkgdesc", { $0.description = "two\nlines" }),
        ]
        for (field, change) in cases {
            var metadata = Self.metadata
            metadata.backup = []
            change(&metadata)
            do {
                try PackageArchive.write(stagingDirectory: scratch.appending("staging"), metadata: metadata,
                                         into: scratch.appending("out"))
                Issue.record("\(field) should have been refused")
            } catch let error as PackageArchiveError {
                guard case .invalidMetadata(_, let reported, _, _) = error else {
                    Issue.record("unexpected \(error)")
                    continue
                }
                #expect(reported == field, "\(error)")
            }
        }
        try Files.write(scratch.appending("staging/.PKGINFO"), string: "sneaky\n")
        #expect(throws: PackageArchiveError.self) {
            try PackageArchive.write(stagingDirectory: scratch.appending("staging"), metadata: PackageMetadata(
                name: "x", version: "1", description: "x"), into: scratch.appending("out"))
        }
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: scratch.appending("out"))) ?? []
        #expect(leftovers.isEmpty, "refused packages leave no file behind")
        print("package archive: refused \(cases.count) kinds of invalid metadata by field, and a staging .PKGINFO")
    }
}
