@testable import Alpm
import Foundation
import Packages
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

func names(_ summary: TransactionSummary) -> [String] {
    (summary.added + summary.removed).map { "\($0.name) \($0.newVersion ?? $0.oldVersion ?? "")" }.sorted()
}

@Suite struct AlpmInstallTests {
    @Test func installsWithDependenciesIntoAFreshRoot() throws {
        let world = try AlpmWorld()
        let summary = try world.handle.install(["hello"])
        #expect(names(summary) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(summary.added.allSatisfy { $0.kind == .install })

        #expect(try Files.readString(world.root + "/usr/bin/hello") == "#!/bin/sh\necho 'hello 1.0'\n")
        #expect(try Files.readString(world.root + "/usr/lib/libhello.txt") == "libhello 1.0\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: world.root + "/usr/bin/hi") == "hello")
        var st = stat()
        #expect(stat(world.root + "/usr/bin/hello", &st) == 0 && st.st_mode & 0o777 == 0o755)
        // The database lives where we put it, not in the root.
        #expect(!Files.exists(world.root + "/var/lib/pacman"))
        #expect(Files.isDirectory(world.databasePath + "/local/hello-1.0-1"))
        // The real pacman reads the same database.
        #expect(try world.pacmanInstalled() == ["hello 1.0-1", "libhello 1.0-1"])

        let hello = try #require(world.handle.installedPackage(named: "hello"))
        #expect(hello.version == "1.0-1")
        #expect(hello.description == "says hello")
        #expect(hello.depends.map(\.description) == ["libhello>=1.0"])
        #expect(hello.depends.first?.constraint == .atLeast)
        #expect(hello.optionalDepends.map(\.description) == ["cowsay: fancier greetings"])
        #expect(hello.reason == .explicit)
        #expect(hello.repository == "local")
        #expect(hello.installedSize > 0)
        #expect(hello.backup == ["etc/hello.conf"])
        #expect(hello.files?.map(\.path).contains("usr/bin/hello") == true)
        #expect(hello.files?.map(\.path).contains("usr/bin/") == true)
        let libhello = try #require(world.handle.installedPackage(named: "libhello"))
        #expect(libhello.reason == .dependency)
        #expect(libhello.requiredBy == ["hello"])
        #expect(world.handle.installedPackages().map(\.nameAndVersion) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(world.handle.owner(of: world.root + "/usr/bin/hello") == "hello")
        #expect(world.handle.owner(of: "usr/lib/libhello.txt") == "libhello")

        // Every path came from the configuration, and the log went to our file.
        #expect(world.handle.cacheDirectories == [world.scratch.appending("cache/")])
        #expect(world.handle.hookDirectories == [world.scratch.appending("hooks/")])
        #expect(world.handle.gpgDirectory == world.scratch.appending("gnupg/"))
        #expect(world.handle.architectures == ["x86_64"])
        #expect(try Files.readString(world.scratch.appending("log/alpm.log")).contains("[ALPM] installed hello (1.0-1)"))
        #expect(world.server.requests.contains { $0.path == "/hello-1.0-1-x86_64.pkg.tar.zst" })
        print("libalpm: installed hello 1.0-1, libhello 1.0-1 into \(world.root) (db \(world.databasePath)) from \(world.url)")
    }

