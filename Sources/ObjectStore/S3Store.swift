// s3://BUCKET/PREFIX over the S3 REST API: PutObject, GetObject (streamed, resumed with a
// Range request after a broken connection), HeadObject, ListObjectsV2, DeleteObject, and
// multipart uploads (CreateMultipartUpload, UploadPart in parallel, CompleteMultipartUpload,
// AbortMultipartUpload, ListMultipartUploads). Every request is signed with Signature V4 and
// retried with exponential backoff on connection failures, 5xx and 429 answers.
// With `endpoint` the bucket is addressed path-style (http://host:port/BUCKET/KEY), as
// MinIO, Ceph RGW and test servers want; without it, AWS's virtual-hosted style.
import Curl
import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

package final class S3Store: ObjectStore {
    package let location: String
    let requester: S3Requester
    private let client: HTTPClient

    package init(bucket: String, prefix: String, location: String, options: S3Options) throws {
        self.location = location
        let credentials = try options.credentials ?? AWSConfig.credentials()
        let region = options.region ?? AWSConfig.region()
        let base: String
        let pathStyle: Bool
        if let endpoint = options.endpoint {
            var trimmed = endpoint
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            guard trimmed.hasPrefix("http://") || trimmed.hasPrefix("https://"),
                  trimmed.dropFirst(trimmed.hasPrefix("https://") ? 8 : 7).contains(where: { $0 != "/" }),
                  !trimmed.dropFirst(8).contains("/") else {
                throw ObjectStoreError.badTarget(location, reason: "--endpoint '\(endpoint)' is no http(s)://HOST[:PORT] URL")
            }
            base = trimmed
            pathStyle = true
        } else {
            base = region == "us-east-1" ? "https://\(bucket).s3.amazonaws.com" : "https://\(bucket).s3.\(region).amazonaws.com"
            pathStyle = false
        }
        requester = S3Requester(location: location, bucket: bucket, prefix: prefix, base: base, pathStyle: pathStyle,
                                signer: SigV4Signer(credentials: credentials, region: region), options: options)
        client = try HTTPClient()
    }

    package func put(_ key: String, bytes: [UInt8]) throws {
        let response = try requester.send(client, "PUT", key: key, body: bytes, operation: "upload")
        try requester.expectSuccess(response, operation: "upload", key: key)
    }

    @discardableResult
    package func get(_ key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        try requester.download(client, key: key, into: sink)
    }

    package func head(_ key: String) throws -> ObjectInfo? {
        let response = try requester.send(client, "HEAD", key: key, operation: "look up")
        if response.status == 404 { return nil }
        try requester.expectSuccess(response, operation: "look up", key: key)
        return ObjectInfo(key: key, size: Int64(response.header("content-length") ?? "") ?? 0)
    }

    package func list(prefix: String) throws -> [ObjectInfo] {
        var result: [ObjectInfo] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", requester.prefix + prefix)]
            if let token { query.append(("continuation-token", token)) }
            let response = try requester.send(client, "GET", key: nil, query: query, operation: "list")
            try requester.expectSuccess(response, operation: "list", key: prefix)
            guard let document = XMLElement.parse(response.body), let list = document.all("ListBucketResult").first else {
                throw ObjectStoreError.badResponse(location: location, operation: "list", reason: "no ListBucketResult document")
            }
            for entry in list.all("Contents") {
                guard let key = entry.value("Key"), key.hasPrefix(requester.prefix) else { continue }
                result.append(ObjectInfo(key: String(key.dropFirst(requester.prefix.count)), size: Int64(entry.value("Size") ?? "") ?? 0))
            }
            token = list.value("IsTruncated") == "true" ? list.value("NextContinuationToken") : nil
        } while token != nil
        return result.sorted { $0.key < $1.key }
    }

    package func delete(_ key: String) throws {
        let response = try requester.send(client, "DELETE", key: key, operation: "delete")
        if response.status == 404 { return }
        try requester.expectSuccess(response, operation: "delete", key: key)
    }

    package func upload(_ key: String) throws -> ObjectUpload {
        S3Upload(key: key, requester: requester, client: client)
    }

    package func pendingUploads(prefix: String) throws -> [PendingUpload] {
        var result: [PendingUpload] = []
        var markers: (key: String, upload: String)?
        repeat {
            var query = [("uploads", ""), ("prefix", requester.prefix + prefix)]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.upload)] }
            let response = try requester.send(client, "GET", key: nil, query: query, operation: "list pending uploads")
            try requester.expectSuccess(response, operation: "list pending uploads", key: prefix)
            guard let document = XMLElement.parse(response.body), let list = document.all("ListMultipartUploadsResult").first else {
                throw ObjectStoreError.badResponse(location: location, operation: "list pending uploads", reason: "no ListMultipartUploadsResult document")
            }
            for upload in list.all("Upload") {
                guard let key = upload.value("Key"), let id = upload.value("UploadId"), key.hasPrefix(requester.prefix + prefix) else { continue }
                result.append(PendingUpload(key: String(key.dropFirst(requester.prefix.count)), uploadID: id))
            }
            if list.value("IsTruncated") == "true", let key = list.value("NextKeyMarker"), let upload = list.value("NextUploadIdMarker") {
                markers = (key, upload)
            } else {
                markers = nil
            }
        } while markers != nil
        return result
    }

    package func abort(_ upload: PendingUpload) throws {
        let response = try requester.send(client, "DELETE", key: upload.key, query: [("uploadId", upload.uploadID)], operation: "abort upload")
        if response.status == 404 { return }
        try requester.expectSuccess(response, operation: "abort upload", key: upload.key)
    }
}

