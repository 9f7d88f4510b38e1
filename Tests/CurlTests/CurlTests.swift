@testable import Curl
import Foundation
import Synchronization
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Downloads from real servers on 127.0.0.1: TestSupport's HTTPServer (ranges, scripted
/// drops and statuses), small raw-socket servers for redirects and silence, and Python's
/// http.server as a server that ignores Range requests.
@Suite("Curl")
struct CurlTests {
    @Test func plainDownload() throws {
        let site = try Site()
        let payload = try site.file("pkg.tar.zst", size: 1 << 20)
        let target = site.scratch.appending("out")
        let result = try Curl.download(site.url("pkg.tar.zst"), to: target)
        #expect(try Files.read(target) == payload)
        #expect(result.status == 200)
        #expect(result.bytes == UInt64(payload.count))
        #expect(result.resumedFrom == 0)
        #expect(result.attempts == 1)
        #expect(result.effectiveURL == site.url("pkg.tar.zst"))
        #expect(site.server.requests.map(\.path) == ["/pkg.tar.zst"])
        #expect(site.server.requests.first?.range == nil)
    }

    @Test func resumesAfterTheServerDroppedTheConnection() throws {
        let site = try Site()
        let payload = try site.file("big.bin", size: 3 << 20)
        let target = site.scratch.appending("big.bin.part")
        site.server.setBehavior(.dropAfter(bytes: 1_000_000), for: "/big.bin")
        var options = DownloadOptions()
        options.retries = 0

        let error = try #require(throws: CurlError.self) {
            try Curl.download(site.url("big.bin"), to: target, options: options)
        }
        #expect(error.curlCode == 18)  // CURLE_PARTIAL_FILE
        #expect(error.description.hasPrefix(site.url("big.bin") + ": "))
        #expect(try Files.size(target) == 1_000_000)

