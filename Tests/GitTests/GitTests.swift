import Foundation
import Git
import SystemSupport
import Testing
import TestSupport

/// Repositories are made with the git command line tool; what the Git module cloned,
/// fetched and checked out is read back with the same tool and from the files on disk.
@Suite("Git")
struct GitTests {
    /// An origin with history on main, an annotated tag v1 and a lightweight tag v2, and a
    /// branch "feature" that main does not contain.
    struct Origin {
        let scratch: Scratch
        let repository: GitRepositoryFixture
        let first: String
        let second: String
        let feature: String

        init(bare: Bool = false) throws {
            scratch = try Scratch("rast-git")
            let work = try GitRepositoryFixture(at: scratch.appending("work"))
            first = try work.commit("PKGBUILD", "pkgver=1\n", message: "version 1")
            try work.git("tag", "-a", "v1", "-m", "release 1")
            second = try work.commit("PKGBUILD", "pkgver=2\n", message: "version 2")
            try work.git("tag", "v2")
            try work.git("checkout", "-q", "-b", "feature")
            feature = try work.commit("feature.txt", "feature\n")
            try work.git("checkout", "-q", "main")
            if bare {
                let barePath = scratch.appending("origin.git")
                try Command("git", ["clone", "-q", "--bare", work.path, barePath]).run()
                repository = GitRepositoryFixture(existing: barePath)
            } else {
                repository = work
            }
        }

        var path: String { repository.path }
        func destination(_ name: String = "clone") -> String { scratch.appending(name) }
    }

