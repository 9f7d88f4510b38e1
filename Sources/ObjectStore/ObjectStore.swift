// ObjectStore: one protocol for the places backups go. `s3://BUCKET/PREFIX` speaks the S3
// REST API signed with AWS Signature V4 (AWS, MinIO, Ceph RGW, GCS's XML API with HMAC keys;
// `endpoint` names a server other than AWS), `file:///DIR` keeps objects as files. Keys are
// relative to the target's prefix, with "/" separating levels.
import Foundation
import SystemSupport

/// An object's name and size as a listing shows them.
package struct ObjectInfo: Sendable, Equatable {
    package let key: String
    package let size: Int64
}

/// A multipart upload that was started and never completed or aborted (the uploading
/// process died): its parts take space but no object exists under its key.
package struct PendingUpload: Sendable, Equatable {
    package let key: String
    package let uploadID: String
}

/// Where objects are kept.
package protocol ObjectStore: AnyObject {
    /// The target as a user wrote it (`s3://bucket/prefix`, `file:///dir`).
    var location: String { get }
    /// Writes a small object whole, replacing one of the same key.
    func put(_ key: String, bytes: [UInt8]) throws
    /// Streams an object to `sink` in pieces; returns its size.
    @discardableResult
    func get(_ key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64
    /// The object's size, or nil when there is none.
    func head(_ key: String) throws -> ObjectInfo?
    /// Every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) throws -> [ObjectInfo]
    /// Removes an object; removing one that is not there is no error.
    func delete(_ key: String) throws
    /// Starts a streamed upload: the object appears under `key` only when `complete()` succeeds.
    func upload(_ key: String) throws -> ObjectUpload
    /// Uploads below `prefix` that were started and never completed or aborted.
    func pendingUploads(prefix: String) throws -> [PendingUpload]
    /// Discards a pending upload and its parts.
    func abort(_ upload: PendingUpload) throws
}

extension ObjectStore {
    /// Reads a whole (small) object; `ObjectStoreError.notFound` when there is none.
    package func get(_ key: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try get(key) { bytes.append(contentsOf: $0) }
        return bytes
    }
}

/// An object being written in parts (S3 multipart upload; a temporary file for file://).
package protocol ObjectUpload: AnyObject {
    var key: String { get }
    /// Appends bytes; full parts are uploaded as they fill.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Uploads what is left and makes the object appear; returns its size.
    @discardableResult
    func complete() throws -> Int64
    /// Discards what was uploaded (best effort: a store that cannot be reached keeps the
    /// parts, which `pendingUploads` finds later).
    func abort()
}

package enum ObjectStoreError: Error, CustomStringConvertible, Sendable {
    /// A target URL that is no s3:// or file:// URL, or lacks a part.
    case badTarget(String, reason: String)
    case notFound(location: String, key: String)
    /// The server answered with an error (S3's error document: code and message).
    case server(location: String, operation: String, key: String, status: Int, code: String, message: String)
    /// The server could not be reached or the connection failed, after every retry; `cause`
    /// is the last attempt's error (a `CurlError`).
    case transport(location: String, operation: String, key: String, attempts: Int, cause: any Error)
    /// No credentials in the environment or ~/.aws/credentials.
    case noCredentials(String)
    /// A file:// operation failed.
    case file(SystemError)
    /// The server's answer could not be understood.
    case badResponse(location: String, operation: String, reason: String)

    package var description: String {
        switch self {
        case .badTarget(let target, let reason):
            return "backup target '\(target)': \(reason) (write s3://BUCKET/PREFIX or file:///DIRECTORY)"
        case .notFound(let location, let key):
            return "\(location): there is no object \(key)"
        case .server(let location, let operation, let key, let status, let code, let message):
            let what = code.isEmpty ? "HTTP status \(status)" : "\(code) (HTTP \(status))\(message.isEmpty ? "" : ": \(message)")"
            return "\(location): \(operation) \(key) failed: \(what)"
        case .transport(let location, let operation, let key, let attempts, let cause):
            return "\(location): \(operation) \(key) failed after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(cause)"
        case .noCredentials(let detail):
            return "no S3 credentials: \(detail)"
        case .file(let error):
            return "\(error)"
        case .badResponse(let location, let operation, let reason):
            return "\(location): \(operation): unexpected answer from the server: \(reason)"
        }
    }
}

extension ObjectStoreError: CausedError {
    /// The error underneath: the last attempt's of a transport failure, a file operation's.
    package var cause: (any Error)? {
        switch self {
        case .transport(_, _, _, _, let cause): return cause
        case .file(let error): return error
        case .badTarget, .notFound, .server, .noCredentials, .badResponse: return nil
        }
    }
}

/// A parsed target URL.
package enum ObjectStoreTarget: Sendable, Equatable {
    case s3(bucket: String, prefix: String)
    case file(directory: String)

    package static func parse(_ text: String) throws -> ObjectStoreTarget {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst(5)
            let bucket = String(rest.prefix { $0 != "/" })
            guard !bucket.isEmpty else { throw ObjectStoreError.badTarget(text, reason: "no bucket name") }
            let valid = bucket.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") } && bucket.count >= 3
            guard valid else {
                throw ObjectStoreError.badTarget(text, reason: "'\(bucket)' is no valid bucket name (3 to 63 lowercase letters, digits, dots and hyphens)")
            }
            var prefix = String(rest.dropFirst(bucket.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !prefix.isEmpty { prefix += "/" }
            return .s3(bucket: bucket, prefix: prefix)
        }
        if text.hasPrefix("file://") {
            let path = String(text.dropFirst(7))
            guard path.hasPrefix("/") else {
                throw ObjectStoreError.badTarget(text, reason: "a file:// target needs an absolute path (file:///var/backups/rast)")
            }
            let normalized = (path as NSString).standardizingPath
            guard normalized != "/" else { throw ObjectStoreError.badTarget(text, reason: "refusing the root directory itself") }
            return .file(directory: normalized)
        }
        throw ObjectStoreError.badTarget(text, reason: "unknown scheme")
    }
}

/// How an S3 store is reached; everything but the target is optional.
package struct S3Options: Sendable {
    /// The server, as `http[s]://host[:port]`; nil for AWS itself.
    package var endpoint: String?
    /// The signing region; nil for AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config or us-east-1.
    package var region: String?
    /// Credentials; nil to read them from the environment or ~/.aws/credentials.
    package var credentials: AWSCredentials?
    /// Size of the parts of a multipart upload (S3 requires at least 5 MiB but for the last).
    package var partSize = 16 << 20
    /// Attempts per request, with exponential backoff between them.
    package var attempts = 5
    /// The first delay between attempts; it doubles up to `maxDelay`.
    package var retryDelay: Double = 0.5
    package var maxDelay: Double = 8
    /// A transfer that moves no byte for this many seconds is given up (then retried).
    package var stallSeconds = 30
    /// Part uploads in flight at once.
    package var parallelUploads = 2

    package init() {}
}

package enum ObjectStores {
    /// Opens the store for `target` (an s3:// or file:// URL).
    package static func open(_ target: String, s3 options: S3Options = S3Options()) throws -> ObjectStore {
        switch try ObjectStoreTarget.parse(target) {
        case .file(let directory):
            return try FileStore(directory: directory, location: target)
        case .s3(let bucket, let prefix):
            return try S3Store(bucket: bucket, prefix: prefix, location: target, options: options)
        }
    }
}