        let result = try Curl.download(site.url("big.bin"), to: target, options: options)
        #expect(result.resumedFrom == 1_000_000)
        #expect(result.status == 206)
        #expect(try Files.read(target) == payload)
        let requests = site.server.requests
        #expect(requests.count == 2)
        #expect(requests.first?.range == nil)
        #expect(requests.last?.range == "bytes=1000000-")
    }

    @Test func retriesResumeOnTheirOwn() throws {
        let site = try Site()
        let payload = try site.file("big.bin", size: 2 << 20)
        let target = site.scratch.appending("big.bin")
        site.server.setBehavior(.dropAfter(bytes: 65536), for: "/big.bin")
        var options = DownloadOptions()
        options.retryDelay = .milliseconds(10)
        let result = try Curl.download(site.url("big.bin"), to: target, options: options)
        #expect(result.attempts == 2)
        #expect(result.resumedFrom == 65536)
        #expect(try Files.read(target) == payload)
        #expect(site.server.requests.map(\.range) == [nil, "bytes=65536-"])
    }

    @Test func completeFileIsNotFetchedAgain() throws {
        let site = try Site()
        let payload = try site.file("done.bin", size: 4096)
        let target = site.scratch.appending("done.bin")
        try Files.write(target, string: "")
        try Curl.download(site.url("done.bin"), to: target)
        let again = try Curl.download(site.url("done.bin"), to: target)
        #expect(again.status == 416)
        #expect(again.bytes == 4096)
        #expect(try Files.read(target) == payload)
        #expect(site.server.requests.last?.range == "bytes=4096-")
    }

    @Test func partialFileLongerThanTheResourceStartsOver() throws {
        let site = try Site()
        let payload = try site.file("small.bin", size: 1000)
        let target = site.scratch.appending("small.bin")
        try Files.write(target, string: String(repeating: "x", count: 5000))
        let result = try Curl.download(site.url("small.bin"), to: target)
        #expect(result.resumedFrom == 0)
        #expect(try Files.read(target) == payload)
        #expect(site.server.requests.map(\.range) == ["bytes=5000-", nil])
    }

    @Test func serverWithoutRangesStartsOver() throws {
        try Require.programs("python3")
        let scratch = try Scratch()
        let root = scratch.appending("root")
        try Files.createDirectory(root)
        let payload = randomBytes(300_000)
        try Files.writeAtomically(root + "/file.bin", bytes: payload)
        let server = try PythonHTTPServer(root: root)
        defer { server.stop() }
        let target = scratch.appending("file.bin")
        try Files.writeAtomically(target, bytes: Array(payload.prefix(1000)).map { $0 ^ 0xFF })

        let result = try Curl.download(server.url("file.bin"), to: target)
        #expect(result.resumedFrom == 0)
        #expect(result.status == 200)
        #expect(try Files.read(target) == payload)
    }

    @Test func notFoundNamesURLAndStatus() throws {
        let site = try Site()
        let target = site.scratch.appending("missing")
        let url = site.url("missing.pkg")
        let error = try #require(throws: CurlError.self) { try Curl.download(url, to: target) }
        #expect(error == .http(url: url, status: 404))
        #expect(error.description == "\(url): the server answered with HTTP status 404")
        #expect(!Files.exists(target), "no empty file is left behind")
    }

    @Test func serverErrorStatusIsAnError() throws {
        let site = try Site()
        _ = try site.file("flaky", size: 10)
        site.server.setBehavior(.status(503), for: "/flaky")
        let target = site.scratch.appending("flaky")
        try Files.write(target, string: "partial")
        let error = try #require(throws: CurlError.self) { try Curl.download(site.url("flaky"), to: target) }
        #expect(error == .http(url: site.url("flaky"), status: 503))
        #expect(try Files.readString(target) == "partial", "a partial file survives a failed attempt")
    }

    @Test func progressIsMonotoneAndReachesTheTotal() throws {
        let site = try Site()
        let payload = try site.file("image.raw", size: 8 << 20)
        let target = site.scratch.appending("image.raw")
        var reports: [DownloadProgress] = []
        try Curl.download(site.url("image.raw"), to: target) { reports.append($0) }
        #expect(reports.count >= 2)
        #expect(zip(reports, reports.dropFirst()).allSatisfy { $0.bytes < $1.bytes })
        #expect(reports.last == DownloadProgress(bytes: UInt64(payload.count), total: UInt64(payload.count)))
        #expect(reports.allSatisfy { $0.total == nil || $0.total == UInt64(payload.count) })
    }

    @Test func progressOfAResumedDownloadCountsThePartialFile() throws {
        let site = try Site()
        let payload = try site.file("image.raw", size: 1 << 20)
        let target = site.scratch.appending("image.raw")
        try Files.writeAtomically(target, bytes: Array(payload.prefix(500_000)))
        var reports: [DownloadProgress] = []
        try Curl.download(site.url("image.raw"), to: target) { reports.append($0) }
        #expect(reports.allSatisfy { $0.bytes >= 500_000 })
        #expect(reports.last?.bytes == UInt64(payload.count))
        #expect(try Files.read(target) == payload)
    }

    @Test func throwingFromProgressCancels() throws {
        let site = try Site()
        _ = try site.file("image.raw", size: 8 << 20)
        let target = site.scratch.appending("image.raw")
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try Curl.download(site.url("image.raw"), to: target) { progress in
                if progress.bytes > 0 { throw Stop() }
            }
        }
        #expect(try Files.size(target) < 8 << 20)
    }

    @Test func connectionRefused() throws {
        let port = try LoopbackListener.closedPort()
        let scratch = try Scratch()
        let url = "http://127.0.0.1:\(port)/file"
        let error = try #require(throws: CurlError.self) { try Curl.download(url, to: scratch.appending("file")) }
        #expect(error.curlCode == 7)  // CURLE_COULDNT_CONNECT
        #expect(error.description.hasPrefix("\(url): Failed to connect to 127.0.0.1 port \(port)"))
        #expect(error.description.contains("Connection refused"))
        #expect(!Files.exists(scratch.appending("file")))
    }

    @Test func silentServerTimesOut() throws {
        let silent = try SilentServer()
        let scratch = try Scratch()
        var options = DownloadOptions()
        options.timeout = .milliseconds(700)
        options.retries = 0
        let clock = ContinuousClock()
        let start = clock.now
        let error = try #require(throws: CurlError.self) {
            try Curl.download("http://127.0.0.1:\(silent.port)/x", to: scratch.appending("x"), options: options)
        }
        #expect(error.curlCode == 28)  // CURLE_OPERATION_TIMEDOUT
        #expect(error.description.contains("timed out"))
        #expect(clock.now - start < .seconds(5))
    }

    @Test func followsRedirects() throws {
        let site = try Site()
        let payload = try site.file("real.bin", size: 10_000)
        let redirect = try FixedResponseServer(response: "HTTP/1.1 302 Found\r\nLocation: \(site.url("real.bin"))\r\nContent-Length: 0\r\n\r\n")
        let target = site.scratch.appending("real.bin")
        let result = try Curl.download("http://127.0.0.1:\(redirect.port)/moved", to: target)
        #expect(result.effectiveURL == site.url("real.bin"))
        #expect(try Files.read(target) == payload)

        var options = DownloadOptions()
        options.followRedirects = false
        let other = site.scratch.appending("other")
        let error = try #require(throws: CurlError.self) {
            try Curl.download("http://127.0.0.1:\(redirect.port)/moved", to: other, options: options)
        }
        #expect(error == .http(url: "http://127.0.0.1:\(redirect.port)/moved", status: 302))
    }

    @Test func fileURLs() throws {
        let scratch = try Scratch()
        let source = scratch.appending("source.bin")
        let payload = randomBytes(200_000)
        try Files.writeAtomically(source, bytes: payload)
        let target = scratch.appending("copy.bin")
        let result = try Curl.download("file://" + source, to: target)
        #expect(try Files.read(target) == payload)
        #expect(result.status == 0)

        // Resumed from a partial copy.
        try Files.writeAtomically(target, bytes: Array(payload.prefix(123_456)))
        let resumed = try Curl.download("file://" + source, to: target)
        #expect(resumed.resumedFrom == 123_456)
        #expect(try Files.read(target) == payload)

        let missing = "file://" + scratch.appending("missing")
        let error = try #require(throws: CurlError.self) { try Curl.download(missing, to: scratch.appending("m")) }
        #expect(error.curlCode == 37)  // CURLE_FILE_COULDNT_READ_FILE
        #expect(error.description.hasPrefix(missing + ": "))
    }

    @Test func getIntoMemoryWithALimit() throws {
        let site = try Site()
        let payload = try site.file("core.db", size: 50_000)
        let transfer = try CurlTransfer()
        #expect(try transfer.get(site.url("core.db")) == payload)
        // The same handle again (connection reuse), now over the limit.
        #expect(throws: CurlError.tooLarge(url: site.url("core.db"), limit: 1000)) {
            try transfer.get(site.url("core.db"), limit: 1000)
        }
        #expect(throws: CurlError.http(url: site.url("nope"), status: 404)) { try transfer.get(site.url("nope")) }
    }

    @Test func unsupportedSchemeIsRefused() throws {
        let scratch = try Scratch()
        let error = try #require(throws: CurlError.self) {
            try Curl.download("gopher://127.0.0.1/x", to: scratch.appending("x"))
        }
        #expect(error.curlCode == 1)  // CURLE_UNSUPPORTED_PROTOCOL
    }
}

