// The documents of the OCI image spec (and Docker's image manifest v2 schema 2, which has the
// same shape under other media types): descriptors, image manifests, indexes (manifest
// lists) and image configurations. Only the fields rast uses are decoded; unknown fields are
// ignored, as the spec asks.
import Foundation

/// The media types rast reads.
package enum MediaType {
    package static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    package static let ociIndex = "application/vnd.oci.image.index.v1+json"
    package static let ociConfig = "application/vnd.oci.image.config.v1+json"
    package static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
    package static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    package static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    package static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    package static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    package static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    package static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    package static let dockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    package static let dockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

    /// What a registry is asked for when a manifest is fetched.
    package static let acceptedManifests = [ociIndex, dockerManifestList, ociManifest, dockerManifest]

    package static func isIndex(_ type: String) -> Bool { type == ociIndex || type == dockerManifestList }
    package static func isManifest(_ type: String) -> Bool { type == ociManifest || type == dockerManifest }

    /// Layer types libarchive can apply (it detects the compression itself); the
    /// "nondistributable" variants carry the same content.
    package static func isLayer(_ type: String) -> Bool {
        [ociLayer, ociLayerGzip, ociLayerZstd, dockerLayerGzip,
         "application/vnd.oci.image.layer.nondistributable.v1.tar",
         "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
         "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
         "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"].contains(type)
    }
}

/// The platform an image in an index is for.
package struct Platform: Codable, Sendable, Equatable, CustomStringConvertible {
    package var architecture: String
    package var os: String
    package var variant: String?

    /// The machine rast runs on: linux/amd64 on every rastOS system.
    package static let current = Platform(architecture: "amd64", os: "linux")

    package var description: String { "\(os)/\(architecture)" + (variant.map { "/" + $0 } ?? "") }
}

/// A reference to a blob: its media type, digest and size.
package struct Descriptor: Codable, Sendable, Equatable {
    package var mediaType: String
    package var digest: Digest
    package var size: Int64
    package var platform: Platform?
    package var annotations: [String: String]?

    /// The tag an OCI layout gives this manifest (`org.opencontainers.image.ref.name`).
    package var referenceName: String? { annotations?["org.opencontainers.image.ref.name"] }
}

/// An image manifest: the configuration and the layers, lowest first.
package struct ImageManifest: Codable, Sendable, Equatable {
    package var schemaVersion: Int
    package var mediaType: String?
    package var config: Descriptor
    package var layers: [Descriptor]
}

/// An image index (Docker: manifest list): one manifest per platform.
package struct ImageIndex: Codable, Sendable, Equatable {
    package var schemaVersion: Int
    package var mediaType: String?
    package var manifests: [Descriptor]
}

/// The image configuration: how to run it and the uncompressed digests of its layers.
package struct ImageConfiguration: Codable, Sendable, Equatable {
    package struct RunConfig: Codable, Sendable, Equatable {
        package var user: String?
        package var env: [String]?
        package var entrypoint: [String]?
        package var cmd: [String]?
        package var workingDir: String?
        package var labels: [String: String]?
        package var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User", env = "Env", entrypoint = "Entrypoint", cmd = "Cmd", workingDir = "WorkingDir"
            case labels = "Labels", stopSignal = "StopSignal"
        }

        package init() {}
    }

    package struct RootFS: Codable, Sendable, Equatable {
        package var type: String
        package var diffIDs: [Digest]

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    package var architecture: String?
    package var os: String?
    package var created: String?
    package var config: RunConfig?
    package var rootfs: RootFS
}

/// A fetched manifest document: either an index to choose from or an image manifest.
package enum ManifestDocument: Sendable {
    case index(ImageIndex)
    case manifest(ImageManifest)

    /// Parses `bytes` named `what`; the media type comes from the document, else from the
    /// transport (a registry's Content-Type, a descriptor). Schema 1 manifests are refused.
    package static func parse(_ bytes: [UInt8], mediaType transportType: String?, what: String) throws -> ManifestDocument {
        struct Probe: Decodable {
            var schemaVersion: Int?
            var mediaType: String?
            var manifests: [Descriptor]?
            var layers: [Descriptor]?
        }
        let data = Data(bytes)
        let probe: Probe
        do { probe = try JSONDecoder().decode(Probe.self, from: data) } catch {
            throw OCIError.invalidDocument(what: what, reason: "not a JSON manifest (\(Self.reason(error)))")
        }
        let transport = transportType.map { $0.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? $0 }
        let type = probe.mediaType ?? transport ?? ""
        if probe.schemaVersion == 1 || type == MediaType.dockerSchema1 || type == MediaType.dockerSchema1Signed {
            throw OCIError.unsupportedMediaType(what: what, mediaType: "Docker image manifest schema 1 (\(type)); push the image again with a current tool")
        }
        guard probe.schemaVersion == 2 else {
            throw OCIError.invalidDocument(what: what, reason: "schemaVersion is \(probe.schemaVersion.map(String.init) ?? "missing"), expected 2")
        }
        let isIndex = MediaType.isIndex(type) || (type.isEmpty || !MediaType.isManifest(type)) && probe.manifests != nil && probe.layers == nil
        do {
            if isIndex {
                return .index(try JSONDecoder().decode(ImageIndex.self, from: data))
            }
            guard type.isEmpty || MediaType.isManifest(type) || type == "application/json" else {
                throw OCIError.unsupportedMediaType(what: what, mediaType: type)
            }
            return .manifest(try JSONDecoder().decode(ImageManifest.self, from: data))
        } catch let error as OCIError {
            throw error
        } catch {
            throw OCIError.invalidDocument(what: what, reason: Self.reason(error))
        }
    }

    static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "the key \(path(context.codingPath + [key])) is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? context.debugDescription : "\(path(context.codingPath)): \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
}

extension ImageIndex {
    /// The manifest for `platform`; a missing variant matches any.
    package func manifest(for platform: Platform, image: String) throws -> Descriptor {
        let candidates = manifests.filter { MediaType.isManifest($0.mediaType) }
        if let match = candidates.first(where: {
            $0.platform?.os == platform.os && $0.platform?.architecture == platform.architecture
                && (platform.variant == nil || $0.platform?.variant == platform.variant)
        }) {
            return match
        }
        throw OCIError.noMatchingPlatform(image: image, platform: platform.description,
                                          available: candidates.map { $0.platform?.description ?? "unspecified" })
    }
}

extension ImageConfiguration {
    /// Decodes a configuration blob named `what`.
    package static func parse(_ bytes: [UInt8], what: String) throws -> ImageConfiguration {
        do { return try JSONDecoder().decode(ImageConfiguration.self, from: Data(bytes)) } catch {
            throw OCIError.invalidDocument(what: what, reason: ManifestDocument.reason(error))
        }
    }
}