    @Test func cloneLocalPath() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        try expectClone(repository, of: origin, at: origin.destination())
        #expect(try repository.remoteURL() == origin.path)
        #expect(repository.workingDirectory == origin.destination() + "/")
        #expect(!repository.isBare)
    }

    @Test func cloneFileURLOfABareRepository() throws {
        let origin = try Origin(bare: true)
        let url = "file://" + origin.path
        let repository = try Repository.clone(from: url, to: origin.destination())
        try expectClone(repository, of: origin, at: origin.destination())
        #expect(try repository.remoteURL() == url)
    }

    @Test func cloneOverSmartHTTP() throws {
        let origin = try Origin(bare: true)
        let server = try GitHTTPServer(projectRoot: origin.scratch.path)
        defer { server.stop() }
        let url = server.url("origin.git")
        let repository = try Repository.clone(from: url, to: origin.destination())
        try expectClone(repository, of: origin, at: origin.destination())
        let requests = server.requests
        #expect(requests.first.map { "\($0.method) \($0.path)?\($0.query)" } == "GET /origin.git/info/refs?service=git-upload-pack")
        #expect(requests.contains { $0.method == "POST" && $0.path == "/origin.git/git-upload-pack" })

        // New commits arrive by fetching over HTTP too.
        let work = GitRepositoryFixture(existing: origin.scratch.appending("work"))
        let third = try work.commit("PKGBUILD", "pkgver=3\n")
        try work.git("push", "-q", origin.path, "main")
        try repository.fetch()
        #expect(try repository.resolve("origin/main") == third)
    }

    /// libgit2 does not implement git's dumb HTTP protocol (static files after
    /// `git update-server-info`): this is why GitHTTPServer runs git-http-backend.
    @Test func dumbHTTPIsNotEnoughForLibgit2() throws {
        let origin = try Origin(bare: true)
        try origin.repository.git("update-server-info")
        #expect(Files.exists(origin.path + "/info/refs"))
        let server = try HTTPServer(root: origin.scratch.path)
        defer { server.stop() }
        let url = server.baseURL + "/origin.git"
        // The git command line tool can clone it (so the files are served correctly)...
        try Command("git", ["clone", "-q", url, origin.destination("by-git")]).run()
        // ...libgit2 cannot.
        let before = server.requests.count
        let error = try #require(throws: GitError.self) { try Repository.clone(from: url, to: origin.destination()) }
        #expect(error.function == "git_clone")
        #expect(error.subject == url)
        // It asks for the smart protocol and rejects the static file's content type.
        #expect(error.className == "http")
        #expect(error.message == "invalid content-type: 'application/octet-stream'")
        #expect(server.requests.dropFirst(before).map(\.path) == ["/origin.git/info/refs?service=git-upload-pack"])
    }

    @Test func cloneAChosenBranch() throws {
        let origin = try Origin(bare: true)
        let repository = try Repository.clone(from: origin.path, to: origin.destination(), branch: "feature")
        #expect(try repository.head() == Head(commitID: origin.feature, branch: "feature"))
        #expect(try Files.readString(origin.destination() + "/feature.txt") == "feature\n")
        let cli = GitRepositoryFixture(existing: origin.destination())
        #expect(try cli.git("rev-parse", "--abbrev-ref", "feature@{upstream}") == "origin/feature")
    }

    @Test func bareClone() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination("bare.git"), bare: true)
        #expect(repository.isBare)
        #expect(repository.workingDirectory == nil)
        #expect(try repository.resolve("main") == origin.second)
        #expect(!Files.exists(origin.destination("bare.git") + "/PKGBUILD"))
    }

    @Test func fetchBringsNewCommitsBranchesAndTags() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        let third = try origin.repository.commit("PKGBUILD", "pkgver=3\n")
        try origin.repository.git("tag", "-a", "v3", "-m", "release 3")
        try origin.repository.git("branch", "hotfix", origin.first)

        #expect(try repository.resolve("origin/main") == origin.second)
        #expect(throws: GitError.self) { try repository.resolve("origin/hotfix") }
        try repository.fetch()
        #expect(try repository.resolve("origin/main") == third)
        #expect(try repository.resolve("origin/hotfix") == origin.first)
        #expect(try repository.resolve("v3") == third)
        let cli = GitRepositoryFixture(existing: origin.destination())
        #expect(try cli.git("rev-parse", "origin/main") == third)
        // Fetching does not move the checked-out branch.
        #expect(try repository.head() == Head(commitID: origin.second, branch: "main"))
        #expect(try Files.readString(origin.destination() + "/PKGBUILD") == "pkgver=2\n")

        try repository.checkout("origin/main", newBranch: "main", moveExisting: true)
        #expect(try Files.readString(origin.destination() + "/PKGBUILD") == "pkgver=3\n")
        #expect(try cli.git("rev-parse", "HEAD") == third)
    }

    @Test func fetchFromUnknownRemoteFails() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        let error = try #require(throws: GitError.self) { try repository.fetch(remote: "upstream") }
        #expect(error.isNotFound)
        #expect(error.function == "git_remote_lookup")
        #expect(error.subject == "upstream")
        #expect(error.className == "config")
        #expect(error.message.contains("upstream"))
    }

    @Test(arguments: ["v1", "v2", "first-commit", "short-id"])
    func checkoutDetached(revision: String) throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        let spec: String
        switch revision {
        case "first-commit": spec = origin.first
        case "short-id": spec = String(origin.first.prefix(8))
        default: spec = revision
        }
        let expected = try origin.repository.revParse(spec)
        try repository.checkout(detached: spec)
        #expect(try repository.head() == Head(commitID: expected, branch: nil))
        let cli = GitRepositoryFixture(existing: origin.destination())
        #expect(try cli.git("rev-parse", "HEAD") == expected)
        #expect(throws: CommandError.self) { try cli.git("symbolic-ref", "-q", "HEAD") }
        let contents = revision == "v2" ? "pkgver=2\n" : "pkgver=1\n"
        #expect(try Files.readString(origin.destination() + "/PKGBUILD") == contents)
        #expect(try cli.git("status", "--porcelain").isEmpty)
    }

    @Test func checkoutBranchCreatesTrackingBranchFromRemote() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        #expect(try repository.branches() == ["main"])
        try repository.checkout(branch: "feature")
        #expect(try repository.head() == Head(commitID: origin.feature, branch: "feature"))
        #expect(try repository.branches() == ["feature", "main"])
        let cli = GitRepositoryFixture(existing: origin.destination())
        #expect(try cli.git("symbolic-ref", "HEAD") == "refs/heads/feature")
        #expect(try cli.git("rev-parse", "--abbrev-ref", "feature@{upstream}") == "origin/feature")
        #expect(try Files.readString(origin.destination() + "/feature.txt") == "feature\n")

        // And back: the file that only the feature branch has goes away.
        try repository.checkout(branch: "main")
        #expect(try repository.head() == Head(commitID: origin.second, branch: "main"))
        #expect(!Files.exists(origin.destination() + "/feature.txt"))
        #expect(try cli.git("status", "--porcelain").isEmpty)

        let missing = try #require(throws: GitError.self) { try repository.checkout(branch: "nope") }
        #expect(missing.isNotFound)
        #expect(missing.subject == "nope")
    }

    @Test func checkoutRevisionAsNewBranch() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        try repository.checkout("v1", newBranch: "release-1")
        #expect(try repository.head() == Head(commitID: origin.first, branch: "release-1"))
        let cli = GitRepositoryFixture(existing: origin.destination())
        #expect(try cli.git("symbolic-ref", "HEAD") == "refs/heads/release-1")
        #expect(try cli.git("rev-parse", "release-1") == origin.first)

        let exists = try #require(throws: GitError.self) { try repository.checkout("main", newBranch: "release-1") }
        #expect(exists.code == -4)  // GIT_EEXISTS
        try repository.checkout("main", newBranch: "release-1", moveExisting: true)
        #expect(try cli.git("rev-parse", "release-1") == origin.second)
    }

    @Test func localChangesBlockCheckoutUnlessForced() throws {
        let origin = try Origin()
        let repository = try Repository.clone(from: origin.path, to: origin.destination())
        try Files.write(origin.destination() + "/PKGBUILD", string: "local edit\n")
        let error = try #require(throws: GitError.self) { try repository.checkout(detached: "v1") }
        #expect(error.isConflict)
        #expect(error.className == "checkout")
        #expect(error.function == "git_checkout_tree")
        #expect(error.message.contains("PKGBUILD"))
        #expect(try Files.readString(origin.destination() + "/PKGBUILD") == "local edit\n")
        #expect(try repository.head() == Head(commitID: origin.second, branch: "main"))

        try repository.checkout(detached: "v1", force: true)
        #expect(try Files.readString(origin.destination() + "/PKGBUILD") == "pkgver=1\n")
    }

    @Test func resolveMatchesRevParse() throws {
        let origin = try Origin()
        let repository = try Repository(opening: origin.path)
        for revision in ["main", "feature", "v1", "v2", "HEAD", "HEAD~1", "main^", String(origin.feature.prefix(7)), "refs/tags/v1"] {
            #expect(try repository.resolve(revision) == origin.repository.revParse(revision), "\(revision)")
        }
        let error = try #require(throws: GitError.self) { try repository.resolve("no-such-branch") }
        #expect(error.isNotFound)
        #expect(error.function == "git_revparse_single")
        #expect(error.subject == "no-such-branch")
        #expect(error.description.hasPrefix("git_revparse_single no-such-branch: "))
        #expect(error.description.contains("(libgit2 reference error, code -3)"))
        #expect(try repository.tags() == ["v1", "v2"])
        #expect(try repository.branches() == ["feature", "main"])
    }

    @Test func headOfRepositoryWithoutCommits() throws {
        let scratch = try Scratch()
        let empty = try GitRepositoryFixture(at: scratch.appending("empty"), initialBranch: "trunk")
        let repository = try Repository(opening: empty.path)
        #expect(try repository.head() == Head(commitID: nil, branch: "trunk"))
    }

    @Test func openingAndCloningFailuresCarryLibgit2Messages() throws {
        let scratch = try Scratch()
        let plain = scratch.appending("plain")
        try Files.createDirectory(plain)
        let notRepository = try #require(throws: GitError.self) { try Repository(opening: plain) }
        #expect(notRepository.isNotFound)
        #expect(notRepository.className == "repository")
        #expect(notRepository.subject == plain)
        #expect(notRepository.message.contains("could not find repository"))

        let missing = scratch.appending("missing")
        let cloneError = try #require(throws: GitError.self) {
            try Repository.clone(from: missing, to: scratch.appending("clone"))
        }
        #expect(cloneError.function == "git_clone")
        #expect(cloneError.subject == missing)
        #expect(!Files.exists(scratch.appending("clone")), "a failed clone leaves no directory")

        let origin = try Origin()
        try Files.createDirectory(origin.destination())
        try Files.write(origin.destination() + "/occupied", string: "x")
        let occupied = try #require(throws: GitError.self) { try Repository.clone(from: origin.path, to: origin.destination()) }
        #expect(occupied.code == -4)  // GIT_EEXISTS
        #expect(occupied.message.contains("exists and is not an empty directory"))
    }

    @Test func refusedConnectionIsANetworkError() throws {
        let scratch = try Scratch()
        let url = "http://127.0.0.1:9/nothing.git"
        let error = try #require(throws: GitError.self) { try Repository.clone(from: url, to: scratch.appending("c")) }
        #expect(error.className == "os")
        #expect(error.subject == url)
        #expect(error.message == "failed to connect to 127.0.0.1: Connection refused")
        #expect(error.description == "git_clone \(url): failed to connect to 127.0.0.1: Connection refused (libgit2 os error, code -1)")
    }

    @Test func versionIsLibgit2s() throws {
        try Require.programs("pkg-config")
        #expect(Git.version == (try Command("pkg-config", ["--modversion", "libgit2"]).output()))
    }

    private func expectClone(_ repository: Repository, of origin: Origin, at path: String) throws {
        #expect(try repository.head() == Head(commitID: origin.second, branch: "main"))
        #expect(try Files.readString(path + "/PKGBUILD") == "pkgver=2\n")
        let cli = GitRepositoryFixture(existing: path)
        #expect(try cli.git("rev-parse", "HEAD") == origin.second)
        #expect(try cli.git("rev-parse", "origin/feature") == origin.feature)
        #expect(try cli.git("rev-parse", "v1^{commit}") == origin.first)
        #expect(try cli.git("status", "--porcelain").isEmpty)
        #expect(try repository.resolve("origin/feature") == origin.feature)
        #expect(try repository.resolve("v1") == origin.first)
    }
}