// MARK: - Servers and helpers

/// A scratch directory served by TestSupport's HTTPServer.
private final class Site {
    let scratch: Scratch
    let root: String
    let server: HTTPServer

    init() throws {
        scratch = try Scratch()
        root = scratch.appending("www")
        try Files.createDirectory(root)
        server = try HTTPServer(root: root)
    }

    deinit { server.stop() }

    func file(_ name: String, size: Int) throws -> [UInt8] {
        let bytes = randomBytes(size)
        try Files.writeAtomically(root + "/" + name, bytes: bytes)
        return bytes
    }

    func url(_ name: String) -> String { server.baseURL + "/" + name }
}

private func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        var offset = 0
        while offset < count {
            var word = generator.next()
            let chunk = min(8, count - offset)
            withUnsafeBytes(of: &word) { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: chunk) }
            offset += chunk
        }
    }
    return bytes
}

/// Accepts connections (the kernel completes them from the backlog) and never answers.
private final class SilentServer {
    let fd: Int32
    let port: UInt16
    init() throws { (fd, port) = try LoopbackListener.listeningSocket() }
    deinit { close(fd) }
}

/// Answers every request with the same raw HTTP response, then closes the connection.
private final class FixedResponseServer: Sendable {
    private let listener: LoopbackListener
    var port: UInt16 { listener.port }

    init(response: String) throws {
        listener = try LoopbackListener { connection in
            _ = connection.readHead()
            connection.send(response)
        }
    }

    deinit { listener.stop() }
}

/// `python3 -m http.server`, which answers Range requests with the whole file (200).
private final class PythonHTTPServer {
    let port: UInt16
    private let process: Process

    init(root: String) throws {
        port = try LoopbackListener.closedPort()
        process = Process()
        guard let python = Command.find("python3") else { throw CommandError.notFound(program: "python3") }
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", root]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until it accepts connections.
        for _ in 0..<100 {
            if (try? Curl.get("http://127.0.0.1:\(port)/")) != nil { return }
            usleep(50_000)
        }
        stop()
        throw SystemError("python3 -m http.server did not start on port \(port)", errno: ETIMEDOUT)
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }

    func stop() {
        if process.isRunning {
            // SIGKILL: the child inherits a signal mask that blocks SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}
