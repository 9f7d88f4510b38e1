/// A registry image reference, `[REGISTRY/]REPOSITORY[:TAG][@DIGEST]`, read the way Docker
/// reads it: the first component is a registry when it has a dot or a port or is
/// `localhost`; otherwise the image is on Docker Hub, where one-component names live
/// under `library/`.
package struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The registry host with its port ("127.0.0.1:5000", "docker.io").
    package var registry: String
    package var repository: String
    package var tag: String?
    package var digest: Digest?

    package static let dockerHub = "docker.io"

    package init(parsing text: String) throws {
        guard !text.isEmpty else { throw OCIError.invalidReference(text, reason: "it is empty") }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            digest = try Digest(parsing: String(rest[rest.index(after: at)...]))
            rest = rest[..<at]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if components.count > 1, let first = components.first,
           first.contains(".") || first.contains(":") || first == "localhost" {
            registry = first
            components.removeFirst()
        } else {
            registry = Self.dockerHub
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = Self.dockerHub }
        guard var last = components.last else { throw OCIError.invalidReference(text, reason: "it names no repository") }
        if let colon = last.lastIndex(of: ":") {
            let tag = String(last[last.index(after: colon)...])
            guard Self.isValidTag(tag) else {
                throw OCIError.invalidReference(text, reason: "the tag '\(tag)' is not valid (letters, digits, '_', '.', '-'; at most 128)")
            }
            self.tag = tag
            last = String(last[..<colon])
            components[components.count - 1] = last
        }
        if registry == Self.dockerHub, components.count == 1 { components.insert("library", at: 0) }
        for component in components where !Self.isValidComponent(component) {
            throw OCIError.invalidReference(text, reason: "'\(component)' is not a valid repository name component (lowercase letters and digits, separated by '.', '_', '__' or '-')")
        }
        repository = components.joined(separator: "/")
        if tag == nil, digest == nil { tag = "latest" }
    }

    /// The tag or digest a manifest is fetched by (the digest wins).
    package var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The host to connect to (Docker Hub's API host for docker.io).
    package var apiHost: String { registry == Self.dockerHub ? "registry-1.docker.io" : registry }

    package var description: String {
        var text = "\(registry)/\(repository)"
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    static func isValidTag(_ tag: String) -> Bool {
        guard let first = tag.utf8.first, tag.utf8.count <= 128, first != UInt8(ascii: "."), first != UInt8(ascii: "-") else { return false }
        return tag.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    static func isValidComponent(_ component: String) -> Bool {
        let bytes = Array(component.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlphanumeric(first), isLowerAlphanumeric(last) else { return false }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if isLowerAlphanumeric(byte) { index += 1; continue }
            // One separator between alphanumerics: ".", "_", "__" or a run of "-".
            var end = index
            while end < bytes.count, !isLowerAlphanumeric(bytes[end]) { end += 1 }
            let separator = String(decoding: bytes[index..<end], as: UTF8.self)
            guard separator == "." || separator == "_" || separator == "__" || separator.allSatisfy({ $0 == "-" }) else { return false }
            index = end
        }
        return true
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (97...122).contains(byte)
    }
}

/// Where an image comes from: a registry, or an OCI image layout directory (`oci:DIR[:REF]`).
package enum ImageSource: Sendable, CustomStringConvertible {
    case registry(ImageReference)
    case layout(directory: String, reference: String?)

    /// Parses a reference or `oci:DIR[:REF]` (the part after the last ':' is the reference
    /// when it holds no '/').
    package init(parsing text: String) throws {
        if text.hasPrefix("oci:") {
            let rest = String(text.dropFirst(4))
            guard !rest.isEmpty else { throw OCIError.invalidReference(text, reason: "oci: needs a directory (oci:DIR or oci:DIR:REF)") }
            if let colon = rest.lastIndex(of: ":"), !rest[rest.index(after: colon)...].contains("/") {
                let reference = String(rest[rest.index(after: colon)...])
                self = .layout(directory: String(rest[..<colon]), reference: reference.isEmpty ? nil : reference)
            } else {
                self = .layout(directory: rest, reference: nil)
            }
        } else {
            self = .registry(try ImageReference(parsing: text))
        }
    }

    package var description: String {
        switch self {
        case .registry(let reference): return reference.description
        case .layout(let directory, let reference): return "oci:\(directory)" + (reference.map { ":" + $0 } ?? "")
        }
    }
}
