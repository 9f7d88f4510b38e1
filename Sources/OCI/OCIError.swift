/// What went wrong with an image, a registry or the store; each case names what it is about.
package enum OCIError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidDigest(String, reason: String)
    case invalidReference(String, reason: String)
    /// A blob's bytes do not hash to the digest that names them.
    case digestMismatch(what: String, expected: String, actual: String)
    case sizeMismatch(what: String, expected: Int64, actual: Int64)
    /// A manifest, index or configuration that does not parse or breaks the spec.
    case invalidDocument(what: String, reason: String)
    case unsupportedMediaType(what: String, mediaType: String)
    /// An index without a manifest for the platform.
    case noMatchingPlatform(image: String, platform: String, available: [String])
    /// The registry answered with an error.
    case registry(url: String, status: Int, message: String)
    case unauthorized(url: String, reason: String)
    case transfer(String)
    case layout(path: String, reason: String)
    case imageNotFound(String)
    case store(path: String, reason: String)
    case layer(blob: String, reason: String)

    package var description: String {
        switch self {
        case .invalidDigest(let text, let reason): return "invalid digest '\(text)': \(reason)"
        case .invalidReference(let text, let reason): return "invalid image reference '\(text)': \(reason)"
        case .digestMismatch(let what, let expected, let actual):
            return "\(what) does not match its digest: expected \(expected), got \(actual); refused"
        case .sizeMismatch(let what, let expected, let actual):
            return "\(what) has \(actual) bytes, its descriptor says \(expected); refused"
        case .invalidDocument(let what, let reason): return "\(what) is not valid: \(reason)"
        case .unsupportedMediaType(let what, let mediaType): return "\(what) has the unsupported media type \(mediaType)"
        case .noMatchingPlatform(let image, let platform, let available):
            return "\(image) has no image for \(platform) (it has: \(available.isEmpty ? "none" : available.joined(separator: ", ")))"
        case .registry(let url, let status, let message): return "\(url): the registry answered HTTP \(status)\(message.isEmpty ? "" : ": " + message)"
        case .unauthorized(let url, let reason): return "\(url): access denied: \(reason)"
        case .transfer(let message): return message
        case .layout(let path, let reason): return "OCI layout \(path): \(reason)"
        case .imageNotFound(let name): return "no image '\(name)' in the store (pull it first: rast container pull \(name))"
        case .store(let path, let reason): return "image store \(path): \(reason)"
        case .layer(let blob, let reason): return "layer \(blob): \(reason)"
        }
    }
}
