// A client for the OCI Distribution API (Docker Registry HTTP API v2), read-only: manifests
// by tag or digest, blobs by digest.
//
// Authentication follows the registry's challenge: a request answered with 401 and
// `WWW-Authenticate: Bearer realm=...,service=...,scope=...` is repeated with a token from
// the realm (anonymous, or with the credentials given); `Basic` challenges get the
// credentials directly. Tokens are kept per repository for the client's lifetime.
// Registries on loopback addresses are spoken to over plain HTTP, every other one over HTTPS.
import Curl
import Foundation
import SystemSupport

/// A user name and password for a registry (or its token service).
package struct RegistryCredentials: Sendable, Equatable {
    package var username: String
    package var password: String

    /// `USER:PASSWORD` as `--creds` takes it: the user name up to the first ":", the
    /// password after it (it may hold ":" itself; none without one).
    package init(parsing text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        username = parts[0]
        password = parts.count > 1 ? parts[1] : ""
    }

    var basicAuthorization: String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }
}

/// Fetches manifests and blobs from registries: documents and tokens through `HTTPClient`
/// (any status comes back, so a 401's challenge can be answered), blobs with
/// `CurlTransfer.download` (redirects to storage followed, partial files resumed).
package final class RegistryClient {
    private let client: HTTPClient
    private let transfer: CurlTransfer
    private let credentials: [String: RegistryCredentials]
    private let plainHTTPHosts: Set<String>
    /// "registry/repository" -> the Authorization header value that worked.
    private var authorizations: [String: String] = [:]

    /// `credentials` by registry host; `plainHTTP` names more hosts spoken to without TLS.
    package init(credentials: [String: RegistryCredentials] = [:], plainHTTP: Set<String> = []) throws {
        client = try HTTPClient()
        transfer = try CurlTransfer()
        self.credentials = credentials
        plainHTTPHosts = plainHTTP
    }

    /// The base URL of a registry's API.
    package func baseURL(_ registry: String) -> String {
        let host = registry.split(separator: ":").first.map(String.init) ?? registry
        let plain = plainHTTPHosts.contains(registry) || ["127.0.0.1", "localhost", "[::1]"].contains(host) || registry.hasPrefix("[::1]")
        return (plain ? "http://" : "https://") + (registry == ImageReference.dockerHub ? "registry-1.docker.io" : registry) + "/v2/"
    }

    /// Fetches the manifest or index `reference` names (its tag, or its digest if it has one),
    /// verified: by the digest when the reference has one, else by the registry's
    /// Docker-Content-Digest header when it sends one.
    package func manifest(_ reference: ImageReference) throws -> (bytes: [UInt8], digest: Digest, mediaType: String?) {
        let url = baseURL(reference.registry) + reference.repository + "/manifests/" + reference.manifestReference
        let response = try send(url, reference: reference, accept: MediaType.acceptedManifests, limit: 4 << 20)
        guard response.isSuccess else { throw error(for: response, url: url, what: "manifest \(reference)") }
        let actual = Digest.sha256(response.body)
        if let expected = reference.digest, expected != actual {
            throw OCIError.digestMismatch(what: "the manifest of \(reference)", expected: expected.description, actual: actual.description)
        }
        if let header = response.header("Docker-Content-Digest"), header.hasPrefix("sha256:"), header != actual.description {
            throw OCIError.digestMismatch(what: "the manifest of \(reference) (by the registry's Docker-Content-Digest)", expected: header, actual: actual.description)
        }
        return (response.body, actual, response.header("Content-Type"))
    }

    /// Downloads the blob `descriptor` names to `path` (resuming a partial file) and
    /// verifies its size and digest; a blob that does not match is deleted and refused.
    package func blob(_ descriptor: Descriptor, of reference: ImageReference, to path: String,
                     progress: ((DownloadProgress) throws -> Void)? = nil) throws {
        let url = baseURL(reference.registry) + reference.repository + "/blobs/" + descriptor.digest.description
        var options = DownloadOptions()
        options.retries = 3
        for attempt in 0..<2 {
            options.headers = authorizations[key(reference)].map { ["Authorization: " + $0] } ?? []
            do {
                try transfer.download(url, to: path, options: options, progress: progress)
                break
            } catch CurlError.http(_, let status) where status == 401 && attempt == 0 {
                // The token ran out (or there was none yet): answer the challenge, try again.
                let probe = try client.send(request("HEAD", url, reference: reference, accept: []))
                try authorize(probe, url: url, reference: reference)
            } catch CurlError.http(_, let status) {
                unlink(path)
                throw OCIError.registry(url: url, status: status, message: status == 404 ? "blob unknown" : "")
            } catch let error as CurlError {
                throw OCIError.transfer(error.description)
            }
        }
        try BlobVerification.verify(path, descriptor: descriptor, what: "blob \(descriptor.digest) of \(reference)")
    }

    // MARK: - Requests and authentication

    private func key(_ reference: ImageReference) -> String { reference.registry + "/" + reference.repository }

    private func request(_ method: String, _ url: String, reference: ImageReference, accept: [String]) -> HTTPRequest {
        var headers: [(name: String, value: String)] = []
        if !accept.isEmpty { headers.append(("Accept", accept.joined(separator: ", "))) }
        if let authorization = authorizations[key(reference)] { headers.append(("Authorization", authorization)) }
        return HTTPRequest(method: method, url: url, headers: headers)
    }

    /// One GET, repeated once with authorization when the registry challenges it.
    private func send(_ url: String, reference: ImageReference, accept: [String], limit: Int) throws -> HTTPResponse {
        do {
            let first = try client.send(request("GET", url, reference: reference, accept: accept), limit: limit)
            guard first.status == 401 else { return first }
            try authorize(first, url: url, reference: reference)
            return try client.send(request("GET", url, reference: reference, accept: accept), limit: limit)
        } catch let error as CurlError {
            throw OCIError.transfer(error.description)
        }
    }

    /// Answers a 401's challenge: fetches a bearer token or uses the basic credentials.
    private func authorize(_ response: HTTPResponse, url: String, reference: ImageReference) throws {
        guard let header = response.header("WWW-Authenticate") else {
            throw OCIError.unauthorized(url: url, reason: "the registry answered 401 without a WWW-Authenticate challenge")
        }
        let challenge = AuthenticationChallenge(parsing: header)
        let credentials = credentials[reference.registry]
        switch challenge.scheme.lowercased() {
        case "basic":
            guard let credentials else {
                throw OCIError.unauthorized(url: url, reason: "the registry asks for a user name and password (Basic realm \"\(challenge.parameters["realm"] ?? "")\")")
            }
            authorizations[key(reference)] = credentials.basicAuthorization
        case "bearer":
            guard let realm = challenge.parameters["realm"], realm.hasPrefix("http://") || realm.hasPrefix("https://") else {
                throw OCIError.unauthorized(url: url, reason: "the Bearer challenge names no http(s) realm: \(header)")
            }
            var query: [String] = []
            if let service = challenge.parameters["service"] { query.append("service=" + Self.escape(service)) }
            let scope = challenge.parameters["scope"] ?? "repository:\(reference.repository):pull"
            query.append("scope=" + Self.escape(scope))
            let tokenURL = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
            let headers: [(name: String, value: String)] = credentials.map { [("Authorization", $0.basicAuthorization)] } ?? []
            let answer: HTTPResponse
            do { answer = try client.send(HTTPRequest(method: "GET", url: tokenURL, headers: headers), limit: 1 << 20) } catch let error as CurlError {
                throw OCIError.transfer("getting a token for \(reference.repository): \(error)")
            }
            guard answer.isSuccess else {
                throw OCIError.unauthorized(url: url, reason: "the token service \(realm) answered HTTP \(answer.status)\(Self.message(answer).map { ": " + $0 } ?? "")")
            }
            struct TokenAnswer: Decodable {
                var token: String?
                var access_token: String?
            }
            guard let decoded = try? JSONDecoder().decode(TokenAnswer.self, from: Data(answer.body)),
                  let token = decoded.token ?? decoded.access_token, !token.isEmpty else {
                throw OCIError.unauthorized(url: url, reason: "the token service \(realm) sent no token")
            }
            authorizations[key(reference)] = "Bearer " + token
        default:
            throw OCIError.unauthorized(url: url, reason: "unsupported authentication scheme '\(challenge.scheme)'")
        }
    }

    private func error(for response: HTTPResponse, url: String, what: String) -> OCIError {
        if response.status == 401 || response.status == 403 {
            return .unauthorized(url: url, reason: Self.message(response) ?? "HTTP \(response.status)")
        }
        if response.status == 404 {
            return .registry(url: url, status: 404, message: Self.message(response) ?? "\(what) not found")
        }
        return .registry(url: url, status: response.status, message: Self.message(response) ?? "")
    }

    /// The registry's own error text: `{"errors":[{"code":..., "message":...}]}`.
    static func message(_ response: HTTPResponse) -> String? {
        struct Errors: Decodable {
            struct Entry: Decodable {
                var code: String?
                var message: String?
            }
            var errors: [Entry]?
        }
        guard let decoded = try? JSONDecoder().decode(Errors.self, from: Data(response.body)), let errors = decoded.errors, !errors.isEmpty else {
            return nil
        }
        return errors.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
    }

    static func escape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~:/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A parsed `WWW-Authenticate` header: the scheme and its `key="value"` parameters (quoted
/// values may hold commas, as scopes such as "repository:x:pull,push" do).
package struct AuthenticationChallenge: Sendable, Equatable {
    package var scheme: String
    package var parameters: [String: String]

    package init(parsing header: String) {
        let text = header.trimmingCharacters(in: .whitespaces)
        let space = text.firstIndex(of: " ") ?? text.endIndex
        scheme = String(text[..<space])
        parameters = [:]
        var rest = text[space...]
        while true {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped { value.append(character); escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { break } else {
                        value.append(character)
                    }
                }
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            parameters[key] = value
        }
    }
}

/// Checks a downloaded or copied blob against its descriptor.
enum BlobVerification {
    /// Deletes the file and throws when its size or SHA-256 is not what the descriptor says.
    static func verify(_ path: String, descriptor: Descriptor, what: String) throws {
        let size = try Files.size(path)
        guard size == descriptor.size else {
            unlink(path)
            throw OCIError.sizeMismatch(what: what, expected: descriptor.size, actual: size)
        }
        let actual = try Digest.sha256(file: path)
        guard actual == descriptor.digest else {
            unlink(path)
            throw OCIError.digestMismatch(what: what, expected: descriptor.digest.description, actual: actual.description)
        }
    }
}
