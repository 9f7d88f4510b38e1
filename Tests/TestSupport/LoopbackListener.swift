import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 (a free port), with a thread per connection: the plumbing of
/// the test servers. `Connection` reads HTTP heads and bodies and writes responses.
package final class LoopbackListener: Sendable {
    package let port: UInt16
    private let socketDescriptor: Int32
    private let stopped = Mutex(false)

    /// A bound, listening socket on 127.0.0.1 and its port (for servers that misbehave on purpose).
    package static func listeningSocket() throws -> (fd: Int32, port: UInt16) {
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
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A port nothing listens on (bound, then closed again).
    package static func closedPort() throws -> UInt16 {
        let (fd, port) = try listeningSocket()
        close(fd)
        return port
    }

    /// Accepts connections and runs `handler` for each on a thread of its own.
    package init(handler: @escaping @Sendable (Connection) -> Void) throws {
        let (fd, port) = try Self.listeningSocket()
        socketDescriptor = fd
        self.port = port
        Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Thread {
                    handler(Connection(descriptor: client))
                    close(client)
                }.start()
            }
        }.start()
    }

    /// A listener for a server object that needs the listener (its port) in its own init:
    /// connections go to `handle` with the server once `attach` has named it (at the end of
    /// the server's init); until then they are closed unanswered.
    static func forServer<Server: AnyObject & Sendable>(
        _ handle: @escaping @Sendable (Server, Connection) -> Void
    ) throws -> (listener: LoopbackListener, attach: @Sendable (Server) -> Void) {
        let slot = ServerSlot<Server>()
        let listener = try LoopbackListener { connection in
            if let server = slot.server.withLock({ $0 }) { handle(server, connection) }
        }
        return (listener, { server in slot.server.withLock { $0 = server } })
    }

    package func stop() {
        let wasStopped = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return stopped
        }
        if !wasStopped {
            shutdown(socketDescriptor, Int32(SHUT_RDWR))
            close(socketDescriptor)
        }
    }

    deinit { stop() }

    /// One accepted connection and the bytes received but not consumed yet.
    package final class Connection {
        package let descriptor: Int32
        private var buffer: [UInt8] = []

        init(descriptor: Int32) { self.descriptor = descriptor }

        /// The request line and headers, up to the blank line; nil when the peer closed.
        package func readHead() -> String? {
            while true {
                if let end = buffer.firstRange(of: [13, 10, 13, 10]) {
                    let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                    buffer.removeSubrange(..<end.upperBound)
                    return head
                }
                guard receive(), buffer.count <= 65536 else { return nil }
            }
        }

        package func readExactly(_ count: Int) -> [UInt8]? {
            while buffer.count < count {
                guard receive() else { return nil }
            }
            let result = Array(buffer.prefix(count))
            buffer.removeFirst(count)
            return result
        }

        package func readLine() -> String? {
            while true {
                if let end = buffer.firstRange(of: [13, 10]) {
                    let line = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                    buffer.removeSubrange(..<end.upperBound)
                    return line
                }
                guard receive() else { return nil }
            }
        }

        /// A body in chunked transfer encoding.
        package func readChunked() -> [UInt8]? {
            var body: [UInt8] = []
            while true {
                guard let line = readLine(),
                      let size = Int(line.prefix { $0 != ";" }.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                if size == 0 {
                    _ = readLine()  // the blank line after the last chunk
                    return body
                }
                guard let chunk = readExactly(size + 2) else { return nil }
                body.append(contentsOf: chunk.prefix(size))
            }
        }

        private func receive() -> Bool {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }

        package func send(_ text: String) { send(Array(text.utf8)) }

        package func send(_ bytes: [UInt8]) {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return }
                offset += sent
            }
        }
    }
}

/// Where LoopbackListener.forServer's connections find their server.
private final class ServerSlot<Server: AnyObject & Sendable>: Sendable {
    let server = Mutex<Server?>(nil)
}