/// Everything needed to sign and send a request: plain values, shared with upload workers.
struct S3Requester: Sendable {
    let location: String
    let bucket: String
    let prefix: String
    let base: String
    let pathStyle: Bool
    let signer: SigV4Signer
    let options: S3Options

    var host: String {
        let withoutScheme = base.drop { $0 != "/" }.drop { $0 == "/" }
        return String(withoutScheme.prefix { $0 != "/" })
    }

    /// Sends a signed request, retrying connection failures, 5xx and 429 with backoff.
    func send(_ client: HTTPClient, _ method: String, key: String?, query: [(String, String)] = [], body: [UInt8] = [],
              headers extra: [(String, String)] = [], operation: String,
              sink: ((UnsafeRawBufferPointer) throws -> Void)? = nil, giveUp: (() -> Bool)? = nil,
              attempts maximum: Int? = nil) throws -> HTTPResponse {
        let attempts = maximum ?? options.attempts
        let objectPath = key.map { prefix + $0 } ?? ""
        let path = pathStyle ? "/\(bucket)" + (key == nil ? "" : "/" + objectPath) : "/" + objectPath
        let encodedPath = SigV4Signer.encodePath(path)
        // In the URL, a parameter without a value has no "=" (?uploads); the signature has one.
        let queryString = SigV4Signer.encodedQuery(query)
            .map { (item: (name: String, value: String)) -> String in item.value.isEmpty ? item.name : item.name + "=" + item.value }
            .joined(separator: "&")
        let url = base + encodedPath + (queryString.isEmpty ? "" : "?" + queryString)
        let payloadHash = SHA256.hash(body)
        let what = key ?? "s3://\(bucket)/\(prefix)"
        var attempt = 0
        var delay = options.retryDelay
        while true {
            attempt += 1
            try checkCancelled()
            let (amzDate, _) = SigV4Signer.timestamps(Date())
            var headers: [(String, String)] = [("Host", host), ("X-Amz-Date", amzDate), ("X-Amz-Content-SHA256", payloadHash)]
            if let token = signer.credentials.sessionToken { headers.append(("X-Amz-Security-Token", token)) }
            headers += extra
            let signature = signer.sign(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash, date: Date())
            var request = HTTPRequest(method: method, url: url,
                                      headers: headers.filter { $0.0 != "Host" }.map { (name: $0.0, value: $0.1) }
                                          + [(name: "Authorization", value: signature.authorization)],
                                      body: body)
            request.stallLimit = (1, options.stallSeconds)
            let watch = Stopwatch()
            let outcome: Result<HTTPResponse, CurlError>
            do {
                outcome = .success(try client.send(request, sink: sink))
            } catch let error as CurlError {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let response):
                RastLog.logger.debug("s3: \(method) \(url) (\(body.count) bytes) -> \(response.status) in \(String(format: "%.3f", watch.elapsed)) s")
                let retryable = [429, 500, 502, 503, 504].contains(response.status)
                    || (response.status == 400 && S3Requester.errorCode(response) == "RequestTimeout")
                if retryable, attempt < attempts {
                    RastLog.logger.debug("s3: \(operation) \(what): HTTP \(response.status), retrying in \(delay) s (attempt \(attempt) of \(attempts))")
                    try pause(delay)
                    delay = min(delay * 2, options.maxDelay)
                    continue
                }
                return response
            case .failure(let error):
                RastLog.logger.debug("s3: \(method) \(url) (\(body.count) bytes) failed in \(String(format: "%.3f", watch.elapsed)) s: \(error)")
                guard error.isTransient else {
                    throw ObjectStoreError.transport(location: location, operation: operation, key: what, attempts: attempt, cause: error)
                }
                // No more attempts, or another part of the same upload failed already.
                guard attempt < attempts, giveUp?() != true else {
                    throw ObjectStoreError.transport(location: location, operation: operation, key: what, attempts: attempt, cause: error)
                }
                RastLog.logger.debug("s3: \(operation) \(what): retrying in \(delay) s (attempt \(attempt) of \(attempts))")
                try pause(delay)
                delay = min(delay * 2, options.maxDelay)
            }
        }
    }

    /// Streams an object to `sink`; a connection that breaks is resumed with a Range request
    /// from the first byte `sink` has not seen (each attempt is one request, so that no byte
    /// reaches `sink` twice).
    func download(_ client: HTTPClient, key: String, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        var delivered: Int64 = 0
        var attempt = 0
        var delay = options.retryDelay
        while true {
            attempt += 1
            let headers = delivered > 0 ? [("Range", "bytes=\(delivered)-")] : []
            let response: HTTPResponse
            do {
                response = try withoutActuallyEscaping(sink) { sink in
                    try send(client, "GET", key: key, headers: headers, operation: "download", sink: { bytes in
                        try sink(bytes)
                        delivered += Int64(bytes.count)
                    }, attempts: 1)
                }
            } catch let error as ObjectStoreError {
                guard case .transport(_, _, _, _, let cause) = error, attempt < options.attempts else {
                    if case .transport(let location, let operation, let key, _, let cause) = error {
                        throw ObjectStoreError.transport(location: location, operation: operation, key: key, attempts: attempt, cause: cause)
                    }
                    throw error
                }
                RastLog.logger.debug("s3: download \(key): \(cause); resuming at byte \(delivered) in \(delay) s")
                try pause(delay)
                delay = min(delay * 2, options.maxDelay)
                continue
            }
            if response.status == 404 { throw ObjectStoreError.notFound(location: location, key: key) }
            if [429, 500, 502, 503, 504].contains(response.status), attempt < options.attempts {
                try pause(delay)
                delay = min(delay * 2, options.maxDelay)
                continue
            }
            if delivered > 0, !headers.isEmpty, response.status == 200 {
                throw ObjectStoreError.badResponse(location: location, operation: "download \(key)", reason: "the server ignored the Range request of a resumed download")
            }
            try expectSuccess(response, operation: "download", key: key)
            return delivered
        }
    }

    func expectSuccess(_ response: HTTPResponse, operation: String, key: String) throws {
        guard !response.isSuccess else { return }
        let document = XMLElement.parse(response.body)?.all("Error").first
        throw ObjectStoreError.server(location: location, operation: operation, key: key, status: response.status,
                                      code: document?.value("Code") ?? "", message: document?.value("Message") ?? "")
    }

    static func errorCode(_ response: HTTPResponse) -> String? {
        XMLElement.parse(response.body)?.all("Error").first?.value("Code")
    }

    private func pause(_ seconds: Double) throws {
        // Sleep in short steps so that ^C is not kept waiting; a little jitter spreads retries.
        let total = seconds * Double.random(in: 0.8...1.2)
        let end = Stopwatch.now() + total
        while Stopwatch.now() < end {
            try checkCancelled()
            usleep(UInt32(min(0.1, max(0, end - Stopwatch.now())) * 1_000_000))
        }
    }
}

