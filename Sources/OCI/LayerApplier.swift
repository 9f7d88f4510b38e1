// Applies an image layer (a tar, plain or compressed) onto a directory holding the layers
// below it, the way the OCI image spec's "Applying Changesets" describes:
//
//   dir/.wh.NAME        whiteout: NAME of the lower layers is deleted (the marker is not kept)
//   dir/.wh..wh..opq    opaque directory: everything the lower layers had in dir is deleted;
//                       what this layer puts there stays
//   any other entry     replaces what is at its path (a directory replaced by a file is
//                       removed first; directories merge)
//
// Whiteouts apply only to lower layers: an entry of the same layer is never deleted by them,
// whatever the order in the tar. Paths that would lead out of the directory (absolute, `..`,
// through a symlink) are refused by the extractor; whiteouts are resolved with the same care.
import Archive
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

package enum LayerApplier {
    package static let whiteoutPrefix = ".wh."
    package static let opaqueMarker = ".wh..wh..opq"

    /// What applying one layer did.
    package struct Result: Sendable, Equatable {
        package var entries = 0
        package var whiteouts = 0
        package var opaqueDirectories = 0
    }

    /// Applies the layer archive at `blob` onto `root`.
    @discardableResult
    package static func apply(_ blob: String, to root: String) throws -> Result {
        var result = Result()
        // Paths this layer created, so that its own whiteouts and opaque markers spare them.
        var created = Set<String>()
        var opaque: [String] = []
        let reader = try ArchiveReader(path: blob)
        let options = ExtractOptions(preserveOwnership: geteuid() == 0, preserveExtendedAttributes: geteuid() == 0)
        do {
            try reader.extract(to: root, options: options) { entry, relative in
                guard !relative.isEmpty else { return .extract }
                let slash = relative.lastIndex(of: "/")
                let name = slash.map { String(relative[relative.index(after: $0)...]) } ?? relative
                let parent = slash.map { String(relative[..<$0]) } ?? ""
                if name == opaqueMarker {
                    result.opaqueDirectories += 1
                    opaque.append(parent)
                    return .skip
                }
                if name.hasPrefix(whiteoutPrefix) {
                    let hidden = String(name.dropFirst(whiteoutPrefix.count))
                    guard !hidden.isEmpty, hidden != ".", hidden != ".." else {
                        throw OCIError.layer(blob: blob, reason: "the whiteout \(entry.path) names nothing")
                    }
                    let target = parent.isEmpty ? hidden : parent + "/" + hidden
                    result.whiteouts += 1
                    if !created.contains(target) { try remove(target, under: root, blob: blob) }
                    return .skip
                }
                try prepare(relative, kind: entry.kind, under: root, blob: blob)
                // The entry and the parents libarchive makes for it belong to this layer.
                var path = Substring(relative)
                while created.insert(String(path)).inserted, let slash = path.lastIndex(of: "/") {
                    path = path[..<slash]
                }
                result.entries += 1
                return .extract
            }
        } catch let error as ArchiveError {
            throw OCIError.layer(blob: blob, reason: error.description)
        }
        for directory in opaque {
            try clearLower(directory, keeping: created, under: root, blob: blob)
        }
        return result
    }

    /// Makes room for an entry: a directory (not a symlink to one) at the path of a
    /// non-directory is removed with its contents; libarchive replaces everything else.
    static func prepare(_ relative: String, kind: ArchiveEntry.Kind, under root: String, blob: String) throws {
        guard kind != .directory else { return }
        guard let path = try resolve(relative, under: root, blob: blob) else { return }
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            try removeTree(path)
        }
    }

    /// Deletes `relative` (a file or a whole tree), if it exists.
    static func remove(_ relative: String, under root: String, blob: String) throws {
        guard let path = try resolve(relative, under: root, blob: blob) else { return }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR { try removeTree(path) } else {
            try SystemError.check("unlink", path: path) { unlink(path) }
        }
    }

    /// Deletes what lies below `directory` and was not created by this layer.
    static func clearLower(_ directory: String, keeping created: Set<String>, under root: String, blob: String) throws {
        guard let path = try resolve(directory, under: root, blob: blob), Files.isDirectory(path) else { return }
        for name in try FileManagerShim.contents(of: path) {
            let relative = directory.isEmpty ? name : directory + "/" + name
            var info = stat()
            guard lstat(path + "/" + name, &info) == 0 else { continue }
            let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
            if created.contains(relative) {
                if isDirectory { try clearLower(relative, keeping: created, under: root, blob: blob) }
            } else if isDirectory {
                try removeTree(path + "/" + name)
            } else {
                try SystemError.check("unlink", path: path + "/" + name) { unlink(path + "/" + name) }
            }
        }
    }

    /// The absolute path of `relative` below `root`, or nil when a parent is missing; a
    /// parent that is a symlink is refused (it could point anywhere, even outside `root`).
    static func resolve(_ relative: String, under root: String, blob: String) throws -> String? {
        var path = root
        let components = relative.split(separator: "/").map(String.init)
        for (index, component) in components.enumerated() {
            guard component != "..", component != "." else {
                throw OCIError.layer(blob: blob, reason: "refusing the path \(relative): it contains '\(component)'")
            }
            path += "/" + component
            if index == components.count - 1 { break }
            var info = stat()
            guard lstat(path, &info) == 0 else { return nil }
            if (info.st_mode & S_IFMT) == S_IFLNK {
                throw OCIError.layer(blob: blob, reason: "refusing the path \(relative): \(components[0...index].joined(separator: "/")) is a symlink")
            }
            guard (info.st_mode & S_IFMT) == S_IFDIR else { return nil }
        }
        return path
    }

    /// Removes a directory tree without following symlinks and without crossing into other
    /// filesystems.
    static func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in try FileManagerShim.contents(of: path) {
                try removeTree(path + "/" + name)
            }
            try SystemError.check("rmdir", path: path) { rmdir(path) }
        } else {
            try SystemError.check("unlink", path: path) { unlink(path) }
        }
    }
}
