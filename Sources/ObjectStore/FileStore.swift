// file:///DIR: objects as files below DIR (keys' "/" are directories). A streamed upload
// writes DIR/.uploads/ID (the pending upload), fsyncs it and renames it to its key on
// completion, so an object is either complete or absent; `pendingUploads` lists what a
// killed upload left in .uploads.
import Foundation
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

package final class FileStore: ObjectStore {
    package let directory: String
    package let location: String
    static let uploadsDirectory = ".uploads"

    package init(directory: String, location: String? = nil) throws {
        self.directory = directory
        self.location = location ?? "file://" + directory
        do {
            try Files.createDirectory(directory, mode: 0o700)
        } catch let error as SystemError {
            throw ObjectStoreError.file(error)
        }
    }

    func path(_ key: String) throws -> String {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !key.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), parts.first != Substring(FileStore.uploadsDirectory) else {
            throw ObjectStoreError.badTarget(location, reason: "the object key '\(key)' is not a plain relative path")
        }
        return directory + "/" + key
    }

    package func put(_ key: String, bytes: [UInt8]) throws {
        let path = try path(key)
        try wrap {
            try Files.createDirectory((path as NSString).deletingLastPathComponent, mode: 0o700)
            try Files.writeAtomically(path, bytes: bytes, mode: 0o600)
        }
    }

    @discardableResult
    package func get(_ key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let path = try path(key)
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
        } catch let error as Errno {
            if error == .noSuchFileOrDirectory { throw ObjectStoreError.notFound(location: location, key: key) }
            throw ObjectStoreError.file(SystemError("open", path: path, errno: error))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        return try file.closeAfter(path: path) {
            var total: Int64 = 0
            while true {
                let count = try wrap { try SystemError.wrapping("read", path: path) { try file.read(into: buffer) } }
                if count == 0 { return total }
                try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                total += Int64(count)
            }
        }
    }

    package func head(_ key: String) throws -> ObjectInfo? {
        var info = stat()
        guard stat(try path(key), &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return ObjectInfo(key: key, size: Int64(info.st_size))
    }

    package func list(prefix: String) throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        func walk(_ relative: String) throws {
            let absolute = relative.isEmpty ? directory : directory + "/" + relative
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: absolute) } catch { return }
            for name in names.sorted() {
                if relative.isEmpty, name == FileStore.uploadsDirectory { continue }
                if name.hasPrefix("."), name.contains(".tmp-") { continue }  // an atomic write in progress
                let key = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(directory + "/" + key, &info) == 0 else { continue }
                if (info.st_mode & S_IFMT) == S_IFDIR {
                    if prefix.hasPrefix(key + "/") || (key + "/").hasPrefix(prefix) || prefix.isEmpty { try walk(key) }
                } else if (info.st_mode & S_IFMT) == S_IFREG, key.hasPrefix(prefix) {
                    result.append(ObjectInfo(key: key, size: Int64(info.st_size)))
                }
            }
        }
        try walk("")
        return result.sorted { $0.key < $1.key }
    }

    package func delete(_ key: String) throws {
        let path = try path(key)
        if unlink(path) != 0, errno != ENOENT { throw ObjectStoreError.file(SystemError("delete", path: path)) }
        // Empty directories left behind go too (up to the store's own directory).
        var parent = (path as NSString).deletingLastPathComponent
        while parent.count > directory.count, rmdir(parent) == 0 {
            parent = (parent as NSString).deletingLastPathComponent
        }
    }

    package func upload(_ key: String) throws -> ObjectUpload {
        let final = try path(key)
        let uploads = directory + "/" + FileStore.uploadsDirectory
        return try wrap {
            try Files.createDirectory(uploads, mode: 0o700)
            let (file, temporary) = try FileDescriptor.createUnique(
                prefix: "\(uploads)/\(key.replacingOccurrences(of: "/", with: "%2F")).",
                operation: "create a file in", reportedPath: uploads)
            return FileUpload(key: key, file: file, temporary: temporary, final: final)
        }
    }

    package func pendingUploads(prefix: String) throws -> [PendingUpload] {
        let uploads = directory + "/" + FileStore.uploadsDirectory
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: uploads) else { return [] }
        return names.sorted().compactMap { name in
            guard let dot = name.lastIndex(of: ".") else { return nil }
            let key = name[..<dot].replacingOccurrences(of: "%2F", with: "/")
            return key.hasPrefix(prefix) ? PendingUpload(key: key, uploadID: name) : nil
        }
    }

    package func abort(_ upload: PendingUpload) throws {
        guard !upload.uploadID.contains("/") else { return }
        let path = directory + "/" + FileStore.uploadsDirectory + "/" + upload.uploadID
        if unlink(path) != 0, errno != ENOENT { throw ObjectStoreError.file(SystemError("delete", path: path)) }
    }

    private func wrap<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SystemError { throw ObjectStoreError.file(error) }
    }
}

final class FileUpload: ObjectUpload {
    let key: String
    /// Owned until `complete()` or `abort()` closes it.
    private var file: FileDescriptor?
    private let temporary: String
    private let final: String
    private var size: Int64 = 0

    init(key: String, file: FileDescriptor, temporary: String, final: String) {
        self.key = key
        self.file = file
        self.temporary = temporary
        self.final = final
    }

    deinit { abort() }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        do {
            guard let file else { throw SystemError("write", path: temporary, errno: EBADF) }
            try file.writeAll(bytes, path: temporary)
        } catch let error as SystemError {
            throw ObjectStoreError.file(error)
        }
        size += Int64(bytes.count)
    }

    @discardableResult
    func complete() throws -> Int64 {
        do {
            guard let file else { throw SystemError("fsync", path: temporary, errno: EBADF) }
            self.file = nil
            try file.closeAfter(path: temporary) { try file.sync(path: temporary) }
            let parent = (final as NSString).deletingLastPathComponent
            try Files.createDirectory(parent, mode: 0o700)
            try SystemError.check("rename", path: final) { rename(temporary, final) }
            try Files.syncDirectory(parent)
        } catch let error as SystemError {
            abort()
            unlink(temporary)
            throw ObjectStoreError.file(error)
        }
        return size
    }

    func abort() {
        if let file {
            try? file.close()
            self.file = nil
            unlink(temporary)
        }
    }
}
