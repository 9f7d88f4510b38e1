import ArgumentParser
import Foundation
import RastBuildCLI
import RastCLI
import RastInstallCLI
import SystemSupport
import Testing
import TestSupport

/// Shell completions and manual pages come from the ArgumentParser definitions: every
/// subcommand a user can type is in the scripts the built programs print and in the pages.
@Suite struct CompletionTests {
    static let root: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// The visible subcommands below `command`, each with the names of its parents:
    /// `[["tree"], ..., ["backup"], ["backup", "init"], ...]`.
    static func subcommandPaths(of command: ParsableCommand.Type, under parent: [String] = []) -> [[String]] {
        command.configuration.subcommands.filter { $0.configuration.shouldDisplay }.flatMap { sub in
            let path = parent + [sub._commandName]
            return [path] + subcommandPaths(of: sub, under: path)
        }
    }

    static let programs: [(name: String, command: ParsableCommand.Type)] = [
        ("rast", Rast.self), ("rast-build", RastBuild.self), ("rast-install", RastInstall.self),
    ]

    /// Runs a built program (debug build) from the package root.
    func run(_ program: String, _ arguments: [String]) throws -> String {
        let binary = CompletionTests.root + "/.build/debug/" + program
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        return try Command(binary, arguments, workingDirectory: CompletionTests.root).output()
    }

    /// The words of the subcommand list in the bash function that completes `path`.
    func bashSubcommandWords(_ script: String, program: String, path: [String]) -> Set<String>? {
        let function = "_" + ([program] + path).joined(separator: "_") + "() {\n"
        guard let start = script.range(of: function),
              let end = script.range(of: "\n}\n", range: start.upperBound..<script.endIndex) else { return nil }
        let body = script[start.upperBound..<end.lowerBound]
        guard let list = body.range(of: "compgen -W '"),
              let close = body.range(of: "'", range: list.upperBound..<body.endIndex) else { return [] }
        return Set(body[list.upperBound..<close.lowerBound].split(separator: " ").map(String.init))
    }

    @Test func rastHasSubcommandsAtTwoLevels() {
        let paths = CompletionTests.subcommandPaths(of: Rast.self)
        #expect(paths.contains(["tree"]) && paths.contains(["backup", "init"]) && paths.contains(["pkg", "install"]))
        #expect(!paths.contains(["pacman"]), "the hidden pacman subcommand is not offered")
    }

    @Test(arguments: ["rast", "rast-build", "rast-install"])
    func bashCompletionListsEverySubcommand(_ program: String) throws {
        let command = try #require(CompletionTests.programs.first { $0.name == program }).command
        let script = try run(program, ["--generate-completion-script", "bash"])
        #expect(script.hasPrefix("#!/bin/bash"))
        let paths = CompletionTests.subcommandPaths(of: command)
        // Each command that has subcommands offers exactly the visible ones (and `help`).
        for parent in [[]] + paths where bashSubcommandWords(script, program: program, path: parent) != nil {
            let expected = Set(paths.filter { $0.count == parent.count + 1 && Array($0.dropLast()) == parent }.map { $0.last ?? "" })
            let offered = bashSubcommandWords(script, program: program, path: parent) ?? []
            #expect(offered.subtracting(["help"]) == expected, "\(program) \(parent.joined(separator: " "))")
        }
        // And each subcommand has its own completion function.
        for path in paths {
            #expect(bashSubcommandWords(script, program: program, path: path) != nil, "\(program) \(path.joined(separator: " "))")
        }
    }

