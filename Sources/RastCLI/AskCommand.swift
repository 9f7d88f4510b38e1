import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import Search
import SystemSupport

/// `rast "SENTENCE"` and `rast ask SENTENCE`: the intent grammar of `Search.Intent`.
struct AskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ask", abstract: "Turn a sentence into rast commands, show them, and run them when you agree.",
        discussion: """
            `rast "install the latest version of firefox"` is `rast ask install the latest version of \
            firefox`. A fixed grammar (install, remove, upgrade, search, list installed packages, which \
            package owns a file, roll back, deploy, fix keys, clean orphans; see docs/search.md) maps the \
            sentence to commands, resolving package names against the snapshot's databases and search \
            index. rast prints the exact commands and asks before running them; --yes skips the \
            question, and without a terminal to ask on rast refuses. A sentence outside the grammar \
            becomes a `rast search`.
            """)
    @OptionGroup var options: TreeOptions
    @Flag(name: [.short, .long], help: "Run the commands without asking.") var yes = false
    @Flag(name: .customLong("dry-run"), help: "Only print the commands.") var dryRun = false
    @Option(name: .long, help: "Resolve package names against this snapshot (default: the booted one).") var snapshot: Int?
    @Argument(help: "The sentence.") var words: [String] = []

    func validate() throws {
        if words.isEmpty { throw ValidationError("Say what to do: rast \"install firefox\".") }
    }

    func run() throws {
        let sentence = words.joined(separator: " ")
        let plan = try options.read { host in try SearchCommands(host: host).plan(sentence, snapshot: snapshot) }
        for note in plan.notes { print("note: \(note)") }
        if !plan.understood {
            // Reading search results changes nothing: they are shown at once.
            for command in plan.commands { try runCommand(command) }
            return
        }
        print(plan.commands.count == 1 ? "rast would run:" : "rast would run, in order:")
        for line in plan.commandLines { print("  " + line) }
        if dryRun { return }
        let question = plan.commands.count == 1 ? "Run it?" : "Run them?"
        guard yes || Prompt.yesNo(question) else {
            EntryPoint.printError("rast: nothing was run")
            throw ExitCode.failure
        }
        for command in plan.commands { try runCommand(command) }
    }

    /// Runs one planned command in this process, with this invocation's common options.
    func runCommand(_ command: [String]) throws {
        var arguments = command
        if let root = options.root { arguments += ["--root", root] }
        if options.noWait { arguments.append("--no-wait") }
        if options.global.verbose { arguments.append("--verbose") }
        let status = RastMain.execute(arguments)
        if status != 0 {
            throw ExitCode(status)
        }
    }

    /// `rast "install vim"` becomes `rast ask "install vim"`: a first argument (after the common
    /// options) with a space in it is a sentence, since no command name has one.
    static func rewrite(_ arguments: [String]) -> [String] {
        var index = 0
        while index < arguments.count, arguments[index].hasPrefix("-") {
            index += arguments[index] == "--root" ? 2 : 1
        }
        guard index < arguments.count, arguments[index].contains(where: \.isWhitespace) else { return arguments }
        return Array(arguments[..<index]) + ["ask"] + Array(arguments[index...])
    }
}
