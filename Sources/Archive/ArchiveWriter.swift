import CArchive
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The compression filter around an archive written by `ArchiveWriter`.
package enum ArchiveCompression: String, Sendable, CaseIterable {
    case none, gzip, xz, zstd

    /// The compression a package file name implies (".pkg.tar.zst" -> zstd).
    package init?(fileName: String) {
        if fileName.hasSuffix(".tar") { self = .none }
        else if fileName.hasSuffix(".gz") || fileName.hasSuffix(".tgz") { self = .gzip }
        else if fileName.hasSuffix(".xz") { self = .xz }
        else if fileName.hasSuffix(".zst") { self = .zstd }
        else { return nil }
    }
}

/// Writes tar (or mtree) streams to a file or to memory: explicit entries, files from disk,
/// or whole directory trees. Owns the `struct archive`; `close()` finishes the stream and,
/// for files, moves it to its final name (the file appears complete or not at all).
package final class ArchiveWriter {
    package enum Format: Sendable, Equatable {
        /// POSIX tar with pax extensions only where needed (bsdtar's and makepkg's default).
        case paxRestricted
        case pax
        case ustar
        case gnutar
        /// An mtree manifest; `keywords` go to libarchive as format options.
        case mtree(keywords: String)

        var isManifest: Bool {
            if case .mtree = self { return true }
            return false
        }

        /// The mtree keywords makepkg writes into a package's .MTREE.
        package static let makepkgMtree = Format.mtree(keywords: "!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link")
    }

    private let handle: OpaquePointer
    private let sink: OutputSink
    /// The destination path, or "<memory>".
    package let name: String
    private let format: Format
    private var resolver: OpaquePointer?
    private var diskReader: OpaquePointer?
    private var closed = false

    /// Writes to `path`. Data goes to a temporary file beside it until `close()`.
    package convenience init(path: String, format: Format = .paxRestricted, compression: ArchiveCompression = .none,
                            compressionLevel: Int? = nil) throws {
        let sink = try OutputSink(finalPath: path)
        try self.init(name: path, sink: sink, format: format, compression: compression, compressionLevel: compressionLevel)
    }

    /// Writes into memory; read `bytes` after `close()`.
    package convenience init(format: Format = .paxRestricted, compression: ArchiveCompression = .none,
                            compressionLevel: Int? = nil) throws {
        try self.init(name: "<memory>", sink: OutputSink(), format: format, compression: compression,
                      compressionLevel: compressionLevel)
    }

    private init(name: String, sink: OutputSink, format: Format, compression: ArchiveCompression,
                 compressionLevel: Int?) throws {
        guard let handle = archive_write_new() else {
            sink.abandon()
            throw ArchiveError(function: "archive_write_new", archive: name, message: "out of memory")
        }
        self.handle = handle
        self.sink = sink
        self.name = name
        self.format = format
        do {
            try configure(compression: compression, level: compressionLevel)
            let context = Unmanaged.passUnretained(sink).toOpaque()
            try check(archive_write_open2(handle, context, nil, archiveWriteCallback, nil, nil), handle,
                      function: "archive_write_open2", archive: name)
        } catch {
            closed = true
            throw error
        }
    }

    private func configure(compression: ArchiveCompression, level: Int?) throws {
        switch format {
        case .paxRestricted:
            try check(archive_write_set_format_pax_restricted(handle), handle, function: "archive_write_set_format_pax_restricted", archive: name)
        case .pax:
            try check(archive_write_set_format_pax(handle), handle, function: "archive_write_set_format_pax", archive: name)
        case .ustar:
            try check(archive_write_set_format_ustar(handle), handle, function: "archive_write_set_format_ustar", archive: name)
        case .gnutar:
            try check(archive_write_set_format_gnutar(handle), handle, function: "archive_write_set_format_gnutar", archive: name)
        case .mtree(let keywords):
            try check(archive_write_set_format_mtree(handle), handle, function: "archive_write_set_format_mtree", archive: name)
            if !keywords.isEmpty {
                try check(archive_write_set_options(handle, keywords), handle,
                          function: "archive_write_set_options(\(keywords))", archive: name)
            }
        }
        // Tar pads its last block to 10 KiB; a manifest is text, and padding after a
        // compressed stream would be garbage (zstd readers reject the trailing zeros).
        if compression != .none || format.isManifest {
            try check(archive_write_set_bytes_in_last_block(handle, 1), handle,
                      function: "archive_write_set_bytes_in_last_block", archive: name)
        }
        switch compression {
        case .none:
            try check(archive_write_add_filter_none(handle), handle, function: "archive_write_add_filter_none", archive: name)
        case .gzip:
            try check(archive_write_add_filter_gzip(handle), handle, function: "archive_write_add_filter_gzip", archive: name)
            // Like `gzip -n` (makepkg's COMPRESSGZ): no time in the header, so equal input
            // gives equal bytes.
            try check(archive_write_set_filter_option(handle, "gzip", "timestamp", nil), handle,
                      function: "archive_write_set_filter_option(gzip:!timestamp)", archive: name)
        case .xz:
            try check(archive_write_add_filter_xz(handle), handle, function: "archive_write_add_filter_xz", archive: name)
        case .zstd:
            try check(archive_write_add_filter_zstd(handle), handle, function: "archive_write_add_filter_zstd", archive: name)
        }
        if let level, compression != .none {
            try check(archive_write_set_filter_option(handle, nil, "compression-level", String(level)), handle,
                      function: "archive_write_set_filter_option(compression-level=\(level))", archive: name)
        }
    }

    deinit {
        if !closed { archive_write_close(handle) }
        archive_write_free(handle)
        if let resolver { archive_entry_linkresolver_free(resolver) }
        if let diskReader { archive_read_free(diskReader) }
        sink.abandon()
    }

    /// The archive's bytes (memory writers, after `close()`).
    package var bytes: [UInt8] { sink.bytes }

    // MARK: Explicit entries

    /// Adds an entry; regular files take `data` (its size wins over `entry.size`).
    package func add(_ entry: ArchiveEntry, data: [UInt8] = []) throws {
        var entry = entry
        if entry.kind == .regular { entry.size = Int64(data.count) }
        let raw = try newEntry(for: entry.path)
        defer { archive_entry_free(raw) }
        entry.fill(raw)
        try writeHeader(raw, path: entry.path)
        if entry.kind == .regular, !data.isEmpty {
            try data.withUnsafeBytes { try writeData($0, path: entry.path) }
        }
        try finishEntry(path: entry.path)
    }

    /// Adds a regular file with the given contents.
    package func addFile(_ path: String, contents: [UInt8], permissions: UInt32 = 0o644, owner: Ownership = .root,
                        modificationTime: Int64 = Int64(time(nil))) throws {
        try add(ArchiveEntry(path: path, kind: .regular, permissions: permissions, owner: owner,
                             modificationTime: modificationTime), data: contents)
    }

    /// Adds a directory.
    package func addDirectory(_ path: String, permissions: UInt32 = 0o755, owner: Ownership = .root,
                             modificationTime: Int64 = Int64(time(nil))) throws {
        try add(ArchiveEntry(path: path, kind: .directory, permissions: permissions, owner: owner,
                             modificationTime: modificationTime))
    }

    /// Adds a symbolic link to `target`.
    package func addSymlink(_ path: String, target: String, owner: Ownership = .root,
                           modificationTime: Int64 = Int64(time(nil))) throws {
        try add(ArchiveEntry(path: path, kind: .symlink, permissions: 0o777, owner: owner,
                             modificationTime: modificationTime, linkTarget: target))
    }

    /// Adds a hard link to the earlier entry `target`.
    package func addHardlink(_ path: String, target: String, permissions: UInt32 = 0o644, owner: Ownership = .root,
                            modificationTime: Int64 = Int64(time(nil))) throws {
        try add(ArchiveEntry(path: path, kind: .hardlink, permissions: permissions, owner: owner,
                             modificationTime: modificationTime, linkTarget: target))
    }

    // MARK: Files from disk

    /// Adds the file, directory or symlink at `source` under the name `archivePath`, with its
    /// metadata from disk (ownership and mtime optionally overridden). Files with several
    /// links become hard links to the first one added.
    package func addFromDisk(_ source: String, as archivePath: String, owner: Ownership? = nil,
                            modificationTime: Int64? = nil) throws {
        var st = stat()
        guard lstat(source, &st) == 0 else {
            throw ArchiveError.system("lstat", archive: name, entry: source)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return try addEntry(source, status: &st, file: nil, as: archivePath, owner: owner, modificationTime: modificationTime)
        }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(source), .readOnly, options: [.closeOnExec, .noFollow])
        } catch let error as Errno {
            throw ArchiveError.system("open", archive: name, entry: source, errno: error.rawValue)
        }
        try file.closeAfter {
            try addEntry(source, status: &st, file: file, as: archivePath, owner: owner, modificationTime: modificationTime)
        }
    }

    /// Adds `source`, whose `lstat` is `status` and which is open as `file` when it is a
    /// regular file.
    private func addEntry(_ source: String, status st: inout stat, file: FileDescriptor?, as archivePath: String,
                          owner: Ownership?, modificationTime: Int64?) throws {
        let reader = try diskReaderHandle()
        let raw = try newEntry(for: archivePath)
        defer { archive_entry_free(raw) }
        archive_entry_copy_sourcepath(raw, source)
        try check(archive_read_disk_entry_from_file(reader, raw, file?.rawValue ?? -1, &st), reader,
                  function: "archive_read_disk_entry_from_file", archive: name, entry: source)
        archive_entry_set_pathname(raw, archivePath)
        if let owner {
            archive_entry_set_uid(raw, owner.uid)
            archive_entry_set_gid(raw, owner.gid)
            archive_entry_set_uname(raw, owner.userName)
            archive_entry_set_gname(raw, owner.groupName)
        }
        if let modificationTime { archive_entry_set_mtime(raw, time_t(modificationTime), 0) }

        var linked: OpaquePointer? = raw
        var spare: OpaquePointer?
        if st.st_nlink > 1, (st.st_mode & S_IFMT) != S_IFDIR {
            archive_entry_linkify(try resolverHandle(), &linked, &spare)
        }
        if let spare { archive_entry_free(spare) }
        guard let entry = linked else { return }  // deferred by the resolver (not for tar/mtree)
        try writeHeader(entry, path: archivePath)
        if let file, archive_entry_size(entry) > 0 {
            var buffer = [UInt8](repeating: 0, count: 256 * 1024)
            while true {
                let count: Int
                do {
                    count = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                } catch let error as Errno {
                    throw ArchiveError.system("read", archive: name, entry: source, errno: error.rawValue)
                }
                if count == 0 { break }
                try buffer.withUnsafeBytes { try writeData(UnsafeRawBufferPointer(rebasing: $0[0..<count]), path: archivePath) }
            }
        }
        try finishEntry(path: archivePath)
    }

    /// Adds everything below `directory` (not the directory itself) in byte order of the
    /// path, named `prefix + relative path`. `include` can leave paths out (relative paths).
    package func addTree(_ directory: String, prefix: String = "", owner: Ownership? = nil,
                        modificationTime: Int64? = nil, include: ((String) -> Bool)? = nil) throws {
        let paths = try Self.treePaths(directory, archive: name)
        for relative in paths where include?(relative) ?? true {
            try addFromDisk(directory + "/" + relative, as: prefix + relative, owner: owner,
                            modificationTime: modificationTime)
        }
    }

    /// Every path below `directory`, relative, sorted by bytes (LC_COLLATE=C, as makepkg).
    static func treePaths(_ directory: String, archive: String) throws -> [String] {
        var result: [String] = []
        func walk(_ relative: String) throws {
            let full = relative.isEmpty ? directory : directory + "/" + relative
            guard let dir = opendir(full) else { throw ArchiveError.system("opendir", archive: archive, entry: full) }
            defer { closedir(dir) }
            var names: [String] = []
            while let item = readdir(dir) {
                let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                names.append(name)
            }
            for name in names {
                let child = relative.isEmpty ? name : relative + "/" + name
                result.append(child)
                var st = stat()
                if lstat(directory + "/" + child, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                    try walk(child)
                }
            }
        }
        try walk("")
        return result.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    // MARK: Finishing

    /// Finishes the stream; a file writer fsyncs and renames its temporary file into place.
    package func close() throws {
        guard !closed else { return }
        closed = true
        let result = archive_write_close(handle)
        if result < ARCHIVE_WARN {
            let error = ArchiveError.library(handle, function: "archive_write_close", archive: name, entry: nil)
            sink.abandon()
            throw error
        }
        try sink.commit(name: name)
    }

    // MARK: Helpers

    private func newEntry(for path: String) throws -> OpaquePointer {
        guard let raw = archive_entry_new() else {
            throw ArchiveError(function: "archive_entry_new", archive: name, entry: path, message: "out of memory")
        }
        return raw
    }

    private func diskReaderHandle() throws -> OpaquePointer {
        if let diskReader { return diskReader }
        guard let reader = archive_read_disk_new() else {
            throw ArchiveError(function: "archive_read_disk_new", archive: name, message: "out of memory")
        }
        diskReader = reader
        try check(archive_read_disk_set_standard_lookup(reader), reader,
                  function: "archive_read_disk_set_standard_lookup", archive: name)
        // Like `bsdtar --no-fflags --no-read-sparse` in makepkg; extended attributes stay.
        try check(archive_read_disk_set_behavior(reader, Int32(ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_SPARSE | ARCHIVE_READDISK_NO_ACL)),
                  reader, function: "archive_read_disk_set_behavior", archive: name)
        return reader
    }

    private func resolverHandle() throws -> OpaquePointer {
        if let resolver { return resolver }
        guard let created = archive_entry_linkresolver_new() else {
            throw ArchiveError(function: "archive_entry_linkresolver_new", archive: name, message: "out of memory")
        }
        archive_entry_linkresolver_set_strategy(created, archive_format(handle))
        resolver = created
        return created
    }

    private func writeHeader(_ raw: OpaquePointer, path: String) throws {
        guard !closed else {
            throw ArchiveError(function: "archive_write_header", archive: name, entry: path, message: "the writer is closed")
        }
        try check(archive_write_header(handle, raw), handle, function: "archive_write_header", archive: name, entry: path)
    }

    private func writeData(_ data: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < data.count {
            let written = archive_write_data(handle, data.baseAddress! + offset, data.count - offset)
            if written < 0 {
                throw ArchiveError.library(handle, function: "archive_write_data", archive: name, entry: path)
            }
            if written == 0 { break }
            offset += written
        }
    }

    private func finishEntry(path: String) throws {
        try check(archive_write_finish_entry(handle), handle, function: "archive_write_finish_entry", archive: name, entry: path)
    }
}

