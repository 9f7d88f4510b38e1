import Foundation
import Kernel
import SystemSupport
import TestSupport
import Testing

/// Sources over https (libcurl, checksum) and git (libgit2), against a server and a
/// repository this test makes on 127.0.0.1 and on disk.
@Suite struct KernelSourceTests {
    static let makefile = "VERSION = 6\nPATCHLEVEL = 9\nSUBLEVEL = 7\nEXTRAVERSION =\n"

    /// A stand-in source tree: enough for identification and unpacking, not for building.
    static func tarball(in scratch: Scratch) throws -> String {
        try Files.write(scratch.appending("tree/linux-6.9.7/Makefile"), string: makefile)
        try Files.write(scratch.appending("tree/linux-6.9.7/Kconfig"), string: "config BTRFS_FS\n\tbool\n")
        let path = scratch.appending("www/linux-6.9.7.tar.gz")
        try Files.createDirectory(scratch.appending("www"))
        try Command("tar", ["-czf", path, "-C", scratch.appending("tree"), "linux-6.9.7"]).run()
        return path
    }

    @Test func httpsSourceIsDownloadedCheckedAndUnpacked() throws {
        let scratch = try Scratch("rast-ksrc")
        let tarball = try Self.tarball(in: scratch)
        let server = try HTTPServer(root: scratch.appending("www"))
        defer { server.stop() }
        let sha = try SHA256.hash(file: tarball)
        let preparer = SourcePreparer(cacheDirectory: scratch.appending("cache"), fetcher: NetworkSourceFetcher(), progress: SilentProgress())
        let prepared = try preparer.prepare(.https(url: server.baseURL + "/linux-6.9.7.tar.gz", sha256: sha))
        #expect(prepared.version == "6.9.7")
        #expect(prepared.identity == "sha256:" + sha)
        #expect(Files.exists(prepared.tree + "/Kconfig"))
        // Cached: a second prepare does not download again.
        let requests = server.requests.count
        _ = try preparer.prepare(.https(url: server.baseURL + "/linux-6.9.7.tar.gz", sha256: sha))
        #expect(server.requests.count == requests)
    }

    @Test func wrongChecksumIsAnErrorAndTheDownloadIsDeleted() throws {
        let scratch = try Scratch("rast-ksrc")
        _ = try Self.tarball(in: scratch)
        let server = try HTTPServer(root: scratch.appending("www"))
        defer { server.stop() }
        let wrong = String(repeating: "ab", count: 32)
        let preparer = SourcePreparer(cacheDirectory: scratch.appending("cache"), fetcher: NetworkSourceFetcher(), progress: SilentProgress())
        #expect {
            _ = try preparer.prepare(.https(url: server.baseURL + "/linux-6.9.7.tar.gz", sha256: wrong))
        } throws: { error in
            "\(error)".contains("checksum mismatch for \(server.baseURL)/linux-6.9.7.tar.gz: the recipe expects sha256 \(wrong)")
        }
        #expect(try FileManagerShim.contents(of: scratch.appending("cache/downloads")).isEmpty)
        #expect {
            _ = try preparer.prepare(.https(url: server.baseURL + "/missing.tar.gz", sha256: wrong))
        } throws: { error in "\(error)".contains("404") }
    }

    @Test func gitSourceIsClonedAtTheRefAndIdentifiedByCommit() throws {
        try Require.programs("git")
        let scratch = try Scratch("rast-ksrc")
        let repo = try GitRepositoryFixture(at: scratch.appending("linux.git"))
        let first = try repo.commit("Makefile", Self.makefile)
        _ = try repo.git("tag", "v6.9.7")
        let second = try repo.commit("Makefile", Self.makefile.replacingOccurrences(of: "SUBLEVEL = 7", with: "SUBLEVEL = 8"))
        let preparer = SourcePreparer(cacheDirectory: scratch.appending("cache"), fetcher: NetworkSourceFetcher(), progress: SilentProgress())
        let tagged = try preparer.prepare(.git(url: repo.path, ref: "v6.9.7"))
        #expect(tagged.identity == "git:" + first)
        #expect(tagged.version == "6.9.7")
        let head = try preparer.prepare(.git(url: "file://" + repo.path, ref: "main"))
        #expect(head.identity == "git:" + second)
        #expect(head.version == "6.9.8")
        #expect {
            _ = try preparer.prepare(.git(url: repo.path, ref: "no-such-branch"))
        } throws: { error in "\(error)".contains("no-such-branch") }
    }
}
