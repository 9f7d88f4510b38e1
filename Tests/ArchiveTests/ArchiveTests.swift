import Archive
import Packages
import Foundation
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One line of `bsdtar -tvf`, split into the fields the tests compare.
struct BsdtarLine: Equatable, CustomStringConvertible {
    var mode: String
    var user: String
    var group: String
    var size: Int64
    var path: String
    var link: String?

    var description: String { "\(mode) \(user)/\(group) \(size) \(path)" + (link.map { " => \($0)" } ?? "") }

    init(mode: String, user: String, group: String, size: Int64, path: String, link: String?) {
        self.mode = mode
        self.user = user
        self.group = group
        self.size = size
        self.path = path
        self.link = link
    }

    init(_ entry: ArchiveEntry) {
        self.init(mode: entry.modeString, user: entry.owner.userName ?? String(entry.owner.uid),
                  group: entry.owner.groupName ?? String(entry.owner.gid), size: entry.size,
                  path: entry.path, link: entry.linkTarget)
    }

    /// Parses `-rw-r--r--  0 root root 555 Nov 22 02:31 path[ -> target| link to target]`.
    init?(parsing line: String) {
        var fields = line.split(separator: " ", maxSplits: 8, omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 9, let size = Int64(fields[4]) else { return nil }
        var rest = fields.removeLast()
        var link: String?
        if let range = rest.range(of: " -> ") {
            link = String(rest[range.upperBound...])
            rest = String(rest[..<range.lowerBound])
        } else if let range = rest.range(of: " link to ") {
            link = String(rest[range.upperBound...])
            rest = String(rest[..<range.lowerBound])
        }
        self.init(mode: fields[0], user: fields[2], group: fields[3], size: size, path: rest, link: link)
    }
}

func bsdtarListing(_ path: String) throws -> [BsdtarLine] {
    let output = try Command("bsdtar", ["-tvf", path], environment: ["LANG": "C", "TZ": "UTC"]).output()
    return output.split(separator: "\n").compactMap { BsdtarLine(parsing: String($0)) }
}

func fileMode(_ path: String) -> mode_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode : 0
}

func inode(_ path: String) -> ino_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_ino : 0
}

func readLink(_ path: String) -> String? {
    try? FileManager.default.destinationOfSymbolicLink(atPath: path)
}

/// The first bytes each compression leaves in the file (to prove the filter was applied).
func magic(of compression: ArchiveCompression) -> [UInt8]? {
    switch compression {
    case .none: return nil
    case .gzip: return [0x1f, 0x8b]
    case .xz: return [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]
    case .zstd: return [0x28, 0xb5, 0x2f, 0xfd]
    }
}

