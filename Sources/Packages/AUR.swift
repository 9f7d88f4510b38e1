// The AUR: packages no repository has, built from the AUR's git repositories.
//
// Each AUR package base is a git repository at BASE/NAME.git holding a PKGBUILD and its
// .SRCINFO (the PKGBUILD's fields as `key = value` lines, written by `makepkg --printsrcinfo`):
//
//   pkgbase = hello-aur            the base section: fields every package shares
//   	pkgver = 1.0
//   	pkgrel = 1
//   	epoch = 1                      optional
//   	arch = x86_64
//   	depends = libhello>=1.0        repeated; depends_x86_64 = ... for one architecture
//   	makedepends = git
//
//   pkgname = hello-aur            one section per package the base builds; fields here
//   	depends = other                replace the base's for that package
//
// rast clones with libgit2, builds with makepkg as an unprivileged user and leaves the
// packages for libalpm to install (`pacman -U`), the way an AUR helper would.
import Foundation
import Git
import SystemSupport

/// A .SRCINFO file.
package struct SourceInfo: Sendable, Equatable {
    package struct Package: Sendable, Equatable {
        package var name: String
        package var depends: [String]
    }

    package var base: String
    /// `[epoch:]pkgver-pkgrel`.
    package var version: String
    package var architectures: [String]
    package var makeDepends: [String]
    package var checkDepends: [String]
    package var packages: [Package]

    package func package(named name: String) -> Package? { packages.first { $0.name == name } }

    /// Parses .SRCINFO; `architecture` picks the `depends_ARCH` lines that apply.
    package static func parse(_ text: String, file: String, architecture: String = "x86_64") throws -> SourceInfo {
        var base: String?
        var pkgver: String?
        var pkgrel: String?
        var epoch: String?
        var architectures: [String] = []
        var baseDepends: [String] = []
        var makeDepends: [String] = []
        var checkDepends: [String] = []
        var packages: [(name: String, depends: [String]?)] = []

        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.range(of: " = ") else {
                throw AURError.malformedSourceInfo(file: file, line: index + 1, reason: "expected 'key = value', found '\(line)'")
            }
            let key = String(line[..<equals.lowerBound])
            let value = String(line[equals.upperBound...])
            let inPackage = !packages.isEmpty
            switch key {
            case "pkgbase":
                guard base == nil else {
                    throw AURError.malformedSourceInfo(file: file, line: index + 1, reason: "a second pkgbase")
                }
                base = value
            case "pkgname":
                packages.append((value, nil))
            case "pkgver" where !inPackage: pkgver = value
            case "pkgrel" where !inPackage: pkgrel = value
            case "epoch" where !inPackage: epoch = value
            case "arch" where !inPackage: architectures.append(value)
            case "makedepends", "makedepends_\(architecture)": makeDepends.append(value)
            case "checkdepends", "checkdepends_\(architecture)": checkDepends.append(value)
            case "depends", "depends_\(architecture)":
                if inPackage {
                    packages[packages.count - 1].depends = (packages[packages.count - 1].depends ?? []) + [value]
                } else {
                    baseDepends.append(value)
                }
            default:
                break  // descriptions, sources, checksums, ... are makepkg's business
            }
        }
        guard let base else { throw AURError.malformedSourceInfo(file: file, line: nil, reason: "no pkgbase") }
        guard let pkgver, let pkgrel else { throw AURError.malformedSourceInfo(file: file, line: nil, reason: "no pkgver or pkgrel") }
        guard !packages.isEmpty else { throw AURError.malformedSourceInfo(file: file, line: nil, reason: "no pkgname") }
        let version = (epoch.map { $0 + ":" } ?? "") + pkgver + "-" + pkgrel
        return SourceInfo(base: base, version: version, architectures: architectures, makeDepends: makeDepends,
                          checkDepends: checkDepends,
                          packages: packages.map { Package(name: $0.name, depends: $0.depends ?? baseDepends) })
    }
}

/// One package built from the AUR.
package struct AURBuild: Sendable, Equatable {
    package let name: String
    package let version: String
    /// The package file, in the destination directory.
    package let file: String

    package init(name: String, version: String, file: String) {
        self.name = name
        self.version = version
        self.file = file
    }
}

package enum AURError: Error, CustomStringConvertible, Sendable {
    case notFound(package: String, url: String)
    case malformedSourceInfo(file: String, line: Int?, reason: String)
    case missingSourceInfo(package: String, url: String)
    case notInBase(package: String, base: String, packages: [String])
    case unresolvable(package: String, dependency: String)
    case dependencyCycle([String])
    case clone(package: String, error: GitError)
    case build(package: String, error: MakepkgError)
    case noPackageFile(package: String, version: String, built: [String])

    package var description: String {
        switch self {
        case .notFound(let package, let url):
            return "\(package) is in no repository and not in the AUR (\(url) has no PKGBUILD)"
        case .malformedSourceInfo(let file, let line, let reason):
            return "\(file)\(line.map { ":\($0)" } ?? ""): malformed .SRCINFO: \(reason)"
        case .missingSourceInfo(let package, let url):
            return "the AUR repository of \(package) (\(url)) has a PKGBUILD but no .SRCINFO"
        case .notInBase(let package, let base, let packages):
            return "the AUR package base \(base) builds \(packages.joined(separator: ", ")), not \(package)"
        case .unresolvable(let package, let dependency):
            return "\(package) depends on \(dependency), which no repository, installed package or AUR package provides"
        case .dependencyCycle(let chain):
            return "the AUR packages depend on each other in a cycle: \(chain.joined(separator: " -> "))"
        case .clone(let package, let error):
            return "cannot clone the AUR repository of \(package): \(error)"
        case .build(let package, let error):
            return "building \(package) from the AUR failed: \(error)"
        case .noPackageFile(let package, let version, let built):
            return "makepkg built \(built.isEmpty ? "nothing" : built.joined(separator: ", ")) but no package file for \(package) \(version)"
        }
    }
}

