import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where a kernel's source comes from.
package enum KernelSource: Sendable, Equatable, CustomStringConvertible {
    /// A tarball (.tar.xz/.gz/.zst/...) or an unpacked source directory on this machine.
    case local(path: String)
    /// A tarball over https, verified against the recipe's SHA-256.
    case https(url: String, sha256: String)
    /// A git repository (path, file://, http(s)://) at a branch, tag or commit.
    case git(url: String, ref: String)

    package var description: String {
        switch self {
        case .local(let path): return path
        case .https(let url, _): return url
        case .git(let url, let ref): return "\(url) at \(ref)"
        }
    }
}

/// A source tree ready to build, and the identity the cache keys on.
package struct PreparedSource: Sendable {
    /// The top of the unpacked tree (holds the kernel's Makefile).
    package let tree: String
    /// `sha256:...` of a tarball, `git:COMMIT` for git, `dir:...` for a directory.
    package let identity: String
    /// VERSION.PATCHLEVEL.SUBLEVEL from the Makefile.
    package let version: String
}

package enum KernelSourceError: CausedError, CustomStringConvertible, Sendable {
    case missing(String)
    case notAKernelTree(String)
    case checksumMismatch(url: String, expected: String, actual: String)
    /// `cause` is the error behind the reason, when there is one.
    case fetch(source: String, reason: String, cause: (any Error)? = nil)

    package var description: String {
        switch self {
        case .missing(let path):
            return "kernel source \(path) does not exist (for Debian's kernel source: apt-get install linux-source-6.1)"
        case .notAKernelTree(let path):
            return "\(path) does not hold a Linux source tree (no Makefile with VERSION/PATCHLEVEL at its top)"
        case .checksumMismatch(let url, let expected, let actual):
            return "checksum mismatch for \(url): the recipe expects sha256 \(expected), the download has \(actual); the download was deleted"
        case .fetch(let source, let reason, _):
            return "cannot fetch kernel source \(source): \(reason)"
        }
    }

    package var cause: (any Error)? {
        if case .fetch(_, _, let cause) = self { return cause }
        return nil
    }
}

/// Fetches remote sources. The kernel stage is given one (libcurl and libgit2 behind it) so that
/// this module stays free of network policy.
package protocol SourceFetcher: Sendable {
    /// Downloads `url` to `destination` (resuming a partial file), reporting progress.
    func download(url: String, to destination: String, progress: ProgressReporter) throws
    /// Clones or fetches `url` into `directory`, checks out `ref` (detached) and returns the commit id.
    func checkout(url: String, ref: String, into directory: String, progress: ProgressReporter) throws -> String
}

