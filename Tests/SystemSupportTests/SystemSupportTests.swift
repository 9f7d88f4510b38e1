import Foundation
import SystemSupport
import TestSupport
import Testing

@Suite struct CommandTests {
    @Test func capturesOutputAndStatus() throws {
        let result = try Command("sh", ["-c", "echo out; echo err >&2; exit 3"]).run(check: false)
        #expect(result.status == 3)
        #expect(result.standardOutput == "out\n")
        #expect(result.standardError == "err\n")
    }

    @Test func failureNamesTheCommandAndItsOutput() throws {
        #expect {
            try Command("sh", ["-c", "echo broken pipe dream >&2; exit 2"]).run()
        } throws: { error in
            let text = "\(error)"
            return text.contains("exited with status 2") && text.contains("broken pipe dream")
        }
    }

    @Test func missingProgramIsNamed() {
        #expect {
            try Command("rast-no-such-program").run()
        } throws: { error in "\(error)".contains("rast-no-such-program was not found") }
    }

    @Test func streamsLinesSplitAtCarriageReturns() throws {
        var lines: [String] = []
        try Command("printf", ["a\\rb\\nc\\n"]).run(output: .lines { lines.append($0) })
        #expect(lines == ["a", "b", "c"])
    }

    @Test func timeoutStopsTheProgram() throws {
        let watch = Stopwatch()
        let result = try Command("sleep", ["30"]).run(check: false, timeout: 0.5)
        #expect(result.timedOut)
        #expect(watch.elapsed < 10)
        #expect(throws: CommandError.self) { try Command("sleep", ["30"]).run(timeout: 0.3) }
    }

    @Test func lineHandlerCanStopTheProgram() throws {
        var seen: [String] = []
        let result = try Command("sh", ["-c", "echo one; echo MARKER; sleep 30; echo never"]).run(output: .linesUntil { line in
            seen.append(line)
            return line == "MARKER"
        })
        #expect(result.stoppedByHandler)
        #expect(seen == ["one", "MARKER"])
    }

    @Test func feedsInput() throws {
        let out = try Command("cat", input: .bytes(Array("hello".utf8))).output()
        #expect(out == "hello")
    }

    /// 1 MiB of input (many pipe buffers) into a child that echoes it: input is written while
    /// output is read, so neither side waits for the other forever. (The time limit only ends
    /// the deadlock this used to be; the test takes a fraction of a second.)
    @Test(.timeLimit(.minutes(10))) func feedsInputLargerThanAPipeWhileReadingOutput() throws {
        let text = try Command("cat", input: .bytes(Array(String(repeating: "0123456789abcdef", count: 65536).utf8))).run(timeout: 30)
        #expect(!text.timedOut)
        #expect(text.standardOutput.utf8.count == 1 << 20)
        #expect(text.inputWritten == 1 << 20)
        // The same through a line handler.
        var lines = 0
        try Command("cat", input: .bytes(Array(String(repeating: "a line of text\n", count: 70000).utf8)))
            .run(output: .lines { _ in lines += 1 }, timeout: 30)
        #expect(lines == 70000)
    }

    /// A child that exits without reading its input: no SIGPIPE kills us, the write stops, and
    /// the result says how much the child took.
    @Test(.timeLimit(.minutes(10))) func childThatStopsReadingEndsTheInputQuietly() throws {
        let input = [UInt8](repeating: 0x41, count: 1 << 20)
        let result = try Command("sh", ["-c", "head -c 10 >/dev/null; echo took ten"], input: .bytes(input)).run(timeout: 30)
        #expect(result.standardOutput == "took ten\n")
        #expect(result.termination == .exited(0))
        #expect(result.inputWritten < input.count)
        // With output passed through as well.
        let inherited = try Command("true", input: .bytes(input)).run(output: .inherit, timeout: 30)
        #expect(inherited.termination == .exited(0))
    }

    /// `exit 130` is an exit status, not SIGINT; a real signal is named as one.
    @Test func exitStatusIsToldApartFromASignal() throws {
        let exited = try Command("sh", ["-c", "exit 130"]).run(check: false)
        #expect(exited.termination == .exited(130))
        #expect(exited.status == 130)
        #expect {
            try Command("sh", ["-c", "exit 130"]).run()
        } throws: { error in
            "\(error)".contains("exited with status 130") && !"\(error)".contains("signal")
        }
        let killed = try Command("sh", ["-c", "kill -INT $$; sleep 5"]).run(check: false)
        #expect(killed.termination == .signalled(SIGINT))
        #expect(killed.status == 130, "a shell's $? for SIGINT")
        #expect {
            try Command("sh", ["-c", "kill -TERM $$; sleep 5"]).run()
        } throws: { error in
            "\(error)".contains("was killed by signal 15 (SIGTERM)")
        }
    }
}

