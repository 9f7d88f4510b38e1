import Foundation
import SystemPackage
import SystemSupport
import TestSupport
import Testing

/// The helpers every module uses on swift-system's FileDescriptor: errors name the path,
/// reads fill buffers across short reads and stop at the end, temporary files are new.
@Suite struct FileDescriptorTests {
    @Test func failuresNameThePathAndTheReason() throws {
        let scratch = try Scratch()
        let missing = scratch.appending("missing/file")
        #expect {
            try Files.read(missing)
        } throws: { error in
            "\(error)" == "open \(missing): No such file or directory"
        }
        #expect {
            try Files.writeAtomically(missing, string: "x")
        } throws: { error in
            "\(error)" == "create temporary file for \(missing): No such file or directory"
        }
    }

    @Test func readsWholeFilesLargerThanOneChunkAndPrefixes() throws {
        let scratch = try Scratch()
        let path = scratch.appending("data")
        let bytes = (0..<200_001).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Files.writeAtomically(path, bytes: bytes)
        #expect(try Files.read(path) == bytes)
        #expect(try Files.readPrefix(path, count: 70_000) == Array(bytes.prefix(70_000)))
        #expect(try Files.readPrefix(path, count: 300_000) == bytes)
        #expect(try Files.read(scratch.appending("data")).count == 200_001)
    }

    @Test func positionedReadsStopAtTheEndOfTheFile() throws {
        let scratch = try Scratch()
        let path = scratch.appending("short")
        try Files.write(path, string: "0123456789")
        let file = try FileDescriptor.open(path: path, .readOnly)
        try file.closeAfter(path: path) {
            var buffer = [UInt8](repeating: 0, count: 8)
            let got = try buffer.withUnsafeMutableBytes { try file.read(filling: $0, fromAbsoluteOffset: 6, path: path) }
            #expect(got == 4)
            #expect(String(decoding: buffer.prefix(got), as: UTF8.self) == "6789")
            // The file offset is untouched by positioned reads.
            #expect(try file.readToEnd(path: path) == Array("0123456789".utf8))
        }
    }

    @Test func createUniqueMakesNewFilesOnly() throws {
        let scratch = try Scratch()
        let prefix = scratch.appending(".state.tmp-")
        var paths: Set<String> = []
        for _ in 0..<20 {
            let (file, path) = try FileDescriptor.createUnique(prefix: prefix)
            try file.closeAfter(path: path) { try file.writeAll(Array(path.utf8), path: path) }
            #expect(path.hasPrefix(prefix) && path.count == prefix.count + 6)
            paths.insert(path)
        }
        #expect(paths.count == 20)
        for path in paths {
            #expect(try Files.readString(path) == path)
            var st = stat()
            #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
        }
    }

    @Test func dataExtentsFindTheDataOfASparseFile() throws {
        let scratch = try Scratch()
        let path = scratch.appending("sparse")
        let file = try FileDescriptor.open(path: path, .readWrite, options: .create, permissions: .ownerReadWrite)
        try file.closeAfter(path: path) {
            try file.resize(to: 64 << 20, path: path)
            try file.writeAll(toAbsoluteOffset: 8 << 20, [UInt8](repeating: 1, count: 1 << 20), path: path)
            #expect(try file.size(path: path) == 64 << 20)
            #expect(try file.dataExtents(size: 64 << 20, path: path) == [(8 << 20)..<(9 << 20)])
        }
    }

    @Test func logFileKeepsItsTailWhenWritesFail() throws {
        let scratch = try Scratch()
        let path = scratch.appending("logs/build.log")
        let log = try LogFile(path: path)
        log.write("first\n")
        log.write("second\n")
        log.close()
        log.write("after close\n")
        #expect(try Files.readString(path) == "first\nsecond\n")
        #expect(log.tail(lines: 2) == "after close\n")
        #expect(log.tail(lines: 3) == "second\nafter close\n")

        // /dev/full fails every write with ENOSPC, as a full disk does: the log goes on.
        let full = try LogFile(path: "/dev/full")
        full.write("one\n")
        full.write("two\n")
        #expect(full.tail(lines: 3) == "one\ntwo\n")
    }
}
