import Foundation
import SystemSupport

/// A content digest, `sha256:` followed by 64 lowercase hex digits: the name of every blob
/// (manifest, configuration, layer) in a registry, a layout and the store.
package struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// Only SHA-256 is verified; other algorithms are refused when parsed.
    package let algorithm: String
    package let hex: String

    /// Parses "sha256:HEX", refusing other algorithms and malformed digests.
    package init(parsing text: String) throws(OCIError) {
        guard let colon = text.firstIndex(of: ":") else { throw .invalidDigest(text, reason: "no algorithm prefix (expected sha256:HEX)") }
        let algorithm = String(text[..<colon])
        let hex = String(text[text.index(after: colon)...])
        guard algorithm == "sha256" else { throw .invalidDigest(text, reason: "the algorithm \(algorithm) is not supported (only sha256)") }
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            throw .invalidDigest(text, reason: "a sha256 digest is 64 lowercase hex digits")
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    private init(sha256 hex: String) {
        algorithm = "sha256"
        self.hex = hex
    }

    /// The digest of bytes in memory.
    package static func sha256(_ bytes: [UInt8]) -> Digest { Digest(sha256: SHA256.hash(bytes)) }

    /// The digest of a file's contents.
    package static func sha256(file path: String) throws -> Digest { Digest(sha256: try SHA256.hash(file: path)) }

    package var description: String { "\(algorithm):\(hex)" }

    /// The first 12 hex digits, as image and container lists show IDs.
    package var short: String { String(hex.prefix(12)) }

    package static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    package init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    package func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The chain ID of a layer stack (OCI image spec, "Layer ChainID"): the first layer's is
    /// its diff ID; each further one hashes "PARENT-CHAIN-ID DIFF-ID".
    package static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var chain: [Digest] = []
        for diffID in diffIDs {
            if let parent = chain.last {
                chain.append(Digest(sha256: SHA256.hash("\(parent) \(diffID)")))
            } else {
                chain.append(diffID)
            }
        }
        return chain
    }
}