/// Where a writer's bytes go: a temporary file renamed into place on success, or memory.
final class OutputSink {
    private(set) var bytes: [UInt8] = []
    /// The temporary file, owned until `commit` or `abandon` closes it.
    private var file: FileDescriptor?
    private var temporaryPath: String?
    private let finalPath: String?

    init() { finalPath = nil }

    init(finalPath: String) throws {
        self.finalPath = finalPath
        let directory = (finalPath as NSString).deletingLastPathComponent
        let base = (finalPath as NSString).lastPathComponent
        for attempt in 1...100 {
            let candidate = "\(directory.isEmpty ? "." : directory)/.\(base).tmp-\(UInt32.random(in: 0...UInt32.max))"
            do {
                file = try FileDescriptor.open(FilePath(candidate), .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
                                               permissions: FilePermissions(rawValue: 0o644))
                temporaryPath = candidate
                return
            } catch let error as Errno {
                if error == .fileExists, attempt < 100 { continue }
                throw ArchiveError.system("open", archive: finalPath, entry: candidate, errno: error.rawValue)
            }
        }
    }

    /// Appends or writes `length` bytes; -1 with errno set on failure.
    func write(_ buffer: UnsafeRawPointer, _ length: Int) -> Int {
        guard finalPath != nil else {
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: length))
            return length
        }
        guard let file else {
            errno = EBADF
            return -1
        }
        do {
            try file.writeAll(UnsafeRawBufferPointer(start: buffer, count: length))
            return length
        } catch {
            errno = (error as? Errno)?.rawValue ?? EIO
            return -1
        }
    }

    /// Makes a file output durable and visible under its final name.
    func commit(name: String) throws {
        guard let finalPath, let temporaryPath else { return }
        defer { abandon() }
        // swift-system has no fsync.
        if let file, fsync(file.rawValue) != 0 { throw ArchiveError.system("fsync", archive: name) }
        try? file?.close()
        file = nil
        if rename(temporaryPath, finalPath) != 0 { throw ArchiveError.system("rename", archive: name) }
        self.temporaryPath = nil
        let directory = (finalPath as NSString).deletingLastPathComponent
        if let parent = try? FileDescriptor.open(FilePath(directory.isEmpty ? "." : directory), .readOnly,
                                                 options: [.directory, .closeOnExec]) {
            fsync(parent.rawValue)
            try? parent.close()
        }
    }

    /// Drops an unfinished file output.
    func abandon() {
        try? file?.close()
        file = nil
        if let temporaryPath {
            unlink(temporaryPath)
            self.temporaryPath = nil
        }
    }
}

/// libarchive's write callback: the context is the writer's `OutputSink`.
private func archiveWriteCallback(_ archive: OpaquePointer?, _ context: UnsafeMutableRawPointer?,
                                  _ buffer: UnsafeRawPointer?, _ length: Int) -> Int {
    guard let context, let buffer else { return 0 }
    let sink = Unmanaged<OutputSink>.fromOpaque(context).takeUnretainedValue()
    let written = sink.write(buffer, length)
    if written < 0 {
        let code = errno
        rast_archive_set_error(archive, code, "write: \(String(cString: strerror(code)))")
    }
    return written
}

extension ArchiveWriter {
    /// Writes everything below `directory` into a new archive file at `path`.
    package static func writeTree(_ directory: String, to path: String, format: Format = .paxRestricted,
                                 compression: ArchiveCompression = .none, owner: Ownership? = nil,
                                 modificationTime: Int64? = nil) throws {
        let writer = try ArchiveWriter(path: path, format: format, compression: compression)
        try writer.addTree(directory, owner: owner, modificationTime: modificationTime)
        try writer.close()
    }
}