/// Fetches AUR package bases with libgit2 and builds them with makepkg.
package struct AURClient: Sendable {
    package static let defaultBaseURL = "https://aur.archlinux.org"

    /// Where the AUR's git repositories are (`BASE/NAME.git`).
    package var baseURL: String
    package var makepkg: Makepkg
    package var architecture: String

    package init(baseURL: String = AURClient.defaultBaseURL, makepkg: Makepkg = Makepkg(), architecture: String = "x86_64") {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.makepkg = makepkg
        self.architecture = architecture
    }

    /// The git URL of a package base.
    package func repositoryURL(_ name: String) -> String { baseURL + "/" + name + ".git" }

    /// Clones `name` into `workDirectory/name` and reads its .SRCINFO.
    package func fetch(_ name: String, into workDirectory: String) throws -> (directory: String, info: SourceInfo) {
        let url = repositoryURL(name)
        let directory = workDirectory + "/" + name
        if Files.exists(directory) { try Files.removeTree(directory) }
        do {
            _ = try Repository.clone(from: url, to: directory)
        } catch let error as GitError {
            // The AUR answers unknown names with an empty repository; a plain git server with 404.
            if error.isNotFound || error.message.contains("404") || error.message.lowercased().contains("not found") {
                throw AURError.notFound(package: name, url: url)
            }
            throw AURError.clone(package: name, error: error)
        }
        guard Files.exists(directory + "/PKGBUILD") else { throw AURError.notFound(package: name, url: url) }
        guard let text = try? Files.readString(directory + "/.SRCINFO") else {
            throw AURError.missingSourceInfo(package: name, url: url)
        }
        let info = try SourceInfo.parse(text, file: url + "/.SRCINFO", architecture: architecture)
        guard info.package(named: name) != nil else {
            throw AURError.notInBase(package: name, base: info.base, packages: info.packages.map(\.name))
        }
        return (directory, info)
    }

    /// Fetches `names` and every AUR package they need (a dependency `isProvided` does not
    /// know), builds them, dependencies first, and returns the built packages in that order.
    /// Package files go to `destination`.
    package func build(_ names: [String], workDirectory: String, destination: String,
                      isProvided: (String) -> Bool, progress: ProgressReporter) throws -> [AURBuild] {
        var fetched: [String: (directory: String, info: SourceInfo)] = [:]
        var order: [String] = []
        var visiting: [String] = []

        func visit(_ name: String, neededBy: String?) throws {
            if order.contains(name) { return }
            if let index = visiting.firstIndex(of: name) { throw AURError.dependencyCycle(Array(visiting[index...]) + [name]) }
            visiting.append(name)
            defer { visiting.removeLast() }
            progress.note("aur: fetching \(name) from \(repositoryURL(name))")
            let source: (directory: String, info: SourceInfo)
            do {
                source = try fetch(name, into: workDirectory)
            } catch AURError.notFound(let package, _) where neededBy != nil {
                throw AURError.unresolvable(package: neededBy ?? "?", dependency: package)
            }
            fetched[name] = source
            for dependency in source.info.package(named: name)?.depends ?? [] {
                let dependencyName = Self.name(of: dependency)
                if isProvided(dependency) || order.contains(dependencyName) { continue }
                try visit(dependencyName, neededBy: name)
            }
            order.append(name)
        }
        for name in names { try visit(name, neededBy: nil) }

        var builds: [AURBuild] = []
        for name in order {
            guard let source = fetched[name] else { continue }
            progress.begin("aur: building \(name) \(source.info.version) with makepkg")
            let result: Makepkg.Result
            do {
                result = try makepkg.build(source.directory, into: destination) { line in progress.note(line) }
            } catch let error as MakepkgError {
                throw AURError.build(package: name, error: error)
            }
            let prefix = name + "-" + source.info.version + "-"
            guard let file = result.packages.first(where: { ($0 as NSString).lastPathComponent.hasPrefix(prefix) }) else {
                throw AURError.noPackageFile(package: name, version: source.info.version,
                                             built: result.packages.map { ($0 as NSString).lastPathComponent })
            }
            progress.end("aur: building \(name)", summary: (file as NSString).lastPathComponent)
            builds.append(AURBuild(name: name, version: source.info.version, file: file))
        }
        return builds
    }

    /// "libfoo>=2" -> "libfoo".
    static func name(of dependency: String) -> String {
        String(dependency.prefix { !"<>=".contains($0) })
    }
}