@Suite struct ArchiveTests {
    @Test(arguments: ArchiveCompression.allCases)
    func explicitEntriesRoundTrip(compression: ArchiveCompression) throws {
        try Require.programs("bsdtar")
        let scratch = try Scratch("rast-archive")
        let path = scratch.appending("test.tar" + [ArchiveCompression.none: "", .gzip: ".gz", .xz: ".xz", .zstd: ".zst"][compression]!)
        let payload = Array("#!/bin/sh\necho hello\n".utf8)
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / 7) }
        let owner = Ownership(uid: 1000, gid: 100, userName: "alice", groupName: "users")
        let writer = try ArchiveWriter(path: path, compression: compression)
        try writer.addDirectory("usr/", modificationTime: 1_700_000_000)
        try writer.addDirectory("usr/bin/", modificationTime: 1_700_000_000)
        try writer.addFile("usr/bin/hello", contents: payload, permissions: 0o755, modificationTime: 1_700_000_000)
        try writer.addFile("usr/bin/su-like", contents: payload, permissions: 0o4755, modificationTime: 1_700_000_000)
        try writer.addFile("usr/share/big.bin", contents: big, permissions: 0o600, owner: owner, modificationTime: 1_700_000_001)
        try writer.addSymlink("usr/bin/hi", target: "hello", modificationTime: 1_700_000_000)
        try writer.addHardlink("usr/bin/hello-again", target: "usr/bin/hello", permissions: 0o755, modificationTime: 1_700_000_000)
        try writer.addFile(".PKGINFO", contents: Array("pkgname = x\n".utf8), modificationTime: 1_700_000_000)
        #expect(!Files.exists(path), "the archive must not appear under its final name before close()")
        try writer.close()
        #expect(Files.exists(path))
        if let magic = magic(of: compression) {
            #expect(Array(try Files.read(path).prefix(magic.count)) == magic)
            // The compressor's own tool accepts the stream (no trailing padding, complete frames).
            let tool = [ArchiveCompression.gzip: "gzip", .xz: "xz", .zstd: "zstd"][compression]!
            try Require.programs(tool)
            try Command(tool, ["-t", path]).run()
        }

        let entries = try ArchiveReader.list(path)
        #expect(entries.map(\.path) == ["usr/", "usr/bin/", "usr/bin/hello", "usr/bin/su-like", "usr/share/big.bin",
                                        "usr/bin/hi", "usr/bin/hello-again", ".PKGINFO"])
        let byPath = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0) })
        #expect(byPath["usr/bin/hello"]?.kind == .regular)
        #expect(byPath["usr/bin/hello"]?.permissions == 0o755)
        #expect(byPath["usr/bin/su-like"]?.modeString == "-rwsr-xr-x")
        #expect(byPath["usr/share/big.bin"]?.size == Int64(big.count))
        #expect(byPath["usr/share/big.bin"]?.owner == owner)
        #expect(byPath["usr/share/big.bin"]?.modificationTime == 1_700_000_001)
        #expect(byPath["usr/bin/hi"]?.kind == .symlink)
        #expect(byPath["usr/bin/hi"]?.linkTarget == "hello")
        #expect(byPath["usr/bin/hello-again"]?.kind == .hardlink)
        #expect(byPath["usr/bin/hello-again"]?.linkTarget == "usr/bin/hello")
        #expect(byPath["usr/"]?.kind == .directory)

        // bsdtar, reading the same file, sees the same entries.
        let theirs = try bsdtarListing(path)
        #expect(theirs == entries.map(BsdtarLine.init))

        #expect(try ArchiveReader.contents(of: ".PKGINFO", inArchive: path) == Array("pkgname = x\n".utf8))
        #expect(try ArchiveReader.contents(of: "./usr/share/big.bin", inArchive: path) == big)
        #expect(try ArchiveReader.contents(of: "missing", inArchive: path) == nil)

        let target = scratch.appending("out")
        try Files.createDirectory(target)
        try ArchiveReader.extract(path, to: target)
        #expect(try Files.read(target + "/usr/bin/hello") == payload)
        #expect(fileMode(target + "/usr/bin/hello") & 0o7777 == 0o755)
        #expect(fileMode(target + "/usr/bin/su-like") & 0o7777 == 0o4755)
        #expect(fileMode(target + "/usr/share/big.bin") & 0o7777 == 0o600)
        #expect(try Files.read(target + "/usr/share/big.bin") == big)
        #expect(readLink(target + "/usr/bin/hi") == "hello")
        #expect(inode(target + "/usr/bin/hello-again") == inode(target + "/usr/bin/hello"))
        let modified = try FileManager.default.attributesOfItem(atPath: target + "/usr/share/big.bin")[.modificationDate] as? Date
        #expect(modified.map { Int64($0.timeIntervalSince1970) } == 1_700_000_001)
        print("archive: \(compression) round trip of \(entries.count) entries through \(path) matches bsdtar -tvf")
    }

    @Test func directoryTreeRoundTrip() throws {
        try Require.programs("bsdtar")
        let scratch = try Scratch("rast-archive")
        let source = scratch.appending("src")
        try Files.write(source + "/etc/app.conf", string: "key = value\n", mode: 0o640)
        try Files.write(source + "/usr/bin/tool", string: "#!/bin/sh\nexit 0\n", mode: 0o755)
        try Files.write(source + "/usr/lib/libx.so.1.2", string: String(repeating: "x", count: 70_000))
        try Files.createDirectory(source + "/var/empty", mode: 0o700)
        #expect(symlink("libx.so.1.2", source + "/usr/lib/libx.so.1") == 0)
        #expect(link(source + "/usr/bin/tool", source + "/usr/bin/tool-link") == 0)
        #expect(chmod(source + "/var/empty", 0o700) == 0)

        let path = scratch.appending("tree.tar.zst")
        try ArchiveWriter.writeTree(source, to: path, compression: .zstd, owner: .root, modificationTime: 1_600_000_000)
        let entries = try ArchiveReader.list(path)
        // Byte order of the whole path, as makepkg's list_package_files gives bsdtar.
        #expect(entries.map(\.path) == ["etc/", "etc/app.conf", "usr/", "usr/bin/", "usr/bin/tool", "usr/bin/tool-link",
                                        "usr/lib/", "usr/lib/libx.so.1", "usr/lib/libx.so.1.2", "var/", "var/empty/"])
        #expect(entries.allSatisfy { $0.owner == .root && $0.modificationTime == 1_600_000_000 })
        let byPath = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0) })
        #expect(byPath["usr/bin/tool-link"]?.kind == .hardlink)
        #expect(byPath["usr/bin/tool-link"]?.linkTarget == "usr/bin/tool")
        #expect(byPath["usr/lib/libx.so.1"]?.linkTarget == "libx.so.1.2")
        #expect(byPath["etc/app.conf"]?.permissions == 0o640)
        #expect(try bsdtarListing(path) == entries.map(BsdtarLine.init))

        let target = scratch.appending("out")
        try Files.createDirectory(target)
        let extracted = try ArchiveReader.extract(path, to: target)
        #expect(extracted.count == entries.count)
        #expect(try Files.readString(target + "/etc/app.conf") == "key = value\n")
        #expect(fileMode(target + "/etc/app.conf") & 0o777 == 0o640)
        #expect(fileMode(target + "/var/empty") & 0o777 == 0o700)
        #expect(fileMode(target + "/var/empty") & S_IFMT == S_IFDIR)
        #expect(readLink(target + "/usr/lib/libx.so.1") == "libx.so.1.2")
        #expect(inode(target + "/usr/bin/tool") == inode(target + "/usr/bin/tool-link"))
        #expect(try Files.size(target + "/usr/lib/libx.so.1.2") == 70_000)
        print("archive: tree of \(entries.count) entries (hard link, symlink, modes) through \(path) matches bsdtar -tvf and extracts")
    }

    /// Our mtree writer, given makepkg's keywords, writes what `bsdtar --format=mtree` writes.
    @Test func mtreeMatchesBsdtar() throws {
        try Require.programs("bsdtar")
        let scratch = try Scratch("rast-archive")
        let source = scratch.appending("pkg")
        try Files.write(source + "/.PKGINFO", string: "pkgname = demo\n")
        try Files.write(source + "/usr/bin/demo", string: "#!/bin/sh\necho demo\n", mode: 0o755)
        try Files.write(source + "/usr/share/demo/data", string: "data\n")
        #expect(symlink("demo", source + "/usr/bin/demo-alias") == 0)
        let keywords = "!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link"
        let writer = try ArchiveWriter(format: .makepkgMtree)
        try writer.addTree(source)
        try writer.close()
        let ours = String(decoding: writer.bytes, as: UTF8.self)

        let list = scratch.appending("list")
        let names = [".PKGINFO", "usr", "usr/bin", "usr/bin/demo", "usr/bin/demo-alias", "usr/share", "usr/share/demo",
                     "usr/share/demo/data"]
        try Files.write(list, string: names.joined(separator: "\n") + "\n")
        let theirs = try Command("bsdtar", ["-cf", "-", "--format=mtree", "--options=\(keywords)", "-n", "-T", list],
                                 environment: ["LANG": "C"], workingDirectory: source).output()
        #expect(ours.trimmingCharacters(in: .newlines) == theirs)
        #expect(ours.contains("./usr/bin/demo-alias"))
        #expect(ours.contains("sha256digest="))

        // Read back through libarchive's mtree reader.
        let entries = try ArchiveReader(bytes: writer.bytes, name: "mtree")
        var seen: [String] = []
        while let entry = try entries.next() { seen.append(entry.path) }
        #expect(seen.contains("./usr/bin/demo") || seen.contains("usr/bin/demo"))
        print("archive: mtree with makepkg's keywords is byte-identical to bsdtar --format=mtree (\(ours.utf8.count) bytes)")
    }

    @Test func unsafeEntriesAreRefused() throws {
        let scratch = try Scratch("rast-archive")
        let outside = scratch.appending("outside")
        try Files.createDirectory(outside)
        let cases: [(String, (ArchiveWriter) throws -> Void, String)] = [
            ("dotdot", { try $0.addFile("../escaped", contents: Array("x".utf8)) }, scratch.appending("escaped")),
            ("nested-dotdot", { try $0.addFile("a/../../escaped2", contents: Array("x".utf8)) }, scratch.appending("escaped2")),
            ("absolute", { try $0.addFile(outside + "/absolute", contents: Array("x".utf8)) }, outside + "/absolute"),
            ("symlink", {
                try $0.addSymlink("link", target: outside)
                try $0.addFile("link/through-symlink", contents: Array("x".utf8))
            }, outside + "/through-symlink"),
            ("hardlink", {
                try $0.addHardlink("hl", target: "../../etc/passwd")
            }, scratch.appending("dest-hardlink/hl")),
        ]
        for (label, write, escapee) in cases {
            let path = scratch.appending("\(label).tar")
            let writer = try ArchiveWriter(path: path)
            try writer.addFile("fine", contents: Array("ok".utf8))
            try write(writer)
            try writer.close()
            let destination = scratch.appending("dest-\(label)")
            try Files.createDirectory(destination)
            do {
                try ArchiveReader.extract(path, to: destination)
                Issue.record("extracting \(label) should have been refused")
            } catch let error as ArchiveError {
                #expect(error.description.contains(path), "the error names the archive: \(error)")
                if label == "symlink" {
                    #expect(error.kind == .library, "libarchive's symlink guard refuses it: \(error)")
                } else {
                    #expect(error.kind == .unsafePath, "\(error)")
                }
                print("archive: refused \(label): \(error)")
            }
            #expect(!Files.exists(escapee), "\(label) wrote outside the destination")
        }
    }

    @Test func truncatedArchiveGivesClearError() throws {
        let scratch = try Scratch("rast-archive")
        let path = scratch.appending("cut.tar.zst")
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<400_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let writer = try ArchiveWriter(path: path, compression: .zstd)
        try writer.addFile("first", contents: Array("first".utf8))
        try writer.addFile("noise.bin", contents: noise)
        try writer.addFile("last", contents: Array("last".utf8))
        try writer.close()
        let size = try Files.size(path)
        #expect(truncate(path, off_t(size / 2)) == 0)

        #expect(throws: ArchiveError.self) { try ArchiveReader.list(path) }
        do {
            let destination = scratch.appending("out")
            try Files.createDirectory(destination)
            try ArchiveReader.extract(path, to: destination)
            Issue.record("extracting a truncated archive succeeded")
        } catch let error as ArchiveError {
            #expect(error.archive == path)
            #expect(error.function.hasPrefix("archive_read_"))
            #expect(error.entry == "noise.bin", "the entry being read is named: \(error)")
            #expect(!error.message.isEmpty)
            print("archive: truncated archive: \(error)")
        }
        #expect(throws: ArchiveError.self) { try ArchiveReader(path: scratch.appending("does-not-exist.tar")) }
    }

    @Test func writerThatIsNotClosedLeavesNoFile() throws {
        let scratch = try Scratch("rast-archive")
        let path = scratch.appending("abandoned.tar.gz")
        do {
            let writer = try ArchiveWriter(path: path, compression: .gzip)
            try writer.addFile("a", contents: Array("a".utf8))
        }
        #expect(!Files.exists(path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
        print("archive: an unclosed writer left nothing in \(scratch.path)")
    }
}

