import Foundation
import SystemSupport

/// A git repository made and inspected with the `git` command line tool, the reference
/// the Git module's results are checked against. Identity and dates are fixed so commits
/// do not depend on the machine's configuration.
package struct GitRepositoryFixture: Sendable {
    package let path: String

    /// Runs `git init` at `path` (created if needed) with `initialBranch` as HEAD.
    package init(at path: String, bare: Bool = false, initialBranch: String = "main") throws {
        try Require.programs("git")
        self.path = path
        try Files.createDirectory(path)
        _ = try GitRepositoryFixture.run(["init", "-q", "-b", initialBranch] + (bare ? ["--bare"] : []) + [path])
    }

    /// Wraps an existing repository (a clone made by the code under test).
    package init(existing path: String) {
        self.path = path
    }

    /// `git -C path ARGS`, returning stdout without the trailing newline.
    @discardableResult
    package func git(_ arguments: String...) throws -> String {
        try GitRepositoryFixture.run(["-C", path] + arguments)
    }

    /// Writes `contents` to `file` (relative to the working tree), commits it and returns
    /// the new commit ID.
    @discardableResult
    package func commit(_ file: String, _ contents: String, message: String? = nil) throws -> String {
        let target = path + "/" + file
        if let slash = target.lastIndex(of: "/") { try Files.createDirectory(String(target[..<slash])) }
        try Files.write(target, string: contents)
        try git("add", file)
        try git("commit", "-q", "-m", message ?? "change \(file)")
        return try git("rev-parse", "HEAD")
    }

    /// The commit a revision names (peeling tags).
    package func revParse(_ revision: String) throws -> String {
        try git("rev-parse", "--verify", "-q", revision + "^{commit}")
    }

    private static func run(_ arguments: [String]) throws -> String {
        let environment = [
            "GIT_AUTHOR_NAME": "rast test", "GIT_AUTHOR_EMAIL": "test@rastos.invalid",
            "GIT_COMMITTER_NAME": "rast test", "GIT_COMMITTER_EMAIL": "test@rastos.invalid",
            "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
        ]
        return try Command("git", arguments, environment: environment).output()
    }
}
