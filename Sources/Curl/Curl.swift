// Curl: downloads over HTTP(S) and file:// with libcurl's easy interface.
//
// A download appends to a partial file when one exists (an HTTP Range request from its
// size), retries transfers that broke off, reports progress, and turns every failure into a
// `CurlError` naming the URL: an HTTP status >= 400, or libcurl's own message from
// CURLOPT_ERRORBUFFER. Servers that ignore the Range request are handled (the file starts
// over), and so is a file that was already complete (416 with the matching length).
import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// A failed transfer, naming the URL and saying why.
package enum CurlError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The server answered with this HTTP status (>= 400, or a redirect not followed).
    case http(url: String, status: Int)
    /// libcurl failed: its error code and message (CURLOPT_ERRORBUFFER).
    case transfer(url: String, code: Int, message: String)
    /// Reading or writing the local file failed.
    case file(path: String, operation: String, errno: Int32)
    /// The body is larger than the limit given to `get`.
    case tooLarge(url: String, limit: Int)
    /// Setting up the transfer failed (libcurl could not allocate, or rejected an option).
    case setup(function: String, code: Int, message: String)

    package var description: String {
        switch self {
        case .http(let url, let status):
            return "\(url): the server answered with HTTP status \(status)"
        case .transfer(let url, let code, let message):
            return "\(url): \(message) (curl error \(code))"
        case .file(let path, let operation, let errno):
            return "\(operation) \(path): \(String(cString: strerror(errno)))"
        case .tooLarge(let url, let limit):
            return "\(url): the response is larger than \(limit) bytes"
        case .setup(let function, let code, let message):
            return "\(function) failed: \(message) (curl error \(code))"
        }
    }

    /// libcurl's error code for transfer failures (7: could not connect, 28: timeout, ...).
    package var curlCode: Int? {
        if case .transfer(_, let code, _) = self { return code }
        return nil
    }
}

/// How a download behaves.
package struct DownloadOptions: Sendable {
    /// Continue a partial file with a Range request instead of starting over.
    package var resume = true
    /// Retries after a transfer broke off (connection dropped, timeout), each resuming.
    package var retries = 2
    package var retryDelay: Duration = .milliseconds(500)
    package var followRedirects = true
    package var maxRedirects = 10
    /// Time allowed to connect; nil for libcurl's default (300 s).
    package var connectTimeout: Duration? = .seconds(30)
    /// Time allowed for the whole transfer; nil for no limit.
    package var timeout: Duration?
    /// A transfer slower than `bytesPerSecond` for `seconds` is given up as stalled.
    package var stallLimit: (bytesPerSecond: Int, seconds: Int)? = (1, 60)
    package var userAgent = "rastOS"
    /// Extra request headers, each "Name: value" (e.g. "Accept: ...", "Authorization: Bearer ...").
    /// libcurl does not send them on to another host after a redirect.
    package var headers: [String] = []

    package init() {}
}

/// How far a download is.
package struct DownloadProgress: Sendable, Equatable {
    /// Bytes in the file so far (including what a resumed download started from).
    package let bytes: UInt64
    /// The full size, once the server has said it.
    package let total: UInt64?
}

/// What a finished download did.
package struct DownloadResult: Sendable, Equatable {
    /// The URL after redirects.
    package let effectiveURL: String
    /// The final HTTP status (0 for file:// URLs).
    package let status: Int
    /// The size of the complete file.
    package let bytes: UInt64
    /// The offset the last request resumed from (0 when it started from the beginning).
    package let resumedFrom: UInt64
    /// How many requests it took (1 plus the retries used).
    package let attempts: Int
}

