import Foundation
@testable import Search
import Testing

/// The intent grammar over an index of Arch-like packages (names and descriptions as Arch has
/// them); some are installed.
@Suite("Intent grammar")
struct IntentTests {
    static func resolver() throws -> IndexResolver {
        let table = try SearchFixtures.loadTable()
        func repo(_ name: String, _ description: String, installed: Bool = false) -> SearchDocument {
            .package(name: name, description: description, repository: "extra", version: "1.0-1", installedVersion: installed ? "1.0-1" : "")
        }
        let documents = [
            repo("firefox", "Fast, Private & Safe Web Browser"),
            repo("chromium", "A web browser built for speed, simplicity, and security"),
            repo("python", "The Python programming language", installed: true),
            repo("python-requests", "Python HTTP for Humans", installed: true),
            repo("vim", "Vi Improved, a highly configurable, improved version of the vi text editor", installed: true),
            repo("git", "the fast distributed version control system"),
            repo("htop", "Interactive process viewer"),
            repo("openssh", "SSH protocol implementation for remote login, command execution and file transfer", installed: true),
            .package(name: "my-tool", description: "a tool built here", version: "0.1-1", installedVersion: "0.1-1"),
        ]
        return IndexResolver(engine: SearchEngine(documents: documents, table: table))
    }

    @Test func readmeSentences() throws {
        let resolver = try Self.resolver()
        #expect(Intent.plan("install the latest version of firefox", resolver: resolver).commands == [["-Syu", "firefox"]])
        #expect(Intent.plan("update all packages with security fixes", resolver: resolver).commands == [["-Syu"]])
        #expect(Intent.plan("what python packages do I have installed?", resolver: resolver).commands == [["-Qs", "python"]])
        #expect(Intent.plan("fix broken packages and update system", resolver: resolver).commands == [["pkg", "fix-keys"], ["-Syu"]])
    }

    @Test(arguments: [
        ("install vim and git", [["-S", "vim", "git"]]),
        ("please install htop", [["-S", "htop"]]),
        ("Could you install firefox, git & htop?", [["-S", "firefox", "git", "htop"]]),
        ("upgrade firefox", [["-Syu", "firefox"]]),
        ("upgrade the system", [["-Syu"]]),
        ("update everything", [["-Syu"]]),
        ("install all security updates", [["-Syu"]]),
        ("uninstall vim", [["-Rns", "vim"]]),
        ("remove the python-requests package", [["-Rns", "python-requests"]]),
        ("get rid of my-tool", [["-Rns", "my-tool"]]),
        ("which package owns /usr/bin/ssh?", [["search", "--files", "/usr/bin/ssh"]]),
        ("who owns /etc/ssh/sshd_config", [["search", "--files", "/etc/ssh/sshd_config"]]),
        ("roll back", [["rollback"]]),
        ("undo the last upgrade", [["rollback"]]),
        ("deploy snapshot 4", [["deploy", "4"]]),
        ("boot into 2", [["deploy", "2"]]),
        ("fix the pacman keys", [["pkg", "fix-keys"]]),
        ("clean up orphaned packages", [["pkg", "clean", "--unused-deps"]]),
        ("remove unused dependencies", [["pkg", "clean", "--unused-deps"]]),
        ("list orphans", [["-Qdt"]]),
        ("list installed packages", [["-Q"]]),
        ("what packages do I have installed", [["-Q"]]),
        ("list explicitly installed packages", [["-Qe"]]),
        ("show me my python packages", [["-Qs", "python"]]),
        ("is vim installed?", [["-Q", "vim"]]),
        ("tell me about git", [["-Si", "git"]]),
        ("show info about vim", [["-Qi", "vim"]]),
        ("search for a tool to monitor processes", [["search", "monitor processes"]]),
        ("find a package for editing text", [["search", "editing text"]]),
        ("show the snapshot tree", [["tree"]]),
        ("which snapshot is booted", [["current"]]),
        ("remove vim and then install htop", [["-Rns", "vim"], ["-S", "htop"]]),
    ] as [(String, [[String]])])
    func sentences(_ sentence: String, _ expected: [[String]]) throws {
        let plan = Intent.plan(sentence, resolver: try Self.resolver())
        #expect(plan.understood)
        #expect(plan.commands == expected, "\(sentence): \(plan)")
    }

    @Test func phrasesResolveThroughTheIndexAndSayHow() throws {
        let plan = Intent.plan("install a web browser", resolver: try Self.resolver())
        #expect(plan.commands == [["-S", "firefox"]] || plan.commands == [["-S", "chromium"]], "\(plan)")
        #expect(plan.notes.contains { $0.contains("no package is called \"web browser\"") }, "\(plan.notes)")
        // Removal only considers installed packages: the text editor installed is vim.
        #expect(Intent.plan("remove the text editor", resolver: try Self.resolver()).commands == [["-Rns", "vim"]])
    }

    @Test func sentencesOutsideTheGrammarBecomeASearch() throws {
        let resolver = try Self.resolver()
        for sentence in ["the weather in Paris", "install qwertyuiopasdf", "remove firefox", "make me a sandwich"] {
            let plan = Intent.plan(sentence, resolver: resolver)
            #expect(!plan.understood, "\(sentence): \(plan)")
            #expect(plan.commands == [["search", sentence]])
            #expect(plan.notes.first?.contains("rast does not know") == true)
        }
    }

    @Test func commandLinesAreQuotedForTheShell() {
        let plan = Intent.Plan(commands: [["search", "web browser"], ["-S", "vim"]], notes: [], understood: true)
        #expect(plan.commandLines == ["rast search 'web browser'", "rast -S vim"])
        #expect(Intent.shellQuoted("it's") == "'it'\\''s'")
    }
}
