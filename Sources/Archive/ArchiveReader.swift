import CArchive
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads an archive (any format and compression libarchive knows: tar with gzip, xz, zstd,
/// ..., cpio, mtree) entry by entry. Owns the `struct archive`; `deinit` frees it.
package final class ArchiveReader {
    private let handle: OpaquePointer
    /// Names the archive in errors: its path, or "<memory>".
    package let name: String
    /// Keeps in-memory input alive while libarchive reads it.
    private let buffer: UnsafeMutableRawBufferPointer?
    private var current: ArchiveEntry?
    private var currentEntry: OpaquePointer?
    private var finished = false

    /// Opens the archive file at `path`.
    package convenience init(path: String) throws {
        try self.init(name: path, bytes: nil)
    }

    /// Reads an archive held in memory.
    package convenience init(bytes: [UInt8], name: String = "<memory>") throws {
        try self.init(name: name, bytes: bytes)
    }

    private init(name: String, bytes: [UInt8]?) throws {
        guard let handle = archive_read_new() else {
            throw ArchiveError(function: "archive_read_new", archive: name, message: "out of memory")
        }
        self.handle = handle
        self.name = name
        if let bytes {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
            copy.copyBytes(from: bytes)
            buffer = copy
        } else {
            buffer = nil
        }
        try check(archive_read_support_filter_all(handle), handle, function: "archive_read_support_filter_all", archive: name)
        try check(archive_read_support_format_all(handle), handle, function: "archive_read_support_format_all", archive: name)
        if let buffer, let bytes {
            try check(archive_read_open_memory(handle, buffer.baseAddress, bytes.count), handle,
                      function: "archive_read_open_memory", archive: name)
        } else {
            try check(archive_read_open_filename(handle, name, 65536), handle,
                      function: "archive_read_open_filename", archive: name)
        }
    }

    deinit {
        archive_read_free(handle)
        buffer?.deallocate()
    }

    /// Advances to the next entry (skipping unread data); nil at the end of the archive.
    package func next() throws -> ArchiveEntry? {
        guard !finished else { return nil }
        var entry: OpaquePointer?
        let result = archive_read_next_header(handle, &entry)
        if result == ARCHIVE_EOF {
            finished = true
            current = nil
            currentEntry = nil
            return nil
        }
        try check(result, handle, function: "archive_read_next_header", archive: name, entry: current?.path)
        guard let entry else {
            throw ArchiveError(function: "archive_read_next_header", archive: name, message: "no entry returned")
        }
        currentEntry = entry
        let info = ArchiveEntry(entry)
        current = info
        return info
    }

    /// Streams the current entry's data in blocks.
    package func readData(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let current else {
            throw ArchiveError(function: "archive_read_data_block", archive: name, message: "no current entry (call next() first)")
        }
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        var written: Int64 = 0
        var zeros: [UInt8] = []
        while true {
            let result = archive_read_data_block(handle, &block, &size, &offset)
            if result == ARCHIVE_EOF { break }
            try check(result, handle, function: "archive_read_data_block", archive: name, entry: current.path)
            // Sparse entries skip holes: hand out the zeros the holes stand for.
            if written < offset, zeros.isEmpty { zeros = [UInt8](repeating: 0, count: 65536) }
            while written < offset {
                let count = Int(min(Int64(zeros.count), offset - written))
                try zeros.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                written += Int64(count)
            }
            if size > 0, let block {
                try body(UnsafeRawBufferPointer(start: block, count: size))
                written += Int64(size)
            }
        }
    }

    /// The current entry's data.
    package func readData() throws -> [UInt8] {
        var bytes: [UInt8] = []
        if let current, current.size > 0 { bytes.reserveCapacity(Int(current.size)) }
        try readData { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// Passes the current libarchive entry to the extractor (same module only).
    func withCurrentEntry<R>(_ body: (OpaquePointer, OpaquePointer) throws -> R) throws -> R {
        guard let currentEntry else {
            throw ArchiveError(function: "extract", archive: name, message: "no current entry")
        }
        return try body(handle, currentEntry)
    }

    /// Copies the current entry's data blocks into a disk writer.
    func copyData(to disk: OpaquePointer, entry: String) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        while true {
            let result = archive_read_data_block(handle, &block, &size, &offset)
            if result == ARCHIVE_EOF { return }
            try check(result, handle, function: "archive_read_data_block", archive: name, entry: entry)
            let written = archive_write_data_block(disk, block, size, offset)
            if written < ARCHIVE_WARN {
                throw ArchiveError.library(disk, function: "archive_write_data_block", archive: name, entry: entry)
            }
        }
    }

    /// Closes the archive, reporting errors libarchive only finds at the end.
    package func close() throws {
        try check(archive_read_close(handle), handle, function: "archive_read_close", archive: name)
    }
}

extension ArchiveReader {
    /// Lists every entry of the archive at `path` (like `bsdtar -tvf`).
    package static func list(_ path: String) throws -> [ArchiveEntry] {
        let reader = try ArchiveReader(path: path)
        var entries: [ArchiveEntry] = []
        while let entry = try reader.next() { entries.append(entry) }
        try reader.close()
        return entries
    }

    /// The bytes of the entry named `entryPath` (e.g. ".PKGINFO"), or nil when the archive
    /// has no such entry. A leading "./" is ignored on both sides.
    package static func contents(of entryPath: String, inArchive path: String) throws -> [UInt8]? {
        let reader = try ArchiveReader(path: path)
        let wanted = normalized(entryPath)
        while let entry = try reader.next() {
            if normalized(entry.path) == wanted { return try reader.readData() }
        }
        return nil
    }

    static func normalized(_ path: String) -> String {
        var result = Substring(path)
        while result.hasPrefix("./") { result = result.dropFirst(2) }
        while result.hasSuffix("/") && result.count > 1 { result = result.dropLast() }
        return String(result)
    }
}
