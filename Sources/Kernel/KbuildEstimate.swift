import Foundation
import SystemSupport

/// Progress for a kernel build comes from kbuild's own short lines ("  CC      fs/btrfs/ctree.o").
/// Their total is known exactly once a tree was built (the count is kept in the build tree);
/// for a first build it is estimated from the number of enabled options, with a ratio
/// measured on this project's profiles and refined by every completed build.
enum KbuildEstimate {
    /// Steps per enabled option, measured on linux 6.1 with the base profile (1926 steps,
    /// 626 options). Refined per cache by `learn`.
    static let defaultRatio = 3.1

    /// Whether a make output line is one kbuild step.
    static func isStep(_ line: String) -> Bool {
        let utf8 = line.utf8
        guard utf8.count > 10, utf8.starts(with: [32, 32]) else { return false }
        let tag = line.dropFirst(2).prefix { $0 != " " }
        return !tag.isEmpty && tag.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" || $0 == "-" }
    }

    static func enabledOptions(buildDirectory: String) -> Int? {
        guard let config = try? Files.readString(buildDirectory + "/.config") else { return nil }
        return config.split(separator: "\n").filter { $0.hasPrefix("CONFIG_") && ($0.hasSuffix("=y") || $0.hasSuffix("=m")) }.count
    }

    /// The estimated number of steps of a cold build in `buildDirectory`.
    static func steps(buildDirectory: String, sourceTree: String, ratioFile: String? = nil) throws -> Int64 {
        guard let options = enabledOptions(buildDirectory: buildDirectory) else {
            throw UserError("no .config in \(buildDirectory)")
        }
        let ratio = ratioFile.flatMap { try? Files.readString($0) }.flatMap { Double($0) } ?? defaultRatio
        return Int64(Double(options) * ratio)
    }

    /// Records the ratio of a completed full build.
    static func learn(steps: Int64, buildDirectory: String, ratioFile: String) {
        guard let options = enabledOptions(buildDirectory: buildDirectory), options > 0 else { return }
        try? Files.writeAtomically(ratioFile, string: String(Double(steps) / Double(options)))
    }
}
