import Foundation
import SnapshotTree
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A rastOS tree on a btrfs loop file whose snapshot 1 holds every kind of file (modes,
/// owners, xattrs, symlinks, hard links, a FIFO, random data, a planted plaintext marker),
/// an S3 server on 127.0.0.1 with a bucket, and the `rast` binary to drive them as a user
/// would. Everything goes with `close()`.
final class BackupWorld {
    static let binary = ProjectPaths.root + "/.build/debug/rast"
    let tree: TreeFixture
    let moto: MotoServer
    let scratch: Scratch
    let bucket = "rast-backups"
    let marker: String
    var top: String { tree.layout.top }
    var target: String { "s3://\(bucket)/machine-1" }
    var keyFile: String { scratch.appending("backup.key") }

    init(randomBytes: Int = 4 << 20) throws {
        try Require.root()
        try Require.programs("btrfs", "python3")
        guard Files.exists(BackupWorld.binary) else {
            throw BackupTestError("\(BackupWorld.binary) is missing; run `swift build` first")
        }
        scratch = try Scratch("rast-backup-test")
        marker = "RAST-PLAINTEXT-MARKER-" + UUID().uuidString
        tree = try TreeFixture()
        moto = try MotoServer(authenticate: false)  // moto's signature check fails on "prefix=machine-1/"
        try moto.inspector.createBucket(bucket)
        try tree.store.acquire(wait: false)
        try tree.store.copy(0, as: 1, parent: 0, description: "web server \(marker)")
        try change(1) { root in
            try BackupWorld.populate(root, marker: marker, randomBytes: randomBytes, seed: 1)
        }
        tree.store.unlock()
    }

    func close() {
        moto.stop()
        tree.close()
    }

    /// Changes snapshot `id` through a working copy, as rast does, and commits it.
    func change(_ id: Int, _ body: (String) throws -> Void) throws {
        try tree.store.acquire(wait: false)
        defer { tree.store.unlock() }
        let root = try tree.store.prepareWorkingCopy(id, command: "test")
        try body(root)
        try tree.store.commitWorkingCopy(id)
    }

    /// Fills `root` with files of every kind the restore must bring back.
    static func populate(_ root: String, marker: String, randomBytes: Int, seed: Int) throws {
        try Command("python3", ["-c", """
            import os, sys, random
            root, marker, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
            rng = random.Random(seed)
            srv = os.path.join(root, "srv")
            os.makedirs(srv, exist_ok=True)
            with open(os.path.join(srv, "secret.txt"), "w") as f: f.write((marker + "\\n") * 2000)
            with open(os.path.join(srv, "data.bin"), "wb") as f: f.write(rng.randbytes(size))
            with open(os.path.join(srv, "owned"), "w") as f: f.write("owned by someone else\\n")
            os.chown(os.path.join(srv, "owned"), 1234, 5678); os.chmod(os.path.join(srv, "owned"), 0o640)
            with open(os.path.join(srv, "setuid"), "w") as f: f.write("#!/bin/sh\\n")
            os.chmod(os.path.join(srv, "setuid"), 0o4755)
            os.makedirs(os.path.join(srv, "private"), exist_ok=True)
            os.chown(os.path.join(srv, "private"), 42, 42); os.chmod(os.path.join(srv, "private"), 0o700)
            open(os.path.join(srv, "private", "empty"), "w").close()
            os.symlink("secret.txt", os.path.join(srv, "relative-link"))
            os.symlink("/etc/hostname", os.path.join(srv, "absolute-link"))
            os.symlink("does/not/exist", os.path.join(srv, "dangling-link"))
            os.lchown(os.path.join(srv, "relative-link"), 7, 8)
            os.link(os.path.join(srv, "owned"), os.path.join(srv, "hardlink"))
            os.mkfifo(os.path.join(srv, "fifo"))
            os.setxattr(os.path.join(srv, "secret.txt"), "user.comment", marker.encode())
            os.setxattr(os.path.join(srv, "private"), "user.empty", b"")
            os.setxattr(os.path.join(srv, "data.bin"), "trusted.rast", bytes(range(256)))
            with open(os.path.join(root, "etc", "motd"), "w") as f: f.write("welcome " + marker + "\\n")
            with open(os.path.join(root, "boot", "config"), "w") as f: f.write("boot config\\n")
            """, root, marker, String(randomBytes), String(seed)]).run()
    }

    /// Every entry below `root`: type, mode, owner, size, SHA-256, link target, xattrs,
    /// link count and mtime, one JSON line each, sorted by path (python, independent of rast).
    static func walk(_ root: String) throws -> [String] {
        let text = try Command("python3", ["-c", """
            import os, sys, json, hashlib, stat
            root = sys.argv[1]
            out = []
            for directory, dirs, files in os.walk(root):
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(directory, name)
                    st = os.lstat(path)
                    entry = {"path": os.path.relpath(path, root), "mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                             "xattrs": {k: os.getxattr(path, k, follow_symlinks=False).hex() for k in sorted(os.listxattr(path, follow_symlinks=False))}}
                    if stat.S_ISLNK(st.st_mode):
                        entry["target"] = os.readlink(path)
                    else:
                        entry["mtime"] = st.st_mtime_ns
                    if stat.S_ISREG(st.st_mode):
                        entry["size"] = st.st_size
                        entry["nlink"] = st.st_nlink
                        entry["sha256"] = hashlib.sha256(open(path, "rb").read()).hexdigest()
                    out.append(json.dumps(entry, sort_keys=True))
            print("\\n".join(sorted(out)))
            """, root]).output()
        return text.split(separator: "\n").map(String.init)
    }

    /// The walks of a snapshot's three subvolumes.
    static func walkSnapshot(_ layout: Layout, _ id: Int) throws -> [[String]] {
        try layout.triple(id).map { try walk($0) }
    }

    var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": moto.accessKey, "AWS_SECRET_ACCESS_KEY": moto.secretKey, "AWS_DEFAULT_REGION": "us-east-1"]
    }

    /// The S3 options every command gets (the server, and fast failure in tests).
    var s3Arguments: [String] { ["--endpoint", moto.endpoint, "--part-size", "5M", "--attempts", "2", "--stall-timeout", "3"] }

    /// Runs `rast ARGUMENTS` as a user would; returns status, stdout and stderr.
    @discardableResult
    func rast(_ arguments: [String], environment extra: [String: String] = [:]) throws -> CommandResult {
        try Command(BackupWorld.binary, arguments, environment: environment.merging(extra) { $1 }).run(check: false)
    }

    /// `rast backup init` on the world's tree with a new key file.
    func initialize() throws {
        let result = try rast(["backup", "init", target, "--root", top, "--key-file", keyFile] + s3Arguments)
        #expect(result.status == 0, "\(result.standardError)")
    }

    struct Listing: Decodable {
        struct Entry: Decodable {
            var id: String
            var snapshot: Int
            var base: String?
            var storedBytes: Int64
            var streamBytes: Int64
            var description: String
        }
        var backups: [Entry]
        var incomplete: [String]
    }

    func list(_ extra: [String] = []) throws -> Listing {
        let result = try rast(["backup", "list", "--json", "--root", top] + s3Arguments + extra)
        #expect(result.status == 0, "\(result.standardError)")
        return try JSONDecoder().decode(Listing.self, from: Data(result.standardOutput.utf8))
    }

    /// Every stored object's bytes, fetched with boto3.
    func storedObjects() throws -> [String: [UInt8]] {
        let directory = scratch.appending("objects-\(UUID().uuidString)")
        try Files.createDirectory(directory)
        try moto.inspector.download(bucket, to: directory)
        var result: [String: [UInt8]] = [:]
        for name in try FileManagerShim.contents(of: directory) {
            result[name.replacingOccurrences(of: "%2F", with: "/")] = try Files.read(directory + "/" + name)
        }
        try Files.removeTree(directory)
        return result
    }

    /// The lines `rast` wrote to stderr that carry an error.
    static func errorLines(_ result: CommandResult) -> [String] {
        result.standardError.split(separator: "\n").map(String.init).filter { $0.hasPrefix("rast: error:") }
    }
}

extension Array where Element == UInt8 {
    func contains(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        let first = needle[0]
        var index = 0
        while index <= count - needle.count {
            if self[index] == first, Array(self[index..<index + needle.count]) == needle { return true }
            index += 1
        }
        return false
    }
}

struct BackupTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