    @Test func callbacksFire() throws {
        let world = try AlpmWorld()
        try world.handle.install(["hello"])
        #expect(world.events.contains(.packageOperation(PackageOperation(kind: .install, name: "hello", oldVersion: nil,
                                                                         newVersion: "1.0-1"), done: true)))
        #expect(world.events.contains(.transaction(done: true)))
        #expect(world.events.contains(.resolvingDependencies(done: true)))
        #expect(world.events.contains { if case .retrievingPackages(2, _, true, false) = $0 { return true } else { return false } })
        let helloProgress = world.progress.filter { $0.step == .install && $0.package == "hello" }
        #expect(helloProgress.last?.percent == 100)
        #expect(helloProgress.last?.total == 2)
        #expect(world.downloads.contains {
            if case .completed(_, 0) = $0.kind { return $0.file.hasPrefix("hello-1.0-1") } else { return false }
        })
        var debugLines = 0
        world.handle.logHandler = { level, _ in if level == .debug { debugLines += 1 } }
        try world.handle.remove(["hello"])
        #expect(debugLines > 0, "the log callback formats libalpm's va_list messages")
        print("libalpm: callbacks fired: \(world.events.count) events, \(world.progress.count) progress, \(world.downloads.count) download reports, \(debugLines) debug log lines (\(world.url))")
    }

    @Test func installsPackageFilesWithPkgLoad() throws {
        let world = try AlpmWorld()
        let files = [world.fixture.file(PKGBUILDFixtures.hello(version: "1.0")), world.fixture.file(PKGBUILDFixtures.libhello)]
        let loaded = try world.handle.loadPackageFile(files[0])
        #expect(loaded.origin == .file)
        #expect(loaded.nameAndVersion == "hello 1.0-1")
        let summary = try world.handle.installFiles(files)
        #expect(names(summary) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(try world.pacmanInstalled() == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(world.server.requests.allSatisfy { !$0.path.hasSuffix(".pkg.tar.zst") }, "nothing was downloaded")
        print("libalpm: installed hello 1.0-1, libhello 1.0-1 from package files into \(world.root)")
    }

    @Test func scriptletRunsInTheTarget() throws {
        let world = try AlpmWorld()
        try world.handle.install(["scripted"])
        #expect(try Files.readString(world.root + "/var/lib/scripted/marker") == "installed 1.0-1\n")
        #expect(world.events.contains(.scriptletOutput("scripted: post_install ran for 1.0-1")))
        try world.handle.remove(["scripted"])
        #expect(world.events.contains(.scriptletOutput("scripted: pre_remove ran for 1.0-1")))
        print("libalpm: scripted 1.0-1's post_install ran under \(world.root)/bin/sh (busybox) from \(world.url)")
    }

    @Test func flagsNeededAndDownloadOnly() throws {
        let world = try AlpmWorld()
        let downloaded = try world.handle.install(["hello"], flags: .downloadOnly)
        #expect(names(downloaded) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(world.handle.installedPackages().isEmpty)
        #expect(Files.exists(world.scratch.appending("cache/hello-1.0-1-x86_64.pkg.tar.zst")))
        try world.handle.install(["hello"])
        let again = try world.handle.install(["hello"], flags: .needed)
        #expect(again.isEmpty, "--needed skips what is up to date: \(again)")
        let reinstalled = try world.handle.install(["hello"])
        #expect(reinstalled.added.map(\.kind) == [.reinstall])
        // --dbonly records the package without touching the files.
        try world.handle.install(["clash"], flags: [.dbOnly, .noConflicts])
        #expect(try world.pacmanInstalled().contains("clash 1.0-1"))
        #expect(!Files.exists(world.root + "/usr/bin/clash"))
        print("libalpm: --downloadonly and --needed behave in \(world.root) (\(world.url))")
    }
}

