// The image store: content-addressed blobs and layer stacks, shared between images.
//
//   ROOT/                      (rast: /var/lib/rast/oci, on the shared @var subvolume)
//     blobs/sha256/HEX         every blob (indexes, manifests, configurations, compressed
//                              layers), each verified against its digest before it is renamed
//                              to its name: a file there is always complete and correct
//     layers/CHAIN-HEX         a layer stack by chain ID: the parent stack's snapshot with
//                              this layer applied; a read-only btrfs subvolume (a plain
//                              directory on other filesystems). Images with common base
//                              layers share these.
//     images.json              the images by name: manifest, configuration, blobs, chain
//                              (written atomically: temporary file, fsync, rename)
//     tmp/                     downloads and layers being applied; emptied under the lock
//     lock                     one writer at a time (flock)
//
// A layer stack is built under tmp/ and renamed into layers/ when complete, so a crash
// leaves nothing half-applied under a final name; images.json is written last.
import Curl
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// One image in the store.
package struct StoredImage: Codable, Sendable, Equatable {
    /// The name it was pulled as ("127.0.0.1:5000/test/app:v1", "busybox:latest" for a layout).
    package var name: String
    /// Where it came from (a reference or oci:DIR:REF).
    package var source: String
    package var manifestDigest: Digest
    /// The image ID: the digest of its configuration.
    package var configDigest: Digest
    /// The layer stacks, lowest first; the last is the image's root filesystem.
    package var chainIDs: [Digest]
    /// Every blob the image needs (index, manifest, configuration, layers).
    package var blobs: [Digest]
    /// The compressed size of its layers.
    package var size: Int64
    /// When it was stored, seconds since the epoch.
    package var created: Int64

    package var id: Digest { configDigest }
}

/// What removing images and pruning freed.
package struct StoreCleanup: Sendable, Equatable {
    package var images: [String] = []
    package var layers = 0
    package var blobs = 0
    package var bytes: Int64 = 0
}

