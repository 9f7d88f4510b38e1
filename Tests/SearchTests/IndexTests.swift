import Foundation
@testable import Search
import SystemSupport
import TestSupport
import Testing

/// The per-snapshot index file: segments kept by fingerprint, a round trip that ranks as the
/// fresh build does, damage detected and repaired, /etc chunking.
/// What the sources' closures were asked for.
final class Recorder {
    var lines: [String] = []
}

@Suite("Search index")
struct IndexTests {
    static func sources(description: String = "Fast, Private & Safe Web Browser", config: String = "# Allow root to log in.\nPermitRootLogin no\n",
                        built: Recorder) -> [SearchIndex.Source] {
        [
            SearchIndex.Source(key: "repository:extra", fingerprint: SHA256.hash(description)) {
                built.lines.append("repository:extra")
                return [SearchDocument.package(name: "firefox", description: description, repository: "extra", version: "1"),
                        SearchDocument.package(name: "vim", description: "Vi Improved, a text editor", repository: "extra", version: "2")]
            },
            SearchIndex.Source(key: "installed", fingerprint: "vim-2") {
                built.lines.append("installed")
                return [SearchDocument.package(name: "vim", description: "Vi Improved, a text editor", version: "2", installedVersion: "2"),
                        SearchDocument.package(name: "own-tool", description: "built here", version: "0.1", installedVersion: "0.1")]
            },
            SearchIndex.Source(key: "etc:/etc/ssh/sshd_config", fingerprint: SHA256.hash(config)) {
                built.lines.append("etc")
                return ConfigChunker.chunks(of: config, path: "/etc/ssh/sshd_config")
            },
        ]
    }

    @Test func segmentsAreKeptUntilTheirSourceChanges() throws {
        let table = try SearchFixtures.loadTable()
        let scratch = try TemporaryDirectory(prefix: "rast-search-index")
        defer { try? scratch.remove() }
        let path = scratch.appending("search/snapshot-1.index")
        let built = Recorder()

        let first = try SearchIndex.update(path: path, sources: Self.sources(built: built), table: table)
        #expect(first.report.rebuilt == ["repository:extra", "installed", "etc:/etc/ssh/sshd_config"])
        #expect(Files.exists(path))
        // One document per package: vim is the repository's, with the installed version.
        let names = first.engine.documents.filter { $0.kind == .package }.map(\.name)
        #expect(names == ["firefox", "vim", "own-tool"])
        #expect(first.engine.package(named: "VIM")?.installedVersion == "2")
        #expect(first.engine.package(named: "vim")?.repository == "extra")

        built.lines = []
        let second = try SearchIndex.update(path: path, sources: Self.sources(built: built), table: table)
        #expect(second.report.rebuilt.isEmpty)
        #expect(built.lines.isEmpty, "nothing was read again")
        for query in ["web browser", "vim", "root login", "editor"] {
            #expect(second.engine.search(query) == first.engine.search(query), "\(query)")
        }

        let third = try SearchIndex.update(path: path, sources: Self.sources(config: "PermitRootLogin yes\n", built: built), table: table)
        #expect(third.report.rebuilt == ["etc:/etc/ssh/sshd_config"])
        #expect(third.engine.search("PermitRootLogin", kinds: [.config]).first?.document.text == "PermitRootLogin yes")

        // A damaged file is built anew, and says so in the log.
        var bytes = try Files.read(path)
        bytes.removeLast(10)
        try Files.writeAtomically(path, bytes: bytes)
        let messages = Recorder()
        let repaired = try SearchIndex.update(path: path, sources: Self.sources(built: built), table: table) { line in messages.lines.append(line) }
        #expect(repaired.report.rebuilt.count == 3)
        #expect(messages.lines.contains { $0.contains(path) && $0.contains("built anew") })
        #expect(try SearchIndex.update(path: path, sources: Self.sources(built: built), table: table).report.rebuilt.isEmpty)
    }

    @Test func aNewSnapshotStartsFromAnotherSnapshotsIndex() throws {
        let table = try SearchFixtures.loadTable()
        let scratch = try TemporaryDirectory(prefix: "rast-search-seed")
        defer { try? scratch.remove() }
        let built = Recorder()
        _ = try SearchIndex.update(path: scratch.appending("snapshot-1.index"), sources: Self.sources(built: built), table: table)
        built.lines = []
        let second = try SearchIndex.update(path: scratch.appending("snapshot-2.index"),
                                            sources: Self.sources(config: "Port 2222\n", built: built), table: table,
                                            seeds: [scratch.appending("snapshot-1.index")])
        #expect(second.report.rebuilt == ["etc:/etc/ssh/sshd_config"])
        #expect(second.report.kept == 2)
    }

    @Test func configFilesSplitIntoCommentAndSettingChunksWithLines() {
        let text = "# The SSH server.\n# See sshd_config(5).\n\nPort 22\n  ; a semicolon comment\nListenAddress 0.0.0.0\n[section]\n// slashes\n"
        let chunks = ConfigChunker.chunks(of: text, path: "/etc/x.conf")
        #expect(chunks.map(\.line) == [1, 4, 5, 6, 7, 8])
        #expect(chunks.map(\.text) == ["The SSH server. See sshd_config(5).", "Port 22", "a semicolon comment", "ListenAddress 0.0.0.0", "[section]", "slashes"])
        #expect(chunks.allSatisfy { $0.location.hasPrefix("/etc/x.conf:") })
    }

    @Test func onlyWorldReadableTextFilesOfEtcAreIndexed() throws {
        let scratch = try TemporaryDirectory(prefix: "rast-search-etc")
        defer { try? scratch.remove() }
        try Files.write(scratch.appending("hostname"), string: "box\n")
        try Files.write(scratch.appending("shadow"), string: "root:$6$secret:19000::::::\n", mode: 0o600)
        try Files.write(scratch.appending("pacman.d/gnupg/pubring.gpg"), string: "keys\n")
        try Files.write(scratch.appending("big.conf"), string: String(repeating: "x = 1\n", count: 40_000))
        #expect(ConfigChunker.files(under: scratch.path).map(\.path) == ["hostname"])
        try Files.writeAtomically(scratch.appending("binary.db"), bytes: [0x53, 0x51, 0x00, 0x01, 0x02])
        #expect(ConfigChunker.chunks(ofFile: scratch.appending("binary.db"), path: "/etc/binary.db").isEmpty)
    }
}