/// One libcurl easy handle. Reusing it for several transfers keeps connections open.
/// Not for use from several threads at once.
package final class CurlTransfer {
    private let easy: EasyHandle

    package init() throws {
        easy = try EasyHandle()
    }

    /// Downloads `url` to `path`. With `options.resume`, an existing file is taken as the
    /// beginning of the download and continued. `progress` may throw to cancel.
    @discardableResult
    package func download(_ url: String, to path: String, options: DownloadOptions = DownloadOptions(),
                         progress: ((DownloadProgress) throws -> Void)? = nil) throws -> DownloadResult {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try downloadOnce(url, to: path, options: options, progress: progress, attempt: attempt)
            } catch let error as CurlError where attempt <= options.retries && error.isRetryable {
                var delay = timespec(tv_sec: Int(options.retryDelay.components.seconds),
                                     tv_nsec: Int(options.retryDelay.components.attoseconds / 1_000_000_000))
                nanosleep(&delay, nil)
            }
        }
    }

    /// Fetches `url` into memory (for indexes and small files), refusing more than `limit` bytes.
    package func get(_ url: String, limit: Int = 64 << 20, options: DownloadOptions = DownloadOptions()) throws -> [UInt8] {
        let state = TransferState(handle: easy.raw, sink: .memory(limit: limit), resumeFrom: 0, progress: nil)
        _ = try perform(url, state: state, options: options, resumeFrom: 0)
        return state.memory
    }

    private func downloadOnce(_ url: String, to path: String, options: DownloadOptions,
                              progress: ((DownloadProgress) throws -> Void)?, attempt: Int) throws -> DownloadResult {
        var info = stat()
        let existed = stat(path, &info) == 0
        let existing = options.resume && existed && (info.st_mode & S_IFMT) == S_IFREG ? UInt64(info.st_size) : 0
        do {
            do {
                return try downloadToFile(url, to: path, resumeFrom: existing, options: options, progress: progress, attempt: attempt)
            } catch is CannotResume {
                // The server cannot continue this file (no byte ranges, or the partial file
                // is longer than the resource): start over.
                return try downloadToFile(url, to: path, resumeFrom: 0, options: options, progress: progress, attempt: attempt)
            }
        } catch {
            // Leave no empty file behind that was not there before (a 404, a refused connection).
            if !existed, stat(path, &info) == 0, info.st_size == 0 { unlink(path) }
            throw error
        }
    }

    private func downloadToFile(_ url: String, to path: String, resumeFrom: UInt64, options: DownloadOptions,
                                progress: ((DownloadProgress) throws -> Void)?, attempt: Int) throws -> DownloadResult {
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (resumeFrom > 0 ? O_APPEND : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw CurlError.file(path: path, operation: "open", errno: errno) }
        defer { close(fd) }

        let state = TransferState(handle: easy.raw, sink: .file(fd: fd, path: path), resumeFrom: resumeFrom, progress: progress)
        let status = try perform(url, state: state, options: options, resumeFrom: resumeFrom)
        guard fsync(fd) == 0 else { throw CurlError.file(path: path, operation: "fsync", errno: errno) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CurlError.file(path: path, operation: "stat", errno: errno) }
        let size = UInt64(info.st_size)
        if let progress, state.lastReported != size {
            try progress(DownloadProgress(bytes: size, total: size))
        }
        return DownloadResult(effectiveURL: easy.string(CURLINFO_EFFECTIVE_URL) ?? url, status: status, bytes: size,
                              resumedFrom: resumeFrom, attempts: attempt)
    }

    /// Sets up and runs one transfer; returns the final HTTP status.
    private func perform(_ url: String, state: TransferState, options: DownloadOptions, resumeFrom: UInt64) throws -> Int {
        let context = Unmanaged.passUnretained(state).toOpaque()
        try easy.reset(url: url, protocols: "http,https,file")
        try easy.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        try easy.set(CURLOPT_FOLLOWLOCATION, options.followRedirects ? 1 : 0)
        try easy.set(CURLOPT_MAXREDIRS, options.maxRedirects)
        try easy.set(CURLOPT_USERAGENT, options.userAgent)
        if let timeout = options.connectTimeout { try easy.set(CURLOPT_CONNECTTIMEOUT_MS, timeout.milliseconds) }
        if let timeout = options.timeout { try easy.set(CURLOPT_TIMEOUT_MS, timeout.milliseconds) }
        if let stall = options.stallLimit {
            try easy.set(CURLOPT_LOW_SPEED_LIMIT, stall.bytesPerSecond)
            try easy.set(CURLOPT_LOW_SPEED_TIME, stall.seconds)
        }
        if resumeFrom > 0 { try easy.set(CURLOPT_RESUME_FROM_LARGE, offset: resumeFrom) }
        try easy.receive(into: state)
        try easy.set(CURLOPT_NOPROGRESS, state.progress == nil ? 1 : 0)
        if state.progress != nil {
            try easy.check("curl_easy_setopt(CURLOPT_XFERINFOFUNCTION)", rast_curl_set_xferinfo_callback(easy.raw, curlProgressCallback))
            try easy.set(CURLOPT_XFERINFODATA, context)
        }

        let code = try withExtendedLifetime(state) {
            try easy.withHeaders(options.headers) { curl_easy_perform(easy.raw) }
        }
        let status = easy.long(CURLINFO_RESPONSE_CODE)
        if let error = state.callbackError { throw error }
        switch code {
        case CURLE_OK:
            break
        case CURLE_RANGE_ERROR where resumeFrom > 0, CURLE_BAD_DOWNLOAD_RESUME where resumeFrom > 0:
            throw CannotResume()
        default:
            throw easy.transferError(url, code)
        }
        let scheme = url.prefix { $0 != ":" }.lowercased()
        guard scheme == "http" || scheme == "https" else { return status }
        // libcurl lets a 416 answer to a resumed request through: the file may be complete.
        if status == 416, resumeFrom > 0 {
            guard state.contentRangeTotal == resumeFrom else { throw CannotResume() }
            return status
        }
        guard (200..<300).contains(status) else { throw CurlError.http(url: url, status: status) }
        return status
    }
}

