import Foundation
@testable import HostCommands
import Search
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// Packages with Arch's descriptions, for `rast search` and `rast "..."`.
enum SearchTestPackages {
    static let firefox = PKGBUILDSpec(name: "firefox", description: "Fast, Private & Safe Web Browser",
                                      files: ["usr/bin/firefox": "#!/bin/sh\necho firefox\n"])
    static let chromium = PKGBUILDSpec(name: "chromium", description: "A web browser built for speed, simplicity, and security",
                                       files: ["usr/bin/chromium": "#!/bin/sh\necho chromium\n"])
    static let python = PKGBUILDSpec(name: "python", description: "The Python programming language",
                                     files: ["usr/bin/python3": "#!/bin/sh\necho python\n"])
    static let requests = PKGBUILDSpec(name: "python-requests", description: "Python HTTP for Humans", depends: ["python"],
                                       files: ["usr/lib/python3/site-packages/requests/__init__.py": "# requests\n"])
    static let vim = PKGBUILDSpec(name: "vim", description: "Vi Improved, a highly configurable, improved version of the vi text editor",
                                  files: ["usr/bin/vim": "#!/bin/sh\necho vim\n"])
    static let nano = PKGBUILDSpec(name: "nano", description: "Pico editor clone with enhancements",
                                   files: ["usr/bin/nano": "#!/bin/sh\necho nano\n"])
    static let openssh = PKGBUILDSpec(
        name: "openssh", description: "SSH protocol implementation for remote login, command execution and file transfer",
        backup: ["etc/ssh/sshd_config"],
        files: ["usr/bin/ssh": "#!/bin/sh\necho ssh\n",
                "etc/ssh/sshd_config": "# The server's settings.\n\n# Whether root may log in over SSH.\nPermitRootLogin no\nPort 22\n"])

    static let all = [firefox, chromium, python, requests, vim, nano, openssh]
}

/// `rast search` and `rast "SENTENCE"` on a real btrfs tree whose repository makepkg built and
/// an HTTP server on 127.0.0.1 serves.
@Suite(.serialized) struct SearchCommandTests {
    static func tree() throws -> PackageTree {
        let tree = try PackageTree(packages: TestPackages.standard + SearchTestPackages.all)
        do {
            try tree.commands().install(1, ["python-requests", "vim", "openssh"], live: false)
        } catch {
            tree.close()
            throw error
        }
        return tree
    }

    /// Searching reads: no lock (a held lock would stop the commands the test runs meanwhile).
    static func search(_ tree: PackageTree) -> SearchCommands {
        SearchCommands(host: HostSession(store: SnapshotStore(layout: tree.layout, templates: PackageTree.templates), live: false) { _ in })
    }

    /// The four sentences of the rastOS README become the commands a person would type, and
    /// two of them run through the real binary.
    @Test func readmeSentencesBecomeTheRightCommands() throws {
        let tree = try Self.tree()
        defer { tree.close() }
        let search = Self.search(tree)
        let latest = try search.plan("install the latest version of firefox")
        #expect(latest.commands == [["-Syu", "firefox"]])
        #expect(latest.commandLines == ["rast -Syu firefox"])
        let security = try search.plan("update all packages with security fixes")
        #expect(security.commands == [["-Syu"]])
        #expect(security.notes.contains { $0.contains("no security metadata") })
        let python = try search.plan("what python packages do I have installed?")
        #expect(python.commands == [["-Qs", "python"]])
        let fix = try search.plan("fix broken packages and update system")
        #expect(fix.commands == [["pkg", "fix-keys"], ["-Syu"]])
        #expect(fix.commandLines == ["rast pkg fix-keys", "rast -Syu"])
        // Entities come from the databases and the index: a phrase becomes the package both
        // rankers put first; remove only takes installed packages.
        let browser = try search.plan("install a web browser")
        #expect(browser.commands.count == 1)
        #expect(["firefox", "chromium"].contains(browser.commands.first?.last ?? ""), "\(browser)")
        #expect(browser.notes.contains { $0.contains("no package is called \"web browser\"") })
        #expect(try search.plan("remove vim").commands == [["-Rns", "vim"]])
        #expect(try search.plan("which package owns /usr/bin/vim").commands == [["search", "--files", "/usr/bin/vim"]])
        #expect(try search.plan("roll back the last update").commands == [["rollback"]])
        #expect(try search.plan("deploy snapshot 1").commands == [["deploy", "1"]])
        #expect(try search.plan("clean orphans").commands == [["pkg", "clean", "--unused-deps"]])
        #expect(try search.plan("fix the keyring").commands == [["pkg", "fix-keys"]])
        let unknown = try search.plan("the quick brown fox jumps over the lazy dog")
        #expect(!unknown.understood)
        #expect(unknown.commands == [["search", "the quick brown fox jumps over the lazy dog"]])

        let rast = RastCLI(root: tree.top)
        // A query, run through `rast "..."` with --yes.
        let listed = try rast.run(["what python packages do I have installed?", "--yes"])
        #expect(listed.status == 0, "\(listed.output)")
        #expect(listed.output.contains("rast would run:\n  rast -Qs python\n"), "\(listed.output)")
        #expect(listed.output.contains("local/python-requests 1.0-1"), "\(listed.output)")
        #expect(listed.output.contains("local/python 1.0-1"), "\(listed.output)")
        #expect(!listed.output.contains("local/vim"), "\(listed.output)")

        // Without --yes and without a terminal, nothing runs.
        let before = try tree.state()
        let refused = try rast.run(["install the latest version of firefox"])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("rast would run:\n  rast -Syu firefox\n"), "\(refused.output)")
        #expect(refused.output.contains("pass --yes to confirm"), "\(refused.output)")
        #expect(try tree.state() == before)

