// Git: clone, fetch, check out and resolve through libgit2 (no `git` processes).
//
// Local paths, file:// and http(s):// URLs. libgit2 speaks only git's smart protocol
// over HTTP, not the "dumb" protocol of static file servers (checked by GitTests), so an
// HTTP remote must be served by git-http-backend or a forge.
import CGit2

/// Process-wide libgit2 settings.
package enum Git {
    /// The libgit2 version ("1.5.1").
    package static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        ensureInitialized()
        git_libgit2_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether repositories owned by another user are refused (libgit2's default, like
    /// git's safe.directory). rast runs as root on build directories owned by the build user.
    package static func setOwnerValidation(_ enabled: Bool) throws {
        ensureInitialized()
        try GitError.check("git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION)", String(enabled)) {
            rast_git_set_owner_validation(enabled ? 1 : 0)
        }
    }

    /// Reads global (user) configuration from `directory` instead of $HOME, so the host's
    /// ~/.gitconfig cannot change what rast does.
    package static func setGlobalConfigurationDirectory(_ directory: String) throws {
        ensureInitialized()
        try GitError.check("git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH)", directory) {
            rast_git_set_search_path(GIT_CONFIG_LEVEL_GLOBAL, directory)
        }
    }

    static func ensureInitialized() { _ = libgit2Initialized }
}

/// git_libgit2_init, once per process (a global is initialised thread-safely); libgit2 is
/// never shut down, since other threads may still use it.
private let libgit2Initialized: Int32 = git_libgit2_init()

/// Where HEAD points.
package struct Head: Sendable, Equatable {
    /// The commit HEAD resolves to; nil in a repository without commits.
    package let commitID: String?
    /// The branch HEAD is attached to; nil when HEAD is detached.
    package let branch: String?

    package var isDetached: Bool { branch == nil }

    package init(commitID: String?, branch: String?) {
        self.commitID = commitID
        self.branch = branch
    }
}

/// A git repository on disk, owned through a libgit2 git_repository handle.
package final class Repository {
    /// The path the repository was opened or cloned at.
    package let path: String
    private let pointer: OpaquePointer

    /// Opens the repository at `path` (a working tree, its .git directory or a bare repository).
    package init(opening path: String) throws {
        Git.ensureInitialized()
        var repository: OpaquePointer?
        try GitError.check("git_repository_open", path) { git_repository_open(&repository, path) }
        guard let repository else { throw GitError(code: -1, errorClass: 0, message: "no repository returned", function: "git_repository_open", subject: path) }
        self.path = path
        pointer = repository
    }

    private init(path: String, pointer: OpaquePointer) {
        self.path = path
        self.pointer = pointer
    }

    deinit { git_repository_free(pointer) }

    /// Clones `url` (a path, file:// or http(s)://) into the new directory `path`, checking
    /// out `branch` (default: the remote's HEAD), or nothing when `bare`.
    package static func clone(from url: String, to path: String, branch: String? = nil, bare: Bool = false) throws -> Repository {
        Git.ensureInitialized()
        var options = git_clone_options()
        try GitError.check("git_clone_options_init", url) { rast_git_clone_options_init(&options) }
        options.bare = bare ? 1 : 0
        var repository: OpaquePointer?
        try withOptionalCString(branch) { branchName in
            options.checkout_branch = branchName
            try GitError.check("git_clone", url) { git_clone(&repository, url, path, &options) }
        }
        guard let repository else { throw GitError(code: -1, errorClass: 0, message: "no repository returned", function: "git_clone", subject: url) }
        return Repository(path: path, pointer: repository)
    }

    /// The working tree directory (with a trailing slash); nil for a bare repository.
    package var workingDirectory: String? { git_repository_workdir(pointer).map { String(cString: $0) } }

    package var isBare: Bool { git_repository_is_bare(pointer) == 1 }

    /// The URL of remote `name`.
    package func remoteURL(_ name: String = "origin") throws -> String {
        let remote = try lookupRemote(name)
        return git_remote_url(remote.pointer).map { String(cString: $0) } ?? ""
    }

    /// Fetches from remote `name` with its configured refspecs (remote-tracking branches
    /// and the tags that point into what was fetched).
    package func fetch(remote name: String = "origin") throws {
        let remote = try lookupRemote(name)
        var options = git_fetch_options()
        try GitError.check("git_fetch_options_init", name) { rast_git_fetch_options_init(&options) }
        try GitError.check("git_remote_fetch", name) { git_remote_fetch(remote.pointer, nil, &options, nil) }
    }

    /// The commit ID (40 hex digits) a revision names: a branch, remote-tracking branch, tag
    /// (annotated tags are peeled), abbreviated or full commit ID, or any git revision syntax.
    package func resolve(_ revision: String) throws -> String {
        let commit = try commitObject(revision)
        return objectID(commit.pointer)
    }

    /// Where HEAD points: its commit, and the branch unless detached.
    package func head() throws -> Head {
        var reference: OpaquePointer?
        git_error_clear()
        let result = git_repository_head(&reference, pointer)
        if result == GIT_EUNBORNBRANCH.rawValue {
            // No commits yet: HEAD names a branch that does not exist.
            var symbolic: OpaquePointer?
            try GitError.check("git_reference_lookup", "HEAD") { git_reference_lookup(&symbolic, pointer, "HEAD") }
            let head = Owned(symbolic, git_reference_free)
            let target = head.flatMap { git_reference_symbolic_target($0.pointer) }.map { String(cString: $0) }
            return Head(commitID: nil, branch: target.map(shortBranchName))
        }
        guard result == 0, let reference else {
            throw GitError.lastError(code: result, function: "git_repository_head", subject: path)
        }
        let head = Owned(reference, git_reference_free)!
        var peeled: OpaquePointer?
        try GitError.check("git_reference_peel", "HEAD") { git_reference_peel(&peeled, head.pointer, GIT_OBJECT_COMMIT) }
        let commit = try owned(peeled, git_object_free, "git_reference_peel", "HEAD")
        let detached = git_repository_head_detached(pointer) == 1
        let branch = detached ? nil : git_reference_shorthand(head.pointer).map { String(cString: $0) }
        return Head(commitID: objectID(commit.pointer), branch: branch)
    }

    /// Switches to local branch `name`. A branch that exists only as `origin/name` is
    /// created from it and set to track it, as `git checkout name` does. `force` discards
    /// local changes that would be overwritten; without it they make the checkout fail
    /// and nothing changes.
    package func checkout(branch name: String, force: Bool = false) throws {
        if let local = try lookupBranch(name, GIT_BRANCH_LOCAL) {
            let commit = try peelToCommit(local.pointer, subject: name)
            try checkoutTree(commit, force: force, subject: name)
            try setHead(to: local)
            return
        }
        let remoteName = "origin/" + name
        guard let tracking = try lookupBranch(remoteName, GIT_BRANCH_REMOTE) else {
            // Report libgit2's own "not found" for the name asked for.
            var reference: OpaquePointer?
            git_error_clear()
            let result = git_branch_lookup(&reference, pointer, name, GIT_BRANCH_LOCAL)
            git_reference_free(reference)
            throw GitError.lastError(code: result < 0 ? result : GIT_ENOTFOUND.rawValue, function: "git_branch_lookup", subject: name)
        }
        let commit = try peelToCommit(tracking.pointer, subject: remoteName)
        // The tree first: when local changes block it, no branch is left behind.
        try checkoutTree(commit, force: force, subject: name)
        var reference: OpaquePointer?
        try GitError.check("git_branch_create", name) { git_branch_create(&reference, pointer, name, commit.pointer, 0) }
        let branch = try owned(reference, git_reference_free, "git_branch_create", name)
        try GitError.check("git_branch_set_upstream", name) { git_branch_set_upstream(branch.pointer, remoteName) }
        try setHead(to: branch)
    }

    /// Checks out `revision` (branch, tag, commit ID, ...) with a detached HEAD.
    package func checkout(detached revision: String, force: Bool = false) throws {
        let commit = try commitObject(revision)
        try checkoutTree(commit, force: force, subject: revision)
        try GitError.check("git_repository_set_head_detached", revision) {
            git_repository_set_head_detached(pointer, git_object_id(commit.pointer))
        }
    }

    /// Creates branch `newBranch` at `revision` and switches to it (`git checkout -b`);
    /// `moveExisting` moves a branch of that name, even the current one, instead of
    /// failing (`git checkout -B`).
    package func checkout(_ revision: String, newBranch: String, moveExisting: Bool = false, force: Bool = false) throws {
        let commit = try commitObject(revision)
        let existing = try lookupBranch(newBranch, GIT_BRANCH_LOCAL)
        if existing != nil, !moveExisting {
            // Let libgit2 refuse, for its own message; it changes nothing when it does.
            var reference: OpaquePointer?
            try GitError.check("git_branch_create", newBranch) { git_branch_create(&reference, pointer, newBranch, commit.pointer, 0) }
            git_reference_free(reference)
        }
        try checkoutTree(commit, force: force, subject: revision)
        var reference: OpaquePointer?
        if let existing, git_branch_is_head(existing.pointer) == 1 {
            // libgit2 will not force-create over the checked-out branch; move it instead.
            try GitError.check("git_reference_set_target", newBranch) {
                git_reference_set_target(&reference, existing.pointer, git_object_id(commit.pointer), "checkout: moving \(newBranch) to \(revision)")
            }
        } else {
            try GitError.check("git_branch_create", newBranch) {
                git_branch_create(&reference, pointer, newBranch, commit.pointer, moveExisting ? 1 : 0)
            }
        }
        let branch = try owned(reference, git_reference_free, "git_branch_create", newBranch)
        try setHead(to: branch)
    }

    /// The names of the local branches.
    package func branches() throws -> [String] {
        var iterator: OpaquePointer?
        try GitError.check("git_branch_iterator_new", path) { git_branch_iterator_new(&iterator, pointer, GIT_BRANCH_LOCAL) }
        let owner = try owned(iterator, git_branch_iterator_free, "git_branch_iterator_new", path)
        var names: [String] = []
        while true {
            var reference: OpaquePointer?
            var type = GIT_BRANCH_LOCAL
            git_error_clear()
            let result = git_branch_next(&reference, &type, owner.pointer)
            if result == GIT_ITEROVER.rawValue { break }
            guard result == 0, let branch = Owned(reference, git_reference_free) else {
                throw GitError.lastError(code: result, function: "git_branch_next", subject: path)
            }
            if let name = git_reference_shorthand(branch.pointer) { names.append(String(cString: name)) }
        }
        return names.sorted()
    }

    /// The names of the tags.
    package func tags() throws -> [String] {
        var list = git_strarray()
        try GitError.check("git_tag_list", path) { git_tag_list(&list, pointer) }
        defer { git_strarray_dispose(&list) }
        return (0..<list.count).compactMap { list.strings[$0].map { String(cString: $0) } }.sorted()
    }

    // MARK: - Internals

    /// The branch, or nil when there is none of that name.
    private func lookupBranch(_ name: String, _ type: git_branch_t) throws -> Owned? {
        var reference: OpaquePointer?
        git_error_clear()
        let result = git_branch_lookup(&reference, pointer, name, type)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        guard result == 0 else { throw GitError.lastError(code: result, function: "git_branch_lookup", subject: name) }
        return try owned(reference, git_reference_free, "git_branch_lookup", name)
    }

    private func setHead(to branch: Owned) throws {
        let referenceName = String(cString: git_reference_name(branch.pointer))
        try GitError.check("git_repository_set_head", referenceName) { git_repository_set_head(pointer, referenceName) }
    }

    private func lookupRemote(_ name: String) throws -> Owned {
        var remote: OpaquePointer?
        try GitError.check("git_remote_lookup", name) { git_remote_lookup(&remote, pointer, name) }
        return try owned(remote, git_remote_free, "git_remote_lookup", name)
    }

    private func commitObject(_ revision: String) throws -> Owned {
        var object: OpaquePointer?
        try GitError.check("git_revparse_single", revision) { git_revparse_single(&object, pointer, revision) }
        let found = try owned(object, git_object_free, "git_revparse_single", revision)
        var commit: OpaquePointer?
        try GitError.check("git_object_peel", revision) { git_object_peel(&commit, found.pointer, GIT_OBJECT_COMMIT) }
        return try owned(commit, git_object_free, "git_object_peel", revision)
    }

    private func peelToCommit(_ reference: OpaquePointer, subject: String) throws -> Owned {
        var commit: OpaquePointer?
        try GitError.check("git_reference_peel", subject) { git_reference_peel(&commit, reference, GIT_OBJECT_COMMIT) }
        return try owned(commit, git_object_free, "git_reference_peel", subject)
    }

    private func checkoutTree(_ commit: Owned, force: Bool, subject: String) throws {
        var options = git_checkout_options()
        try GitError.check("git_checkout_options_init", subject) { rast_git_checkout_options_init(&options) }
        options.checkout_strategy = force ? GIT_CHECKOUT_FORCE.rawValue : GIT_CHECKOUT_SAFE.rawValue
        // Collect the paths in conflict: libgit2's message only counts them.
        let conflicts = ConflictList()
        options.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT.rawValue
        options.notify_cb = checkoutNotifyCallback
        options.notify_payload = Unmanaged.passUnretained(conflicts).toOpaque()
        do {
            try withExtendedLifetime(conflicts) { () throws -> Void in
                try GitError.check("git_checkout_tree", subject) { git_checkout_tree(pointer, commit.pointer, &options) }
            }
        } catch let error as GitError where !conflicts.paths.isEmpty {
            throw GitError(code: error.code, errorClass: error.errorClass,
                           message: error.message + ": " + conflicts.paths.joined(separator: ", "),
                           function: error.function, subject: error.subject)
        }
    }

    private func objectID(_ object: OpaquePointer) -> String {
        // git_oid_tostr_s formats into a thread-local buffer.
        git_oid_tostr_s(git_object_id(object)).map { String(cString: $0) } ?? ""
    }

    private func owned(_ pointer: OpaquePointer?, _ free: @escaping (OpaquePointer?) -> Void,
                       _ function: String, _ subject: String) throws -> Owned {
        guard let handle = Owned(pointer, free) else {
            throw GitError(code: -1, errorClass: 0, message: "libgit2 returned no object", function: function, subject: subject)
        }
        return handle
    }

    private func shortBranchName(_ reference: String) -> String {
        reference.hasPrefix("refs/heads/") ? String(reference.dropFirst("refs/heads/".count)) : reference
    }
}

/// The paths a checkout reported in conflict with local changes.
private final class ConflictList {
    var paths: [String] = []
}

private func checkoutNotifyCallback(_ why: git_checkout_notify_t, _ path: UnsafePointer<CChar>?,
                                    _ baseline: UnsafePointer<git_diff_file>?, _ target: UnsafePointer<git_diff_file>?,
                                    _ workdir: UnsafePointer<git_diff_file>?, _ payload: UnsafeMutableRawPointer?) -> Int32 {
    if let payload, let path {
        Unmanaged<ConflictList>.fromOpaque(payload).takeUnretainedValue().paths.append(String(cString: path))
    }
    return 0
}

/// A libgit2 object (reference, commit, remote, iterator) and the function that frees it.
final class Owned {
    let pointer: OpaquePointer
    private let free: (OpaquePointer?) -> Void

    init?(_ pointer: OpaquePointer?, _ free: @escaping (OpaquePointer?) -> Void) {
        guard let pointer else { return nil }
        self.pointer = pointer
        self.free = free
    }

    deinit { free(pointer) }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let string else { return try body(nil) }
    return try string.withCString { try body($0) }
}
