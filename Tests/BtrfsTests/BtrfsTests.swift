import Btrfs
import Foundation
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Every test formats its own btrfs filesystem on a loop file and checks what the wrapper
/// did with the `btrfs` command line tool or the kernel's behaviour (EROFS, mounts).
@Suite("Btrfs")
final class BtrfsTests {
    /// Each test's own filesystem (Swift Testing makes an instance of the suite per test),
    /// unmounted and removed when the test ends.
    let fs: BtrfsFixture

    init() throws { fs = try BtrfsFixture() }

    deinit { fs.close() }

    @Test func createSubvolumeAndReadItsInfo() throws {
        let path = fs.path("data")
        let before = Date()
        try Btrfs.createSubvolume(at: path)

        #expect(try Btrfs.isSubvolume(path))
        try Files.createDirectory(fs.path("plain"))
        #expect(try !Btrfs.isSubvolume(fs.path("plain")))
        #expect(try Btrfs.isSubvolume(fs.mountPoint))

        let info = try Btrfs.subvolumeInfo(path)
        let show = try BtrfsCLI.show(path)
        #expect(info.id == UInt64(show["Subvolume ID"] ?? ""))
        #expect(info.uuid.uuidString.lowercased() == show["UUID"])
        #expect(info.parentID == Btrfs.topLevelID)
        #expect(info.parentUUID == nil)
        #expect(info.generation == UInt64(show["Generation"] ?? ""))
        #expect(info.creationTransaction == UInt64(show["Gen at creation"] ?? ""))
        #expect(!info.isReadOnly)
        #expect(info.creationTime.timeIntervalSince(before) > -2)
        #expect(info.creationTime.timeIntervalSinceNow < 2)
        #expect(info.changeTime >= info.creationTime)
        #expect(try Btrfs.subvolumeID(path) == info.id)
        #expect(try Btrfs.subvolumeID(fs.path("plain")) == Btrfs.topLevelID)
        #expect(try Btrfs.subvolumeInfo(fs: fs.mountPoint, id: info.id) == info)
    }

    @Test func deleteSubvolume() throws {
        try Btrfs.createSubvolume(at: fs.path("gone"))
        try Files.write(fs.path("gone/file"), string: "content")
        try Btrfs.deleteSubvolume(at: fs.path("gone"))
        #expect(!Files.exists(fs.path("gone")))
        #expect(try BtrfsCLI.list(fs.mountPoint).isEmpty)
    }

    @Test func writableSnapshotCopiesContentAndRecordsParent() throws {
        try Btrfs.createSubvolume(at: fs.path("origin"))
        try Files.write(fs.path("origin/file"), string: "first")
        try Btrfs.createSnapshot(of: fs.path("origin"), at: fs.path("copy"))

        #expect(try Files.readString(fs.path("copy/file")) == "first")
        try Files.write(fs.path("copy/file"), string: "changed")
        #expect(try Files.readString(fs.path("origin/file")) == "first")
        let origin = try Btrfs.subvolumeInfo(fs.path("origin"))
        let copy = try Btrfs.subvolumeInfo(fs.path("copy"))
        #expect(copy.parentUUID == origin.uuid)
        #expect(copy.id != origin.id)
        #expect(!copy.isReadOnly)
        #expect(try BtrfsCLI.show(fs.path("copy"))["Parent UUID"] == origin.uuid.uuidString.lowercased())
    }

    @Test func readOnlySnapshotRefusesWrites() throws {
        try Btrfs.createSubvolume(at: fs.path("origin"))
        try Files.write(fs.path("origin/file"), string: "kept")
        try Btrfs.createSnapshot(of: fs.path("origin"), at: fs.path("frozen"), readOnly: true)

        #expect(try Btrfs.isReadOnly(fs.path("frozen")))
        #expect(try Btrfs.subvolumeInfo(fs.path("frozen")).isReadOnly)
        #expect(try BtrfsCLI.show(fs.path("frozen"))["Flags"] == "readonly")
        #expect(writeErrno(fs.path("frozen/new")) == EROFS)
        #expect(writeErrno(fs.path("frozen/file")) == EROFS)
        #expect(try Files.readString(fs.path("frozen/file")) == "kept")
    }

    @Test func readOnlyFlagRoundTrip() throws {
        let path = fs.path("volume")
        try Btrfs.createSubvolume(at: path)
        #expect(try !Btrfs.isReadOnly(path))
        try Btrfs.setReadOnly(path, true)
        #expect(try Btrfs.isReadOnly(path))
        #expect(try BtrfsCLI.property(path) == "ro=true")
        #expect(writeErrno(path + "/file") == EROFS)
        try Btrfs.setReadOnly(path, false)
        #expect(try !Btrfs.isReadOnly(path))
        #expect(try BtrfsCLI.property(path) == "ro=false")
        #expect(writeErrno(path + "/file") == 0)
    }