@Suite struct AlpmFailureTests {
    @Test func conflictNamesBothPackages() throws {
        let world = try AlpmWorld()
        try world.handle.install(["hello"])
        let before = try world.databaseSnapshot()
        do {
            try world.handle.install(["clash"])
            Issue.record("installing clash next to hello must fail")
        } catch let error as AlpmError {
            #expect(error.code == .conflictingDependencies)
            #expect(error.conflicts.map { "\($0.package) \($0.otherPackage)" } == ["clash hello"])
            #expect(error.description.contains("clash conflicts with hello"))
            print("libalpm: conflict reported: \(error)")
        }
        #expect(world.handle.answeredQuestions.contains(
            AnsweredQuestion(question: .removeConflictingPackage(installing: "clash", conflicting: "hello"), answer: false)))
        #expect(try world.databaseSnapshot() == before)
        // Two conflicting targets in one transaction.
        do {
            try world.handle.remove(["hello"])
            try world.handle.install(["hello", "clash"])
            Issue.record("hello and clash together must fail")
        } catch let error as AlpmError {
            let pair = error.conflicts.map { Set([$0.package, $0.otherPackage]) }
            #expect(pair == [["hello", "clash"]], "\(error)")
        }
        // Asked to, the policy removes the conflicting package.
        try world.handle.install(["hello"])
        world.handle.questionPolicy.removeConflictingPackages = true
        let summary = try world.handle.install(["clash"])
        #expect(summary.removed.map(\.name) == ["hello"])
        #expect(try world.pacmanInstalled() == ["clash 1.0-1", "libhello 1.0-1"])
        print("libalpm: clash replaced hello once the policy allowed it (\(world.url))")
    }

    @Test func missingDependencyNamesNeedyAndGhost() throws {
        let world = try AlpmWorld()
        do {
            try world.handle.install(["needy"])
            Issue.record("needy's dependency ghost does not exist")
        } catch let error as AlpmError {
            #expect(error.code == .unsatisfiedDependencies)
            #expect(error.missingDependencies.map(\.description) == ["needy requires ghost"])
            #expect(error.function == "alpm_trans_prepare")
            print("libalpm: missing dependency reported: \(error)")
        }
        #expect(world.handle.installedPackages().isEmpty)
        #expect(try world.pacmanInstalled().isEmpty)
        do {
            try world.handle.install(["no-such-package"])
            Issue.record("an unknown target must fail")
        } catch let error as AlpmError {
            #expect(error.problems == [.targetNotFound("no-such-package")])
        }
    }

    @Test func fileConflictNamesTheFileAndBothPackages() throws {
        let world = try AlpmWorld()
        let path = world.root + "/usr/bin/hello"
        // Two targets that ship the same file.
        do {
            try world.handle.install(["hello", "filethief"])
            Issue.record("hello and filethief both own /usr/bin/hello")
        } catch let error as AlpmError {
            #expect(error.code == .fileConflicts)
            let conflicts = error.fileConflicts
            #expect(conflicts.count == 1)
            #expect(conflicts.first?.path == path)
            #expect(Set([conflicts.first?.package, conflicts.first?.otherPackage]) == ["hello", "filethief"])
            #expect(conflicts.first?.inFilesystem == false)
            #expect(error.description.contains("\(path) exists in both"))
            print("libalpm: file conflict reported: \(error)")
        }
        #expect(!Files.exists(path))
        // A file an installed package owns.
        try world.handle.install(["hello"])
        do {
            try world.handle.install(["filethief"])
            Issue.record("filethief must not overwrite hello's file")
        } catch let error as AlpmError {
            #expect(error.fileConflicts == [FileConflict(package: "filethief", path: path, otherPackage: "hello", inFilesystem: true)])
            #expect(error.description.contains("filethief: \(path) exists in filesystem (owned by hello)"))
        }
        // A file no package owns.
        try Files.write(world.root + "/usr/bin/clash", string: "stray\n", mode: 0o755)
        do {
            try world.handle.install(["clash"], flags: .noConflicts)
            Issue.record("clash must not overwrite a stray file")
        } catch let error as AlpmError {
            #expect(error.fileConflicts == [FileConflict(package: "clash", path: world.root + "/usr/bin/clash",
                                                          otherPackage: nil, inFilesystem: true)])
            #expect(error.description.contains("exists in filesystem"))
        }
    }

    @Test func failedTransactionLeavesTheDatabaseUnchanged() throws {
        let world = try AlpmWorld()
        try world.handle.install(["hello"])
        let before = try world.databaseSnapshot()
        let pacmanBefore = try world.pacmanInstalled()
        #expect(before.keys.contains("local/hello-1.0-1/desc"))
        #expect(throws: AlpmError.self) { try world.handle.install(["filethief"]) }
        #expect(throws: AlpmError.self) { try world.handle.install(["needy"]) }
        #expect(throws: AlpmError.self) { try world.handle.remove(["libhello"]) }
        #expect(try world.databaseSnapshot() == before)
        #expect(try world.pacmanInstalled() == pacmanBefore)
        #expect(try Files.readString(world.root + "/usr/bin/hello") == "#!/bin/sh\necho 'hello 1.0'\n")
        #expect(!Files.exists(world.databasePath + "/db.lck"), "every transaction was released")
        print("libalpm: three failed transactions left \(world.databasePath) unchanged")
    }

    @Test func corruptedPackageIsNamed() throws {
        let fixture = try BuiltFixture.shared()
        let scratch = try Scratch("rast-alpm-corrupt")
        let repository = try LocalRepository(name: "corrupt", directory: scratch.appending("repo"))
        try repository.add([fixture.file(PKGBUILDFixtures.libhello)])
        // Same name, different bytes: the checksum in the database no longer matches.
        let file = repository.directory + "/" + PKGBUILDFixtures.libhello.packageFileName
        var bytes = try Files.read(file)
        bytes[bytes.count / 2] ^= 0xff
        try Files.writeAtomically(file, bytes: bytes)
        let world = try AlpmWorld(repository: repository)
        do {
            try world.handle.install(["libhello"])
            Issue.record("a corrupted package must be refused")
        } catch let error as AlpmError {
            #expect(error.invalidPackages == [PKGBUILDFixtures.libhello.packageFileName], "\(error)")
            #expect(error.function == "alpm_trans_commit")
            print("libalpm: corrupted package reported: \(error)")
        }
        #expect(world.handle.answeredQuestions.contains { if case .deleteCorruptedPackage = $0.question { return $0.answer } else { return false } })
        #expect(world.handle.installedPackages().isEmpty)
    }

    @Test func missingSignatureIsNamedWhenSignaturesAreRequired() throws {
        let world = try AlpmWorld()
        // Re-register the repository with packages that must be signed (ours are not).
        let strict = try AlpmHandle(AlpmConfiguration(
            root: world.root, databasePath: world.scratch.appending("strict-db"), cacheDirectories: [world.scratch.appending("strict-cache")],
            hookDirectories: [], gpgDirectory: world.scratch.appending("gnupg"), logFile: world.scratch.appending("strict.log"),
            defaultSigLevel: [.package], localFileSigLevel: [.package], remoteFileSigLevel: [.package]))
        try strict.registerSyncDatabase(world.repositoryName, servers: [world.url])
        try strict.updateDatabases()
        do {
            try strict.install(["libhello"])
            Issue.record("an unsigned package must be refused when signatures are required")
        } catch let error as AlpmError {
            // libalpm wants the detached signature from the server, which has none.
            #expect(error.code == .retrieve, "\(error)")
            #expect(error.details.contains { $0.contains(PKGBUILDFixtures.libhello.packageFileName + ".sig") }, "\(error)")
            print("libalpm: signature failure (repository) reported: \(error)")
        }
        // A package file without a signature while LocalFileSigLevel requires one.
        let file = world.fixture.file(PKGBUILDFixtures.libhello)
        do {
            try strict.installFiles([file])
            Issue.record("an unsigned package file must be refused when signatures are required")
        } catch let error as AlpmError {
            #expect(error.invalidPackages == [file], "\(error)")
            #expect([AlpmErrorCode.signatureMissing, .packageMissingSignature, .packageInvalidSignature].contains(error.code), "\(error)")
            print("libalpm: signature failure (file) reported: \(error)")
        }
        #expect(strict.installedPackages().isEmpty)
    }

    @Test func secondTransactionOnTheSameDatabaseIsLockedOut() throws {
        let world = try AlpmWorld()
        let transaction = try world.handle.transaction()
        let other = try AlpmHandle(world.handle.configuration)
        do {
            _ = try other.transaction()
            Issue.record("the database lock must keep a second transaction out")
        } catch let error as AlpmError {
            #expect(error.code == .handleLock)
            #expect(error.description.contains(world.databasePath + "/db.lck"), "\(error)")
            print("libalpm: lock reported: \(error)")
        }
        #expect(throws: AlpmError.self) { try world.handle.close() }
        try transaction.release()
        #expect(!Files.exists(world.databasePath + "/db.lck"))
        try other.installFiles([world.fixture.file(PKGBUILDFixtures.libhello)])
        #expect(try world.pacmanInstalled() == ["libhello 1.0-1"])
    }

    @Test func unreachableRepositoryFailsClearly() throws {
        let world = try AlpmWorld()
        world.server.setBehavior(.status(404), for: "/\(world.repositoryName).db")
        do {
            try world.handle.updateDatabases(force: true)
            Issue.record("a 404 for the database must fail the update")
        } catch let error as AlpmError {
            #expect(error.function == "alpm_db_update")
            #expect(error.description.contains(world.repositoryName))
            print("libalpm: failed update reported: \(error)")
        }
    }
}

