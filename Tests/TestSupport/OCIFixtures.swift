import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Builds OCI image layouts with umoci from layer trees the test describes: each layer is a
/// directory staged on disk (whiteout and opaque markers are plain empty files named
/// `.wh.NAME` and `.wh..wh..opq`), archived with tar and added verbatim.
package final class OCILayoutBuilder {
    package let layout: String
    private let scratch: String
    private var counter = 0

    /// A new empty layout at `layout` (umoci init).
    package init(layout: String, scratch: String) throws {
        try Require.programs("umoci", "tar")
        self.layout = layout
        self.scratch = scratch
        try Files.createDirectory(scratch)
        try Command("umoci", ["init", "--layout", layout]).run()
    }

    /// One entry of a layer.
    package enum Entry {
        case file(String, String, mode: mode_t = 0o644)
        case directory(String)
        case symlink(String, target: String)
        /// A file copied from the host (e.g. /bin/busybox).
        case copy(String, from: String, mode: mode_t = 0o755)
    }

    /// Tags `tag` as a new image from `base` (or an empty one) plus the layers, each a list of
    /// entries; sets the configuration's command and environment.
    package func image(_ tag: String, base: String? = nil, layers: [[Entry]], cmd: [String]? = nil,
                      env: [String] = [], architecture: String? = nil) throws {
        if let base {
            try Command("umoci", ["tag", "--image", "\(layout):\(base)", tag]).run()
        } else {
            try Command("umoci", ["new", "--image", "\(layout):\(tag)"]).run()
        }
        for entries in layers {
            counter += 1
            let tree = "\(scratch)/layer-\(counter)"
            try Files.createDirectory(tree)
            for entry in entries {
                switch entry {
                case .file(let path, let content, let mode):
                    try Files.write(tree + "/" + path, string: content, mode: mode)
                case .directory(let path):
                    try Files.createDirectory(tree + "/" + path)
                case .symlink(let path, let target):
                    try Files.createDirectory(((tree + "/" + path) as NSString).deletingLastPathComponent)
                    guard symlink(target, tree + "/" + path) == 0 else { throw SystemError("symlink", path: path) }
                case .copy(let path, let source, let mode):
                    try Files.createDirectory(((tree + "/" + path) as NSString).deletingLastPathComponent)
                    try Command("cp", [source, tree + "/" + path]).run()
                    chmod(tree + "/" + path, mode)
                }
            }
            let archive = "\(scratch)/layer-\(counter).tar"
            // Reproducible archives (fixed times, sorted names): the same entries in two images
            // must give the same layer digest, even when the clock ticks between the two trees.
            try Command("tar", ["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--sort=name",
                                "-C", tree, "-cf", archive, "."]).run()
            try Command("umoci", ["raw", "add-layer", "--no-history", "--image", "\(layout):\(tag)", archive]).run()
        }
        var config = ["config", "--image", "\(layout):\(tag)", "--no-history"]
        for part in cmd ?? [] { config += ["--config.cmd", part] }
        for variable in env { config += ["--config.env", variable] }
        if let architecture { config += ["--architecture", architecture] }
        if config.count > 4 { try Command("umoci", config).run() }
    }

    /// The descriptor of a tag in index.json, as JSON.
    package func descriptor(_ tag: String) throws -> [String: Any] {
        let index = try JSONSerialization.jsonObject(with: Data(try Files.read(layout + "/index.json"))) as? [String: Any]
        let manifests = index?["manifests"] as? [[String: Any]] ?? []
        guard let found = manifests.first(where: { ($0["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == tag }) else {
            throw UserError("no tag \(tag) in \(layout)")
        }
        return found
    }

    /// Adds an image index (manifest list) tagged `tag` that points at other tags, each
    /// with its platform (os, architecture).
    package func index(_ tag: String, of entries: [(tag: String, os: String, architecture: String)]) throws -> String {
        var manifests: [[String: Any]] = []
        for entry in entries {
            var descriptor = try self.descriptor(entry.tag)
            descriptor["annotations"] = nil
            descriptor["platform"] = ["os": entry.os, "architecture": entry.architecture]
            manifests.append(descriptor)
        }
        let document: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests]
        let bytes = Array(try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]))
        let digest = SHA256.hash(bytes)
        try Files.writeAtomically(layout + "/blobs/sha256/" + digest, bytes: bytes)
        let indexPath = layout + "/index.json"
        var index = try JSONSerialization.jsonObject(with: Data(try Files.read(indexPath))) as? [String: Any] ?? [:]
        var top = index["manifests"] as? [[String: Any]] ?? []
        top.append(["mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest, "size": bytes.count,
                    "annotations": ["org.opencontainers.image.ref.name": tag]])
        index["manifests"] = top
        try Files.writeAtomically(indexPath, bytes: Array(try JSONSerialization.data(withJSONObject: index)))
        return "sha256:" + digest
    }

    /// The busybox userland (Debian's static busybox and a link per applet) as layer entries.
    package static func busyboxEntries() throws -> [Entry] {
        try Require.programs("busybox")
        let busybox = Command.find("busybox") ?? "/bin/busybox"
        let applets = try Command(busybox, ["--list"]).output().split(separator: "\n").map(String.init)
        var entries: [Entry] = [.copy("bin/busybox", from: busybox)]
        for applet in applets where applet != "busybox" && !applet.isEmpty {
            entries.append(.symlink("bin/" + applet, target: "busybox"))
        }
        for directory in ["proc", "sys", "dev", "tmp", "etc", "root", "var", "run"] { entries.append(.directory(directory)) }
        entries.append(.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"))
        entries.append(.file("etc/group", "root:x:0:\nnogroup:x:65534:\n"))
        return entries
    }
}

/// A real registry (Debian's docker-registry, the distribution registry 2.8) on 127.0.0.1
/// with token authentication: it refuses anonymous requests with a Bearer challenge whose
/// realm is a token service in this process, which signs JWTs with a key the test made
/// (openssl) and whose certificate the registry trusts. `refuse` names repositories the
/// token service grants only to the user `tester` with password `secret` (HTTP Basic on the
/// token request); everything else it grants to anyone.
package final class TestRegistry: @unchecked Sendable {
    package let directory: String
    package let port: UInt16
    package let storage: String
    package var host: String { "127.0.0.1:\(port)" }
    private let process: Process
    private let lifeline = Pipe()
    private let tokenListener: LoopbackListener
    private final class RequestLog: Sendable {
        let entries = Mutex<[String]>([])
    }
    private let tokenRequests = RequestLog()
    package static let service = "rast-test-registry"
    package static let issuer = "rast-test-issuer"

    package init(directory: String, refuse: Set<String> = []) throws {
        try Require.programs("docker-registry", "openssl")
        self.directory = directory
        storage = directory + "/storage"
        try Files.createDirectory(storage)
        let key = directory + "/token.key"
        let certificate = directory + "/token.pem"
        try Command("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                                "-days", "2", "-subj", "/CN=rast-test-token"]).run()
        let x5c = try Command("sh", ["-c", "openssl x509 -in \"$1\" -outform DER | openssl base64 -A", "sh", certificate]).output()
        let requests = tokenRequests
        tokenListener = try LoopbackListener { connection in
            guard let head = connection.readHead() else { return }
            let target = head.split(separator: " ").dropFirst().first.map(String.init) ?? ""
            requests.entries.withLock { $0.append(target) }
            let scopes = URLComponents(string: target)?.queryItems?.filter { $0.name == "scope" }.compactMap(\.value) ?? []
            var access: [[String: Any]] = []
            for scope in scopes {
                let parts = scope.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                guard parts.count >= 3 else { continue }
                let name = parts[1..<(parts.count - 1)].joined(separator: ":")
                let authorized = head.lowercased().contains("authorization: basic " + Data("tester:secret".utf8).base64EncodedString().lowercased())
                if refuse.contains(name), !authorized {
                    let body = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no access to \(name)\"}]}"
                    connection.send("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
                    return
                }
                access.append(["type": parts[0], "name": name, "actions": parts[parts.count - 1].split(separator: ",").map(String.init)])
            }
            let token = (try? TestRegistry.signedToken(access: access, key: key, x5c: x5c)) ?? ""
            let body = "{\"token\":\"\(token)\",\"expires_in\":600}"
            connection.send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        }
        port = try LoopbackListener.closedPort()
        let config = """
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: \(storage)
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
            auth:
              token:
                realm: http://127.0.0.1:\(tokenListener.port)/token
                service: \(Self.service)
                issuer: \(Self.issuer)
                rootcertbundle: \(certificate)
            """
        try Files.write(directory + "/config.yml", string: config)
        // The registry runs under a shell that stops it when its standard input ends: when
        // `stop()` closes the pipe, and also when the test process dies without stopping it.
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "\"$1\" serve \"$2\" & child=$!; cat > /dev/null; kill $child; wait $child",
                             "sh", Command.find("docker-registry") ?? "/usr/bin/docker-registry", directory + "/config.yml"]
        process.standardInput = lifeline
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = directory + "/registry.log"
        try Files.write(log, string: "")
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        // Ready when /v2/ answers (401: it wants a token).
        for _ in 0..<100 {
            let probe = try Command("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(host)/v2/"]).run(check: false)
            if probe.standardOutput == "401" { return }
            usleep(100_000)
        }
        stop()
        throw UserError("docker-registry did not answer on \(host) within 10 s: \((try? Files.readString(log)) ?? "")")
    }

    /// The paths the token service was asked for ("/token?scope=...&service=...").
    package var tokenRequestLog: [String] { tokenRequests.entries.withLock { $0 } }

    /// Copies an image with skopeo (from `oci:LAYOUT:TAG`) into the registry; `format`
    /// "oci" keeps OCI media types, "v2s2" converts to Docker's; `all` copies every image of an index.
    package func push(_ source: String, to repository: String, format: String = "oci", all: Bool = false) throws {
        var arguments = ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", "tester:secret", "--format", format]
        if all { arguments.append("--all") }
        arguments += [source, "docker://\(host)/\(repository)"]
        try Command("skopeo", arguments).run()
    }

    /// The registry's own file of a blob (filesystem storage driver).
    package func blobFile(_ digest: String) -> String {
        let hex = String(digest.dropFirst("sha256:".count))
        return "\(storage)/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }

    package func stop() {
        if process.isRunning {
            try? lifeline.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        tokenListener.stop()
    }

    deinit { stop() }

    static func signedToken(access: [[String: Any]], key: String, x5c: String) throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        let header: [String: Any] = ["alg": "RS256", "typ": "JWT", "x5c": [x5c]]
        let claims: [String: Any] = ["iss": issuer, "sub": "", "aud": service, "exp": now + 600, "nbf": now - 60, "iat": now - 60,
                                     "jti": UUID().uuidString, "access": access]
        let signingInput = base64URL(try JSONSerialization.data(withJSONObject: header)) + "." + base64URL(try JSONSerialization.data(withJSONObject: claims))
        let signature = try Command("sh", ["-c", "openssl dgst -sha256 -sign \"$1\" | openssl base64 -A", "sh", key],
                                    input: .bytes(Array(signingInput.utf8))).output()
        return signingInput + "." + base64URL(signature)
    }

    static func base64URL(_ data: Data) -> String { base64URL(data.base64EncodedString()) }

    static func base64URL(_ base64: String) -> String {
        base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