    @Test func snapshotOfPlainDirectoryFails() throws {
        try Files.createDirectory(fs.path("plain"))
        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.createSnapshot(of: fs.path("plain"), at: fs.path("snap"))
        }
        #expect(error.kind == .notSubvolume)
        #expect(error.function == "btrfs_util_create_snapshot")
        #expect(error.path == fs.path("plain"))
        #expect(error.destination == fs.path("snap"))
        #expect(error.message == "Not a Btrfs subvolume")
        #expect(error.description == "btrfs_util_create_snapshot \(fs.path("plain")) -> \(fs.path("snap")): Not a Btrfs subvolume")
        #expect(!Files.exists(fs.path("snap")))
    }

    @Test func snapshotOntoExistingPathFailsWithErrno() throws {
        try Btrfs.createSubvolume(at: fs.path("origin"))
        try Btrfs.createSubvolume(at: fs.path("taken"))
        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.createSnapshot(of: fs.path("origin"), at: fs.path("taken"))
        }
        #expect(error.kind == .systemCall)
        #expect(error.errno == EEXIST)
        // libbtrfsutil 6.2 words this "Could not create subvolume"; the errno text is the point.
        #expect(error.description.hasSuffix(": File exists"))
        #expect(error.description.hasPrefix("btrfs_util_create_snapshot \(fs.path("origin")) -> \(fs.path("taken")): Could not create"))
    }

    @Test func deletingSubvolumeWithNestedSubvolumesNeedsRecursive() throws {
        try Btrfs.createSubvolume(at: fs.path("outer"))
        try Btrfs.createSubvolume(at: fs.path("outer/inner"))
        try Btrfs.createSubvolume(at: fs.path("outer/inner/deepest"))
        try Files.write(fs.path("outer/inner/deepest/file"), string: "x")

        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.deleteSubvolume(at: fs.path("outer"))
        }
        #expect(error.errno == ENOTEMPTY)
        #expect(error.function == "btrfs_util_delete_subvolume")
        #expect(error.path == fs.path("outer"))
        #expect(error.description.contains("Directory not empty"))
        #expect(try BtrfsCLI.list(fs.mountPoint).count == 3)

        try Btrfs.deleteSubvolume(at: fs.path("outer"), recursive: true)
        #expect(!Files.exists(fs.path("outer")))
        #expect(try BtrfsCLI.list(fs.mountPoint).isEmpty)
    }

    @Test func recursiveSnapshotIncludesNestedSubvolumes() throws {
        try Btrfs.createSubvolume(at: fs.path("root"))
        try Btrfs.createSubvolume(at: fs.path("root/nested"))
        try Files.write(fs.path("root/nested/file"), string: "nested")

        try Btrfs.createSnapshot(of: fs.path("root"), at: fs.path("flat"))
        #expect(Files.isDirectory(fs.path("flat/nested")))
        #expect(try !Btrfs.isSubvolume(fs.path("flat/nested")))
        #expect(!Files.exists(fs.path("flat/nested/file")))

        try Btrfs.createSnapshot(of: fs.path("root"), at: fs.path("deep"), recursive: true)
        #expect(try Btrfs.isSubvolume(fs.path("deep/nested")))
        #expect(try Files.readString(fs.path("deep/nested/file")) == "nested")
        let nested = try Btrfs.subvolumeInfo(fs.path("root/nested"))
        #expect(try Btrfs.subvolumeInfo(fs.path("deep/nested")).parentUUID == nested.uuid)
    }

    @Test func defaultSubvolumeRoundTripMountsTheDefault() throws {
        #expect(try Btrfs.defaultSubvolumeID(fs: fs.mountPoint) == Btrfs.topLevelID)
        try Btrfs.createSubvolume(at: fs.path("next"))
        try Files.write(fs.path("next/marker"), string: "booted next")
        let id = try Btrfs.subvolumeID(fs.path("next"))

        try Btrfs.setDefaultSubvolume(fs.path("next"))
        #expect(try Btrfs.defaultSubvolumeID(fs: fs.mountPoint) == id)
        #expect(try Command("btrfs", ["subvolume", "get-default", fs.mountPoint]).output().hasPrefix("ID \(id) "))

        // A mount without a subvol option now shows the default subvolume.
        let second = fs.directory.appending("second")
        try Files.createDirectory(second)
        let device = try #require(fs.devicePath)
        try Mounts.mount(device, on: second, type: "btrfs")
        defer { try? Mounts.unmount(second) }
        #expect(try Files.readString(second + "/marker") == "booted next")
        try Mounts.unmount(second)

        try Btrfs.setDefaultSubvolume(id: Btrfs.topLevelID, fs: fs.mountPoint)
        #expect(try Btrfs.defaultSubvolumeID(fs: fs.mountPoint) == Btrfs.topLevelID)
    }

    @Test func settingMissingDefaultSubvolumeFails() throws {
        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.setDefaultSubvolume(id: 4242, fs: fs.mountPoint)
        }
        #expect(error.function == "btrfs_util_set_default_subvolume")
        #expect(error.errno == ENOENT)
        #expect(try Btrfs.defaultSubvolumeID(fs: fs.mountPoint) == Btrfs.topLevelID)
    }

    @Test func renameMovesSubvolumeWithinFilesystem() throws {
        try Btrfs.createSubvolume(at: fs.path("a"))
        try Btrfs.createSubvolume(at: fs.path("dir"))
        try Files.write(fs.path("a/file"), string: "moved")
        let id = try Btrfs.subvolumeID(fs.path("a"))

        // Into another subvolume of the same filesystem.
        try Btrfs.rename(from: fs.path("a"), to: fs.path("dir/b"))
        #expect(!Files.exists(fs.path("a")))
        #expect(try Btrfs.subvolumeID(fs.path("dir/b")) == id)
        #expect(try Files.readString(fs.path("dir/b/file")) == "moved")
        #expect(try Btrfs.subvolumePath(fs: fs.mountPoint, id: id) == "dir/b")

        // Never replaces what is there.
        try Files.createDirectory(fs.path("empty"))
        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.rename(from: fs.path("dir/b"), to: fs.path("empty"))
        }
        #expect(error.errno == EEXIST)
        #expect(error.function == "rename")
        #expect(try Btrfs.subvolumeID(fs.path("dir/b")) == id)
    }

    @Test func renameRefusesOtherFilesystems() throws {
        let other = try BtrfsFixture()
        defer { other.close() }
        try Btrfs.createSubvolume(at: fs.path("a"))

        let error = try #require(throws: BtrfsError.self) {
            try Btrfs.rename(from: fs.path("a"), to: other.path("a"))
        }
        #expect(error.kind == .differentFilesystems)
        #expect(error.description.contains("different btrfs filesystems"))
        #expect(try Btrfs.isSubvolume(fs.path("a")))

        let scratch = try Scratch()
        let notBtrfs = try #require(throws: BtrfsError.self) {
            try Btrfs.rename(from: fs.path("a"), to: scratch.appending("a"))
        }
        #expect(notBtrfs.kind == .notBtrfs)
        #expect(notBtrfs.path == scratch.path)
    }

    @Test func filesystemUUIDMatchesBlkid() throws {
        try Btrfs.createSubvolume(at: fs.path("sub"))
        let blkid = try Command("blkid", ["-o", "value", "-s", "UUID", fs.imagePath]).output()
        #expect(try Btrfs.filesystemUUID(fs.mountPoint).uuidString.lowercased() == blkid)
        #expect(try Btrfs.filesystemUUID(fs.path("sub")) == Btrfs.filesystemUUID(fs.mountPoint))
    }

    @Test func listingMatchesTheCommandLineTool() throws {
        for path in ["a", "a/b", "a/b/c", "a/d", "e"] { try Btrfs.createSubvolume(at: fs.path(path)) }
        try Files.createDirectory(fs.path("e/dir"))
        try Btrfs.createSnapshot(of: fs.path("a/b"), at: fs.path("e/dir/snap"), readOnly: true)

        let all = try Btrfs.subvolumes(below: fs.mountPoint, top: Btrfs.topLevelID)
        let expected = try BtrfsCLI.list(fs.mountPoint)
        #expect(Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.path) }) == expected)
        #expect(all.map(\.path) == ["a", "a/b", "a/b/c", "a/d", "e", "e/dir/snap"])
        #expect(all.first { $0.path == "e/dir/snap" }?.info.isReadOnly == true)

        // Below one subvolume: paths relative to it; post-order puts children first.
        let below = try Btrfs.subvolumes(below: fs.path("a"))
        #expect(below.map(\.path) == ["b", "b/c", "d"])
        let postOrder = try Btrfs.subvolumes(below: fs.path("a"), postOrder: true)
        #expect(postOrder.map(\.path) == ["b/c", "b", "d"])

        for entry in all {
            #expect(try Btrfs.subvolumePath(fs: fs.mountPoint, id: entry.id) == entry.path)
            #expect(try Btrfs.subvolumeID(fs.path(entry.path)) == entry.id)
        }
        #expect(try Btrfs.subvolumePath(fs: fs.mountPoint, id: Btrfs.topLevelID) == "")
    }

    @Test func listingBelowPlainDirectoryFails() throws {
        try Files.createDirectory(fs.path("plain"))
        let error = try #require(throws: BtrfsError.self) {
            _ = try SubvolumeIterator(path: fs.path("plain"))
        }
        #expect(error.kind == .notSubvolume)
        #expect(error.function == "btrfs_util_create_subvolume_iterator")
    }

    @Test func missingPathIsAnErrorNotFalse() throws {
        let error = try #require(throws: BtrfsError.self) {
            _ = try Btrfs.isSubvolume(fs.path("missing"))
        }
        #expect(error.errno == ENOENT)
        #expect(error.path == fs.path("missing"))
    }

    @Test func syncCommitsATransaction() throws {
        let device = try #require(fs.devicePath)
        let before = try BtrfsCLI.superGeneration(device)
        try Files.write(fs.path("file"), string: "to be committed")
        try Btrfs.sync(fs.mountPoint)
        #expect(try BtrfsCLI.superGeneration(device) > before)
    }
}

