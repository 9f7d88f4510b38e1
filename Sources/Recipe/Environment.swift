import Foundation
import SystemPackage
import SystemSupport
import TOML
#if canImport(Glibc)
import Glibc
#endif

extension Recipe {
    /// Where kernel profiles are looked for, in order: `kernel-profiles` beside the recipe's
    /// folder (the repository layout: recipes/ and kernel-profiles/ side by side), inside it,
    /// in the current directory, and the installed copy.
    package func profilesDirectoryCandidates(workingDirectory: String? = nil) -> [String] {
        let cwd = workingDirectory ?? Recipe.currentDirectory()
        let candidates = [
            Paths.resolve("../kernel-profiles", relativeTo: baseDirectory),
            Paths.resolve("kernel-profiles", relativeTo: baseDirectory),
            Paths.resolve("kernel-profiles", relativeTo: cwd),
            "/usr/share/rast/kernel-profiles",
        ]
        return candidates.enumerated().filter { !candidates[..<$0.offset].contains($0.element) }.map(\.element)
    }

    /// The first existing directory of `profilesDirectoryCandidates`, or nil.
    package func findProfilesDirectory(workingDirectory: String? = nil) -> String? {
        profilesDirectoryCandidates(workingDirectory: workingDirectory).first(where: Files.isDirectory)
    }

    /// Problems outside the recipe text: files and directories it names that do not exist,
    /// kernel profiles missing from `profilesDirectory`. Each points at the key that names
    /// the missing thing. A nil `profilesDirectory` means none was found.
    package func environmentProblems(profilesDirectory: String?) -> [RecipeError] {
        var problems: [RecipeError] = []
        func report(_ keyPath: String, _ message: String) {
            let position = position(of: keyPath) ?? TOMLPosition(file: file, line: 1, column: 1)
            problems.append(RecipeError(position: position, keyPath: keyPath, message: message))
        }

        if let kernel {
            switch kernel.source {
            case .local(let path):
                if !Files.exists(path) {
                    report("kernel.source", "\(path) does not exist (for Debian's kernel source: apt-get install linux-source-6.1)")
                }
            case .git(let url, _) where url.hasPrefix("/") || url.hasPrefix("file://"):
                let path = url.hasPrefix("file://") ? String(url.dropFirst("file://".count)) : url
                if !Files.isDirectory(path) {
                    report("kernel.git", "\(path) is not a directory holding a git repository")
                }
            default:
                break
            }
            for (index, fragment) in kernel.fragments.enumerated() where !Files.exists(fragment) {
                report("kernel.fragments[\(index)]", "config fragment \(fragment) does not exist")
            }
            if kernel.isBuilt {
                if let profilesDirectory {
                    let available = ((try? FileManager.default.contentsOfDirectory(atPath: profilesDirectory)) ?? [])
                        .filter { $0.hasSuffix(".config") }
                        .map { String($0.dropLast(".config".count)) }
                        .sorted()
                    for profile in kernel.profiles where !Files.exists(profilesDirectory + "/" + profile + ".config") {
                        let list = available.isEmpty ? "it holds no profiles" : "available: " + available.joined(separator: ", ")
                        report(profile == kernel.profile && position(of: "kernel.profile") != nil ? "kernel.profile" : "kernel",
                               "kernel profile '\(profile)' does not exist: no \(profilesDirectory)/\(profile).config (\(list))")
                    }
                } else {
                    report(position(of: "kernel.profile") != nil ? "kernel.profile" : "kernel",
                           "no kernel-profiles directory found (looked in \(profilesDirectoryCandidates().joined(separator: ", ")))")
                }
            }
        }
        for (index, directory) in packages.local.enumerated() {
            if !Files.isDirectory(directory) {
                report("packages.local[\(index)]", "PKGBUILD directory \(directory) does not exist")
            } else if !Files.exists(directory + "/PKGBUILD") {
                report("packages.local[\(index)]", "\(directory) has no PKGBUILD")
            }
        }
        for (index, overlay) in files.enumerated() where !Files.exists(overlay.source) {
            report("files[\(index)].source", "\(overlay.source) does not exist")
        }
        if let problem = Self.fileSizeProblem(disk.size, in: output.directory) {
            report("disk.size", problem)
        }
        return RecipeErrors(problems).errors
    }

    /// Why a disk image of `size` bytes cannot be written into `directory` (the image is made
    /// there, sparse, before anything else), or nil. A sparse file of that size is made and
    /// removed again in the directory, or the closest existing one above it: the filesystem's
    /// largest file size is what limits it (16 TiB on ext4). Nil when that cannot be tried.
    static func fileSizeProblem(_ size: Int64, in directory: String) -> String? {
        var existing = directory
        while !Files.isDirectory(existing), existing != "/", !existing.isEmpty {
            existing = (existing as NSString).deletingLastPathComponent
        }
        guard let (file, probe) = try? FileDescriptor.createUnique(prefix: (existing == "/" ? "" : existing) + "/.rast-size-check-") else {
            return nil
        }
        defer { unlink(probe) }
        let failure = try? file.closeAfter(path: probe) { () throws -> Errno? in
            do {
                try file.resize(to: size)
                return nil
            } catch let error as Errno {
                return error
            }
        }
        guard let error = failure ?? nil, error == .fileTooLarge || error == .invalidArgument else { return nil }
        return "a disk of \(Recipe.describeSize(size)) cannot be written to \(directory): the filesystem holding it cannot hold a file that large (\(String(cString: strerror(error.rawValue)))); use a smaller size"
    }

    /// Throws `RecipeErrors` when `environmentProblems` finds any.
    package func validateEnvironment(profilesDirectory: String?) throws(RecipeErrors) {
        let problems = environmentProblems(profilesDirectory: profilesDirectory)
        if !problems.isEmpty { throw RecipeErrors(problems) }
    }
}