/// A multipart upload: parts of `options.partSize` go up as they fill, up to
/// `options.parallelUploads` at once, each on its own connection. An object smaller than
/// one part is sent with a single PutObject instead.
final class S3Upload: ObjectUpload {
    let key: String
    private let requester: S3Requester
    private let client: HTTPClient
    private var buffer: [UInt8] = []
    private var uploadID: String?
    private var nextPart = 1
    private var size: Int64 = 0
    private var finished = false
    private let shared = SharedParts()
    private let group = DispatchGroup()
    private let slots: DispatchSemaphore

    /// What the part workers report back.
    final class SharedParts: Sendable {
        let state = Mutex<(etags: [Int: String], error: ObjectStoreError?)>(([:], nil))
    }

    init(key: String, requester: S3Requester, client: HTTPClient) {
        self.key = key
        self.requester = requester
        self.client = client
        slots = DispatchSemaphore(value: max(1, requester.options.parallelUploads))
        buffer.reserveCapacity(requester.options.partSize)
    }

    deinit {
        if !finished { abort() }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        let partSize = requester.options.partSize
        while offset < bytes.count {
            let take = min(partSize - buffer.count, bytes.count - offset)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
            offset += take
            if buffer.count == partSize { try submitPart() }
        }
        size += Int64(bytes.count)
    }