/// A filesystem of its own, twice the usual size, for the snapshot metadata.
@Suite("Btrfs with a thousand snapshots")
struct BtrfsScaleTests {
    /// rast is benchmarked with 1,000 snapshots (bench/snapshots measures the speed): listing and
    /// deleting that many must be complete and correct.
    @Test func thousandSnapshotsListAndDelete() throws {
        let fs = try BtrfsFixture(size: "1G")
        defer { fs.close() }
        try Btrfs.createSubvolume(at: fs.path("base"))
        try Files.write(fs.path("base/file"), string: "base")
        try Files.createDirectory(fs.path("snapshots"))
        for number in 1...1000 {
            try Btrfs.createSnapshot(of: fs.path("base"), at: fs.path("snapshots/snapshot-\(number)"), readOnly: true)
        }
        let entries = try Btrfs.subvolumes(below: fs.mountPoint, top: Btrfs.topLevelID)
        #expect(entries.count == 1001)
        #expect(Set(entries.map(\.path)).count == 1001)
        #expect(entries.filter { $0.info.isReadOnly }.count == 1000)

        for number in 1...1000 { try Btrfs.deleteSubvolume(at: fs.path("snapshots/snapshot-\(number)")) }
        #expect(try Btrfs.subvolumes(below: fs.mountPoint, top: Btrfs.topLevelID).map(\.path) == ["base"])
    }
}

