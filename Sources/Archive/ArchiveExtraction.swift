import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// How `ArchiveReader.extract(to:options:)` restores entries.
package struct ExtractOptions: Sendable {
    /// Restore uid/gid from the archive (needs root); otherwise files belong to the caller.
    package var preserveOwnership: Bool
    /// Restore extended attributes and ACLs.
    package var preserveExtendedAttributes: Bool

    package init(preserveOwnership: Bool = false, preserveExtendedAttributes: Bool = false) {
        self.preserveOwnership = preserveOwnership
        self.preserveExtendedAttributes = preserveExtendedAttributes
    }

    var flags: Int32 {
        // Modes (with setuid bits), times, and libarchive's guards against `..` and writing
        // through symlinks. Absolute entry names are refused before libarchive sees them
        // (ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be used: entries are re-rooted
        // under the destination by absolute path, so no process-wide chdir is needed).
        var flags = ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS
            | ARCHIVE_EXTRACT_SECURE_NODOTDOT
        if preserveOwnership { flags |= ARCHIVE_EXTRACT_OWNER }
        if preserveExtendedAttributes { flags |= ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL }
        return Int32(flags)
    }
}

/// What an extraction hook decides for one entry.
package enum ExtractDecision: Sendable {
    case extract
    case skip
}

/// libarchive's disk writer; `deinit` frees it.
final class DiskWriter {
    let handle: OpaquePointer
    let name: String

    init(flags: Int32, name: String) throws {
        guard let handle = archive_write_disk_new() else {
            throw ArchiveError(function: "archive_write_disk_new", archive: name, message: "out of memory")
        }
        self.handle = handle
        self.name = name
        try check(archive_write_disk_set_options(handle, flags), handle, function: "archive_write_disk_set_options", archive: name)
        try check(archive_write_disk_set_standard_lookup(handle), handle,
                  function: "archive_write_disk_set_standard_lookup", archive: name)
    }

    /// Applies the deferred directory modes and times.
    func close() throws {
        try check(archive_write_close(handle), handle, function: "archive_write_close", archive: name)
    }

    deinit { archive_write_free(handle) }
}

extension ArchiveReader {
    /// Extracts the remaining entries below `directory`, keeping modes, times, symlinks and
    /// hard links. Entries with absolute paths or `..` components are refused with
    /// `ArchiveError.Kind.unsafePath`, as are writes through symlinks. Returns the entries.
    @discardableResult
    package func extract(to directory: String, options: ExtractOptions = ExtractOptions()) throws -> [ArchiveEntry] {
        try extract(to: directory, options: options) { _, _ in .extract }
    }

    /// Like `extract(to:options:)`, asking `decide` about each entry first with its path
    /// relative to `directory` (no "./", no trailing "/"): it may change the disk (remove
    /// what the entry replaces) and skip the entry (a marker such as an OCI whiteout).
    /// Returns the entries extracted.
    @discardableResult
    package func extract(to directory: String, options: ExtractOptions,
                        decide: (_ entry: ArchiveEntry, _ relativePath: String) throws -> ExtractDecision) throws -> [ArchiveEntry] {
        // The destination is resolved so that the symlink guard only judges archive entries.
        guard let resolved = realpath(directory, nil) else {
            throw ArchiveError.system("realpath", archive: name, entry: directory)
        }
        let root = String(cString: resolved)
        free(resolved)
        let disk = try DiskWriter(flags: options.flags, name: name)
        var extracted: [ArchiveEntry] = []
        while let entry = try next() {
            let relative = try Self.safeRelativePath(entry.path, archive: name, entry: entry.path)
            guard try decide(entry, relative) == .extract else { continue }
            let target = relative.isEmpty ? root : root + "/" + relative
            try withCurrentEntry { _, raw in
                archive_entry_set_pathname(raw, target)
                if entry.kind == .hardlink, let link = entry.linkTarget {
                    let linkRelative = try Self.safeRelativePath(link, archive: name, entry: entry.path)
                    archive_entry_set_hardlink(raw, root + "/" + linkRelative)
                }
                let result = archive_write_header(disk.handle, raw)
                if result < ARCHIVE_WARN {
                    throw ArchiveError.library(disk.handle, function: "archive_write_header", archive: name, entry: entry.path)
                }
                if archive_entry_size(raw) > 0 {
                    try copyData(to: disk.handle, entry: entry.path)
                }
                try check(archive_write_finish_entry(disk.handle), disk.handle,
                          function: "archive_write_finish_entry", archive: name, entry: entry.path)
            }
            extracted.append(entry)
        }
        try disk.close()
        try close()
        return extracted
    }

    /// `path` without leading "./", or an unsafe-path error for absolute paths and `..`.
    static func safeRelativePath(_ path: String, archive: String, entry: String) throws -> String {
        if path.hasPrefix("/") {
            throw ArchiveError(kind: .unsafePath, function: "extract", archive: archive, entry: entry,
                               message: "refusing to extract \(path): absolute path")
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        if components.contains("..") {
            throw ArchiveError(kind: .unsafePath, function: "extract", archive: archive, entry: entry,
                               message: "refusing to extract \(path): its path contains '..'")
        }
        return components.filter { $0 != "." }.joined(separator: "/")
    }

    /// Extracts the archive at `path` into `directory`.
    @discardableResult
    package static func extract(_ path: String, to directory: String, options: ExtractOptions = ExtractOptions()) throws -> [ArchiveEntry] {
        try ArchiveReader(path: path).extract(to: directory, options: options)
    }
}