@Suite struct MakepkgPackageReadingTests {
    /// A package makepkg built (through our Makepkg) reads the same through libarchive as
    /// through bsdtar, and extracts with its modes and links.
    @Test func readsAndExtractsAPackageBuiltByMakepkg() throws {
        try Require.root()
        try Require.programs("makepkg", "runuser", "useradd", "fakeroot", "bsdtar")
        let scratch = try Scratch("rast-archive-makepkg")
        let spec = PKGBUILDFixtures.hello(version: "1.0")
        let directory = try spec.write(in: scratch.appending("pkgbuilds"))
        let result = try Makepkg(jobs: 2).build(directory, into: scratch.appending("out"))
        let package = try #require(result.packages.first)

        let entries = try ArchiveReader.list(package)
        #expect(try bsdtarListing(package) == entries.map(BsdtarLine.init))
        #expect(Array(entries.prefix(3).map(\.path)) == [".BUILDINFO", ".MTREE", ".PKGINFO"])
        #expect(entries.allSatisfy { $0.owner.uid == 0 && $0.owner.gid == 0 }, "fakeroot makes everything root's")
        let pkginfo = String(decoding: try #require(try ArchiveReader.contents(of: ".PKGINFO", inArchive: package)), as: UTF8.self)
        #expect(pkginfo.contains("pkgname = hello\n"))
        #expect(pkginfo.contains("pkgver = 1.0-1\n"))
        #expect(pkginfo.contains("depend = libhello>=1.0\n"))

        // .MTREE is a gzip'd mtree; libarchive reads it like any other archive.
        let mtree = try #require(try ArchiveReader.contents(of: ".MTREE", inArchive: package))
        let manifest = try ArchiveReader(bytes: mtree, name: ".MTREE")
        var described: [String] = []
        while let entry = try manifest.next() { described.append(ArchiveReaderPath.strip(entry.path)) }
        #expect(described.contains("usr/bin/hello"))

        let target = scratch.appending("extracted")
        try Files.createDirectory(target)
        try ArchiveReader.extract(package, to: target)
        #expect(try Files.readString(target + "/usr/bin/hello") == "#!/bin/sh\necho 'hello 1.0'\n")
        #expect(fileMode(target + "/usr/bin/hello") & 0o777 == 0o755)
        #expect(readLink(target + "/usr/bin/hi") == "hello")
        print("archive: read \(entries.count) entries of makepkg's \(package) (same as bsdtar -tvf) and extracted them")
    }
}

enum ArchiveReaderPath {
    static func strip(_ path: String) -> String {
        path.hasPrefix("./") ? String(path.dropFirst(2)) : path
    }
}
