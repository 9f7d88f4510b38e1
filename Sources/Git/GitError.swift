import CGit2

/// A failed libgit2 call: its return code, libgit2's own message and error class
/// (git_error_last), the function and what it worked on (a path, URL or revision).
package struct GitError: Error, CustomStringConvertible, Sendable, Equatable {
    /// libgit2's return code (GIT_ENOTFOUND = -3, GIT_ECONFLICT = -13, ...).
    package let code: Int32
    /// libgit2's error class (GIT_ERROR_NET = 12, ...); see `className`.
    package let errorClass: Int32
    package let message: String
    package let function: String
    package let subject: String

    package init(code: Int32, errorClass: Int32, message: String, function: String, subject: String) {
        self.code = code
        self.errorClass = errorClass
        self.message = message
        self.function = function
        self.subject = subject
    }

    /// The requested object, reference, remote or branch does not exist.
    package var isNotFound: Bool { code == GIT_ENOTFOUND.rawValue }
    /// Local changes would be overwritten by a checkout.
    package var isConflict: Bool { code == GIT_ECONFLICT.rawValue }

    /// The error class as libgit2 names it ("net", "reference", "checkout", ...).
    package var className: String {
        let names = ["none", "nomemory", "os", "invalid", "reference", "zlib", "repository", "config", "regex",
                     "odb", "index", "object", "net", "tag", "tree", "indexer", "ssl", "submodule", "thread",
                     "stash", "checkout", "fetchhead", "merge", "ssh", "filter", "revert", "callback",
                     "cherrypick", "describe", "rebase", "filesystem", "patch", "worktree", "sha", "http",
                     "internal"]
        return names.indices.contains(Int(errorClass)) ? names[Int(errorClass)] : "class \(errorClass)"
    }

    package var description: String {
        "\(function) \(subject): \(message) (libgit2 \(className) error, code \(code))"
    }

    /// Runs one libgit2 call and turns a negative result into an error carrying
    /// git_error_last()'s message and class.
    @discardableResult
    static func check(_ function: String, _ subject: String, _ body: () -> Int32) throws -> Int32 {
        git_error_clear()  // so a message left by an earlier call is not reported for this one
        let result = body()
        guard result < 0 else { return result }
        throw lastError(code: result, function: function, subject: subject)
    }

    static func lastError(code: Int32, function: String, subject: String) -> GitError {
        if let last = git_error_last() {
            let message = last.pointee.message.map { String(cString: $0) } ?? ""
            return GitError(code: code, errorClass: last.pointee.klass, message: message.isEmpty ? "libgit2 error \(code)" : message,
                            function: function, subject: subject)
        }
        return GitError(code: code, errorClass: 0, message: "libgit2 error \(code)", function: function, subject: subject)
    }
}