/// Blobs, layer stacks and image names below one directory.
package final class ImageStore {
    package static let defaultRoot = "/var/lib/rast/oci"

    package let root: String
    package let volumes: Volumes
    package var platform = Platform.current

    private struct Index: Codable {
        var version = 1
        var images: [StoredImage] = []
    }

    /// Opens (and creates) the store at `root`.
    package init(root: String = ImageStore.defaultRoot) throws {
        self.root = root
        for directory in [root, root + "/blobs/sha256", root + "/layers", root + "/tmp"] {
            try Files.createDirectory(directory, mode: 0o700)
        }
        volumes = Volumes.detect(root + "/layers")
    }

    package func blobPath(_ digest: Digest) -> String { "\(root)/blobs/\(digest.algorithm)/\(digest.hex)" }
    package func layerPath(_ chainID: Digest) -> String { "\(root)/layers/\(chainID.hex)" }

    /// Every image, by name.
    package func images() throws -> [StoredImage] {
        try readIndex().images.sorted { $0.name < $1.name }
    }

    /// The image called `name`: its exact name, the name read as a reference (so "busybox"
    /// finds "docker.io/library/busybox:latest"), with ":latest" added, or an ID prefix.
    package func image(_ name: String) throws -> StoredImage {
        let images = try readIndex().images
        if let exact = images.first(where: { $0.name == name }) { return exact }
        if let reference = try? ImageReference(parsing: name), let match = images.first(where: { $0.name == reference.description }) {
            return match
        }
        if !name.contains(":"), let match = images.first(where: { $0.name == name + ":latest" }) { return match }
        var prefix = name.hasPrefix("sha256:") ? String(name.dropFirst(7)) : name
        prefix = prefix.lowercased()
        if prefix.count >= 4, prefix.allSatisfy(\.isHexDigit) {
            let matches = images.filter { $0.configDigest.hex.hasPrefix(prefix) }
            if Set(matches.map(\.configDigest)).count == 1, let first = matches.first { return first }
        }
        throw OCIError.imageNotFound(name)
    }

    /// The image's configuration (how to run it).
    package func configuration(of image: StoredImage) throws -> ImageConfiguration {
        try ImageConfiguration.parse(try Files.read(blobPath(image.configDigest)), what: "the configuration of \(image.name)")
    }

    /// Makes a writable copy of the image's root filesystem at the new path `destination`.
    package func copyRoot(of image: StoredImage, to destination: String) throws {
        if let top = image.chainIDs.last {
            guard Files.isDirectory(layerPath(top)) else {
                throw OCIError.store(path: root, reason: "the layers of \(image.name) are missing (\(layerPath(top))); pull it again")
            }
            try volumes.copy(layerPath(top), to: destination)
        } else {
            try volumes.create(at: destination)
        }
    }

    // MARK: - Pulling

    /// Stores the image `source` names under `name` (default: the reference, or for a
    /// layout `DIRNAME:REF`), fetching only the blobs and building only the layer stacks
    /// the store does not have yet. An image of the same name is replaced.
    @discardableResult
    package func pull(_ source: ImageSource, name: String? = nil, client: RegistryClient? = nil,
                     progress: ProgressReporter = SilentProgress()) throws -> StoredImage {
        let lock = try lockStore(progress: progress)
        defer { lock.unlock() }
        let fetcher: BlobFetcher
        switch source {
        case .registry(let reference):
            fetcher = RegistryFetcher(reference: reference, client: try client ?? RegistryClient(), progress: progress)
        case .layout(let directory, let reference):
            fetcher = try LayoutFetcher(directory: directory, reference: reference)
        }
        let imageName = name ?? fetcher.defaultName
        var blobs: [Digest] = []

        // The manifest, through an index when there is one.
        var (bytes, digest, mediaType) = try fetcher.top()
        var document = try ManifestDocument.parse(bytes, mediaType: mediaType, what: "the manifest of \(source)")
        if case .index(let index) = document {
            try storeBlob(bytes, digest: digest)
            blobs.append(digest)
            let chosen = try index.manifest(for: platform, image: source.description)
            bytes = try fetcher.document(chosen, what: "the \(platform) manifest of \(source)")
            digest = chosen.digest
            document = try ManifestDocument.parse(bytes, mediaType: chosen.mediaType, what: "the \(platform) manifest of \(source)")
        }
        guard case .manifest(let manifest) = document else {
            throw OCIError.invalidDocument(what: "the manifest of \(source)", reason: "an index inside an index is not supported")
        }
        try storeBlob(bytes, digest: digest)
        blobs.append(digest)

        // The configuration.
        let configBytes = try fetcher.document(manifest.config, what: "the configuration of \(source)")
        let configuration = try ImageConfiguration.parse(configBytes, what: "the configuration of \(source)")
        try storeBlob(configBytes, digest: manifest.config.digest)
        blobs.append(manifest.config.digest)
        if let os = configuration.os, let architecture = configuration.architecture,
           os != platform.os || architecture != platform.architecture {
            throw OCIError.noMatchingPlatform(image: source.description, platform: platform.description, available: ["\(os)/\(architecture)"])
        }
        let diffIDs = configuration.rootfs.diffIDs
        guard diffIDs.count == manifest.layers.count else {
            throw OCIError.invalidDocument(what: "the configuration of \(source)",
                                           reason: "it lists \(diffIDs.count) layer diff IDs, the manifest \(manifest.layers.count) layers")
        }

        // The layers: each stack that is missing is built on its parent's.
        let chain = Digest.chainIDs(diffIDs)
        var size: Int64 = 0
        for (position, layer) in manifest.layers.enumerated() {
            size += layer.size
            blobs.append(layer.digest)
            guard MediaType.isLayer(layer.mediaType) else {
                throw OCIError.unsupportedMediaType(what: "layer \(position + 1) of \(source)", mediaType: layer.mediaType)
            }
            let stack = layerPath(chain[position])
            if Files.exists(stack) {
                try volumes.seal(stack)  // a crash may have come between the rename and the seal
                progress.note("layer \(position + 1)/\(manifest.layers.count) \(layer.digest.short): already stored")
                if !Files.exists(blobPath(layer.digest)) { try fetchBlob(layer, from: fetcher) }
                continue
            }
            try fetchBlob(layer, from: fetcher)
            let stopwatch = Stopwatch()
            progress.begin("layer \(position + 1)/\(manifest.layers.count) \(layer.digest.short): applying")
            let work = "\(root)/tmp/layer-\(chain[position].hex)"
            try volumes.delete(work)
            if position > 0 {
                try volumes.copy(layerPath(chain[position - 1]), to: work)
            } else {
                try volumes.create(at: work)
            }
            do {
                let applied = try LayerApplier.apply(blobPath(layer.digest), to: work)
                // Complete, so it may have its name; sealed after the rename (btrfs cannot
                // move a read-only subvolume: its root's ".." would change).
                try SystemError.check("rename", path: stack) { rename(work, stack) }
                try Files.syncDirectory(root + "/layers")
                try volumes.seal(stack)
                progress.end("layer \(position + 1)/\(manifest.layers.count) \(layer.digest.short)",
                             summary: "\(applied.entries) entries, \(applied.whiteouts) whiteouts, \(applied.opaqueDirectories) opaque directories in \(stopwatch.formatted)")
            } catch {
                try? volumes.delete(work)
                throw error
            }
        }

        let image = StoredImage(name: imageName, source: source.description, manifestDigest: digest, configDigest: manifest.config.digest,
                                chainIDs: chain, blobs: blobs, size: size, created: Int64(time(nil)))
        var index = try readIndex()
        index.images.removeAll { $0.name == imageName }
        index.images.append(image)
        try writeIndex(index)
        _ = try collectGarbage(index)
        return image
    }

    // MARK: - Removing

    /// Removes images by name (as `image(_:)` finds them) and whatever only they used.
    package func remove(_ names: [String]) throws -> StoreCleanup {
        let lock = try lockStore(progress: SilentProgress())
        defer { lock.unlock() }
        var index = try readIndex()
        var removed: [String] = []
        for name in names {
            let image = try self.image(name)
            index.images.removeAll { $0.name == image.name }
            removed.append(image.name)
        }
        try writeIndex(index)
        var cleanup = try collectGarbage(index)
        cleanup.images = removed
        return cleanup
    }

    /// Deletes blobs and layer stacks no image uses and anything an interrupted pull left in
    /// tmp/; with `images`, those images go first.
    package func prune(images names: [String] = []) throws -> StoreCleanup {
        names.isEmpty ? try withLock { try collectGarbage(try readIndex()) } : try remove(names)
    }

    private func withLock<T>(_ body: () throws -> T) throws -> T {
        let lock = try lockStore(progress: SilentProgress())
        defer { lock.unlock() }
        return try body()
    }

    /// Deletes what no image in `index` refers to. Runs under the lock.
    private func collectGarbage(_ index: Index) throws -> StoreCleanup {
        var cleanup = StoreCleanup()
        let usedBlobs = Set(index.images.flatMap(\.blobs).map(\.hex))
        let usedLayers = Set(index.images.flatMap(\.chainIDs).map(\.hex))
        for name in try FileManagerShim.contents(of: root + "/layers") where !usedLayers.contains(name) {
            try volumes.delete(root + "/layers/" + name)
            cleanup.layers += 1
        }
        let blobDirectory = root + "/blobs/sha256"
        for name in try FileManagerShim.contents(of: blobDirectory) where !usedBlobs.contains(name) {
            cleanup.bytes += (try? Files.size(blobDirectory + "/" + name)) ?? 0
            try SystemError.check("unlink", path: blobDirectory + "/" + name) { unlink(blobDirectory + "/" + name) }
            cleanup.blobs += 1
        }
        return cleanup
    }

    // MARK: - Internals

    private func lockStore(progress: ProgressReporter) throws -> FileLock {
        let lock = try FileLock(path: root + "/lock", wait: true) {
            progress.note("waiting for another rast command that uses the image store")
        }
        // Whatever an interrupted pull left behind; nobody else works in tmp/ now.
        for name in (try? FileManagerShim.contents(of: root + "/tmp")) ?? [] {
            try? volumes.delete(root + "/tmp/" + name)
        }
        return lock
    }

    private func readIndex() throws -> Index {
        let path = root + "/images.json"
        guard Files.exists(path) else { return Index() }
        do {
            let index = try JSONDecoder().decode(Index.self, from: Data(try Files.read(path)))
            guard index.version == 1 else { throw OCIError.store(path: path, reason: "format version \(index.version) is not known to this rast") }
            return index
        } catch let error as OCIError {
            throw error
        } catch {
            throw OCIError.store(path: path, reason: "cannot be read: \(ManifestDocument.reason(error))")
        }
    }

    private func writeIndex(_ index: Index) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.writeAtomically(root + "/images.json", bytes: Array(try encoder.encode(index)))
    }

    /// Keeps a document already verified in memory as a blob.
    private func storeBlob(_ bytes: [UInt8], digest: Digest) throws {
        let path = blobPath(digest)
        guard !Files.exists(path) else { return }
        guard Digest.sha256(bytes) == digest else {
            throw OCIError.digestMismatch(what: "blob \(digest)", expected: digest.description, actual: Digest.sha256(bytes).description)
        }
        try Files.writeAtomically(path, bytes: bytes)
    }

    /// Fetches a layer blob into tmp/, verifies it and renames it to its name.
    private func fetchBlob(_ descriptor: Descriptor, from fetcher: BlobFetcher) throws {
        let path = blobPath(descriptor.digest)
        guard !Files.exists(path) else { return }
        let partial = "\(root)/tmp/blob-\(descriptor.digest.hex)"
        try fetcher.blob(descriptor, to: partial)
        try BlobVerification.verify(partial, descriptor: descriptor, what: "blob \(descriptor.digest)")
        try SystemError.check("rename", path: path) { rename(partial, path) }
        try Files.syncDirectory((path as NSString).deletingLastPathComponent)
    }
}