@Suite struct AlpmUpgradeRemoveTests {
    @Test func sysupgradeMovesHelloToTheNewVersion() throws {
        let fixture = try BuiltFixture.shared()
        let scratch = try Scratch("rast-alpm-upgrade")
        let repository = try LocalRepository(name: "updates", directory: scratch.appending("repo"))
        try repository.add([fixture.file(PKGBUILDFixtures.hello(version: "1.0")), fixture.file(PKGBUILDFixtures.libhello)])
        let world = try AlpmWorld(repository: repository)
        try world.handle.install(["hello"])
        #expect(try world.pacmanInstalled() == ["hello 1.0-1", "libhello 1.0-1"])

        // The repository gets hello 1.1 (the stale 1.0 entry and file go away).
        try repository.add([fixture.file(PKGBUILDFixtures.hello(version: "1.1"))])
        #expect(try repository.packages().map { "\($0.name) \($0.version)" } == ["hello 1.1-1", "libhello 1.0-1"])
        #expect(!Files.exists(repository.directory + "/" + PKGBUILDFixtures.hello(version: "1.0").packageFileName))
        #expect(try world.handle.sysupgrade().isEmpty, "before the database update there is nothing to upgrade")
        try world.handle.updateDatabases(force: true)
        #expect(try world.handle.syncPackage(named: "hello")?.version == "1.1-1")
        let summary = try world.handle.sysupgrade()
        #expect(summary.added == [PackageOperation(kind: .upgrade, name: "hello", oldVersion: "1.0-1", newVersion: "1.1-1")])
        #expect(try world.pacmanInstalled() == ["hello 1.1-1", "libhello 1.0-1"])
        #expect(try Files.readString(world.root + "/usr/bin/hello") == "#!/bin/sh\necho 'hello 1.1'\n")
        #expect(world.events.contains { if case .packageOperation(let op, true) = $0 { return op.kind == .upgrade } else { return false } })
        #expect(world.handle.installedPackage(named: "hello")?.reason == .explicit)
        print("libalpm: sysupgrade moved hello 1.0-1 -> 1.1-1 in \(world.root) from \(world.url)")
    }

