// pacman.conf, read the way pacman reads it (pacman.conf(5)):
//
//   # comment (from '#' to the end of the line)
//   [options]                     the options section
//   DBPath = /usr/share/rast/db/  key = value
//   CheckSpace                    a key without a value is a flag
//   Include = /etc/pacman.d/x     the lines of another file (globs allowed), in this section
//   [core]                        any other section is a repository
//   SigLevel = Required DatabaseOptional
//   Server = https://mirror/$repo/os/$arch      $repo and $arch are substituted
//   Include = /etc/pacman.d/mirrorlist          usually a list of Server lines
//
// Paths in the file (DBPath, CacheDir, Include, ...) are paths of the system the file belongs
// to; `load` maps them through a resolver, so a snapshot's pacman.conf includes the
// snapshot's mirrorlist, not the host's.
import Alpm
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A mistake in pacman.conf, named by file and line.
package struct PacmanConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    package let file: String
    /// 1-based; nil when the whole file is concerned (it cannot be read).
    package let line: Int?
    package let message: String

    package var description: String {
        "\(file)\(line.map { ":\($0)" } ?? ""): \(message)"
    }
}

/// The settings of one pacman.conf (with its includes) that libalpm needs.
package struct PacmanConfig: Sendable, Equatable {
    /// One `[name]` section.
    package struct Repository: Sendable, Equatable {
        package var name: String
        /// Server URLs with `$repo` and `$arch` substituted, in file order.
        package var servers: [String]
        /// The section's SigLevel words, applied on top of the global SigLevel.
        package var sigLevel: [String]
        /// Usage words (Sync Search Install Upgrade All); empty means All.
        package var usage: [String]
        /// Where the section starts, for messages.
        package var file: String
        package var line: Int
    }

    package var rootDirectory: String?
    package var databasePath: String?
    package var cacheDirectories: [String] = []
    package var hookDirectories: [String] = []
    package var gpgDirectory: String?
    package var logFile: String?
    /// `auto` is replaced by the machine's architecture.
    package var architectures: [String] = []
    package var sigLevel: [String] = []
    package var localFileSigLevel: [String] = []
    package var remoteFileSigLevel: [String] = []
    package var holdPackages: [String] = []
    package var ignorePackages: [String] = []
    package var ignoreGroups: [String] = []
    package var noUpgrade: [String] = []
    package var noExtract: [String] = []
    package var parallelDownloads: Int?
    package var checkSpace = false
    package var disableDownloadTimeout = false
    package var repositories: [Repository] = []
    /// Directives pacman would warn about (unknown keys), as "file:line: text".
    package var warnings: [String] = []

    package init() {}

    /// pacman's SigLevel when pacman.conf sets none.
    package static let defaultSigLevel: SigLevel = [.package, .packageOptional, .database, .databaseOptional]

    // MARK: Loading

    /// Reads `path` (a path on this machine) and its includes. `resolve` turns a path written
    /// in the file (absolute, in the system the file configures) into a path on this machine;
    /// the default takes paths as they are.
    package static func load(path: String, resolve: @escaping (String) -> String = { $0 }) throws -> PacmanConfig {
        var parser = Parser(resolve: resolve)
        try parser.parseFile(path, depth: 0)
        return try parser.finish()
    }

    /// Parses `text` as the contents of `path` (includes are read through `resolve`).
    package static func parse(_ text: String, path: String, resolve: @escaping (String) -> String = { $0 }) throws -> PacmanConfig {
        var parser = Parser(resolve: resolve)
        try parser.parse(text, file: path, depth: 0)
        return try parser.finish()
    }

    // MARK: Resolved values

    /// The global SigLevel.
    package func resolvedSigLevel() throws -> SigLevel {
        try SigLevelParser.parse(sigLevel, base: Self.defaultSigLevel)
    }

    /// LocalFileSigLevel, on top of the global SigLevel (as pacman merges them).
    package func resolvedLocalFileSigLevel() throws -> SigLevel {
        try SigLevelParser.parse(localFileSigLevel, base: try resolvedSigLevel())
    }

    package func resolvedRemoteFileSigLevel() throws -> SigLevel {
        try SigLevelParser.parse(remoteFileSigLevel, base: try resolvedSigLevel())
    }

    /// The repositories as `PackageSession` takes them (each SigLevel resolved against the global one).
    package func repositoryConfigs() -> [RepositoryConfig] {
        repositories.map { repository in
            var usage: DatabaseUsage = []
            for word in repository.usage {
                switch word {
                case "Sync": usage.insert(.sync)
                case "Search": usage.insert(.search)
                case "Install": usage.insert(.install)
                case "Upgrade": usage.insert(.upgrade)
                default: usage = .all
                }
            }
            return RepositoryConfig(name: repository.name, servers: repository.servers, sigLevel: sigLevel + repository.sigLevel,
                                    usage: usage.isEmpty ? .all : usage)
        }
    }

    /// The architectures, `auto` (or none) meaning this machine's.
    package var effectiveArchitectures: [String] {
        architectures.isEmpty ? [AlpmConfiguration.machineArchitecture] : architectures
    }
}