/// One-call downloads on a fresh handle.
package enum Curl {
    /// Downloads `url` to `path`, resuming a partial file; see `CurlTransfer.download`.
    @discardableResult
    package static func download(_ url: String, to path: String, options: DownloadOptions = DownloadOptions(),
                                progress: ((DownloadProgress) throws -> Void)? = nil) throws -> DownloadResult {
        try CurlTransfer().download(url, to: path, options: options, progress: progress)
    }

    /// Fetches `url` into memory; see `CurlTransfer.get`.
    package static func get(_ url: String, limit: Int = 64 << 20, options: DownloadOptions = DownloadOptions()) throws -> [UInt8] {
        try CurlTransfer().get(url, limit: limit, options: options)
    }

    /// The libcurl version string ("7.88.1").
    package static var version: String { String(cString: rast_curl_version()) }
}

// MARK: - Callbacks and their shared state

extension CurlError {
    /// Failures after which a resumed attempt may succeed.
    var isRetryable: Bool {
        guard case .transfer(_, let code, _) = self else { return false }
        let retryable: [CURLcode] = [CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                                     CURLE_OPERATION_TIMEDOUT, CURLE_GOT_NOTHING, CURLE_HTTP2_STREAM]
        return retryable.contains { Int($0.rawValue) == code }
    }
}

/// The server cannot continue the partial file; the download starts over.
private struct CannotResume: Error {}

extension Duration {
    fileprivate var milliseconds: Int {
        Int(components.seconds) * 1000 + Int(components.attoseconds / 1_000_000_000_000_000)
    }
}

/// What the callbacks of one transfer share; reached through Unmanaged.
private final class TransferState: TransferReceiver {
    enum Sink {
        case file(fd: Int32, path: String)
        case memory(limit: Int)
    }

    let handle: UnsafeMutableRawPointer
    let sink: Sink
    let resumeFrom: UInt64
    let progress: ((DownloadProgress) throws -> Void)?
    var memory: [UInt8] = []
    var callbackError: Error?
    var checkedStatus = false
    var discardBody = false
    var contentRangeTotal: UInt64?
    var lastReported: UInt64?

    init(handle: UnsafeMutableRawPointer, sink: Sink, resumeFrom: UInt64, progress: ((DownloadProgress) throws -> Void)?) {
        self.handle = handle
        self.sink = sink
        self.resumeFrom = resumeFrom
        self.progress = progress
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if !checkedStatus {
            // The body of a response that is no success (an error page, a redirect not
            // followed) is no content of the file; the status becomes the error.
            checkedStatus = true
            var status = 0
            _ = rast_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
            discardBody = status >= 300
        }
        if discardBody { return }
        switch sink {
        case .file(let fd, let path):
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw CurlError.file(path: path, operation: "write", errno: errno)
                }
                offset += written
            }
        case .memory(let limit):
            guard memory.count + bytes.count <= limit else {
                var url: UnsafeMutablePointer<CChar>?
                _ = rast_curl_get_string(handle, CURLINFO_EFFECTIVE_URL, &url)
                throw CurlError.tooLarge(url: url.map { String(cString: $0) } ?? "", limit: limit)
            }
            memory.append(contentsOf: bytes)
        }
    }

    func header(_ line: String) {
        let lower = line.lowercased()
        if lower.hasPrefix("http/") {
            // A new response (after a redirect or a 100 Continue): forget the previous one.
            contentRangeTotal = nil
            checkedStatus = false
            discardBody = false
        } else if lower.hasPrefix("content-range:"), let slash = line.lastIndex(of: "/") {
            // "Content-Range: bytes 0-99/1000" or "bytes */1000": the total after the slash.
            contentRangeTotal = UInt64(String(line[line.index(after: slash)...].filter { $0.isASCII && $0.isNumber }))
        }
    }

    func report(now: curl_off_t, total: curl_off_t) throws {
        guard let progress else { return }
        let bytes = resumeFrom + UInt64(max(0, now))
        guard bytes != lastReported else { return }
        lastReported = bytes
        try progress(DownloadProgress(bytes: bytes, total: total > 0 ? resumeFrom + UInt64(total) : nil))
    }
}

private func curlProgressCallback(_ context: UnsafeMutableRawPointer?, _ downloadTotal: curl_off_t, _ downloadNow: curl_off_t,
                                  _ uploadTotal: curl_off_t, _ uploadNow: curl_off_t) -> Int32 {
    guard let context else { return 0 }
    let state = Unmanaged<TransferState>.fromOpaque(context).takeUnretainedValue()
    do {
        try state.report(now: downloadNow, total: downloadTotal)
        return 0
    } catch {
        state.callbackError = error
        return 1  // non-zero aborts the transfer with CURLE_ABORTED_BY_CALLBACK
    }
}