// MARK: - Where blobs come from

protocol BlobFetcher {
    var defaultName: String { get }
    /// The top document (an index or a manifest) with its digest, verified.
    func top() throws -> (bytes: [UInt8], digest: Digest, mediaType: String?)
    /// A small blob in memory, verified.
    func document(_ descriptor: Descriptor, what: String) throws -> [UInt8]
    /// A blob written to `path` (verified by the caller).
    func blob(_ descriptor: Descriptor, to path: String) throws
}

struct RegistryFetcher: BlobFetcher {
    let reference: ImageReference
    let client: RegistryClient
    let progress: ProgressReporter

    var defaultName: String { reference.description }

    func top() throws -> (bytes: [UInt8], digest: Digest, mediaType: String?) {
        try client.manifest(reference)
    }

    func document(_ descriptor: Descriptor, what: String) throws -> [UInt8] {
        guard descriptor.size <= 16 << 20 else {
            throw OCIError.invalidDocument(what: what, reason: "its descriptor says \(descriptor.size) bytes; documents are limited to 16 MiB")
        }
        var pinned = reference
        pinned.digest = descriptor.digest
        if MediaType.isManifest(descriptor.mediaType) || MediaType.isIndex(descriptor.mediaType) {
            let fetched = try client.manifest(pinned)
            try check(fetched.bytes, descriptor, what: what)
            return fetched.bytes
        }
        let scratch = try TemporaryDirectory(prefix: "rast-oci")
        defer { try? scratch.remove() }
        try client.blob(descriptor, of: reference, to: scratch.appending("blob"))
        return try Files.read(scratch.appending("blob"))
    }