/// pacman's rules, one line at a time.
private struct Parser {
    let resolve: (String) -> String
    var config = PacmanConfig()
    /// nil before the first section header.
    var section: String?
    var sectionStart: (file: String, line: Int)?
    /// Server lines keep their position so that a missing Architecture can be named.
    var rawServers: [String: [(url: String, file: String, line: Int)]] = [:]

    static let optionKeys: Set<String> = [
        "RootDir", "DBPath", "CacheDir", "HookDir", "GPGDir", "LogFile", "HoldPkg", "IgnorePkg", "IgnoreGroup",
        "Include", "Architecture", "XferCommand", "NoUpgrade", "NoExtract", "CleanMethod", "SigLevel",
        "LocalFileSigLevel", "RemoteFileSigLevel", "UseSyslog", "Color", "NoProgressBar", "CheckSpace",
        "VerbosePkgLists", "ILoveCandy", "DisableDownloadTimeout", "ParallelDownloads", "DownloadUser",
        "DisableSandbox", "TotalDownload", "UseDelta",
    ]
    static let repositoryKeys: Set<String> = ["Server", "SigLevel", "Usage", "Include", "CacheServer"]

    init(resolve: @escaping (String) -> String) {
        self.resolve = resolve
    }

    mutating func parseFile(_ path: String, depth: Int, includedFrom: (file: String, line: Int)? = nil) throws {
        let text: String
        do {
            text = try Files.readString(path)
        } catch {
            if let includedFrom {
                throw PacmanConfigError(file: includedFrom.file, line: includedFrom.line, message: "cannot read the included file \(path): \(error)")
            }
            throw PacmanConfigError(file: path, line: nil, message: "cannot read: \(error)")
        }
        try parse(text, file: path, depth: depth)
    }

    mutating func parse(_ text: String, file: String, depth: Int) throws {
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            func fail(_ message: String) -> PacmanConfigError { PacmanConfigError(file: file, line: number, message: message) }

            if trimmed.hasPrefix("[") {
                guard trimmed.hasSuffix("]"), trimmed.count > 2 else { throw fail("malformed section header '\(trimmed)'") }
                let name = String(trimmed.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                guard !name.isEmpty, !name.contains("/"), !name.contains(" ") else { throw fail("'\(name)' cannot name a section") }
                if name != "options" {
                    if config.repositories.contains(where: { $0.name == name }) {
                        throw fail("repository [\(name)] is defined twice")
                    }
                    guard name != "local" else { throw fail("'local' is reserved for the database of installed packages") }
                    config.repositories.append(PacmanConfig.Repository(name: name, servers: [], sigLevel: [], usage: [], file: file, line: number))
                }
                section = name
                sectionStart = (file, number)
                continue
            }

            let key: String
            let value: String?
            if let equals = trimmed.firstIndex(of: "=") {
                key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            } else {
                key = trimmed
                value = nil
            }
            guard !key.isEmpty else { throw fail("a line without a key: '\(trimmed)'") }
            guard let section else { throw fail("'\(key)' comes before any section; put it under [options] or a [repository]") }
            if let value, value.isEmpty { throw fail("'\(key)' has an empty value") }

            if key == "Include" {
                guard let value else { throw fail("Include needs a file: Include = /etc/pacman.d/mirrorlist") }
                guard depth < 10 else { throw fail("Include nested more than 10 levels deep (a loop?)") }
                for path in try expand(value, fail: fail) {
                    try parseFile(path, depth: depth + 1, includedFrom: (file, number))
                }
                continue
            }
            if section == "options" {
                try option(key, value, fail: fail)
            } else {
                try repositoryDirective(key, value, section: section, file: file, line: number, fail: fail)
            }
        }
    }

    /// The files an Include names (glob patterns allowed), on this machine.
    func expand(_ pattern: String, fail: (String) -> PacmanConfigError) throws -> [String] {
        let resolved = resolve(pattern)
        guard pattern.contains(where: { "*?[".contains($0) }) else {
            guard Files.exists(resolved) else { throw fail("Include = \(pattern): no such file (\(resolved))") }
            return [resolved]
        }
        var result = glob_t()
        defer { globfree(&result) }
        let status = glob(resolved, 0, nil, &result)
        if status == GLOB_NOMATCH { return [] }
        guard status == 0 else { throw fail("Include = \(pattern): cannot expand the pattern") }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted()
    }

