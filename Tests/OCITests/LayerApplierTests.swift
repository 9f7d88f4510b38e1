import Foundation
import OCI
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Layers applied onto a directory as the image spec's changeset rules say, from tar
/// archives made with GNU tar (and Python's tarfile for one a tool would not write).
@Suite("OCI layers")
struct LayerApplierTests {
    /// A layer archive from a directory tree described by `files` (path -> content; a
    /// trailing "/" makes a directory, "->" a symlink).
    static func layer(_ scratch: Scratch, _ name: String, _ files: [String: String], gzip: Bool = false) throws -> String {
        let tree = scratch.appending(name)
        try Files.createDirectory(tree)
        for (path, content) in files.sorted(by: { $0.key < $1.key }) {
            if path.hasSuffix("/") {
                try Files.createDirectory(tree + "/" + path)
            } else if content.hasPrefix("->") {
                try Files.createDirectory(((tree + "/" + path) as NSString).deletingLastPathComponent)
                #expect(symlink(String(content.dropFirst(2)), tree + "/" + path) == 0)
            } else {
                try Files.write(tree + "/" + path, string: content)
            }
        }
        let archive = scratch.appending(name + (gzip ? ".tar.gz" : ".tar"))
        try Command("tar", ["--numeric-owner", "-C", tree, gzip ? "-czf" : "-cf", archive, "."]).run()
        return archive
    }

    /// A layer archive `name` of regular files in the order given (path, content), written by
    /// Python's tarfile, which writes entries GNU tar would not (a marker after its
    /// directory's entries, names with "..").
    static func pythonLayer(_ scratch: Scratch, _ name: String, _ entries: KeyValuePairs<String, String>) throws -> String {
        let archive = scratch.appending(name)
        try Command("python3", ["-c", """
            import io, sys, tarfile
            with tarfile.open(sys.argv[1], "w") as t:
                for name, text in zip(sys.argv[2::2], sys.argv[3::2]):
                    data = text.encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
            """, archive] + entries.flatMap { [$0.key, $0.value] }).run()
        return archive
    }

    @Test func whiteoutsOpaqueDirectoriesAndReplacements() throws {
        let scratch = try Scratch("rast-layers")
        let root = scratch.appending("root")
        try Files.createDirectory(root)
        let base = try Self.layer(scratch, "base", [
            "a/keep": "keep", "a/gone": "gone", "a/sub/deep": "deep", "b/file": "in b",
            "c/old": "old", "c/olddir/x": "x", "link": "->a",
        ], gzip: true)
        let result = try LayerApplier.apply(base, to: root)
        #expect(result.whiteouts == 0)
        #expect(try Files.readString(root + "/a/keep") == "keep")

        let top = try Self.layer(scratch, "top", [
            "a/.wh.gone": "", "a/.wh.sub": "", "a/added": "added",
            "b": "b is a file now",
            "c/.wh..wh..opq": "", "c/new": "new",
            "d/.wh.never-there": "",
        ])
        let applied = try LayerApplier.apply(top, to: root)
        #expect(applied.whiteouts == 3)
        #expect(applied.opaqueDirectories == 1)
        #expect(!Files.exists(root + "/a/gone"))
        #expect(!Files.exists(root + "/a/sub"))
        #expect(try Files.readString(root + "/a/keep") == "keep")
        #expect(try Files.readString(root + "/a/added") == "added")
        #expect(try Files.readString(root + "/b") == "b is a file now")
        #expect(try FileManagerShim.contents(of: root + "/c") == ["new"])
        #expect(!Files.exists(root + "/a/.wh.gone"))
        #expect(!Files.exists(root + "/c/.wh..wh..opq"))
        #expect(!Files.exists(root + "/d/.wh.never-there"))
        var info = stat()
        #expect(lstat(root + "/link", &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK)
    }

    @Test func anOpaqueDirectoryKeepsWhatItsOwnLayerPutThere() throws {
        let scratch = try Scratch("rast-layers")
        let root = scratch.appending("root")
        try Files.createDirectory(root)
        try LayerApplier.apply(try Self.layer(scratch, "base", ["etc/a": "a", "etc/conf.d/x": "x"]), to: root)
        // The marker comes after the entries in this archive (Python writes them in order).
        let archive = try Self.pythonLayer(scratch, "late-marker.tar", ["etc/conf.d/y": "y", "etc/b": "b", "etc/.wh..wh..opq": ""])
        try LayerApplier.apply(archive, to: root)
        #expect(try FileManagerShim.contents(of: root + "/etc") == ["b", "conf.d"])
        #expect(try FileManagerShim.contents(of: root + "/etc/conf.d") == ["y"])
    }

    @Test func whiteoutsDoNotFollowSymlinksOutOfTheRoot() throws {
        let scratch = try Scratch("rast-layers")
        let outside = scratch.appending("outside")
        try Files.write(outside + "/precious", string: "keep me")
        let root = scratch.appending("root")
        try Files.createDirectory(root)
        try LayerApplier.apply(try Self.layer(scratch, "base", ["escape": "->" + outside]), to: root)
        // Only the marker, no directory entry for escape/ (which would replace the symlink).
        let archive = try Self.pythonLayer(scratch, "evil.tar", ["escape/.wh.precious": ""])
        let error = try #require(throws: OCIError.self) { try LayerApplier.apply(archive, to: root) }
        #expect(error.description.contains("escape is a symlink"))
        #expect(try Files.readString(outside + "/precious") == "keep me")
    }

    @Test func entriesLeavingTheRootAreRefused() throws {
        let scratch = try Scratch("rast-layers")
        let root = scratch.appending("root")
        try Files.createDirectory(root)
        let archive = try Self.pythonLayer(scratch, "dotdot.tar", ["../escaped": "x"])
        let error = try #require(throws: OCIError.self) { try LayerApplier.apply(archive, to: root) }
        #expect(error.description.contains("'..'"))
        #expect(!Files.exists(scratch.path + "/escaped"))
    }
}
