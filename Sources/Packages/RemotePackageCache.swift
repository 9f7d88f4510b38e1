import Alpm
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Package files from remote repositories, kept across builds so that a second build of a
/// recipe does not download them again.
///
/// A build installs from a package cache of its own (libalpm takes any file of the right name
/// in its cache, and rast-build's local packages keep their name when rebuilt). Before the
/// transaction, `seed` links into that cache each file this cache holds whose SHA-256 is the
/// one the freshly synchronised database lists; a file that no longer matches (the repository
/// rebuilt the package under the same name) is dropped. After a successful transaction,
/// `keep` adds the files that were downloaded. Only packages of the given remote repositories
/// are ever kept: never those of the build's local repository.
package struct RemotePackageCache {
    package let directory: String

    package init(directory: String) {
        self.directory = directory
    }

    /// What `seed` found: files linked into the build's cache, and stale files dropped.
    package struct SeedResult: Sendable, Equatable {
        package var reused: [String] = []
        package var dropped: [String] = []
        package var reusedBytes: Int64 = 0
    }

    /// Links (or copies) the cached files of `packages` into `cacheDirectory` where their
    /// SHA-256 matches the database's.
    package func seed(_ cacheDirectory: String, packages: [AlpmPackage]) throws -> SeedResult {
        var result = SeedResult()
        guard Files.isDirectory(directory) else { return result }
        for package in packages {
            guard let name = package.fileName, let expected = package.sha256, Self.isPlainName(name) else { continue }
            let cached = directory + "/" + name
            guard Files.exists(cached) else { continue }
            guard (try? SHA256.hash(file: cached)) == expected else {
                unlink(cached)
                unlink(cached + ".sig")
                result.dropped.append(name)
                continue
            }
            let target = cacheDirectory + "/" + name
            guard !Files.exists(target) else { continue }
            try Self.linkOrCopy(cached, to: target)
            if Files.exists(cached + ".sig"), !Files.exists(target + ".sig") {
                try Self.linkOrCopy(cached + ".sig", to: target + ".sig")
            }
            result.reused.append(name)
            result.reusedBytes += (try? Files.size(cached)) ?? 0
        }
        return result
    }

    /// Adds the files of `packages` that `cacheDirectory` holds and this cache does not (call
    /// it after the transaction succeeded: libalpm has checked them). Returns their names.
    @discardableResult
    package func keep(from cacheDirectory: String, packages: [AlpmPackage]) throws -> [String] {
        var kept: [String] = []
        for package in packages {
            guard let name = package.fileName, Self.isPlainName(name) else { continue }
            let source = cacheDirectory + "/" + name
            let target = directory + "/" + name
            guard Files.exists(source), !Files.exists(target) else { continue }
            if kept.isEmpty { try Files.createDirectory(directory) }
            if Files.exists(source + ".sig") { try Self.linkOrCopy(source + ".sig", to: target + ".sig") }
            try Self.linkOrCopy(source, to: target)
            kept.append(name)
        }
        return kept
    }

    /// A hard link where both sides share a file system, otherwise an atomic copy: either way
    /// the target appears whole or not at all.
    static func linkOrCopy(_ source: String, to target: String) throws {
        if link(source, target) == 0 { return }
        if errno == EEXIST { return }
        try copyFileAtomically(source, to: target)
    }

    /// A file name from a database, used as a path component: nothing that leaves the directory.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".." && !name.hasPrefix(".")
    }
}