    @Test func removeRefusesWhileNeededAndNamesTheDependent() throws {
        let world = try AlpmWorld()
        try world.handle.install(["hello"])
        do {
            try world.handle.remove(["libhello"])
            Issue.record("libhello is still needed by hello")
        } catch let error as AlpmError {
            #expect(error.code == .unsatisfiedDependencies)
            let missing = try #require(error.missingDependencies.first)
            #expect(missing.package == "hello")
            #expect(missing.dependency.name == "libhello")
            #expect(missing.causingPackage == "libhello")
            #expect(error.description.contains("required by hello"))
            print("libalpm: refused removal: \(error)")
        }
        #expect(try world.pacmanInstalled() == ["hello 1.0-1", "libhello 1.0-1"])

        // Cascade removes what depends on the target too.
        let cascade = try world.handle.remove(["libhello"], flags: .cascade)
        #expect(names(cascade) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(try world.pacmanInstalled().isEmpty)
        #expect(!Files.exists(world.root + "/usr/bin/hello"))
        print("libalpm: cascade removed hello and libhello from \(world.root)")
    }

    @Test func recursiveRemovalTakesUnneededDependenciesAndKeepsEditedConfig() throws {
        let world = try AlpmWorld()
        try world.handle.install(["hello"])
        try Files.write(world.root + "/etc/hello.conf", string: "greeting = edited\n")
        let summary = try world.handle.remove(["hello"], flags: .recurse)
        #expect(names(summary) == ["hello 1.0-1", "libhello 1.0-1"])
        #expect(try world.pacmanInstalled().isEmpty)
        #expect(try Files.readString(world.root + "/etc/hello.conf.pacsave") == "greeting = edited\n")
        #expect(world.events.contains(.pacsaveCreated(path: world.root + "/etc/hello.conf.pacsave"))
                || world.events.contains { if case .pacsaveCreated = $0 { return true } else { return false } })

        try world.handle.install(["hello"])
        try Files.write(world.root + "/etc/hello.conf", string: "greeting = edited again\n")
        try FileManager.default.removeItem(atPath: world.root + "/etc/hello.conf.pacsave")
        try world.handle.remove(["hello"], flags: [.recurse, .noSave])
        #expect(!Files.exists(world.root + "/etc/hello.conf.pacsave"))
        #expect(!Files.exists(world.root + "/etc/hello.conf"))
        print("libalpm: recursive removal took libhello along; .pacsave kept unless noSave (\(world.root))")
    }
}

@Suite struct AlpmQueryTests {
    @Test func searchInfoAndOrphansMatchPacman() throws {
        let world = try AlpmWorld()
        let found = try world.handle.search(["^hel"]).map(\.name)
        let pacmanFound = try world.pacman.run(["-Ssq", "^hel"]).standardOutput.split(separator: "\n").map(String.init)
        #expect(found == ["hello"])
        #expect(found == pacmanFound)
        let byDescription = try world.handle.search(["library"]).map(\.name)
        #expect(byDescription == ["libhello"])
        #expect(try world.pacman.run(["-Ssq", "library"]).standardOutput == "libhello\n")
        #expect(throws: AlpmError.self) { try world.handle.search(["("]) }

        let info = try #require(try world.handle.syncPackage(named: "hello"))
        #expect(info.repository == world.repositoryName)
        #expect(info.version == "1.0-1")
        #expect(info.fileName == PKGBUILDFixtures.hello(version: "1.0").packageFileName)
        #expect(info.downloadSize == Int64(try Files.size(world.fixture.file(PKGBUILDFixtures.hello(version: "1.0")))))
        #expect(info.architecture == "x86_64")
        let pacmanInfo = try world.pacman.run(["-Si", "hello"]).standardOutput
        #expect(pacmanInfo.contains("Depends On      : \(info.depends.map(\.description).joined(separator: "  "))"))
        #expect(try world.handle.syncPackages().map(\.name).sorted()
                == ["clash", "filethief", "hello", "libhello", "needy", "scripted"])

