import Archive
import Foundation
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A pacman repository in a directory: package files plus `NAME.db.tar.gz` (and the
/// `NAME.db` link libalpm downloads) maintained with `repo-add`. Serve the directory over
/// HTTP or use it as `file://DIRECTORY`.
package struct LocalRepository: Sendable {
    /// The repository name, as a pacman.conf section or `AlpmHandle.registerSyncDatabase`.
    package let name: String
    package let directory: String

    /// The database repo-add maintains.
    package var databasePath: String { directory + "/" + name + ".db.tar.gz" }

    /// The repository as a libalpm server URL.
    package var fileURL: String { "file://" + directory }

    /// Opens (creating when needed) the repository `name` in `directory`. A new repository
    /// gets an empty database so that clients can sync it before any package is added.
    package init(name: String, directory: String) throws {
        guard !name.isEmpty, !name.hasPrefix("."), name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw RepositoryError.invalidName(name)
        }
        self.name = name
        self.directory = (directory as NSString).standardizingPath
        try Files.createDirectory(self.directory)
        if !Files.exists(databasePath) {
            try writeEmptyDatabase()
        }
    }

    /// Copies the package files into the repository (unless they are already there) and
    /// adds them to the database. An older version of a package is replaced: its entry is
    /// dropped and its file deleted (`repo-add --remove`). Returns the paths in the repository.
    @discardableResult
    package func add(_ packageFiles: [String]) throws -> [String] {
        guard !packageFiles.isEmpty else { return [] }
        var inRepository: [String] = []
        for file in packageFiles {
            let source = (file as NSString).standardizingPath
            guard Files.exists(source) else { throw RepositoryError.missingPackage(file) }
            let target = directory + "/" + (source as NSString).lastPathComponent
            if source != target {
                try copyFileAtomically(source, to: target)
                if Files.exists(source + ".sig") {
                    try copyFileAtomically(source + ".sig", to: target + ".sig")
                }
            }
            inRepository.append(target)
        }
        try runRepoTool("repo-add", ["--quiet", "--nocolor", "--remove", databasePath] + inRepository)
        return inRepository
    }

    /// Removes packages (by name) from the database and deletes their files.
    package func remove(_ packageNames: [String]) throws {
        guard !packageNames.isEmpty else { return }
        let files = try packages().filter { packageNames.contains($0.name) }.map { directory + "/" + $0.fileName }
        try runRepoTool("repo-remove", ["--quiet", "--nocolor", databasePath] + packageNames)
        for file in files {
            try? FileManager.default.removeItem(atPath: file)
            try? FileManager.default.removeItem(atPath: file + ".sig")
        }
    }

    /// The packages the database lists, sorted by name.
    package func packages() throws -> [RepositoryPackage] {
        let reader = try ArchiveReader(path: databasePath)
        var result: [RepositoryPackage] = []
        while let entry = try reader.next() {
            guard entry.kind == .regular, entry.path.hasSuffix("/desc") else { continue }
            let text = String(decoding: try reader.readData(), as: UTF8.self)
            let fields = Self.parseDescription(text)
            guard let name = fields["NAME"]?.first, let version = fields["VERSION"]?.first,
                  let fileName = fields["FILENAME"]?.first else {
                throw RepositoryError.malformedDatabase(path: databasePath, entry: entry.path)
            }
            result.append(RepositoryPackage(
                name: name, version: version, fileName: fileName,
                architecture: fields["ARCH"]?.first ?? "", description: fields["DESC"]?.first ?? "",
                depends: fields["DEPENDS"] ?? [], provides: fields["PROVIDES"] ?? [],
                conflicts: fields["CONFLICTS"] ?? [], sha256: fields["SHA256SUM"]?.first))
        }
        try reader.close()
        return result.sorted { $0.name < $1.name }
    }

    /// The package files present in the directory (whether or not the database lists them).
    package func packageFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.contains(".pkg.tar") && !$0.hasSuffix(".sig") && !$0.hasPrefix(".") }
            .sorted()
            .map { directory + "/" + $0 }
    }

    /// Parses a repository `desc` file: `%KEY%` lines followed by values up to a blank line.
    static func parseDescription(_ text: String) -> [String: [String]] {
        var fields: [String: [String]] = [:]
        var key: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("%"), line.hasSuffix("%"), line.count > 2 {
                key = String(line.dropFirst().dropLast())
                fields[key!, default: []] = []
            } else if line.isEmpty {
                key = nil
            } else if let key {
                fields[key, default: []].append(String(line))
            }
        }
        return fields
    }

    /// An empty database (an empty tar.gz) plus the links repo-add would make.
    private func writeEmptyDatabase() throws {
        for suffix in ["db", "files"] {
            let archive = directory + "/" + name + "." + suffix + ".tar.gz"
            let writer = try ArchiveWriter(path: archive, compression: .gzip)
            try writer.close()
            let link = directory + "/" + name + "." + suffix
            if !Files.exists(link) {
                try SystemError.check("symlink", path: link) { symlink(name + "." + suffix + ".tar.gz", link) }
            }
        }
    }

    private func runRepoTool(_ tool: String, _ arguments: [String]) throws {
        do {
            try Command(tool, arguments, environment: ["LANG": "C"], workingDirectory: directory).run()
        } catch let error as CommandError {
            throw RepositoryError.toolFailed(repository: directory, error: error)
        }
    }
}

/// One package as a repository database lists it.
package struct RepositoryPackage: Sendable, Equatable {
    package let name: String
    /// `[epoch:]pkgver-pkgrel`.
    package let version: String
    package let fileName: String
    package let architecture: String
    package let description: String
    package let depends: [String]
    package let provides: [String]
    package let conflicts: [String]
    package let sha256: String?
}

package enum RepositoryError: Error, CustomStringConvertible, Sendable {
    case invalidName(String)
    case missingPackage(String)
    case malformedDatabase(path: String, entry: String)
    case toolFailed(repository: String, error: CommandError)

    package var description: String {
        switch self {
        case .invalidName(let name):
            return "'\(name)' cannot name a repository (letters, digits, '-', '_' and '.' only)"
        case .missingPackage(let path):
            return "cannot add \(path) to the repository: no such file"
        case .malformedDatabase(let path, let entry):
            return "the repository database \(path) is malformed: \(entry) lacks %NAME%, %VERSION% or %FILENAME%"
        case .toolFailed(let repository, let error):
            return "updating the repository in \(repository) failed: \(error)"
        }
    }
}

/// Copies `source` to `target` through a temporary name in the target's directory (data
/// fsynced before the rename), so the target appears complete or not at all.
func copyFileAtomically(_ source: String, to target: String) throws {
    let directory = (target as NSString).deletingLastPathComponent
    let (output, temporary) = try FileDescriptor.createUnique(
        prefix: directory + "/." + (target as NSString).lastPathComponent + ".tmp-",
        permissions: FilePermissions(rawValue: 0o644), operation: "create")
    var renamed = false
    defer { if !renamed { unlink(temporary) } }
    try output.closeAfter(path: temporary) {
        try TreeCopy.copyData(from: source, to: output, path: temporary)
        try output.sync(path: temporary)
    }
    try SystemError.check("rename", path: target) { rename(temporary, target) }
    renamed = true
}
