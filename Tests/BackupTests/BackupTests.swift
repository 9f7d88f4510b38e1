import Foundation
import SnapshotTree
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rast backup` and `rast restore` end to end: real btrfs on loop files, `btrfs send` and
/// `receive`, moto_server on 127.0.0.1 (signatures are checked in ObjectStoreTests; moto's
/// check cannot verify listings with a prefix), boto3 looking at what was stored, the rast
/// binary driven as a user would.
@Suite("Backups", .serialized)
struct BackupTests {
    @Test func fullAndIncrementalBackupsRestoreIdentically() throws {
        let world = try BackupWorld(randomBytes: 4 << 20)
        defer { world.close() }
        try world.initialize()
        #expect(try Files.readString(world.keyFile).trimmingCharacters(in: .whitespacesAndNewlines).count == 64)

        // 1. Everything: snapshot 0 full, snapshot 1 an increment to it.
        var result = try world.rast(["backup", "create", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        var listing = try world.list()
        #expect(listing.backups.map(\.snapshot) == [0, 1])
        let (base, first) = (listing.backups[0], listing.backups[1])
        #expect(base.base == nil)
        #expect(first.base == base.id)
        #expect(first.storedBytes > 4 << 20)  // the random data, which zstd cannot shrink
        let firstWalk = try BackupWorld.walkSnapshot(world.tree.layout, 1)

        // Nothing changed: nothing to do. RAST_DEBUG shows every request.
        result = try world.rast(["backup", "create", "--root", world.top] + world.s3Arguments, environment: ["RAST_DEBUG": "1"])
        #expect(result.standardOutput.contains("nothing to back up"))
        #expect(result.standardError.contains("s3: GET \(world.moto.endpoint)/rast-backups/machine-1/rast-backup.json (0 bytes) -> 200 in "),
                "\(result.standardError)")
        #expect(result.standardError.contains("s3: GET \(world.moto.endpoint)/rast-backups/machine-1/backups/\(first.id)/manifest"))
        #expect(try world.list().backups.count == 2)

        // 2. Change snapshot 1 (1 MiB of new data, a changed file, a mode, a deletion).
        try world.change(1) { root in
            try Command("python3", ["-c", """
                import os, sys, random
                root = sys.argv[1]
                open(os.path.join(root, "srv", "new.bin"), "wb").write(random.Random(9).randbytes(1 << 20))
                open(os.path.join(root, "srv", "owned"), "a").write("one more line\\n")
                os.chmod(os.path.join(root, "srv", "setuid"), 0o755)
                os.remove(os.path.join(root, "srv", "private", "empty"))
                os.setxattr(os.path.join(root, "srv", "private"), "user.added", b"later")
                """, root]).run()
        }
        result = try world.rast(["backup", "create", "--root", world.top, "1"] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        listing = try world.list()
        #expect(listing.backups.count == 3)
        let second = listing.backups[2]
        #expect(second.snapshot == 1)
        #expect(second.base == first.id)  // against the kept copy of the first backup of 1
        // About the size of the change (1 MiB of random data), not of the snapshot.
        #expect(second.storedBytes > 1 << 20)
        #expect(second.storedBytes < (1 << 20) + (256 << 10), "the increment stored \(second.storedBytes) bytes")
        let secondWalk = try BackupWorld.walkSnapshot(world.tree.layout, 1)
        #expect(firstWalk != secondWalk)

        // 3. Nothing readable left the machine: no stored object holds the marker, which is
        // in a file, an xattr, /etc/motd and the snapshot's description.
        let objects = try world.storedObjects()
        #expect(objects.count == 3 * 4 + 1)  // three backups of four objects, and rast-backup.json
        let needle = Array(world.marker.utf8)
        #expect(try Files.read(world.tree.layout.root(1) + "/srv/secret.txt").contains(needle))
        for (key, bytes) in objects {
            #expect(!bytes.contains(needle), "\(key) contains the plaintext marker")
        }

        // 4. Restore the whole tree onto a fresh btrfs filesystem: identical.
        let fresh = try BtrfsFixture(size: "512M")
        defer { fresh.close() }
        result = try world.rast(["restore", "--tree", "--root", fresh.mountPoint, "--target", world.target, "--key-file", world.keyFile]
                                + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        let restored = Layout(top: fresh.mountPoint)
        #expect(try BackupWorld.walkSnapshot(restored, 0) == (try BackupWorld.walkSnapshot(world.tree.layout, 0)))
        #expect(try BackupWorld.walkSnapshot(restored, 1) == secondWalk)
        let state = try SnapshotStore(layout: restored).state()
        #expect(state.snapshots.map(\.id) == [0, 1])
        #expect(state.record(1)?.parent == 0)
        #expect(state.record(1)?.description == "web server \(world.marker)")
        for id in [0, 1] {
            for path in restored.triple(id) { #expect(try Btrfs_isReadOnly(path)) }
        }

        // 5. The first backup of 1, under another number, next to the restored one.
        result = try world.rast(["restore", first.id, "--as", "5", "--root", fresh.mountPoint, "--target", world.target,
                                 "--key-file", world.keyFile] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try BackupWorld.walkSnapshot(restored, 5) == firstWalk)
        #expect(try SnapshotStore(layout: restored).state().record(5)?.description == "web server \(world.marker)")

        // 6. Never over an existing snapshot.
        result = try world.rast(["restore", first.id, "--root", fresh.mountPoint, "--target", world.target, "--key-file", world.keyFile]
                                + world.s3Arguments)
        #expect(result.status == 1)
        #expect(BackupWorld.errorLines(result) == ["rast: error: snapshot 1 exists already and a restore never replaces a snapshot; restore it under another number with --as N"])
        #expect(try BackupWorld.walkSnapshot(restored, 1) == secondWalk)
        #expect(!Files.exists(restored.stateDirectory + "/restore"))

        // 7. verify downloads and authenticates everything.
        result = try world.rast(["backup", "verify", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.split(separator: "\n").filter { $0.hasSuffix(")") && $0.contains(": ok (") }.count == 3)
    }

    @Test func aWrongKeyATamperedChunkAndAMissingParentEachFailCleanly() throws {
        let world = try BackupWorld(randomBytes: 3 << 20)
        defer { world.close() }
        try world.initialize()
        var result = try world.rast(["backup", "create", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        let listing = try world.list()
        let (base, increment) = (listing.backups[0], listing.backups[1])
        let fresh = try BtrfsFixture(size: "512M")
        defer { fresh.close() }
        let restored = Layout(top: fresh.mountPoint)
        func restore(_ id: String, key: String) throws -> CommandResult {
            try world.rast(["restore", id, "--root", fresh.mountPoint, "--target", world.target, "--key-file", key] + world.s3Arguments)
        }
        /// Nothing of a restore is left: no snapshot in the tree, no subvolume but the layout's.
        func expectNothingRestored() throws {
            #expect(try SnapshotStore(layout: restored).state().snapshots.isEmpty)
            let subvolumes = try Command("btrfs", ["subvolume", "list", "-o", fresh.mountPoint]).output()
                .split(separator: "\n").compactMap { $0.split(separator: " ").last.map(String.init) }
            #expect(subvolumes.sorted() == ["@.snapshots", "@boot", "@home", "@var"], "\(subvolumes)")
            let nested = try Command("btrfs", ["subvolume", "list", fresh.mountPoint]).output().split(separator: "\n")
            #expect(nested.count == 4, "\(nested)")
            #expect(!Files.exists(restored.stateDirectory + "/restore"))
        }

        // A wrong key: refused before anything is downloaded.
        let wrongKey = world.scratch.appending("wrong.key")
        try Files.write(wrongKey, string: String(repeating: "ab", count: 32) + "\n")
        result = try restore(increment.id, key: wrongKey)
        #expect(result.status == 1)
        #expect(BackupWorld.errorLines(result).count == 1)
        #expect(result.standardError.contains("does not open the backup repository \(world.target)"), "\(result.standardError)")
        try expectNothingRestored()

        // A tampered chunk (one byte in the middle of the increment's root stream).
        let object = "machine-1/backups/\(increment.id)/root"
        let copy = world.scratch.appending("tampered")
        let original = try #require(try world.storedObjects()[object])
        var tampered = original
        tampered[tampered.count / 2] ^= 0x01
        try Files.write(copy, string: "")
        try Files.writeAtomically(copy, bytes: tampered)
        try world.moto.inspector.put(world.bucket, key: object, from: copy)
        result = try restore(increment.id, key: world.keyFile)
        #expect(result.status == 1)
        #expect(BackupWorld.errorLines(result).count == 1, "\(result.standardError)")
        #expect(result.standardError.contains("backup \(increment.id) is damaged: backups/\(increment.id)/root failed authentication at chunk"),
                "\(result.standardError)")
        try expectNothingRestored()
        result = try world.rast(["backup", "verify", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 1)
        #expect(result.standardError.contains("failed authentication"))
        #expect(result.standardOutput.contains("\(base.id): ok"))
        #expect(result.standardOutput.contains("\(increment.id): FAILED"))

        // The original bytes back: it restores.
        try Files.writeAtomically(copy, bytes: original)
        try world.moto.inspector.put(world.bucket, key: object, from: copy)
        result = try restore(increment.id, key: world.keyFile)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try BackupWorld.walkSnapshot(restored, 1) == (try BackupWorld.walkSnapshot(world.tree.layout, 1)))

        // A missing parent: the base's manifest is gone from the store.
        try world.moto.inspector.delete(world.bucket, key: "machine-1/backups/\(base.id)/manifest")
        result = try world.rast(["restore", increment.id, "--as", "7", "--root", fresh.mountPoint, "--target", world.target,
                                 "--key-file", world.keyFile] + world.s3Arguments)
        #expect(result.status == 1)
        #expect(BackupWorld.errorLines(result) == [
            "rast: error: backup \(increment.id) is an increment to backup \(base.id), which is missing from the repository; it cannot be restored, and nothing was restored",
        ])
        #expect(try SnapshotStore(layout: restored).state().snapshots.map(\.id) == [1])
        #expect(!Files.exists(restored.root(7)))
    }

    @Test func interruptedUploadsAreNeverListedAndAreCleanedUp() throws {
        let world = try BackupWorld(randomBytes: 24 << 20)
        defer { world.close() }
        try world.initialize()
        let pid = try #require(world.moto.processID)

        /// Starts `rast backup create` and waits until a multipart upload of its own is under way.
        func startBackup(_ extra: [String] = [], s3Arguments: [String]? = nil) throws -> PipedProcess {
            let before = try world.moto.inspector.pendingUploads(world.bucket)
            let command = Command(BackupWorld.binary, ["backup", "create", "--root", world.top, "1"] + (s3Arguments ?? world.s3Arguments) + extra,
                                  environment: world.environment)
            let process = try PipedProcess(command, pipe: .standardInput)
            // The watcher stops when rast has ended (the file appears) or after 60 s.
            let ended = world.scratch.appending("rast-ended-\(process.processID)")
            let watcher = Thread { [pid = process.processID] in
                while kill(pid, 0) == 0, !FileManager.default.fileExists(atPath: ended) { usleep(50_000) }
                _ = FileManager.default.createFile(atPath: ended, contents: nil)
            }
            watcher.start()
            defer { _ = FileManager.default.createFile(atPath: ended, contents: nil) }
            if try world.moto.inspector.waitForPendingUpload(world.bucket, besides: before, timeout: 60, stopFile: ended) != nil {
                return process
            }
            process.terminate()
            let how = Result { try process.finish() }
            throw BackupTestError("rast started no multipart upload (or it ended first); rast: \(how)")
        }

        let parents = world.tree.layout.stateDirectory + "/backup-parents"
        func keptCopies() -> [String] { ((try? FileManagerShim.contents(of: parents)) ?? []).sorted() }

        // The server stopped mid-upload: rast gives up with one clear error, and cleans up
        // what it can (its sent copy; the upload's parts once the server answers again).
        // (One attempt and a short stall limit: a rast process that lives long holds copies of
        // other tests' mounts in its private mount namespace.)
        let stalled = try startBackup(s3Arguments: ["--endpoint", world.moto.endpoint, "--part-size", "5M", "--attempts", "1", "--stall-timeout", "1"])
        kill(pid, SIGSTOP)
        let failure = Result { try stalled.finish() }
        kill(pid, SIGCONT)
        guard case .failure(let error) = failure, case CommandError.failed(_, let status, let output) = error else {
            Issue.record("rast backup create did not fail while the server was stopped")
            return
        }
        #expect(status == .exited(1))
        let errors = output.split(separator: "\n").filter { $0.hasPrefix("rast: error:") }
        #expect(errors.count == 1, "\(output)")
        #expect(errors.first?.contains("failed after 1 attempt: ") == true, "\(output)")
        #expect(try world.list().backups.isEmpty)
        #expect(keptCopies().isEmpty)

        // rast killed mid-upload: no good backup; the parts wait as a pending upload.
        let killed = try startBackup()
        kill(-killed.processID, SIGKILL)
        _ = try? killed.finish()
        let listing = try world.list()
        #expect(listing.backups.isEmpty)
        #expect(!(try world.moto.inspector.pendingUploads(world.bucket)).isEmpty)
        #expect(keptCopies().count == 1)  // its sent copy, which the next backup removes

        // The next backup removes what was left and succeeds.
        var result = try world.rast(["backup", "create", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("removed 1 interrupted backup: "), "\(result.standardOutput)")
        #expect(try world.moto.inspector.pendingUploads(world.bucket).isEmpty)
        let good = try world.list()
        #expect(good.backups.map(\.snapshot) == [0, 1])
        #expect(good.incomplete.isEmpty)
        #expect(keptCopies() == good.backups.map(\.id))
        let keys = try world.moto.inspector.objects(world.bucket).keys.sorted()
        #expect(keys.count == 2 * 4 + 1, "\(keys)")
        result = try world.rast(["backup", "verify", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")

        // The server killed mid-upload: one clear error naming what failed.
        try world.change(1) { root in try Files.write(root + "/srv/more", string: "more\n") }
        let dying = try startBackup(["--full"])
        world.moto.stop()
        let dead = Result { try dying.finish() }
        guard case .failure(let deadError) = dead, case CommandError.failed(_, _, let deadOutput) = deadError else {
            Issue.record("rast backup create did not fail when the server was killed")
            return
        }
        let deadErrors = deadOutput.split(separator: "\n").filter { $0.hasPrefix("rast: error:") }
        #expect(deadErrors.count == 1, "\(deadOutput)")
        #expect(deadErrors.first?.contains("failed after 2 attempts") == true, "\(deadOutput)")
        #expect(deadErrors.first?.contains("Connection refused") == true, "\(deadOutput)")
        #expect(keptCopies() == good.backups.map(\.id))
    }

    @Test func pruneKeepsWhatKeptBackupsBuildOn() throws {
        let world = try BackupWorld(randomBytes: 1 << 20)
        defer { world.close() }
        try world.initialize()
        func backUp(_ extra: [String] = []) throws {
            let result = try world.rast(["backup", "create", "--root", world.top] + extra + world.s3Arguments)
            #expect(result.status == 0, "\(result.standardError)")
        }
        func change(_ n: Int) throws {
            try world.change(1) { root in try Files.write(root + "/srv/change-\(n)", string: String(repeating: "\(n)", count: 1000)) }
        }
        try backUp()                  // b0 (full), b1a on b0
        try change(1); try backUp()   // b1b on b1a
        try change(2); try backUp(["--full", "1"])  // b1c full
        try change(3); try backUp()   // b1d on b1c
        try change(4); try backUp()   // b1e on b1d
        let all = try world.list().backups
        #expect(all.map(\.snapshot) == [0, 1, 1, 1, 1, 1])
        let (b0, b1a, b1b, b1c, b1d, b1e) = (all[0], all[1], all[2], all[3], all[4], all[5])
        #expect(b1a.base == b0.id && b1b.base == b1a.id && b1c.base == nil && b1d.base == b1c.id && b1e.base == b1d.id)
        let finalWalk = try BackupWorld.walkSnapshot(world.tree.layout, 1)

        // --dry-run changes nothing.
        var result = try world.rast(["backup", "prune", "--keep-last", "1", "--dry-run", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try world.list().backups.count == 6)

        // Keeping the last of each snapshot keeps b1e's whole chain (b1d, b1c) and b0.
        result = try world.rast(["backup", "prune", "--keep-last", "1", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try world.list().backups.map(\.id) == [b0.id, b1c.id, b1d.id, b1e.id])
        let keys = try world.moto.inspector.objects(world.bucket).keys
        for gone in [b1a.id, b1b.id] { #expect(!keys.contains { $0.contains(gone) }) }
        #expect(try world.rast(["backup", "verify", "--root", world.top] + world.s3Arguments).status == 0)

        // What is left restores.
        let fresh = try BtrfsFixture(size: "512M")
        defer { fresh.close() }
        result = try world.rast(["restore", b1e.id, "--root", fresh.mountPoint, "--target", world.target, "--key-file", world.keyFile]
                                + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try BackupWorld.walkSnapshot(Layout(top: fresh.mountPoint), 1) == finalWalk)

        // A new full backup lets the old chain go.
        try change(5); try backUp(["--full", "1"])
        result = try world.rast(["backup", "prune", "--keep-last", "1", "--root", world.top] + world.s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
        let left = try world.list().backups
        #expect(left.count == 2)
        #expect(left.map(\.snapshot) == [0, 1])
        #expect(left[1].base == nil)
        // Only the newest backup of each snapshot keeps its sent copy on the machine.
        let parents = try FileManagerShim.contents(of: world.tree.layout.stateDirectory + "/backup-parents").sorted()
        #expect(parents == left.map(\.id).sorted())
    }

    @Test func aDirectoryTargetAndAPassphrase() throws {
        let world = try BackupWorld(randomBytes: 256 << 10)
        defer { world.close() }
        let directory = world.scratch.appending("repository")
        let target = "file://" + directory
        let passphraseFile = world.scratch.appending("passphrase")
        try Files.write(passphraseFile, string: "correct horse battery staple\n")
        var result = try world.rast(["backup", "init", target, "--root", world.top, "--passphrase-file", passphraseFile])
        #expect(result.status == 0, "\(result.standardError)")
        result = try world.rast(["backup", "create", "--root", world.top])  // target and key from backup.json
        #expect(result.status == 0, "\(result.standardError)")
        let config = try Files.readString(directory + "/rast-backup.json")
        #expect(config.contains("\"keySource\" : \"passphrase\""))
        #expect(!config.contains("correct horse"))

        let fresh = try BtrfsFixture(size: "512M")
        defer { fresh.close() }
        result = try world.rast(["restore", "--tree", "--root", fresh.mountPoint, "--target", target],
                                environment: ["RAST_BACKUP_PASSPHRASE": "correct horse battery staple"])
        #expect(result.status == 0, "\(result.standardError)")
        #expect(try BackupWorld.walkSnapshot(Layout(top: fresh.mountPoint), 1) == (try BackupWorld.walkSnapshot(world.tree.layout, 1)))

        result = try world.rast(["backup", "list", "--target", target], environment: ["RAST_BACKUP_PASSPHRASE": "wrong"])
        #expect(result.status == 1)
        #expect(BackupWorld.errorLines(result) == [
            "rast: error: the passphrase does not open the backup repository \(target) (its key check does not match): wrong key file or passphrase; nothing was read or changed",
        ])
    }
}

private func Btrfs_isReadOnly(_ path: String) throws -> Bool {
    try Command("btrfs", ["property", "get", "-ts", path, "ro"]).output() == "ro=true"
}