    @Test(arguments: ["zsh", "fish"])
    func zshAndFishCompletionsNameEverySubcommand(_ shell: String) throws {
        for (program, command) in CompletionTests.programs {
            // Given as two words after rast's own options: the shell is not taken for a subcommand.
            let script = try run(program, ["--generate-completion-script", shell])
            #expect(script.hasPrefix(shell == "zsh" ? "#compdef \(program)" : "function __\(program)_"),
                    "\(program): \(script.prefix(80))")
            for path in CompletionTests.subcommandPaths(of: command) {
                let name = path.last ?? ""
                let mention = shell == "zsh" ? "'\(name):" : "-fa '\(name)'"
                #expect(script.contains(mention), "\(program) \(shell): \(path.joined(separator: " "))")
            }
        }
    }

    /// What `--experimental-dump-help` says about a command (the part the pages show).
    struct ToolInfo: Decodable {
        struct Command: Decodable {
            struct Argument: Decodable {
                let abstract: String?
                let shouldDisplay: Bool
            }
            let commandName: String
            let abstract: String?
            let shouldDisplay: Bool
            let arguments: [Argument]?
            let subcommands: [Command]?
        }
        let command: Command
    }

    /// The pages in docs/man are what `make man` makes from the definitions now: each names
    /// every visible command, with its abstract and the abstract of each of its options.
    @Test(arguments: ["rast", "rast-build", "rast-install"])
    func manualPagesAreCurrent(_ program: String) throws {
        let page = try Files.readString(CompletionTests.root + "/docs/man/\(program).1")
        let info = try JSONDecoder().decode(ToolInfo.self, from: Data(try run(program, ["--experimental-dump-help"]).utf8))
        // mdoc escapes backslashes and quotes; compare the plain text.
        let text = page.replacingOccurrences(of: "\\e", with: "\\").replacingOccurrences(of: "\\&", with: "")
        var checked = 0
        func check(_ command: ToolInfo.Command, path: [String]) {
            guard command.shouldDisplay else { return }
            let name = ([program] + path).joined(separator: " ")
            if let abstract = command.abstract, !abstract.isEmpty {
                let found = text.contains(abstract)
                #expect(found, "docs/man/\(program).1 lacks `\(name)`: \(abstract) (run make man)")
            }
            for argument in command.arguments ?? [] where argument.shouldDisplay {
                if let abstract = argument.abstract, !abstract.isEmpty {
                    let found = text.contains(abstract)
                    #expect(found, "docs/man/\(program).1 lacks an option of `\(name)`: \(abstract) (run make man)")
                    checked += 1
                }
            }
            for sub in command.subcommands ?? [] { check(sub, path: path + [sub.commandName]) }
        }
        check(info.command, path: [])
        #expect(checked > 5)
    }

    /// `make install` puts the programs, their completions and their pages under
    /// DESTDIR/PREFIX (here from the debug build, which the tests have).
    @Test func makeInstallHonoursDestdirAndPrefix() throws {
        try Require.programs("make")
        let scratch = try Scratch("rast-make-install")
        let result = try Command("make", ["install", "BUILD_DIR=.build/debug", "DESTDIR=\(scratch.path)", "PREFIX=/opt/rast"],
                                 workingDirectory: CompletionTests.root).run(check: false)
        #expect(result.status == 0, "\(result.standardOutput)\(result.standardError)")
        let prefix = scratch.path + "/opt/rast"
        for program in ["rast", "rast-build", "rast-install"] {
            #expect(access(prefix + "/bin/" + program, X_OK) == 0, "\(program)")
            #expect(try Files.read(prefix + "/share/man/man1/\(program).1") == Files.read(CompletionTests.root + "/docs/man/\(program).1"))
            #expect(try Files.readString(prefix + "/share/bash-completion/completions/" + program).hasPrefix("#!/bin/bash"))
            #expect(try Files.readString(prefix + "/share/zsh/site-functions/_" + program).hasPrefix("#compdef \(program)"))
            #expect(try Files.readString(prefix + "/share/fish/vendor_completions.d/\(program).fish").hasPrefix("function __\(program)_"))
        }
        let bash = try Files.readString(prefix + "/share/bash-completion/completions/rast")
        for path in CompletionTests.subcommandPaths(of: Rast.self) {
            #expect(bashSubcommandWords(bash, program: "rast", path: path) != nil, "\(path)")
        }
    }
}
