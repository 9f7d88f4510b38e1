// HTTP requests with any method, headers and a body, over one reused libcurl easy handle
// (keep-alive): what an object store's REST API needs. A response with any status is
// returned (the caller reads the server's error document); only transport failures throw.
import CCurl
#if canImport(Glibc)
import Glibc
#endif

/// One HTTP request.
package struct HTTPRequest: Sendable {
    package var method: String
    package var url: String
    /// Sent as given, in order; libcurl adds Host and Content-Length.
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]
    /// Time allowed to connect.
    package var connectTimeout: Duration = .seconds(15)
    /// A transfer slower than `bytesPerSecond` for `seconds` is given up as stalled.
    package var stallLimit: (bytesPerSecond: Int, seconds: Int) = (1, 60)

    package init(method: String, url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

/// What the server answered.
package struct HTTPResponse: Sendable {
    package let status: Int
    /// Header names in lowercase, in the order received.
    package let headers: [(name: String, value: String)]
    /// The body, unless a sink consumed it.
    package let body: [UInt8]

    /// The first value of header `name` (case-insensitive).
    package func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name == lower }?.value
    }

    package var isSuccess: Bool { (200..<300).contains(status) }
}

/// A client with one libcurl easy handle, reused so that connections stay open.
/// Not for use from several threads at once.
package final class HTTPClient {
    private let easy: EasyHandle

    package init() throws {
        easy = try EasyHandle()
    }

    /// Sends `request`. The body of a successful (2xx) response goes to `sink` when one is
    /// given (streamed; what it throws ends the transfer), else into the response, up to
    /// `limit` bytes. Error bodies always come back in the response.
    package func send(_ request: HTTPRequest, limit: Int = 64 << 20,
                     sink: ((UnsafeRawBufferPointer) throws -> Void)? = nil) throws -> HTTPResponse {
        let state = RequestState(handle: easy.raw, body: request.body, limit: limit, sink: sink, url: request.url)
        let context = Unmanaged.passUnretained(state).toOpaque()
        try easy.reset(url: request.url, protocols: "http,https")
        try easy.set(CURLOPT_USERAGENT, "rastOS")
        try easy.set(CURLOPT_CONNECTTIMEOUT_MS, Int(request.connectTimeout.components.seconds) * 1000
                     + Int(request.connectTimeout.components.attoseconds / 1_000_000_000_000_000))
        try easy.set(CURLOPT_LOW_SPEED_LIMIT, request.stallLimit.bytesPerSecond)
        try easy.set(CURLOPT_LOW_SPEED_TIME, request.stallLimit.seconds)
        switch request.method {
        case "GET":
            break
        case "HEAD":
            try easy.set(CURLOPT_NOBODY, 1)
        default:
            if request.method != "DELETE" || !request.body.isEmpty {
                // A body (possibly empty) through the read callback: PUT, POST.
                try easy.set(CURLOPT_UPLOAD, 1)
                try easy.set(CURLOPT_INFILESIZE_LARGE, offset: UInt64(request.body.count))
                try easy.set(CURLOPT_READFUNCTION, callback: httpReadCallback)
                try easy.set(CURLOPT_READDATA, context)
            }
            if request.method != "PUT" { try easy.set(CURLOPT_CUSTOMREQUEST, request.method) }
        }
        try easy.receive(into: state)

        // libcurl would add "Expect: 100-continue" to large uploads and wait for the answer.
        let headers = request.headers.map { "\($0.name): \($0.value)" } + ["Expect:"]
        let code = try withExtendedLifetime(state) {
            try easy.withHeaders(headers) { curl_easy_perform(easy.raw) }
        }
        if let error = state.callbackError { throw error }
        guard code == CURLE_OK else { throw easy.transferError(request.url, code) }
        return HTTPResponse(status: easy.long(CURLINFO_RESPONSE_CODE), headers: state.headers, body: state.received)
    }
}

extension CurlError {
    /// Failures of the connection itself (refused, reset, timed out, cut short), after which
    /// the same request may succeed.
    package var isTransient: Bool {
        guard case .transfer(_, let code, _) = self else { return false }
        let transient: [CURLcode] = [CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_GOT_NOTHING, CURLE_SEND_ERROR,
                                     CURLE_RECV_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2_STREAM, CURLE_HTTP2,
                                     CURLE_COULDNT_RESOLVE_HOST, CURLE_SSL_CONNECT_ERROR]
        return transient.contains { Int($0.rawValue) == code }
    }
}

// MARK: - Callbacks

/// What the callbacks of one request share; reached through Unmanaged.
private final class RequestState: TransferReceiver {
    let handle: UnsafeMutableRawPointer
    let body: [UInt8]
    let limit: Int
    let sink: ((UnsafeRawBufferPointer) throws -> Void)?
    let url: String
    var sent = 0
    var received: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var status: Int?
    var callbackError: Error?

    init(handle: UnsafeMutableRawPointer, body: [UInt8], limit: Int, sink: ((UnsafeRawBufferPointer) throws -> Void)?, url: String) {
        self.handle = handle
        self.body = body
        self.limit = limit
        self.sink = sink
        self.url = url
    }

    func read(into buffer: UnsafeMutablePointer<CChar>, capacity: Int) -> Int {
        let count = min(capacity, body.count - sent)
        guard count > 0 else { return 0 }
        body.withUnsafeBytes { bytes in
            UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + sent, byteCount: count)
        }
        sent += count
        return count
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if status == nil {
            var code = 0
            _ = rast_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &code)
            status = code
        }
        if let sink, let status, (200..<300).contains(status) {
            try sink(bytes)
            return
        }
        guard received.count + bytes.count <= limit else { throw CurlError.tooLarge(url: url, limit: limit) }
        received.append(contentsOf: bytes)
    }

    func header(_ line: String) {
        if line.hasPrefix("HTTP/") {
            // A new response (after 100 Continue): forget the previous one's headers.
            headers.removeAll()
            status = nil
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: [" ", "\t", "\r", "\n", "\r\n"])
        headers.append((name, value))
    }
}

private func httpReadCallback(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let data else { return 0 }
    let state = Unmanaged<RequestState>.fromOpaque(context).takeUnretainedValue()
    return state.read(into: data, capacity: size * count)
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