/// Tries to open `path` for writing (creating it); returns 0 or the errno.
private func writeErrno(_ path: String) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
    if fd < 0 { return errno }
    close(fd)
    return 0
}

/// The `btrfs` command line tool, the reference the wrapper is checked against.
private enum BtrfsCLI {
    /// `btrfs subvolume show` as "key: value" pairs.
    static func show(_ path: String) throws -> [String: String] {
        var fields: [String: String] = [:]
        for line in try Command("btrfs", ["subvolume", "show", path]).output().split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = value }
        }
        return fields
    }

    /// `btrfs subvolume list`: subvolume ID to path below the top level.
    static func list(_ mountPoint: String) throws -> [UInt64: String] {
        var result: [UInt64: String] = [:]
        for line in try Command("btrfs", ["subvolume", "list", mountPoint]).output().split(separator: "\n") {
            // ID 256 gen 7 top level 5 path a
            let words = line.split(separator: " ", maxSplits: 8)
            guard words.count == 9, let id = UInt64(words[1]) else { continue }
            result[id] = String(words[8])
        }
        return result
    }

    static func property(_ path: String) throws -> String {
        try Command("btrfs", ["property", "get", "-ts", path, "ro"]).output()
    }

    static func superGeneration(_ device: String) throws -> UInt64 {
        let dump = try Command("btrfs", ["inspect-internal", "dump-super", device]).output()
        for line in dump.split(separator: "\n") where line.hasPrefix("generation") {
            if let value = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap({ UInt64($0) }) {
                return value
            }
        }
        throw UnexpectedOutput(text: dump)
    }
}

private struct UnexpectedOutput: Error, CustomStringConvertible {
    let text: String
    var description: String { "no generation line in `btrfs inspect-internal dump-super` output:\n\(text)" }
}
