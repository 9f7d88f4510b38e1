import CCrypto
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 through libcrypto: cache keys, recipe hashes, source checksums, SHA256SUMS.
package struct SHA256: ~Copyable {
    private let context: OpaquePointer

    package init() {
        // EVP_MD_CTX_new only fails on allocation failure.
        guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: out of memory") }
        self.context = context
        EVP_DigestInit_ex(context, EVP_sha256(), nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    package mutating func update(_ bytes: UnsafeRawBufferPointer) {
        EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    package mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    package mutating func update(_ string: String) {
        update(Array(string.utf8))
    }

    /// The digest as lowercase hex.
    package consuming func finalize() -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return SHA256.hex(digest)
    }

    package static func hash(_ string: String) -> String {
        var hasher = SHA256()
        hasher.update(string)
        return hasher.finalize()
    }

    package static func hash(_ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// Hashes a file by streaming it. The holes of a sparse file (SEEK_DATA/SEEK_HOLE) are
    /// hashed as the zeros they read as, without reading them: a 2 GiB disk image holding
    /// 120 MB of data reads 120 MB, not 2 GiB through the page cache. `progress` is called with
    /// the bytes hashed so far and the total after each step; what it throws ends the hash.
    package static func hash(file path: String,
                            progress: ((_ done: Int64, _ total: Int64) throws -> Void)? = nil) throws -> String {
        let file = try FileDescriptor.open(path: path, .readOnly)
        return try file.closeAfter(path: path) { try hash(file, path: path, progress: progress) }
    }

    private static func hash(_ file: FileDescriptor, path: String,
                             progress: ((_ done: Int64, _ total: Int64) throws -> Void)?) throws -> String {
        var status = stat()
        if fstat(file.rawValue, &status) != 0 { throw SystemError("stat", path: path) }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var position: Int64 = 0
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            // A device or a pipe: every byte is read, to the end.
            let end = (try? file.seek(offset: 0, from: .end)) ?? -1
            let total = end > 0 && (try? file.seek(offset: 0, from: .start)) == 0 ? end : 0
            try feed(file, path: path, until: nil, position: &position, into: &hasher, buffer: buffer) {
                try progress?($0, max(total, $0))
            }
            return hasher.finalize()
        }
        let size = Int64(status.st_size)
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        for extent in try file.dataExtents(size: size, path: path) + [size..<size] {
            while position < extent.lowerBound {  // a hole
                let count = Int(min(Int64(zeros.count), extent.lowerBound - position))
                hasher.update(UnsafeRawBufferPointer(rebasing: zeros[0..<count]))
                position += Int64(count)
                try progress?(position, size)
            }
            guard !extent.isEmpty else { continue }
            try SystemError.wrapping("seek in", path: path) { _ = try file.seek(offset: extent.lowerBound, from: .start) }
            try feed(file, path: path, until: extent.upperBound, position: &position, into: &hasher, buffer: buffer) {
                try progress?($0, size)
            }
        }
        return hasher.finalize()
    }

    /// Hashes what `file` yields from `position` up to `end`, or to its end when nil; a file
    /// that ends before `end` is an error.
    private static func feed(_ file: FileDescriptor, path: String, until end: Int64?, position: inout Int64,
                             into hasher: inout SHA256, buffer: UnsafeMutableRawBufferPointer,
                             progress: (Int64) throws -> Void) throws {
        while end.map({ position < $0 }) ?? true {
            let want = Int(min(Int64(buffer.count), (end ?? .max) - position))
            let count = try SystemError.wrapping("read", path: path) {
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            }
            if count == 0 {
                guard end == nil else { throw SystemError("\(path) ended at byte \(position) while it was hashed (it shrank)") }
                return
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            position += Int64(count)
            try progress(position)
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