    func blob(_ descriptor: Descriptor, to path: String) throws {
        let task = "downloading \(descriptor.digest.short)"
        progress.begin(task)
        let stopwatch = Stopwatch()
        try client.blob(descriptor, of: reference, to: path) { update in
            progress.update(ProgressUpdate(task: task, completed: Int64(update.bytes), total: Int64(update.total ?? UInt64(descriptor.size)), unit: .bytes))
        }
        progress.end(task, summary: "\(ByteCount.format(descriptor.size)) in \(stopwatch.formatted)")
    }
}

/// An OCI image layout directory (image-layout spec): `oci-layout`, `index.json`, `blobs/`.
struct LayoutFetcher: BlobFetcher {
    let directory: String
    let index: ImageIndex
    let chosen: Descriptor
    let reference: String?

    init(directory: String, reference: String?) throws {
        self.directory = directory
        self.reference = reference
        guard Files.isDirectory(directory) else { throw OCIError.layout(path: directory, reason: "no such directory") }
        guard let marker = try? Files.readString(directory + "/oci-layout"), marker.contains("imageLayoutVersion") else {
            throw OCIError.layout(path: directory, reason: "no oci-layout file: not an OCI image layout")
        }
        let indexBytes: [UInt8]
        do { indexBytes = try Files.read(directory + "/index.json") } catch {
            throw OCIError.layout(path: directory, reason: "index.json cannot be read: \(error)")
        }
        guard case .index(let index) = try ManifestDocument.parse(indexBytes, mediaType: MediaType.ociIndex, what: "\(directory)/index.json") else {
            throw OCIError.layout(path: directory, reason: "index.json is not an image index")
        }
        self.index = index
        let names = index.manifests.compactMap(\.referenceName)
        if let reference {
            guard let match = index.manifests.first(where: { $0.referenceName == reference }) else {
                throw OCIError.layout(path: directory, reason: "no image named '\(reference)' (it has: \(names.isEmpty ? "no names" : names.joined(separator: ", ")))")
            }
            chosen = match
        } else if index.manifests.count == 1, let only = index.manifests.first {
            chosen = only
        } else if let latest = index.manifests.first(where: { $0.referenceName == "latest" }) {
            chosen = latest
        } else {
            throw OCIError.layout(path: directory, reason: "it holds \(index.manifests.count) images; name one with oci:\(directory):REF (one of: \(names.joined(separator: ", ")))")
        }
    }

