/// One thing `rast search` can find: a package, a chunk of a file in /etc, or a service.
package struct SearchDocument: Sendable, Equatable, Hashable {
    package enum Kind: UInt8, Sendable, CaseIterable, Codable {
        /// A package of the repositories and/or installed in the snapshot.
        case package = 0
        /// A key or comment chunk of a file in /etc.
        case config = 1
        /// A service definition (/etc/rast/services/NAME.toml).
        case service = 2

        package var label: String {
            switch self {
            case .package: return "package"
            case .config: return "config"
            case .service: return "service"
            }
        }
    }

    package var kind: Kind
    /// The package or service name; for a config chunk the file's path, as `path`.
    package var name: String
    /// What is ranked besides the name: description, provides and groups; the chunk's lines.
    package var text: String
    /// The file of a config chunk or service definition (in the snapshot), empty for packages.
    package var path: String
    /// The first line of the chunk in its file (config and service), 0 for packages.
    package var line: Int
    /// Package details: repository (empty when installed from no repository), version,
    /// installed version (empty when not installed).
    package var repository: String
    package var version: String
    package var installedVersion: String

    package init(kind: Kind, name: String, text: String, path: String = "", line: Int = 0, repository: String = "",
                version: String = "", installedVersion: String = "") {
        self.kind = kind
        self.name = name
        self.text = text
        self.path = path
        self.line = line
        self.repository = repository
        self.version = version
        self.installedVersion = installedVersion
    }

    /// A package from a repository and/or the installed database.
    package static func package(name: String, description: String, provides: [String] = [], groups: [String] = [],
                               repository: String = "", version: String = "", installedVersion: String = "") -> SearchDocument {
        var text = description
        if !provides.isEmpty { text += " (provides " + provides.joined(separator: " ") + ")" }
        if !groups.isEmpty { text += " (groups " + groups.joined(separator: " ") + ")" }
        return SearchDocument(kind: .package, name: name, text: text, repository: repository, version: version,
                              installedVersion: installedVersion)
    }

    /// "path:line" for chunks and services, the name for packages.
    package var location: String { kind == .package ? name : "\(path):\(line)" }

    /// The text the embedding is made from.
    var embeddingText: String {
        switch kind {
        case .package: return name.replacingOccurrences(of: "-", with: " ") + " " + text
        case .config: return rankedName + " " + text
        case .service: return text
        }
    }

    /// The name BM25 weighs more: a package's or service's name, a config file's base name.
    var rankedName: String {
        kind == .config ? String(path.split(separator: "/").last ?? Substring(path)) : name
    }
}
