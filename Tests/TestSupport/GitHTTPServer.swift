import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Serves the git repositories below `projectRoot` over git's smart HTTP protocol on
/// 127.0.0.1, by running `git http-backend` as a CGI program for each request (the way a
/// web server fronts git). libgit2 does not speak git's "dumb" HTTP protocol, so static
/// file serving (HTTPServer after `git update-server-info`) is not enough for it.
public final class GitHTTPServer: Sendable {
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let query: String
    }

    public let projectRoot: String
    public let port: UInt16
    private let listener: Int32
    private let git: String
    private struct State {
        var requests: [Request] = []
        var stopped = false
    }
    private let state = Mutex(State())

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public init(projectRoot: String) throws {
        try Require.programs("git")
        guard let git = Command.find("git") else { throw CommandError.notFound(program: "git") }
        self.git = git
        self.projectRoot = projectRoot
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
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

    /// The URL of repository `name` (a directory below the project root).
    public func url(_ name: String) -> String { baseURL + "/" + name }

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

    /// One request per connection (the response says Connection: close).
    private func handle(_ client: Int32) {
        var buffer: [UInt8] = []
        guard let head = readHead(client, buffer: &buffer) else { return }
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let method = String(parts[0])
        let target = String(parts[1])
        let path = String(target.prefix { $0 != "?" })
        let query = target.contains("?") ? String(target.drop { $0 != "?" }.dropFirst()) : ""
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        state.withLock { $0.requests.append(Request(method: method, path: path, query: query)) }

        let body: [UInt8]
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            guard let decoded = readChunked(client, buffer: &buffer) else { return }
            body = decoded
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard let read = readExactly(client, count: length, buffer: &buffer) else { return }
            body = read
        } else {
            body = []
        }

        var environment = [
            "GIT_PROJECT_ROOT": projectRoot, "GIT_HTTP_EXPORT_ALL": "1", "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": method, "PATH_INFO": path.removingPercentEncoding ?? path,
            "QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": String(body.count),
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1",
        ]
        if let type = headers["content-type"] { environment["CONTENT_TYPE"] = type }
        if let encoding = headers["content-encoding"] { environment["HTTP_CONTENT_ENCODING"] = encoding }
        if let protocolHeader = headers["git-protocol"] { environment["GIT_PROTOCOL"] = protocolHeader }

        guard let output = runBackend(environment: environment, input: body) else {
            send(client, Array("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
            return
        }
        send(client, cgiResponse(output))
    }

    private func runBackend(environment: [String: String], input: [UInt8]) -> [UInt8]? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: git)
        process.arguments = ["http-backend"]
        process.environment = environment
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        // Feed the request body while the response is read, so neither pipe can fill up.
        let writer = stdin.fileHandleForWriting
        let data = Data(input)
        let feeder = Thread {
            try? writer.write(contentsOf: data)
            try? writer.close()
        }
        feeder.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return [UInt8](output)
    }

    /// Turns CGI output (headers, a blank line, the body) into an HTTP/1.1 response.
    private func cgiResponse(_ output: [UInt8]) -> [UInt8] {
        let separator: [UInt8]
        let end: Range<Int>
        if let crlf = output.firstRange(of: [13, 10, 13, 10]) {
            separator = [13, 10]
            end = crlf
        } else if let lf = output.firstRange(of: [10, 10]) {
            separator = [10]
            end = lf
        } else {
            return Array("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
        }
        let headerText = String(decoding: output[..<end.lowerBound], as: UTF8.self)
        let body = output[end.upperBound...]
        var status = "200 OK"
        var headers: [String] = []
        let splitter = separator == [13, 10] ? "\r\n" : "\n"
        for line in headerText.components(separatedBy: splitter) where !line.isEmpty {
            if line.lowercased().hasPrefix("status:") {
                status = line.dropFirst(7).trimmingCharacters(in: .whitespaces)
            } else {
                headers.append(line)
            }
        }
        var response = "HTTP/1.1 \(status)\r\n"
        for header in headers { response += header + "\r\n" }
        response += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        return Array(response.utf8) + body
    }

    private func readHead(_ client: Int32, buffer: inout [UInt8]) -> String? {
        while true {
            if let end = buffer.firstRange(of: [13, 10, 13, 10]) {
                let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<end.upperBound)
                return head
            }
            guard receive(client, into: &buffer), buffer.count <= 65536 else { return nil }
        }
    }

    private func readExactly(_ client: Int32, count: Int, buffer: inout [UInt8]) -> [UInt8]? {
        while buffer.count < count {
            guard receive(client, into: &buffer) else { return nil }
        }
        let result = Array(buffer.prefix(count))
        buffer.removeFirst(count)
        return result
    }

    private func readLine(_ client: Int32, buffer: inout [UInt8]) -> String? {
        while true {
            if let end = buffer.firstRange(of: [13, 10]) {
                let line = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<end.upperBound)
                return line
            }
            guard receive(client, into: &buffer) else { return nil }
        }
    }

    private func readChunked(_ client: Int32, buffer: inout [UInt8]) -> [UInt8]? {
        var body: [UInt8] = []
        while true {
            guard let line = readLine(client, buffer: &buffer),
                  let size = Int(line.prefix { $0 != ";" }.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
            if size == 0 {
                _ = readLine(client, buffer: &buffer)  // the blank line after the last chunk
                return body
            }
            guard let chunk = readExactly(client, count: size + 2, buffer: &buffer) else { return nil }
            body.append(contentsOf: chunk.prefix(size))
        }
    }

    private func receive(_ client: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    private func send(_ client: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { Glibc.send(client, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
