import Foundation
import Packages
import SystemSupport

/// The package stage: builds the recipe's PKGBUILD directories with makepkg (as an
/// unprivileged user) into the build's local repository, next to the kernel package.
///
/// Each result is cached under `cache/packages/KEY/`, where KEY hashes every file of the
/// PKGBUILD directory, the payload staged for it and makepkg's version: an unchanged
/// PKGBUILD is not rebuilt.
///
/// A PKGBUILD directory may hold a `rast.inputs` file naming payload that rast-build stages
/// into `inputs/` of the build copy before makepkg runs (makepkg's user cannot read the
/// build tree of the machine, and the payload is the build's own):
/// ```
/// binary rast       inputs/bin/rast and, from ldd, inputs/lib/* (every shared library it needs)
/// data bootloader   inputs/share/bootloader (a directory of rast's data files)
/// host /usr/bin/crun  a program of the build machine: inputs/bin/crun and its libraries in inputs/lib/*
/// ```
package struct LocalPackagesStage {
    package struct Output: Sendable {
        package let repository: LocalRepository
        /// name -> package file in the repository.
        package let packages: [String: String]
        package let cacheHits: Int
    }

    package let pkgbuilds: [String]
    package let extraPackages: [String]
    package let workDirectory: String
    /// Where makepkg's logs are kept (they outlive a failed build).
    package let logDirectory: String
    package let cacheDirectory: String
    package let dataDirectory: String
    package let rastBinary: String?
    package let jobs: Int
    package let progress: ProgressReporter

    package static let repositoryName = "rast-local"

    package func run() throws -> Output {
        let repository = try LocalRepository(name: Self.repositoryName, directory: workDirectory + "/repo")
        var files: [String] = extraPackages
        var hits = 0
        // makepkg's user needs a build area it can reach: its default under /tmp, not the work
        // directory (which may sit below a private home directory).
        let makepkg = Makepkg(jobs: jobs, logDirectory: logDirectory, packager: "rast-build <rast-build@localhost>")
        for directory in pkgbuilds {
            try checkCancelled()
            let name = (directory as NSString).lastPathComponent
            let inputs = try plan(directory)
            let key = try cacheKey(inputs)
            let cached = cacheDirectory + "/packages/" + key
            // Concurrent builds of the same package wait for each other instead of racing.
            let lock = try FileLock(path: cached + ".lock", wait: true) {
                self.progress.note("packages: waiting for another build of \(name)")
            }
            defer { lock.unlock() }
            if Files.isDirectory(cached), let found = try? FileManagerShim.contents(of: cached).filter({ $0.contains(".pkg.tar") }), !found.isEmpty {
                progress.note("packages: \(name) is cached")
                files += found.map { cached + "/" + $0 }
                hits += 1
                continue
            }
            let stopwatch = Stopwatch()
            progress.begin("packages: building \(name) with makepkg")
            let scratch = cached + ".partial"
            try? Files.removeTree(scratch)
            try Files.createDirectory(scratch)
            let result: Makepkg.Result
            do {
                result = try makepkg.build(try stage(inputs, name: name), into: scratch)
            } catch let error as MakepkgError {
                try? Files.removeTree(scratch)
                throw UserError("building the package in \(directory) with makepkg failed: \(error)", cause: error)
            }
            try? Files.removeTree(cached)
            try SystemError.check("rename", path: scratch) { rename(scratch, cached) }
            files += result.packages.map { cached + "/" + ($0 as NSString).lastPathComponent }
            progress.end("packages: \(name)", summary: "built in \(stopwatch.formatted)")
        }
        _ = try repository.add(files)
        var packages: [String: String] = [:]
        for package in try repository.packages() { packages[package.name] = repository.directory + "/" + package.fileName }
        return Output(repository: repository, packages: packages, cacheHits: hits)
    }

    /// What makepkg gets for one PKGBUILD directory: the directories and single files its build
    /// copy is made of. The cache key hashes them in place, so a cache hit copies nothing; the
    /// copy is made only for makepkg.
    struct Inputs {
        /// Directories copied whole (modes and links kept): the PKGBUILD directory at "", data.
        let trees: [(path: String, source: String)]
        /// Single files copied with `cp -L`: the rast binary and its shared libraries.
        let singles: [(path: String, source: String)]

        /// Every file of the build copy: (path in the copy, source), sorted by path.
        func files() throws -> [(path: String, source: String)] {
            var files = singles
            for tree in trees {
                let prefix = tree.path.isEmpty ? "" : tree.path + "/"
                files += try LocalPackagesStage.regularFiles(under: tree.source).map { (prefix + $0, tree.source + "/" + $0) }
            }
            return files.sorted { $0.path < $1.path }
        }
    }

    func plan(_ directory: String) throws -> Inputs {
        guard Files.exists(directory + "/PKGBUILD") else {
            throw UserError("\(directory) has no PKGBUILD (named in the recipe's packages.local)")
        }
        var trees: [(path: String, source: String)] = [("", directory)]
        var singles: [(path: String, source: String)] = []
        let inputsFile = directory + "/rast.inputs"
        if Files.exists(inputsFile) {
            for line in try Files.readString(inputsFile).split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                guard let kind = fields.first, !kind.hasPrefix("#"), fields.count == 2 else { continue }
                switch kind {
                case "binary":
                    guard let binary = rastBinary, fields[1] == "rast" else {
                        throw UserError("\(directory)/rast.inputs asks for the binary '\(fields[1])', but no rast binary was found; build it (`make build`) or set RAST_BINARY")
                    }
                    singles.append(("inputs/bin/rast", binary))
                    for (soname, path) in try SharedLibraries.closure(of: binary) { singles.append(("inputs/lib/" + soname, path)) }
                case "host":
                    let program = fields[1]
                    guard program.hasPrefix("/"), Files.exists(program) else {
                        throw UserError("\(directory)/rast.inputs names the host program \(program), which is not installed on this machine (see the PKGBUILD for the Debian package)")
                    }
                    singles.append(("inputs/bin/" + (program as NSString).lastPathComponent, program))
                    for (soname, path) in try SharedLibraries.closure(of: program) { singles.append(("inputs/lib/" + soname, path)) }
                case "data":
                    let source = dataDirectory + "/" + fields[1]
                    guard Files.isDirectory(source) else { throw UserError("\(directory)/rast.inputs names data '\(fields[1])', but \(source) does not exist") }
                    trees.append(("inputs/share/" + fields[1], source))
                default:
                    throw UserError("\(directory)/rast.inputs: unknown payload kind '\(kind)' (binary, host or data)")
                }
            }
        }
        return Inputs(trees: trees, singles: singles)
    }

    /// The build copy of a PKGBUILD directory with its payload in inputs/, for makepkg.
    func stage(_ inputs: Inputs, name: String) throws -> String {
        let staged = workDirectory + "/pkgbuilds/" + name
        try? Files.removeTree(staged)
        try Files.createDirectory(workDirectory + "/pkgbuilds")
        for tree in inputs.trees {
            let target = tree.path.isEmpty ? staged : staged + "/" + tree.path
            try Files.createDirectory((target as NSString).deletingLastPathComponent)
            try TreeCopy.copyContents(of: tree.source, into: target)
        }
        for file in inputs.singles {
            try Files.createDirectory(staged + "/" + (file.path as NSString).deletingLastPathComponent)
            try Command("cp", ["-L", file.source, staged + "/" + file.path]).run()
        }
        return staged
    }

    /// Hashes the makepkg version and every input file's path and content (symbolic links
    /// followed, as `cp -L` and makepkg see them).
    func cacheKey(_ inputs: Inputs) throws -> String {
        var hasher = SHA256()
        hasher.update("rast package cache v1\n")
        hasher.update(try Command("makepkg", ["--version"]).output().split(separator: "\n").first.map(String.init) ?? "")
        for file in try inputs.files() {
            hasher.update("\(file.path) \(try SHA256.hash(file: file.source))\n")
        }
        return hasher.finalize()
    }

    /// The files under a directory (relative paths) that are not directories once symbolic
    /// links are followed.
    static func regularFiles(under directory: String) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else {
            throw UserError("cannot read the directory \(directory)")
        }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String {
            if !Files.isDirectory(directory + "/" + path) { paths.append(path) }
        }
        return paths
    }
}

/// The shared libraries a binary needs, found with ldd, with their sonames.
package enum SharedLibraries {
    package static func closure(of binary: String) throws -> [(soname: String, path: String)] {
        let output = try Command("ldd", [binary]).output()
        var result: [(String, String)] = []
        for line in output.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.contains("=> not found") {
                throw UserError("\(binary) needs \(text.split(separator: " ").first ?? "") which is not installed on this machine")
            }
            if let arrow = text.range(of: " => ") {
                let soname = String(text[..<arrow.lowerBound])
                let path = text[arrow.upperBound...].split(separator: " ").first.map(String.init) ?? ""
                if path.hasPrefix("/") { result.append((soname, path)) }
            } else if text.hasPrefix("/") {
                let path = text.split(separator: " ").first.map(String.init) ?? ""
                result.append(((path as NSString).lastPathComponent, path))
            }
        }
        return result
    }
}