        try world.handle.install(["hello"])
        #expect(world.handle.orphans().isEmpty)
        try world.handle.remove(["hello"])
        #expect(world.handle.orphans().map(\.name) == ["libhello"])
        #expect(try world.pacman.run(["-Qdtq"]).standardOutput == "libhello\n")
        #expect(try world.handle.searchInstalled(["lib"]).map(\.name) == ["libhello"])
        print("libalpm: search, -Si and orphans agree with pacman (\(world.url))")
    }

    @Test func vercmpMatchesTheCommandLineTool() throws {
        try Require.programs("vercmp")
        let pairs = [
            ("1.0", "1.0"), ("1.0", "1.1"), ("1.1", "1.0"), ("1.0", "1.0.1"), ("1.0a", "1.0"), ("1.0rc1", "1.0"),
            ("1.0alpha", "1.0beta"), ("1:1.0", "2.0"), ("1.0-1", "1.0-2"), ("1.0-1", "1.0"), ("2.0.0", "2.0"),
            ("1.0.alpha", "1.0"), ("1.0_1", "1.0.1"), ("6.1.0.arch1-1", "6.1.0.arch2-1"), ("1.2.3.4", "1.2.3"),
            ("0:1.0", "1.0"), ("abc", "abd"), ("1..0", "1.0"), ("20230101", "2023.01.01"), ("1.0+git5", "1.0"),
        ]
        var signs: Set<Int> = []
        for (a, b) in pairs {
            let ours = AlpmHandle.vercmp(a, b).signum()
            let theirs = Int(try Command("vercmp", [a, b]).output()).map { $0.signum() }
            #expect(ours == theirs, "vercmp \(a) \(b)")
            signs.insert(ours)
        }
        #expect(signs == [-1, 0, 1])
        print("libalpm: alpm_pkg_vercmp agrees with vercmp on \(pairs.count) pairs (libalpm \(AlpmHandle.libraryVersion))")
    }
}

/// libalpm moves the whole process into the target root while it extracts a package
/// (add.c: chdir(root), then back). Programs rast starts meanwhile, from any thread, must
/// still begin in rast's own working directory: a test's child that inherited another test's
/// root failed with "sh: getcwd() failed" once that root was deleted.
@Suite struct AlpmWorkingDirectoryTests {
    @Test func childrenStartedDuringExtractionStartWhereRastStarted() throws {
        let world = try AlpmWorld()
        let initial = FileManager.default.currentDirectoryPath
        let root = URL(fileURLWithPath: world.root).resolvingSymlinksInPath().path
        var parentDirectories: [String] = []
        var childDirectories: [String] = []
        world.handle.progressHandler = { progress in
            guard progress.step == .install, progress.package == "hello" else { return }
            parentDirectories.append(FileManager.default.currentDirectoryPath)
            // What a command started at this moment sees as its working directory.
            childDirectories.append((try? Command("sh", ["-c", "pwd -P"]).output()) ?? "(failed)")
        }
        try world.handle.install(["hello"])
        #expect(!childDirectories.isEmpty, "hello's extraction reported progress")
        // The cause: during extraction the process itself is in the root ...
        #expect(parentDirectories.contains(root), "libalpm chdir()s into \(root) while extracting: \(parentDirectories)")
        // ... and yet every child started where the process started.
        #expect(childDirectories.allSatisfy { $0 == initial }, "children started in \(Set(childDirectories)), not \(initial)")
        #expect(FileManager.default.currentDirectoryPath == initial, "libalpm went back afterwards")
        print("libalpm: \(childDirectories.count) commands started during extraction (the process in \(Set(parentDirectories).sorted())) began in \(Set(childDirectories).sorted())")
    }
}