    mutating func option(_ key: String, _ value: String?, fail: (String) -> PacmanConfigError) throws {
        func required() throws -> String {
            guard let value else { throw fail("'\(key)' needs a value") }
            return value
        }
        func words() throws -> [String] { try required().split(separator: " ").map(String.init) }
        switch key {
        case "RootDir": config.rootDirectory = try required()
        case "DBPath": config.databasePath = try required()
        case "CacheDir": config.cacheDirectories.append(try required())
        case "HookDir": config.hookDirectories.append(try required())
        case "GPGDir": config.gpgDirectory = try required()
        case "LogFile": config.logFile = try required()
        case "HoldPkg": config.holdPackages += try words()
        case "IgnorePkg": config.ignorePackages += try words()
        case "IgnoreGroup": config.ignoreGroups += try words()
        case "NoUpgrade": config.noUpgrade += try words()
        case "NoExtract": config.noExtract += try words()
        case "Architecture":
            for word in try words() {
                let architecture = word == "auto" ? AlpmConfiguration.machineArchitecture : word
                if !config.architectures.contains(architecture) { config.architectures.append(architecture) }
            }
        case "SigLevel", "LocalFileSigLevel", "RemoteFileSigLevel":
            let levels = try words()
            try validate(levels, key: key, fail: fail)
            switch key {
            case "SigLevel": config.sigLevel += levels
            case "LocalFileSigLevel": config.localFileSigLevel += levels
            default: config.remoteFileSigLevel += levels
            }
        case "ParallelDownloads":
            guard let number = Int(try required()), number > 0 else { throw fail("ParallelDownloads must be a positive number, not '\(value ?? "")'") }
            config.parallelDownloads = number
        case "CheckSpace": config.checkSpace = true
        case "DisableDownloadTimeout": config.disableDownloadTimeout = true
        default:
            if Self.optionKeys.contains(key) { return }  // display and download-tool settings rast does not use
            if Self.repositoryKeys.contains(key) {
                throw fail("'\(key)' belongs in a [repository] section, not in [options]")
            }
            config.warnings.append(fail("directive '\(key)' in section [options] not recognized").description)
        }
    }

    mutating func repositoryDirective(_ key: String, _ value: String?, section: String, file: String, line: Int,
                                      fail: (String) -> PacmanConfigError) throws {
        guard let index = config.repositories.firstIndex(where: { $0.name == section }) else { return }
        switch key {
        case "Server":
            guard let value else { throw fail("Server needs a URL: Server = https://mirror.example/$repo/os/$arch") }
            guard value.contains("://") else { throw fail("Server = \(value) is not a URL (file:///path, http://, https://)") }
            rawServers[section, default: []].append((value, file, line))
        case "CacheServer":
            break  // pacman 6.1's cache servers are an optimisation rast does without
        case "SigLevel":
            guard let value else { throw fail("SigLevel needs a value") }
            let levels = value.split(separator: " ").map(String.init)
            try validate(levels, key: key, fail: fail)
            config.repositories[index].sigLevel += levels
        case "Usage":
            guard let value else { throw fail("Usage needs a value") }
            let words = value.split(separator: " ").map(String.init)
            for word in words where !["Sync", "Search", "Install", "Upgrade", "All"].contains(word) {
                throw fail("'\(word)' is not a Usage (Sync, Search, Install, Upgrade, All)")
            }
            config.repositories[index].usage += words
        default:
            if Self.optionKeys.contains(key) {
                throw fail("'\(key)' belongs in [options], not in the repository section [\(section)]")
            }
            config.warnings.append(fail("directive '\(key)' in section [\(section)] not recognized").description)
        }
    }

    func validate(_ words: [String], key: String, fail: (String) -> PacmanConfigError) throws {
        for word in words {
            do {
                _ = try SigLevelParser.parse([word])
            } catch {
                throw fail("\(key): '\(word)' is not a SigLevel (Never, Optional, Required, TrustedOnly, TrustAll, with an optional Package or Database prefix)")
            }
        }
    }

    /// Substitutes `$repo` and `$arch` now that every section is known.
    mutating func finish() throws -> PacmanConfig {
        let architecture = config.architectures.first
        for index in config.repositories.indices {
            let name = config.repositories[index].name
            for server in rawServers[name] ?? [] {
                var url = server.url.replacingOccurrences(of: "$repo", with: name)
                if url.contains("$arch") {
                    guard let architecture else {
                        throw PacmanConfigError(file: server.file, line: server.line,
                                                message: "Server = \(server.url) uses $arch, but [options] sets no Architecture")
                    }
                    url = url.replacingOccurrences(of: "$arch", with: architecture)
                }
                config.repositories[index].servers.append(url)
            }
        }
        return config
    }
}