@Suite struct FileTests {
    @Test func atomicWriteReplacesContentAndLeavesNoTemporaryFiles() throws {
        let scratch = try Scratch()
        let path = scratch.appending("state.json")
        try Files.writeAtomically(path, string: "one")
        try Files.writeAtomically(path, string: "two", mode: 0o600)
        #expect(try Files.readString(path) == "two")
        #expect(try FileManagerShim.contents(of: scratch.path) == ["state.json"])
    }

    @Test func sizesParse() {
        #expect(ByteCount.parse("2G") == 2 << 30)
        #expect(ByteCount.parse("512MiB") == 512 << 20)
        #expect(ByteCount.parse("1.5K") == 1536)
        #expect(ByteCount.parse("2X") == nil)
        #expect(ByteCount.parse("") == nil)
        #expect(ByteCount.parse("-1G") == nil)
    }

    @Test func secondLockHolderFailsAtOnceWithNoWait() throws {
        let scratch = try Scratch()
        let path = scratch.appending("lock")
        let first = try FileLock(path: path, wait: false)
        // flock locks belong to the open file description, so a second open conflicts.
        #expect(throws: UserError.self) { try FileLock(path: path, wait: false) }
        first.unlock()
        _ = try FileLock(path: path, wait: false)
    }
}

@Suite(.serialized) struct LoopAndMountTests {
    @Test func btrfsOnALoopFileMountsAndCleansUp() throws {
        let fixture = try BtrfsFixture(size: "256M")
        let image = fixture.imagePath
        let mountPoint = fixture.mountPoint
        #expect(Mounts.isBtrfs(mountPoint))
        #expect(LoopDevice.devices(backing: image).count == 1)
        try Files.write(mountPoint + "/hello", string: "hi")
        fixture.close()
        #expect(try MountTable.read().mounts(under: mountPoint).isEmpty)
        #expect(LoopDevice.devices(backing: image).isEmpty)
    }

    /// Another mount namespace created while our file system was mounted holds a copy of the
    /// mount: unmounting ours leaves the file system alive, and its last writes come only when
    /// that copy goes. `detach()` waits for that, so that the file behind the device is final
    /// when it returns.
    @Test func detachWaitsForACopyOfTheMountInAnotherNamespace() throws {
        try Require.loopDevices()
        try Require.programs("mkfs.btrfs", "unshare")
        let scratch = try Scratch()
        let image = scratch.appending("fs.img")
        let mountPoint = scratch.appending("mnt")
        try Command("truncate", ["-s", "256M", image]).run()
        try Command("mkfs.btrfs", ["-q", "-f", image]).run()
        try Files.createDirectory(mountPoint)
        let loop = try LoopDevice(file: image)
        try Mounts.mount(loop.path, on: mountPoint, type: "btrfs")
        try Files.write(mountPoint + "/hello", string: "hi")
        // A process in a new mount namespace, holding a copy of the mount for a second. It says
        // when its namespace exists (under load it may take a while to start), and leaves a
        // marker just before it exits, which is before its copy of the mount can go.
        let marker = scratch.appending("holder-done")
        let holder = Process()
        let ready = Pipe()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--mount", "--propagation", "private", "sh", "-c", "echo ready; sleep 1; touch '\(marker)'"]
        holder.standardOutput = ready
        try holder.run()
        let said = String(decoding: ready.fileHandleForReading.availableData, as: UTF8.self)
        #expect(said.hasPrefix("ready"), "the holder started: \(said)")
        try Mounts.unmount(mountPoint, lazyFallback: false)
        let start = Date()
        loop.detach()
        let waited = Date().timeIntervalSince(start)
        #expect(Files.exists(marker), "detach returned after the copy went (\(waited) s)")
        #expect(LoopDevice.devices(backing: image).isEmpty, "and the device is detached at once")
        holder.waitUntilExit()
        let check = try Command("btrfs", ["check", "--readonly", image]).run(check: false)
        #expect(check.status == 0, "the file system in the file is complete: \(check.standardError)")
    }

    @Test func partitionsAppearThroughBlkpg() throws {
        try Require.loopDevices()
        try Require.programs("sfdisk")
        let scratch = try Scratch()
        let image = scratch.appending("disk.img")
        try Command("truncate", ["-s", "64M", image]).run()
        try Command("sfdisk", ["-q", image], input: .bytes(Array("label: gpt\nstart=2048, size=20480\nstart=22528, size=20480\n".utf8))).run()
        let loop = try LoopDevice(file: image)
        try loop.addPartition(number: 1, start: 2048 * 512, length: 20480 * 512)
        try loop.addPartition(number: 2, start: 22528 * 512, length: 20480 * 512)
        #expect(Files.exists(loop.partitionPath(2)))
        loop.detach()
        #expect(!Files.exists(loop.partitionPath(2)))
        #expect(LoopDevice.devices(backing: image).isEmpty)
    }
}

