import Foundation
import SystemSupport

/// The real pacman, pointed at a test root and database with every other path (config,
/// cache, hooks, keyring, log) inside a scratch directory, for cross-checking libalpm work.
package struct RealPacman: Sendable {
    package let root: String
    package let databasePath: String
    package let scratch: String
    package let config: String

    /// Writes `scratch/pacman.conf` (SigLevel Never) with the given `[name]` -> server sections.
    package init(root: String, databasePath: String, scratch: String, repositories: [(String, String)] = []) throws {
        try Require.programs("pacman")
        self.root = root
        self.databasePath = databasePath
        self.scratch = scratch
        var text = "[options]\nArchitecture = x86_64\nSigLevel = Never\nLocalFileSigLevel = Never\n"
        for (name, server) in repositories { text += "\n[\(name)]\nServer = \(server)\n" }
        config = scratch + "/pacman.conf"
        try Files.write(config, string: text)
    }

    /// Runs `pacman ARGUMENTS` with `--root`, `--dbpath` and the scratch paths.
    @discardableResult
    package func run(_ arguments: [String], check: Bool = true) throws -> CommandResult {
        let options = ["--root", root, "--dbpath", databasePath, "--config", config,
                       "--cachedir", scratch + "/pacman-cache", "--hookdir", scratch + "/pacman-hooks",
                       "--gpgdir", scratch + "/pacman-gnupg", "--logfile", scratch + "/pacman.log",
                       "--noconfirm", "--color", "never"]
        return try Command("pacman", options + arguments, environment: ["LANG": "C"]).run(check: check)
    }

    /// `pacman -Q` as "name version" lines (empty when nothing is installed).
    package func installed() throws -> [String] {
        let result = try run(["-Q"], check: false)
        // pacman -Q exits 1 with no output when the database is empty.
        if result.status != 0, result.standardOutput.isEmpty, result.standardError.isEmpty { return [] }
        guard result.status == 0 else {
            throw UserError("pacman -Q failed (status \(result.status)): \(result.combinedTail(lines: 5))")
        }
        return result.standardOutput.split(separator: "\n").map(String.init)
    }
}
