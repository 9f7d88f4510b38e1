import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import SystemSupport

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search", abstract: "Search packages, /etc and services of a snapshot by words and by meaning.",
        discussion: """
            Ranks the snapshot's repository packages (name, description, provides, groups), its \
            installed packages, the key and comment lines of its /etc files and its service \
            definitions, by BM25 on the words fused with a static embedding of the meaning; a \
            package whose name is the query comes first. --files searches the file lists of \
            installed packages (which package owns a file). Nothing leaves the machine.
            """)
    @OptionGroup var options: TreeOptions
    @Flag(name: .long, help: "Only packages.") var packages = false
    @Flag(name: .long, help: "Only /etc (key and comment lines, with file:line).") var config = false
    @Flag(name: .long, help: "Only service definitions.") var services = false
    @Flag(name: .long, help: "Only files of installed packages.") var files = false
    @Option(name: [.customShort("n"), .customLong("limit")], help: "How many results.") var n = 10
    @Option(name: .long, help: "The snapshot to search (default: the booted one).") var snapshot: Int?
    @OptionGroup var format: JSONFlag
    @Argument(help: "What to look for.") var query: [String] = []

    func validate() throws {
        if query.isEmpty { throw ValidationError("Say what to search for: rast search QUERY.") }
        if n < 1 { throw ValidationError("-n takes a positive number of results.") }
    }

    var scopes: Set<SearchCommands.Scope> {
        var scopes: Set<SearchCommands.Scope> = []
        if packages { scopes.insert(.packages) }
        if config { scopes.insert(.config) }
        if services { scopes.insert(.services) }
        if files { scopes.insert(.files) }
        return scopes
    }

    func run() throws {
        let hits = try options.read { host in
            try SearchCommands(host: host).search(query.joined(separator: " "), scopes: scopes, limit: n, snapshot: snapshot)
        }
        if format.json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(hits), as: UTF8.self))
        } else {
            SearchCommands.format(hits).forEach { print($0) }
        }
        if hits.isEmpty {
            if !format.json { EntryPoint.printError("rast search: nothing matches '\(query.joined(separator: " "))'") }
            throw ExitCode.failure
        }
    }
}