/// Unpacks and identifies kernel sources under `cacheDirectory/sources`.
package struct SourcePreparer {
    package let cacheDirectory: String
    package let fetcher: SourceFetcher?
    package let progress: ProgressReporter

    package init(cacheDirectory: String, fetcher: SourceFetcher?, progress: ProgressReporter) {
        self.cacheDirectory = cacheDirectory
        self.fetcher = fetcher
        self.progress = progress
    }

    /// The identity alone (for the cache key), without unpacking when it can be avoided.
    package func identity(of source: KernelSource) throws -> String {
        switch source {
        case .local(let path):
            guard Files.exists(path) else { throw KernelSourceError.missing(path) }
            return Files.isDirectory(path) ? try directoryIdentity(path) : "sha256:" + (try tarballHash(path))
        case .https(_, let sha256):
            return "sha256:" + sha256.lowercased()
        case .git(let url, let ref):
            if ref.count == 40, ref.allSatisfy(\.isHexDigit) { return "git:" + ref.lowercased() }
            // A branch or tag must be resolved; that needs the repository.
            return "git:" + (try gitCheckout(url: url, ref: ref).commit)
        }
    }

    /// Unpacks (once per identity) and returns the tree.
    package func prepare(_ source: KernelSource) throws -> PreparedSource {
        switch source {
        case .local(let path):
            guard Files.exists(path) else { throw KernelSourceError.missing(path) }
            if Files.isDirectory(path) {
                return PreparedSource(tree: path, identity: try directoryIdentity(path), version: try kernelVersion(tree: path))
            }
            let identity = "sha256:" + (try tarballHash(path))
            let tree = try unpack(tarball: path, identity: identity)
            return PreparedSource(tree: tree, identity: identity, version: try kernelVersion(tree: tree))
        case .https(let url, let sha256):
            let tarball = try download(url: url, sha256: sha256.lowercased())
            let identity = "sha256:" + sha256.lowercased()
            let tree = try unpack(tarball: tarball, identity: identity)
            return PreparedSource(tree: tree, identity: identity, version: try kernelVersion(tree: tree))
        case .git(let url, let ref):
            let (directory, commit) = try gitCheckout(url: url, ref: ref)
            return PreparedSource(tree: directory, identity: "git:" + commit, version: try kernelVersion(tree: directory))
        }
    }

    // MARK: Tarballs

    /// SHA-256 of a tarball, remembered by (path, size, mtime, inode) so that a cache hit
    /// does not re-read 140 MB.
    func tarballHash(_ path: String) throws -> String {
        var st = stat()
        try SystemError.check("stat", path: path) { stat(path, &st) }
        let stamp = "\(path)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)|\(st.st_ino)"
        let memoDirectory = cacheDirectory + "/source-ids"
        let memo = memoDirectory + "/" + SHA256.hash(stamp)
        if let known = try? Files.readString(memo), known.count == 64 { return known }
        progress.note("hashing \(path)")
        let hash = try SHA256.hash(file: path)
        try Files.createDirectory(memoDirectory)
        try Files.writeAtomically(memo, string: hash)
        return hash
    }

    func unpack(tarball: String, identity: String) throws -> String {
        let directory = cacheDirectory + "/sources/" + identity.replacingOccurrences(of: ":", with: "-")
        let marker = directory + "/.rast-unpacked"
        if let top = try? Files.readString(marker), Files.isDirectory(directory + "/" + top) {
            return directory + "/" + top
        }
        try Files.createDirectory(cacheDirectory + "/sources")
        // Concurrent builds and tests unpack the same tarball only once.
        let lock = try FileLock(path: cacheDirectory + "/sources/lock", wait: true) {
            self.progress.note("kernel: waiting for another process unpacking the source")
        }
        defer { lock.unlock() }
        if let top = try? Files.readString(marker), Files.isDirectory(directory + "/" + top) {
            return directory + "/" + top
        }
        let staging = directory + ".partial"
        try? Files.removeTree(staging)
        try? Files.removeTree(directory)
        try Files.createDirectory(staging)
        let stopwatch = Stopwatch()
        progress.begin("kernel: unpacking \((tarball as NSString).lastPathComponent)")
        do {
            try Command("tar", ["-xf", tarball, "-C", staging]).run()
        } catch {
            try? Files.removeTree(staging)
            throw KernelSourceError.fetch(source: tarball, reason: "unpacking failed: \(error)", cause: error)
        }
        let entries = try FileManagerShim.contents(of: staging)
        let top: String
        if Files.exists(staging + "/Makefile") {
            top = "."
        } else if entries.count == 1, Files.exists(staging + "/" + entries[0] + "/Makefile") {
            top = entries[0]
        } else {
            try? Files.removeTree(staging)
            throw KernelSourceError.notAKernelTree(tarball)
        }
        try Files.writeAtomically(staging + "/.rast-unpacked", string: top)
        try SystemError.check("rename", path: staging) { rename(staging, directory) }
        progress.end("kernel: unpacking", summary: "done in \(stopwatch.formatted)")
        return top == "." ? directory : directory + "/" + top
    }

    func download(url: String, sha256: String) throws -> String {
        let downloads = cacheDirectory + "/downloads"
        try Files.createDirectory(downloads)
        let name = (URL(string: url)?.lastPathComponent).flatMap { $0.isEmpty ? nil : $0 } ?? "source.tar"
        let final = downloads + "/" + sha256 + "-" + name
        if Files.exists(final) { return final }
        guard let fetcher else {
            throw KernelSourceError.fetch(source: url, reason: "no downloader is available")
        }
        let partial = final + ".part"
        do {
            try fetcher.download(url: url, to: partial, progress: progress)
        } catch {
            throw KernelSourceError.fetch(source: url, reason: "\(error)", cause: error)
        }
        let actual = try SHA256.hash(file: partial)
        guard actual == sha256 else {
            unlink(partial)
            throw KernelSourceError.checksumMismatch(url: url, expected: sha256, actual: actual)
        }
        try SystemError.check("rename", path: partial) { rename(partial, final) }
        return final
    }

    // MARK: Git and directories

    func gitCheckout(url: String, ref: String) throws -> (directory: String, commit: String) {
        guard let fetcher else {
            throw KernelSourceError.fetch(source: url, reason: "no git client is available")
        }
        let directory = cacheDirectory + "/git/" + String(SHA256.hash(url).prefix(16))
        try Files.createDirectory(cacheDirectory + "/git")
        do {
            let commit = try fetcher.checkout(url: url, ref: ref, into: directory, progress: progress)
            return (directory, commit)
        } catch {
            throw KernelSourceError.fetch(source: "\(url) at \(ref)", reason: "\(error)", cause: error)
        }
    }

    /// A directory's identity: a hash over every file's path, size and mtime (not contents:
    /// hashing 1 GB of source on every build would defeat the cache).
    func directoryIdentity(_ path: String) throws -> String {
        var hasher = SHA256()
        guard let enumerator = FileManager.default.enumerator(atPath: path) else {
            throw KernelSourceError.notAKernelTree(path)
        }
        var st = stat()
        while let relative = enumerator.nextObject() as? String {
            if relative.hasPrefix(".git/") || relative == ".git" { continue }
            guard lstat(path + "/" + relative, &st) == 0 else { continue }
            hasher.update("\(relative)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)\n")
        }
        return "dir:" + hasher.finalize()
    }

    /// VERSION.PATCHLEVEL.SUBLEVEL of a tree.
    package func kernelVersion(tree: String) throws -> String {
        guard let makefile = try? Files.readString(tree + "/Makefile") else { throw KernelSourceError.notAKernelTree(tree) }
        var parts: [String: String] = [:]
        for line in makefile.split(separator: "\n").prefix(10) {
            let fields = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if fields.count == 2 { parts[fields[0]] = fields[1] }
        }
        guard let version = parts["VERSION"], let patch = parts["PATCHLEVEL"] else {
            throw KernelSourceError.notAKernelTree(tree)
        }
        return "\(version).\(patch).\(parts["SUBLEVEL"] ?? "0")"
    }
}
