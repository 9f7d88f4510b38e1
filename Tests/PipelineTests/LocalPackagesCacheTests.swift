import Foundation
@testable import Pipeline
import SystemSupport
import TestSupport
import Testing

/// The package stage's cache: an unchanged PKGBUILD directory and payload is a hit that copies
/// nothing; a change to any input (a file of the directory, the binary, a data file) rebuilds.
@Suite struct LocalPackagesCacheTests {
    struct Fixture {
        let scratch: Scratch
        var pkgbuild: String { scratch.appending("pkgbuilds/cachetest") }
        var binary: String { scratch.appending("bin/rast") }
        var data: String { scratch.appending("data") }
        var cache: String { scratch.appending("cache") }

        init() throws {
            scratch = try Scratch()
            try Files.write(scratch.appending("pkgbuilds/cachetest/PKGBUILD"), string: """
                pkgname=cachetest
                pkgver=1
                pkgrel=1
                pkgdesc='package cache test'
                arch=('x86_64')
                options=('!debug' '!strip')
                package() {
                    install -Dm755 "$startdir/inputs/bin/rast" "$pkgdir/usr/bin/cachetest"
                    install -Dm644 "$startdir/inputs/share/notes/a.txt" "$pkgdir/usr/share/cachetest/a.txt"
                    install -Dm644 "$startdir/extra.txt" "$pkgdir/usr/share/cachetest/extra.txt"
                }

                """)
            try Files.write(scratch.appending("pkgbuilds/cachetest/rast.inputs"), string: "binary rast\ndata notes\n")
            try Files.write(scratch.appending("pkgbuilds/cachetest/extra.txt"), string: "extra 1\n")
            try Files.write(data + "/notes/a.txt", string: "notes 1\n")
            try Files.createDirectory(scratch.appending("bin"))
            try Command("cp", ["/usr/bin/true", binary]).run()
        }

        /// One run of the stage in a fresh work directory.
        func run(_ round: Int) throws -> (output: LocalPackagesStage.Output, work: String) {
            let work = scratch.appending("work-\(round)")
            try Files.createDirectory(work)
            let stage = LocalPackagesStage(pkgbuilds: [pkgbuild], extraPackages: [], workDirectory: work,
                                           logDirectory: scratch.appending("logs"), cacheDirectory: cache,
                                           dataDirectory: data, rastBinary: binary, jobs: 2, progress: SilentProgress())
            return (try stage.run(), work)
        }

        /// A file of the built package, as the package holds it.
        func packaged(_ output: LocalPackagesStage.Output, _ member: String) throws -> String {
            let package = try #require(output.packages["cachetest"])
            return try Command("bsdtar", ["-xOf", package, member]).output()
        }
    }

    @Test func unchangedInputsAreAHitAndEveryChangedInputRebuilds() throws {
        try Require.root()
        try Require.programs("makepkg", "repo-add", "bsdtar", "ldd")
        let fixture = try Fixture()

        let first = try fixture.run(1)
        #expect(first.output.cacheHits == 0)
        #expect(try fixture.packaged(first.output, "usr/share/cachetest/a.txt") == "notes 1")

        let second = try fixture.run(2)
        #expect(second.output.cacheHits == 1, "the same inputs again are a cache hit")
        #expect(!Files.exists(second.work + "/pkgbuilds/cachetest"), "a cache hit copies nothing for makepkg")
        #expect(try fixture.packaged(second.output, "usr/share/cachetest/extra.txt") == "extra 1")

        try Files.write(fixture.data + "/notes/a.txt", string: "notes 2\n")
        let third = try fixture.run(3)
        #expect(third.output.cacheHits == 0, "a changed data file rebuilds")
        #expect(try fixture.packaged(third.output, "usr/share/cachetest/a.txt") == "notes 2")

        try Files.write(fixture.pkgbuild + "/extra.txt", string: "extra 2\n")
        let fourth = try fixture.run(4)
        #expect(fourth.output.cacheHits == 0, "a changed file of the PKGBUILD directory rebuilds")
        #expect(try fixture.packaged(fourth.output, "usr/share/cachetest/extra.txt") == "extra 2")

        let before = try Files.size(fixture.binary)
        let handle = try #require(FileHandle(forWritingAtPath: fixture.binary))
        handle.seekToEndOfFile()
        handle.write(Data([0x72, 0x61, 0x73, 0x74]))
        try handle.close()
        let fifth = try fixture.run(5)
        #expect(fifth.output.cacheHits == 0, "a changed binary rebuilds")
        let installed = try Command("bsdtar", ["-tvf", try #require(fifth.output.packages["cachetest"]), "usr/bin/cachetest"]).output()
        #expect(installed.contains(" \(before + 4) "), "the package holds the new binary: \(installed)")

        #expect(try fixture.run(6).output.cacheHits == 1, "and that is cached in turn")
    }

    @Test func aDirectoryWithoutPKGBUILDIsNamed() throws {
        let scratch = try Scratch()
        try Files.createDirectory(scratch.appending("pkgbuilds/empty"))
        let stage = LocalPackagesStage(pkgbuilds: [scratch.appending("pkgbuilds/empty")], extraPackages: [],
                                       workDirectory: scratch.appending("work"), logDirectory: scratch.appending("logs"),
                                       cacheDirectory: scratch.appending("cache"), dataDirectory: scratch.path,
                                       rastBinary: nil, jobs: 1, progress: SilentProgress())
        let error = #expect(throws: UserError.self) { try stage.run() }
        #expect(error?.description.contains("pkgbuilds/empty has no PKGBUILD") == true, "\(String(describing: error))")
    }
}