@Suite struct HTTPServerTests {
    @Test func servesRangesAndMissingFiles() throws {
        let scratch = try Scratch()
        try Files.write(scratch.appending("f.txt"), string: "0123456789")
        let server = try HTTPServer(root: scratch.path)
        defer { server.stop() }
        let whole = try Command("curl", ["-sf", server.baseURL + "/f.txt"]).output()
        #expect(whole == "0123456789")
        let tail = try Command("curl", ["-sf", "-r", "4-", server.baseURL + "/f.txt"]).output()
        #expect(tail == "456789")
        let missing = try Command("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.baseURL + "/nope"]).output()
        #expect(missing == "404")
    }
}

@Suite struct SHA256Tests {
    @Test func knownVectors() throws {
        #expect(SHA256.hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let scratch = try Scratch()
        let path = scratch.appending("f")
        try Files.write(path, string: String(repeating: "rast", count: 100_000))
        let expected = try Command("sha256sum", [path]).output().split(separator: " ").first.map(String.init)
        #expect(try SHA256.hash(file: path) == expected)
    }

    /// Holes are hashed as zeros without being read: the digest must still be sha256sum's, for
    /// holes at the start, between data, across buffer boundaries and at the end.
    @Test func sparseFilesHashLikeSha256sum() throws {
        let scratch = try Scratch()
        let mib: Int64 = 1 << 20
        let layouts: [(name: String, size: Int64, data: [(offset: Int64, bytes: Int)])] = [
            ("empty", 0, []),
            ("all-hole", 3 * mib + 5, []),
            ("hole-data-hole", 8 * mib, [(2 * mib + 123, 3 * Int(mib) + 7)]),
            ("data-hole-data", 6 * mib + 1, [(0, 4096), (6 * mib - 10, 11)]),
            ("many", 40 * mib, (0..<20).map { (Int64($0) * 2 * mib + Int64($0) * 4096, 70_000) }),
        ]
        for layout in layouts {
            let path = scratch.appending(layout.name)
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            #expect(fd >= 0)
            #expect(ftruncate(fd, off_t(layout.size)) == 0)
            for (index, piece) in layout.data.enumerated() {
                let bytes = (0..<piece.bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index &+ 1) }
                #expect(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(piece.offset)) } == piece.bytes)
            }
            close(fd)
            let expected = try Command("sha256sum", [path]).output().split(separator: " ").first.map(String.init)
            var last: (Int64, Int64) = (-1, -1)
            #expect(try SHA256.hash(file: path) { done, total in last = (done, total) } == expected, "\(layout.name)")
            if layout.size > 0 { #expect(last == (layout.size, layout.size), "progress ends at the file's size (\(layout.name))") }
        }
        // What rast-build hashes most: a mostly empty disk image (256 MiB, 1 MiB of data).
        let image = scratch.appending("image.raw")
        try Command("truncate", ["-s", "256M", image]).run()
        try Command("dd", ["if=/dev/urandom", "of=\(image)", "bs=64K", "count=16", "seek=100", "conv=notrunc", "status=none"]).run()
        let expected = try Command("sha256sum", [image]).output().split(separator: " ").first.map(String.init)
        #expect(try SHA256.hash(file: image) == expected)
        // A device is read to its end like a file (sha256sum of /dev/null is the empty digest).
        #expect(try SHA256.hash(file: "/dev/null") == SHA256.hash(""))
    }
}

@Suite struct TreeCopyTests {
    @Test func copiesModesOwnersLinksAndContentLikeCpArchive() throws {
        try Require.root()
        let scratch = try Scratch()
        let source = scratch.appending("src")
        try Files.write(source + "/a/file", string: "hello", mode: 0o640)
        try Files.write(source + "/secret", string: "s", mode: 0o600)
        try Command("ln", ["-s", "a/file", source + "/link"]).run()
        try Command("chown", ["-h", "12:34", source + "/link"]).run()
        try Command("chown", ["1234:5678", source + "/a/file"]).run()
        try Command("mkfifo", [source + "/fifo"]).run()
        try Command("touch", ["-d", "2001-02-03 04:05:06", source + "/a/file"]).run()
        let ours = scratch.appending("ours")
        try TreeCopy.copyContents(of: source, into: ours)
        let theirs = scratch.appending("theirs")
        try Command("cp", ["-a", source, theirs]).run()
        // Same listing (names, modes, owners, link targets, sizes, times) as cp -a.
        let list = { (dir: String) in
            try Command("sh", ["-c", "cd \(dir) && find . -printf '%p %M %U:%G %s %l %T@\\n' | sort"]).output()
        }
        #expect(try list(ours) == list(theirs))
        #expect(try Files.readString(ours + "/a/file") == "hello")
    }
}
