import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 file server on 127.0.0.1 for tests: GET and HEAD, byte ranges
/// (`Range: bytes=N-` and `N-M`), 404s, and scripted misbehaviour (drop the connection
/// after some bytes, answer with an error status) to exercise download code for real.
package final class HTTPServer: Sendable {
    package enum Behavior: Sendable {
        /// Send only this many body bytes of the next response for the path, then close.
        case dropAfter(bytes: Int)
        /// Answer every request for the path with this status.
        case status(Int)
    }

    package struct Request: Sendable {
        package let method: String
        package let path: String
        package let range: String?
    }

    package let root: String
    private struct State {
        var requests: [Request] = []
        var behaviors: [String: Behavior] = [:]
    }
    private let state = Mutex(State())
    private let listener: LoopbackListener

    package var port: UInt16 { listener.port }
    package var baseURL: String { "http://127.0.0.1:\(port)" }

    package init(root: String) throws {
        self.root = root
        let (listener, attach) = try LoopbackListener.forServer { (server: HTTPServer, connection) in server.handle(connection) }
        self.listener = listener
        attach(self)
    }

    package func setBehavior(_ behavior: Behavior?, for path: String) {
        state.withLock { $0.behaviors[path] = behavior }
    }

    package var requests: [Request] { state.withLock { $0.requests } }

    package func stop() {
        listener.stop()
    }

    private func handle(_ connection: LoopbackListener.Connection) {
        while true {
            guard let head = connection.readHead() else { return }
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
            if !respond(connection, method: method, path: path, range: range, behavior: behavior) || !keepAlive { return }
        }
    }

    /// Returns whether the connection may be kept open.
    private func respond(_ client: LoopbackListener.Connection, method: String, path: String, range: String?, behavior: Behavior?) -> Bool {
        if case .status(let code) = behavior {
            client.send("HTTP/1.1 \(code) Scripted\r\nContent-Length: 0\r\n\r\n")
            return true
        }
        let filePath = root + (path.split(separator: "?").first.map(String.init) ?? path)
        guard !path.contains(".."), let data = FileManager.default.contents(atPath: filePath), !Files.isDirectory(filePath) else {
            let body = "not found: \(path)\n"
            client.send("HTTP/1.1 404 Not Found\r\nContent-Length: \(body.utf8.count)\r\nContent-Type: text/plain\r\n\r\n")
            if method != "HEAD" { client.send(Array(body.utf8)) }
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
                    client.send("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */\(data.count)\r\nContent-Length: 0\r\n\r\n")
                    return true
                }
                status = "206 Partial Content"
                extra = "Content-Range: bytes \(start)-\(end)/\(data.count)\r\n"
            }
        }
        let length = max(0, end - start + 1)
        client.send("HTTP/1.1 \(status)\r\nContent-Length: \(length)\r\nAccept-Ranges: bytes\r\n\(extra)Content-Type: application/octet-stream\r\n\r\n")
        if method == "HEAD" { return true }
        var body = [UInt8](data[start..<(start + length)])
        if case .dropAfter(let bytes) = behavior {
            body = Array(body.prefix(bytes))
            client.send(body)
            return false
        }
        client.send(body)
        return true
    }
}
