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
package final class GitHTTPServer: Sendable {
    package struct Request: Sendable {
        package let method: String
        package let path: String
        package let query: String
    }

    package let projectRoot: String
    private let git: String
    private let requestLog = Mutex<[Request]>([])
    private let listener: LoopbackListener

    package var port: UInt16 { listener.port }
    package var baseURL: String { "http://127.0.0.1:\(port)" }

    package init(projectRoot: String) throws {
        try Require.programs("git")
        guard let git = Command.find("git") else { throw CommandError.notFound(program: "git") }
        self.git = git
        self.projectRoot = projectRoot
        let (listener, attach) = try LoopbackListener.forServer { (server: GitHTTPServer, connection) in server.handle(connection) }
        self.listener = listener
        attach(self)
    }

    /// The URL of repository `name` (a directory below the project root).
    package func url(_ name: String) -> String { baseURL + "/" + name }

    package var requests: [Request] { requestLog.withLock { $0 } }

    package func stop() {
        listener.stop()
    }

    /// One request per connection (the response says Connection: close).
    private func handle(_ client: LoopbackListener.Connection) {
        guard let head = client.readHead() else { return }
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
        requestLog.withLock { $0.append(Request(method: method, path: path, query: query)) }

        let body: [UInt8]
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            guard let decoded = client.readChunked() else { return }
            body = decoded
        } else if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard let read = client.readExactly(length) else { return }
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
            client.send("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        }
        client.send(cgiResponse(output))
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
}
