import OCI
import Testing

/// Parsing what users type and what registries send: references, digests, challenges.
@Suite("OCI references and documents")
struct ReferenceTests {
    @Test func dockerHubNamesGetTheirDefaults() throws {
        let busybox = try ImageReference(parsing: "busybox")
        #expect(busybox.registry == "docker.io")
        #expect(busybox.repository == "library/busybox")
        #expect(busybox.tag == "latest")
        #expect(busybox.description == "docker.io/library/busybox:latest")
        #expect(busybox.apiHost == "registry-1.docker.io")
        let user = try ImageReference(parsing: "someone/tool:1.2")
        #expect(user.repository == "someone/tool")
        #expect(user.tag == "1.2")
    }

    @Test func registriesWithPortsAndDigests() throws {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let reference = try ImageReference(parsing: "127.0.0.1:5000/test/app:v1@\(digest)")
        #expect(reference.registry == "127.0.0.1:5000")
        #expect(reference.repository == "test/app")
        #expect(reference.tag == "v1")
        #expect(reference.digest?.description == digest)
        #expect(reference.manifestReference == digest)
        let local = try ImageReference(parsing: "localhost/app")
        #expect(local.registry == "localhost")
        #expect(local.repository == "app")
    }

    @Test func badReferencesSayWhy() throws {
        #expect(throws: OCIError.self) { try ImageReference(parsing: "") }
        let upper = try #require(throws: OCIError.self) { try ImageReference(parsing: "Busybox") }
        #expect(upper.description.contains("'Busybox' is not a valid repository name component"))
        let tag = try #require(throws: OCIError.self) { try ImageReference(parsing: "busybox:-bad") }
        #expect(tag.description.contains("the tag '-bad' is not valid"))
        let digest = try #require(throws: OCIError.self) { try ImageReference(parsing: "busybox@md5:abc") }
        #expect(digest.description.contains("md5 is not supported"))
    }

    @Test func layoutSources() throws {
        guard case .layout(let directory, let reference) = try ImageSource(parsing: "oci:/tmp/images/busybox:v1") else {
            Issue.record("not a layout source")
            return
        }
        #expect(directory == "/tmp/images/busybox")
        #expect(reference == "v1")
        guard case .layout(let plain, nil) = try ImageSource(parsing: "oci:./dir") else {
            Issue.record("not a layout source without reference")
            return
        }
        #expect(plain == "./dir")
    }

    @Test func chainIDsFollowTheSpec() throws {
        let a = Digest.sha256(Array("a".utf8))
        let b = Digest.sha256(Array("b".utf8))
        let chain = Digest.chainIDs([a, b])
        #expect(chain[0] == a)
        // ChainID(L1|L2) = SHA256(ChainID(L1) + " " + DiffID(L2))
        #expect(chain[1] == Digest.sha256(Array("\(a) \(b)".utf8)))
    }

    @Test func bearerChallengesWithCommasInQuotes() {
        let challenge = AuthenticationChallenge(parsing: #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
        #expect(challenge.scheme == "Bearer")
        #expect(challenge.parameters["realm"] == "https://auth.example/token")
        #expect(challenge.parameters["service"] == "registry.example")
        #expect(challenge.parameters["scope"] == "repository:a/b:pull,push")
    }

    @Test func credentialsSplitAtTheFirstColon() {
        let credentials = RegistryCredentials(parsing: "tester:se:cret")
        #expect(credentials.username == "tester")
        #expect(credentials.password == "se:cret")
        #expect(RegistryCredentials(parsing: ":only").username == "")
        #expect(RegistryCredentials(parsing: "user:").password == "")
    }

    @Test func schemaOneManifestsAreRefused() throws {
        let bytes = Array(#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.utf8)
        let error = try #require(throws: OCIError.self) {
            try ManifestDocument.parse(bytes, mediaType: nil, what: "the manifest of x")
        }
        #expect(error.description.contains("schema 1"))
    }
}
