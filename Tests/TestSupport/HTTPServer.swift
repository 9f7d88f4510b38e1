import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 file server on 127.0.0.1 for tests: GET and HEAD, byte ranges
/// (`Range: bytes=N-` and `N-M`), 404s, and scripted misbehaviour (drop the connection
/// after some bytes, answer with an error status) to exercise download code for real.
public final class HTTPServer: Sendable {
    public enum Behavior: Sendable {
        /// Send only this many body bytes of the next response for the path, then close.
        case dropAfter(bytes: Int)
        /// Answer every request for the path with this status.
        case status(Int)
    }

    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let range: String?
    }

    public let root: String
    public let port: UInt16
    private let listener: Int32
    private struct State {
        var requests: [Request] = []
        var behaviors: [String: Behavior] = [:]
        var stopped = false
    }
    private let state = Mutex(State())

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public init(root: String) throws {
        self.root = root
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw SystemError("bind 127.0.0.1")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    public func setBehavior(_ behavior: Behavior?, for path: String) {
        state.withLock { $0.behaviors[path] = behavior }
    }

    public var requests: [Request] { state.withLock { $0.requests } }

    public func stop() {
        let wasStopped = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return state.stopped
        }
        if !wasStopped {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
    }

    deinit { stop() }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let thread = Thread { [self] in
                handle(client)
                close(client)
            }
            thread.start()
        }
    }

    private func handle(_ client: Int32) {
        var pending: [UInt8] = []
        while true {
            guard let head = readHead(client, buffer: &pending) else { return }
            let lines = head.components(separatedBy: "\r\n")
            let parts = lines[0].split(separator: " ")
            guard parts.count >= 2 else { return }
            let method = String(parts[0])
            let path = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            var range: String?
            var keepAlive = true
            for line in lines.dropFirst() {
                let lower = line.lowercased()
                if lower.hasPrefix("range:") { range = String(line.dropFirst(6)).trimmingCharacters(in: .whitespaces) }
                if lower.hasPrefix("connection:"), lower.contains("close") { keepAlive = false }
            }
            let behavior = state.withLock { state -> Behavior? in
                state.requests.append(Request(method: method, path: path, range: range))
                let behavior = state.behaviors[path]
                if case .dropAfter = behavior { state.behaviors[path] = nil }
                return behavior
            }
            if !respond(client, method: method, path: path, range: range, behavior: behavior) || !keepAlive { return }
        }
    }

    private func readHead(_ client: Int32, buffer: inout [UInt8]) -> String? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = buffer.firstRange(of: terminator) {
                let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<end.upperBound)
                return head
            }
            let count = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<count])
            if buffer.count > 65536 { return nil }
        }
    }

    /// Returns whether the connection may be kept open.
    private func respond(_ client: Int32, method: String, path: String, range: String?, behavior: Behavior?) -> Bool {
        if case .status(let code) = behavior {
            send(client, header: "HTTP/1.1 \(code) Scripted\r\nContent-Length: 0\r\n\r\n")
            return true
        }
        let filePath = root + (path.split(separator: "?").first.map(String.init) ?? path)
        guard !path.contains(".."), let data = FileManager.default.contents(atPath: filePath), !Files.isDirectory(filePath) else {
            let body = "not found: \(path)\n"
            send(client, header: "HTTP/1.1 404 Not Found\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: text/plain\r\n\r\n")
            if method != "HEAD" { send(client, bytes: Array(body.utf8)) }
            return true
        }
        var start = 0
        var end = data.count - 1
        var status = "200 OK"
        var extra = ""
        if let range, range.hasPrefix("bytes=") {
            let spec = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
            if let first = spec.first, let from = Int(first) {
                start = from
                if spec.count > 1, let to = Int(spec[1]) { end = min(to, data.count - 1) }
                if start >= data.count {
                    send(client, header: "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\(data.count)\r\nContent-Length: 0\r\n\r\n")
                    return true
                }
                status = "206 Partial Content"
                extra = "Content-Range: bytes \(start)-\(end)/\(data.count)\r\n"
            }
        }
        let length = max(0, end - start + 1)
        send(client, header: "HTTP/1.1 \(status)\r\nContent-Length: \(length)\r\nAccept-Ranges: bytes\r\n\(extra)Content-Type: application/octet-stream\r\n\r\n")
        if method == "HEAD" { return true }
        var body = [UInt8](data[start..<(start + length)])
        if case .dropAfter(let bytes) = behavior {
            body = Array(body.prefix(bytes))
            send(client, bytes: body)
            return false
        }
        send(client, bytes: body)
        return true
    }

    private func send(_ client: Int32, header: String) {
        send(client, bytes: Array(header.utf8))
    }

    private func send(_ client: Int32, bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
