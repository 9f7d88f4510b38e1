import Foundation
import OCI
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Pulls from a real registry (Debian's docker-registry on 127.0.0.1, with token
/// authentication by a token service in the test) into a store on a real btrfs filesystem.
/// The images are built with umoci and pushed with skopeo.
@Suite("OCI registry and store", .serialized)
struct RegistryTests {
    /// A registry of the test's own with the test images in a layout; `push` copies one
    /// into the registry the first time a test asks for it.
    final class Setup {
        let scratch: Scratch
        let registry: TestRegistry
        let layout: OCILayoutBuilder
        let multiDigest: String
        private var pushed: Set<String> = []

        init() throws {
            try Require.root()
            try Require.programs("skopeo", "umoci", "docker-registry", "tar")
            scratch = try Scratch("rast-registry")
            try Files.createDirectory(scratch.appending("registry"))
            registry = try TestRegistry(directory: scratch.appending("registry"), refuse: ["private/secret"])
            layout = try OCILayoutBuilder(layout: scratch.appending("layout"), scratch: scratch.appending("layers"))
            // Three layers: a base, a change with a whiteout, one with an opaque directory.
            try layout.image("app", layers: [
                [.file("etc/os-release", "ID=rast-test\n"), .file("etc/app/old.conf", "old"), .file("etc/app/keep.conf", "keep"),
                 .file("usr/share/doc/readme", "docs"), .file("usr/share/doc/extra/a", "a"), .directory("tmp")],
                [.file("etc/app/.wh.old.conf", ""), .file("usr/bin/app", "#!/bin/sh\necho app\n", mode: 0o755)],
                [.file("usr/share/doc/.wh..wh..opq", ""), .file("usr/share/doc/NEW", "only this")],
            ], cmd: ["/usr/bin/app"], env: ["APP_MODE=test"])
            // The same base plus one other layer: the base must be stored once.
            try layout.image("sibling", layers: [
                [.file("etc/os-release", "ID=rast-test\n"), .file("etc/app/old.conf", "old"), .file("etc/app/keep.conf", "keep"),
                 .file("usr/share/doc/readme", "docs"), .file("usr/share/doc/extra/a", "a"), .directory("tmp")],
                [.file("srv/sibling", "sibling")],
            ])
            try layout.image("arm", layers: [[.file("etc/arch", "arm64")]], architecture: "arm64")
            multiDigest = try layout.index("multi", of: [("arm", "linux", "arm64"), ("app", "linux", "amd64")])
            _ = try layout.index("armonly", of: [("arm", "linux", "arm64")])
        }

        /// What each repository is pushed from.
        static let sources: [String: (tag: String, format: String, all: Bool)] = [
            "test/app:v1": ("app", "oci", false), "test/app-docker:v1": ("app", "v2s2", false),
            "test/sibling:v1": ("sibling", "oci", false), "test/multi:latest": ("multi", "oci", true),
            "test/armonly:latest": ("armonly", "oci", true), "private/secret:v1": ("sibling", "oci", false),
        ]

        /// The source of `repository` (pushed now if it is not yet).
        func source(_ repository: String) throws -> ImageSource {
            if !pushed.contains(repository), let from = Self.sources[repository] {
                try registry.push("oci:\(layout.layout):\(from.tag)", to: repository, format: from.format, all: from.all)
                pushed.insert(repository)
            }
            return try ImageSource(parsing: "\(registry.host)/\(repository)")
        }

        deinit { registry.stop() }
    }

    @Test func pullsAMultiLayerImageWithTokenAuthentication() throws {
        let setup = try Setup()
        let fs = try BtrfsFixture()
        defer { fs.close() }
        let store = try ImageStore(root: fs.path("oci"))
        #expect(store.volumes.kind == .btrfs)
        let source = try setup.source("test/app:v1")
        let tokensBefore = setup.registry.tokenRequestLog.count

        let image = try store.pull(source)
        #expect(image.name == "\(setup.registry.host)/test/app:v1")
        #expect(image.chainIDs.count == 3)
        #expect(setup.registry.tokenRequestLog.count > tokensBefore, "the registry challenged and the client fetched a token")
        #expect(setup.registry.tokenRequestLog.last?.contains("scope=repository:test/app:pull") == true)

        let rootfs = store.layerPath(try #require(image.chainIDs.last))
        #expect(try Files.readString(rootfs + "/etc/os-release") == "ID=rast-test\n")
        #expect(!Files.exists(rootfs + "/etc/app/old.conf"), "the whiteout removed old.conf")
        #expect(try Files.readString(rootfs + "/etc/app/keep.conf") == "keep")
        #expect(try FileManagerShim.contents(of: rootfs + "/usr/share/doc") == ["NEW"], "the opaque directory hid the lower layers' files")
        #expect(access(rootfs + "/usr/bin/app", X_OK) == 0)
        // Every stack is a read-only subvolume, and the blobs are the ones the manifest names.
        #expect(try Command("btrfs", ["property", "get", "-ts", rootfs, "ro"]).output() == "ro=true")
        for blob in image.blobs {
            #expect(try Digest.sha256(file: store.blobPath(blob)) == blob)
        }
        let configuration = try store.configuration(of: image)
        #expect(configuration.config?.cmd == ["/usr/bin/app"])
        #expect(configuration.config?.env?.contains("APP_MODE=test") == true)
        #expect(try store.image("\(setup.registry.host)/test/app:v1").id == image.id)
        #expect(try store.image(String(image.id.hex.prefix(8))).name == image.name)

        // The Docker schema 2 copy has other media types and digests but the same content.
        let docker = try store.pull(try setup.source("test/app-docker:v1"))
        #expect(docker.manifestDigest != image.manifestDigest)
        let dockerManifest = try Files.readString(store.blobPath(docker.manifestDigest))
        #expect(dockerManifest.contains("application/vnd.docker.distribution.manifest.v2+json"))
        #expect(docker.chainIDs == image.chainIDs, "same diff IDs, same layer stacks")
    }

    @Test func imagesShareTheirCommonLayers() throws {
        let setup = try Setup()
        let fs = try BtrfsFixture()
        defer { fs.close() }
        let store = try ImageStore(root: fs.path("oci"))
        let app = try store.pull(try setup.source("test/app:v1"))
        let sibling = try store.pull(try setup.source("test/sibling:v1"))
        #expect(app.chainIDs[0] == sibling.chainIDs[0])
        #expect(try FileManagerShim.contents(of: fs.path("oci/layers")).count == 4, "3 + 1 stacks: the base is stored once")
        let siblingRoot = store.layerPath(try #require(sibling.chainIDs.last))
        #expect(try Files.readString(siblingRoot + "/srv/sibling") == "sibling")
        #expect(try Files.readString(siblingRoot + "/etc/app/old.conf") == "old")
        #expect(try store.images().map(\.name).sorted() == [app.name, sibling.name].sorted())

        // Removing one image keeps what the other needs.
        let removed = try store.remove([app.name])
        #expect(removed.images == [app.name])
        #expect(removed.layers == 2)
        #expect(Files.isDirectory(store.layerPath(sibling.chainIDs[0])))
        #expect(!Files.exists(store.blobPath(app.manifestDigest)))
        for blob in sibling.blobs { #expect(Files.exists(store.blobPath(blob))) }
        _ = try store.remove([sibling.name])
        #expect(try FileManagerShim.contents(of: fs.path("oci/layers")).isEmpty)
        #expect(try FileManagerShim.contents(of: fs.path("oci/blobs/sha256")).isEmpty)
        #expect(try store.images().isEmpty)
        #expect(throws: OCIError.imageNotFound("gone")) { try store.image("gone") }
    }

    @Test func anIndexResolvesToTheAmd64Image() throws {
        let setup = try Setup()
        let scratch = try Scratch("rast-store")
        let store = try ImageStore(root: scratch.appending("oci"))
        #expect(store.volumes.kind == .directory)
        let multi = try store.pull(try setup.source("test/multi:latest"))
        let amd64 = try setup.layout.descriptor("app")["digest"] as? String
        #expect(multi.manifestDigest.description == amd64)
        #expect(multi.blobs.first?.description == setup.multiDigest, "the index is kept too")
        #expect(!Files.exists(store.layerPath(try #require(multi.chainIDs.last)) + "/etc/arch"))

        let error = try #require(throws: OCIError.self) { try store.pull(try setup.source("test/armonly:latest")) }
        #expect(error.description.contains("has no image for linux/amd64 (it has: linux/arm64)"))
    }

    @Test func aBlobThatDoesNotMatchItsDigestIsRefused() throws {
        let setup = try Setup()
        // A repository of its own whose top layer the registry's storage then serves corrupted.
        let corrupt = setup.scratch.appending("corrupt")
        let builder = try OCILayoutBuilder(layout: corrupt, scratch: setup.scratch.appending("corrupt-layers"))
        try builder.image("bad", layers: [[.file("bad/one", "1")], [.file("bad/two", "unique content \(UUID())")]])
        try setup.registry.push("oci:\(corrupt):bad", to: "test/corrupt:v1")
        let manifestDigest = try #require(try builder.descriptor("bad")["digest"] as? String)
        let manifest = try JSONSerialization.jsonObject(with: Data(try Files.read(corrupt + "/blobs/sha256/" + manifestDigest.dropFirst(7)))) as? [String: Any]
        let layers = try #require(manifest?["layers"] as? [[String: Any]])
        let topLayer = try #require(layers.last?["digest"] as? String)
        let file = setup.registry.blobFile(topLayer)
        var bytes = try Files.read(file)
        bytes[bytes.count / 2] ^= 0xFF
        try Files.writeAtomically(file, bytes: bytes)

        let fs = try BtrfsFixture()
        defer { fs.close() }
        let store = try ImageStore(root: fs.path("oci"))
        let error = try #require(throws: OCIError.self) { try store.pull(try setup.source("test/corrupt:v1")) }
        guard case .digestMismatch(_, let expected, _) = error else {
            Issue.record("expected a digest mismatch, got \(error)")
            return
        }
        #expect(expected == topLayer)
        #expect(error.description.contains("refused"))
        // Nothing half-done under a final name: no image, no blob of that layer, an empty tmp/.
        #expect(try store.images().isEmpty)
        #expect(!Files.exists(fs.path("oci/blobs/sha256/" + topLayer.dropFirst(7))))
        #expect(try FileManagerShim.contents(of: fs.path("oci/tmp")).isEmpty)
        #expect(try FileManagerShim.contents(of: fs.path("oci/layers")).count <= 1, "only the good base layer stack")
    }

    @Test func refusedTokensAndMissingImagesAreClearErrors() throws {
        let setup = try Setup()
        let scratch = try Scratch("rast-store")
        let store = try ImageStore(root: scratch.appending("oci"))
        let denied = try #require(throws: OCIError.self) { try store.pull(try setup.source("private/secret:v1")) }
        #expect(denied.description.contains("access denied"))
        #expect(denied.description.contains("no access to private/secret"))
        // With the credentials, the token service grants it.
        let client = try RegistryClient(credentials: [setup.registry.host: RegistryCredentials(parsing: "tester:secret")])
        let secret = try store.pull(try setup.source("private/secret:v1"), client: client)
        #expect(Files.exists(store.layerPath(try #require(secret.chainIDs.last)) + "/srv/sibling"))
        let missing = try #require(throws: OCIError.self) { try store.pull(try setup.source("test/app:nope")) }
        #expect(missing.description.contains("HTTP 404"))
        #expect(missing.description.contains("MANIFEST_UNKNOWN"))
    }

    @Test func importsFromAnOCILayout() throws {
        let setup = try Setup()
        let scratch = try Scratch("rast-store")
        let store = try ImageStore(root: scratch.appending("oci"))
        let image = try store.pull(try ImageSource(parsing: "oci:\(setup.layout.layout):sibling"))
        #expect(image.name == "layout:sibling")
        #expect(try Files.readString(store.layerPath(try #require(image.chainIDs.last)) + "/srv/sibling") == "sibling")
        let named = try store.pull(try ImageSource(parsing: "oci:\(setup.layout.layout):multi"), name: "multi:1")
        #expect(named.manifestDigest.description == (try setup.layout.descriptor("app")["digest"] as? String))
        let error = try #require(throws: OCIError.self) { try store.pull(try ImageSource(parsing: "oci:\(setup.layout.layout):missing")) }
        #expect(error.description.contains("no image named 'missing'"))
    }
}