    private func submitPart() throws {
        if let error = shared.state.withLock({ $0.error }) { throw error }
        if uploadID == nil { uploadID = try create() }
        guard let uploadID else { return }
        let number = nextPart
        nextPart += 1
        let part = buffer
        buffer.removeAll(keepingCapacity: true)
        // Wait for a free slot, checking for ^C and for a failed part now and then.
        while slots.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            try checkCancelled()
            if let error = shared.state.withLock({ $0.error }) { throw error }
        }
        if let error = shared.state.withLock({ $0.error }) {
            slots.signal()  // a part failed while we waited: this one is not sent
            throw error
        }
        group.enter()
        let requester = self.requester, shared = self.shared, key = self.key, slots = self.slots, group = self.group
        DispatchQueue.global().async {
            defer {
                slots.signal()
                group.leave()
            }
            do {
                let client = try HTTPClient()
                let response = try requester.send(client, "PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                                                  body: part, operation: "upload part \(number) of",
                                                  giveUp: { shared.state.withLock { $0.error != nil } })
                try requester.expectSuccess(response, operation: "upload part \(number) of", key: key)
                guard let etag = response.header("etag") else {
                    throw ObjectStoreError.badResponse(location: requester.location, operation: "upload part \(number) of \(key)", reason: "no ETag header")
                }
                shared.state.withLock { $0.etags[number] = etag }
            } catch {
                let failure = error as? ObjectStoreError
                    ?? .transport(location: requester.location, operation: "upload part \(number) of", key: key, attempts: 1, cause: error)
                shared.state.withLock { state in if state.error == nil { state.error = failure } }
            }
        }
    }

    private func create() throws -> String {
        let response = try requester.send(client, "POST", key: key, query: [("uploads", "")], operation: "start the upload of")
        try requester.expectSuccess(response, operation: "start the upload of", key: key)
        guard let id = XMLElement.parse(response.body)?.all("UploadId").first?.text, !id.isEmpty else {
            throw ObjectStoreError.badResponse(location: requester.location, operation: "start the upload of \(key)", reason: "no UploadId")
        }
        return id
    }

    @discardableResult
    func complete() throws -> Int64 {
        do {
            guard let uploadID else {
                // Smaller than one part: one PutObject.
                let response = try requester.send(client, "PUT", key: key, body: buffer, operation: "upload")
                try requester.expectSuccess(response, operation: "upload", key: key)
                finished = true
                return size
            }
            if !buffer.isEmpty || nextPart == 1 { try submitPart() }
            group.wait()
            let (etags, error) = shared.state.withLock { ($0.etags, $0.error) }
            if let error { throw error }
            var body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for number in 1..<nextPart {
                guard let etag = etags[number] else {
                    throw ObjectStoreError.badResponse(location: requester.location, operation: "upload \(key)", reason: "part \(number) has no ETag")
                }
                body += "<Part><PartNumber>\(number)</PartNumber><ETag>\(escapeXML(etag))</ETag></Part>"
            }
            body += "</CompleteMultipartUpload>"
            let response = try requester.send(client, "POST", key: key, query: [("uploadId", uploadID)], body: Array(body.utf8),
                                              headers: [("Content-Type", "application/xml")], operation: "complete the upload of")
            try requester.expectSuccess(response, operation: "complete the upload of", key: key)
            // S3 may answer 200 and report the failure in the body.
            if let document = XMLElement.parse(response.body), let error = document.all("Error").first {
                throw ObjectStoreError.server(location: requester.location, operation: "complete the upload of", key: key, status: response.status,
                                              code: error.value("Code") ?? "", message: error.value("Message") ?? "")
            }
            finished = true
            return size
        } catch {
            abort()
            throw error
        }
    }

    func abort() {
        guard !finished else { return }
        finished = true
        group.wait()
        guard let uploadID else { return }
        do {
            var quick = requester.options
            quick.attempts = 2
            let aborter = S3Requester(location: requester.location, bucket: requester.bucket, prefix: requester.prefix, base: requester.base,
                                      pathStyle: requester.pathStyle, signer: requester.signer, options: quick)
            let response = try aborter.send(client, "DELETE", key: key, query: [("uploadId", uploadID)], operation: "abort the upload of")
            if response.status != 404 { try aborter.expectSuccess(response, operation: "abort the upload of", key: key) }
        } catch {
            RastLog.logger.notice("\(error); the incomplete upload is removed by the next `rast backup create` or `prune`")
        }
    }
}