        // With --yes it installs into a new snapshot and deploys it.
        let installed = try rast.run(["install the latest version of firefox", "--yes"])
        #expect(installed.status == 0, "\(installed.output)")
        let state = try tree.state()
        let newest = try #require(state.snapshots.map(\.id).max())
        #expect(newest > 1)
        #expect(try tree.installed(newest).contains("firefox 1.0-1"))
        #expect(try SnapshotStore(layout: tree.layout).nextSnapshot() == newest)

        let fallback = try rast.run(["ask", "the", "quick", "brown", "fox"])
        #expect(fallback.output.contains("rast does not know"), "\(fallback.output)")
    }

    /// Packages by meaning and by exact name, /etc chunks with file:line, files of installed
    /// packages, services; the index is rebuilt only where a source changed.
    @Test func searchFindsPackagesConfigFilesAndServicesAndUpdatesItsIndexIncrementally() throws {
        let tree = try Self.tree()
        defer { tree.close() }
        let rast = RastCLI(root: tree.top)

        let browsers = try rast.run(["search", "web browser", "--packages", "--json", "-n", "3"])
        #expect(browsers.status == 0, "\(browsers.output)")
        struct Hit: Decodable { let kind: String, name: String, location: String, installed: String? }
        let hits = try JSONDecoder().decode([Hit].self, from: Data(browsers.output.utf8))
        #expect(Set(hits.prefix(2).map(\.name)) == ["firefox", "chromium"], "\(hits)")

        let exact = try rast.run(["search", "vim"])
        #expect(exact.output.hasPrefix("rasttest/vim 1.0-1 [installed]\n"), "\(exact.output)")

        let config = try rast.run(["search", "--config", "may root log in"])
        #expect(config.output.contains("config /etc/ssh/sshd_config:4\n    PermitRootLogin no"), "\(config.output)")

        let owner = try rast.run(["search", "--files", "/usr/bin/vim"])
        #expect(owner.output.hasPrefix("/usr/bin/vim  (vim 1.0-1)"), "\(owner.output)")

        let nothing = try rast.run(["search", "--services", "web server"])
        #expect(nothing.status == 1)

        // The index: unchanged sources are kept; an install rebuilds the installed-package
        // segment only; a new service definition adds one segment.
        let search = Self.search(tree)
        let again = try search.engine(1).report
        #expect(again.rebuilt.isEmpty, "\(again)")
        try tree.commands().install(1, ["nano"], live: false)
        let afterInstall = try Self.search(tree).engine(1).report
        #expect(afterInstall.rebuilt == ["installed"], "\(afterInstall)")
        let service = "# A small web server for the intranet.\nname = \"web\"\nexec = [\"/usr/bin/httpd\", \"-f\"]\ndescription = \"serves static pages over HTTP\"\n"
        let run = try rast.run(["run", "1", "mkdir -p /etc/rast/services && cat > /etc/rast/services/web.toml <<'EOF'\n\(service)EOF"])
        #expect(run.status == 0, "\(run.output)")
        let afterService = try Self.search(tree).engine(1).report
        #expect(afterService.rebuilt == ["etc:/etc/rast/services/web.toml"], "\(afterService)")
        let found = try rast.run(["search", "--services", "web server"])
        #expect(found.output.hasPrefix("service /etc/rast/services/web.toml:1"), "\(found.output)")
        let index = tree.layout.stateDirectory + "/search/snapshot-1.index"
        #expect(Files.exists(index))
        #expect(try Files.size(index) < 512 * 1024)

        // `rast del` removes a deleted snapshot's index; an index whose snapshot went away
        // by other means (an older rast, astOS's ast) is removed by the next search.
        let branch = try rast.run(["branch", "1"])
        #expect(branch.status == 0, "\(branch.output)")
        let branched = try #require(try tree.state().snapshots.map(\.id).max())
        let searched = try rast.run(["search", "--snapshot", String(branched), "vim"])
        #expect(searched.status == 0, "\(searched.output)")
        let branchIndex = tree.layout.stateDirectory + "/search/snapshot-\(branched).index"
        #expect(Files.exists(branchIndex))
        let deleted = try rast.run(["del", "--yes", String(branched)])
        #expect(deleted.status == 0, "\(deleted.output)")
        #expect(!Files.exists(branchIndex), "rast del left the index of snapshot \(branched)")
        let stray = tree.layout.stateDirectory + "/search/snapshot-9999.index"
        try FileManager.default.copyItem(atPath: index, toPath: stray)
        #expect(try rast.run(["search", "vim"]).status == 0)
        #expect(!Files.exists(stray), "a search kept the index of a snapshot that does not exist")
        #expect(Files.exists(index))
    }
}