    var defaultName: String {
        let base = (((directory as NSString).standardizingPath) as NSString).lastPathComponent.lowercased()
        return base + ":" + (reference ?? chosen.referenceName ?? "latest")
    }

    func top() throws -> (bytes: [UInt8], digest: Digest, mediaType: String?) {
        (try document(chosen, what: "manifest \(chosen.digest) in \(directory)"), chosen.digest, chosen.mediaType)
    }

    func document(_ descriptor: Descriptor, what: String) throws -> [UInt8] {
        let path = try blobPath(descriptor)
        let bytes = try Files.read(path)
        try check(bytes, descriptor, what: what)
        return bytes
    }

    func blob(_ descriptor: Descriptor, to path: String) throws {
        try? Files.removeTree(path)
        try TreeCopy.copy(try blobPath(descriptor), to: path)
    }

    private func blobPath(_ descriptor: Descriptor) throws -> String {
        let path = "\(directory)/blobs/\(descriptor.digest.algorithm)/\(descriptor.digest.hex)"
        guard Files.exists(path) else { throw OCIError.layout(path: directory, reason: "blob \(descriptor.digest) is missing") }
        return path
    }
}

/// Checks a document in memory against its descriptor.
func check(_ bytes: [UInt8], _ descriptor: Descriptor, what: String) throws {
    guard Int64(bytes.count) == descriptor.size else {
        throw OCIError.sizeMismatch(what: what, expected: descriptor.size, actual: Int64(bytes.count))
    }
    let actual = Digest.sha256(bytes)
    guard actual == descriptor.digest else {
        throw OCIError.digestMismatch(what: what, expected: descriptor.digest.description, actual: actual.description)
    }
}
