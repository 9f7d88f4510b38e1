import Foundation

/// What `rast "..."` does with a sentence: a small, fixed grammar, tried rule by rule, that
/// turns it into rast commands. It understands nothing beyond its rules; a sentence no rule
/// matches becomes a search.
///
/// The rules (after lower-casing, dropping "please", "can you", "i want to" and the like):
/// ```
/// roll back | undo | revert [the last update]                  rast rollback
/// fix [the] keys | keyring | signatures                        rast pkg fix-keys
/// fix [the] broken packages                                    rast pkg fix-keys (see the note it prints)
/// clean | remove orphans | unused dependencies                 rast pkg clean --unused-deps
/// list | show orphans                                          rast -Qdt
/// update | upgrade [the system | all packages | everything]    rast -Syu
/// update X | install the latest version of X                   rast -Syu X
/// install | add | get X [and Y]                                rast -S X Y
/// remove | uninstall | delete X                                rast -Rns X
/// which package owns | provides FILE                           rast search --files FILE
/// deploy | boot [snapshot] N                                   rast deploy N
/// what X packages do I have [installed] | list installed X packages   rast -Qs X
/// list [installed | my] packages                               rast -Q
/// list explicitly installed packages                           rast -Qe
/// is X installed                                               rast -Q X
/// show info about | tell me about | what is X                  rast -Qi X (installed) or rast -Si X
/// search | find | look for [a package for] X                   rast search X
/// show the snapshot tree | list snapshots                      rast tree
/// which snapshot is booted | current snapshot                  rast current
/// ```
/// Clauses joined by "and" or "then" whose second part starts with a verb of the grammar run
/// in order ("fix broken packages and update the system"). Package names are resolved against
/// the snapshot's databases: a name the repositories have is taken as it is; another phrase
/// becomes the package that both rankers of the search index put first, which the plan says.
package enum Intent {
    /// Looks package names up for the grammar.
    package protocol Resolver {
        /// The phrase as a package name the repositories (or, with `installed`, the snapshot) have.
        func exactPackage(_ phrase: String, installed: Bool) -> String?
        /// The package the search index puts first for a phrase, when both rankers agree it is a match.
        func bestPackage(for phrase: String, installed: Bool) -> String?
    }

    package struct Plan: Sendable, Equatable {
        /// rast's arguments, one command per element, run in order.
        package var commands: [[String]]
        /// Sentences that explain the plan (how a phrase was resolved, what a rule means).
        package var notes: [String]
        /// False when no rule matched: `commands` is then a search for the sentence.
        package var understood: Bool

        /// The commands as a person would type them.
        package var commandLines: [String] { commands.map { (["rast"] + $0).map(Intent.shellQuoted).joined(separator: " ") } }
    }

    static let verbs = ["install", "add", "get", "remove", "uninstall", "delete", "update", "upgrade", "fix", "repair", "clean",
                        "roll", "rollback", "undo", "revert", "deploy", "boot", "search", "find", "look", "list", "show", "purge"]

    /// The plan for `sentence`.
    package static func plan(_ sentence: String, resolver: Resolver) -> Plan {
        let text = normalise(sentence)
        var plan = Plan(commands: [], notes: [], understood: true)
        for clause in clauses(text) {
            guard let part = planClause(clause, resolver: resolver) else {
                return Plan(commands: [["search", sentence.trimmingCharacters(in: .whitespacesAndNewlines)]],
                            notes: ["rast does not know \"\(clause)\" as a command; it searches for the sentence instead"], understood: false)
            }
            plan.commands += part.commands
            plan.notes += part.notes
        }
        if plan.commands.isEmpty {
            return Plan(commands: [["search", sentence]], notes: ["rast does not know this sentence as a command; it searches for it instead"],
                        understood: false)
        }
        return plan
    }

    /// Lower case, no trailing punctuation, no politeness.
    static func normalise(_ sentence: String) -> String {
        var text = sentence.lowercased().replacingOccurrences(of: "’", with: "'")
        text = text.components(separatedBy: .whitespacesAndNewlines).filter { !$0.isEmpty }.joined(separator: " ")
        while let last = text.last, "?!.".contains(last) { text.removeLast() }
        let prefixes = ["please ", "rast ", "can you ", "could you ", "would you ", "i want to ", "i'd like to ", "i would like to ",
                        "i need to ", "help me ", "let's ", "lets ", "go ahead and ", "kindly "]
        var changed = true
        while changed {
            changed = false
            for prefix in prefixes where text.hasPrefix(prefix) {
                text.removeFirst(prefix.count)
                changed = true
            }
        }
        for suffix in [" please", " for me", " now"] where text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text.trimmingCharacters(in: .whitespaces)
    }

    /// "fix broken packages and update system" -> two clauses; "install vim and git" -> one.
    static func clauses(_ text: String) -> [String] {
        var result: [String] = []
        var current: [Substring] = []
        let words = text.split(separator: " ")
        var index = 0
        while index < words.count {
            let word = words[index]
            var joiner = 0
            if word == "then" || word == "and," || word == "," { joiner = 1 }
            if word == "and" { joiner = index + 1 < words.count && words[index + 1] == "then" ? 2 : 1 }
            if joiner > 0, index + joiner < words.count, verbs.contains(String(words[index + joiner])), !current.isEmpty {
                result.append(current.joined(separator: " ").trimmingCharacters(in: CharacterSet(charactersIn: ", ")))
                current = []
                index += joiner
                continue
            }
            current.append(word)
            index += 1
        }
        if !current.isEmpty { result.append(current.joined(separator: " ").trimmingCharacters(in: CharacterSet(charactersIn: ", "))) }
        return result
    }

    struct Part {
        var commands: [[String]]
        var notes: [String] = []
    }

    static let systemWords = "(?:the |my |all |every |whole |entire )*(?:system|packages|package|everything|computer|machine|os|software|installed packages|of it|it)"

    static func planClause(_ clause: String, resolver: Resolver) -> Part? {
        if match(clause, #"(?:roll ?back|undo|revert|go back)(?: to)?(?: the| my)?(?: last| latest| previous| recent)?(?: update| upgrade| change| changes| deployment| install| installation| snapshot| system)?"#) != nil {
            return Part(commands: [["rollback"]], notes: ["rollback makes the previous deployment boot next; the snapshots stay"])
        }
        if match(clause, #"(?:fix|repair|reset|renew|refresh|update|reinitiali[sz]e)(?: the| my)?(?: pacman| package| gpg| pgp)? (?:keys|keyring|keyrings|signatures|signature errors|signing keys)"#) != nil {
            return Part(commands: [["pkg", "fix-keys"]])
        }
        if match(clause, #"(?:fix|repair)(?: the| my| all| any)?(?: broken| corrupted| corrupt| damaged)? (?:packages|package|package database|pacman)"#) != nil {
            return Part(commands: [["pkg", "fix-keys"]], notes: [
                "rast changes packages in a copy of the snapshot, so an interrupted change leaves no half-installed package; packages that refuse to install or upgrade on Arch almost always fail their signature check (\"invalid or corrupted package\"), which a new keyring (rast pkg fix-keys) fixes",
            ])
        }
        if match(clause, #"(?:clean|clean up|remove|delete|purge|get rid of|uninstall)(?: the| all| any| my)? (?:orphans|orphan packages|orphaned packages|unused dependencies|unused deps|unused packages|unneeded dependencies|unneeded packages|packages nothing needs)"#) != nil {
            return Part(commands: [["pkg", "clean", "--unused-deps"]])
        }
        if match(clause, #"(?:list|show|find|what are|which are|are there)(?: me)?(?: the| all| any| my)? (?:orphans|orphan packages|orphaned packages|unused dependencies|unused packages)"#) != nil {
            return Part(commands: [["-Qdt"]])
        }
        if let groups = match(clause, #"(?:remove|uninstall|delete|purge|erase|get rid of)(?: the)? (.+)"#), let phrase = groups[0] {
            return remove(phrase, resolver: resolver)
        }
        if match(clause, #"(?:update|upgrade|patch)(?: \#(systemWords))?(?: with (?:the )?(?:latest )?(?:security|bug) (?:fixes|updates|patches))?"#) != nil {
            var notes: [String] = []
            if clause.contains("security") {
                notes.append("Arch repositories carry no security metadata: security fixes arrive as ordinary updates, so rast upgrades every package")
            }
            return Part(commands: [["-Syu"]], notes: notes)
        }
        if match(clause, #"(?:install|apply|get)(?: all| the| any)?(?: latest| available| pending)? (?:updates|upgrades|security updates|security fixes|security patches)"#) != nil {
            return Part(commands: [["-Syu"]], notes: clause.contains("security")
                ? ["Arch repositories carry no security metadata: security fixes arrive as ordinary updates, so rast upgrades every package"] : [])
        }
        if let groups = match(clause, #"(?:install|add|get|download|set up|setup|put)(?: me)?(?: the)? (?:latest|newest|most recent|current|last) (?:version|release|build)s? of (.+)"#),
           let phrase = groups[0] {
            return install(phrase, refresh: true, resolver: resolver)
        }
        if let groups = match(clause, #"(?:update|upgrade) (.+?)(?: to the latest version| to the newest version)?"#), let phrase = groups[0] {
            return install(phrase, refresh: true, resolver: resolver)
        }
        if let groups = match(clause, #"(?:install|add|get|download|set up|setup)(?: me)? (.+)"#), let phrase = groups[0] {
            return install(phrase, refresh: false, resolver: resolver)
        }
        if let groups = match(clause, #"(?:which|what) package (?:owns|provides|installed|contains|ships|has|put|created) (?:the file |file )?(\S+)"#) ?? match(clause, #"who owns (?:the file |file )?(\S+)"#),
           let path = groups[0] {
            return Part(commands: [["search", "--files", path]])
        }
        if let groups = match(clause, #"(?:deploy|boot|boot into|switch to|make)(?: the)?(?: snapshot)? (\d+)(?: next| boot next| the default)?"#), let number = groups[0] {
            return Part(commands: [["deploy", number]])
        }
        if match(clause, #"(?:show|list|print|display)(?: me)?(?: the| my| all)? (?:snapshot tree|tree|snapshots|snapshot list)"#) != nil {
            return Part(commands: [["tree"]])
        }
        if match(clause, #"(?:which|what) snapshot (?:is|am i|did i) (?:booted|running|current|in|on|boot)(?: now)?|(?:current|booted) snapshot"#) != nil {
            return Part(commands: [["current"]])
        }
        if match(clause, #"(?:list|show|which|what)(?: me)?(?: are)?(?: the| my| all)? (?:explicitly installed packages|packages (?:i|that i) (?:explicitly )?installed(?: myself)?|packages i installed explicitly)"#) != nil {
            return Part(commands: [["-Qe"]])
        }
        if let groups = match(clause, #"(?:what|which)(?: (.+?))? packages (?:do i have|have i got|have i|are|do i|did i|i have)(?: installed| got| on (?:this|my) (?:system|machine|computer))?"#) {
            return query(filter: groups[0])
        }
        if let groups = match(clause, #"(?:list|show|print|display)(?: me)?(?: all)?(?: of)?(?: the| my)?(?: installed)?(?: (.+?))? packages(?: (?:that are |which are |i have )?installed| i have)?"#) {
            return query(filter: groups[0])
        }
        if let groups = match(clause, #"is (\S+) installed"#) ?? match(clause, #"do i have (\S+)(?: installed)?"#), let name = groups[0] {
            return Part(commands: [["-Q", resolver.exactPackage(name, installed: true) ?? name]])
        }
        if let groups = match(clause, #"(?:show|give)(?: me)? (?:the )?(?:info|information|details)(?: about| on| for| of)? (\S+)|(?:tell me about|describe|what is|what's) (\S+)"#),
           let name = groups[0] ?? groups[1] {
            if let installed = resolver.exactPackage(name, installed: true) { return Part(commands: [["-Qi", installed]]) }
            if let available = resolver.exactPackage(name, installed: false) { return Part(commands: [["-Si", available]]) }
            return Part(commands: [["search", name]], notes: ["no package is called \(name); rast searches for it instead"])
        }
        if let groups = match(clause, #"(?:search|find|look|look for|search for|is there|are there|i need|recommend|suggest)(?: for)?(?: me)?(?: a| an| any| some)?(?: package| packages| program| programs| app| apps| tool| tools| software)?(?: for| to| that| which| with)? (.+)"#),
           let phrase = groups[0] {
            return Part(commands: [["search", phrase]])
        }
        return nil
    }

    static func query(filter: String?) -> Part {
        let words = (filter ?? "").split(separator: " ").map(String.init).filter { !["installed", "the", "my", "all", "of", "any"].contains($0) }
        guard !words.isEmpty else { return Part(commands: [["-Q"]]) }
        return Part(commands: [["-Qs"] + words])
    }

    /// `-S` (or, for the latest version, `-Syu`) of the packages a phrase names.
    static func install(_ phrase: String, refresh: Bool, resolver: Resolver) -> Part? {
        guard let (names, notes) = packages(phrase, installed: false, resolver: resolver, note: { entity, best in
            "no package is called \"\(entity)\"; the search index's best match is \(best) (`rast search \(shellQuoted(entity))` shows the others)"
        }) else { return nil }
        guard refresh else { return Part(commands: [["-S"] + names], notes: notes) }
        return Part(commands: [["-Syu"] + names], notes: notes + [
            "Arch installs the latest version by refreshing the databases and upgrading the whole system with it (partial upgrades are unsupported), so this is -Syu",
        ])
    }

    /// Removal of installed packages a phrase names.
    static func remove(_ phrase: String, resolver: Resolver) -> Part? {
        guard let (names, notes) = packages(phrase, installed: true, resolver: resolver, note: { entity, best in
            "no installed package is called \"\(entity)\"; the best installed match is \(best)"
        }) else { return nil }
        return Part(commands: [["-Rns"] + names], notes: notes)
    }

    /// The packages (installed ones, or all) a phrase names: each name as it is, else the
    /// resolver's best match with a `note` saying so. Nil when one name has no match, or none is named.
    private static func packages(_ phrase: String, installed: Bool, resolver: Resolver,
                                 note: (_ entity: String, _ best: String) -> String) -> (names: [String], notes: [String])? {
        var names: [String] = []
        var notes: [String] = []
        for entity in entities(phrase) {
            if let exact = resolver.exactPackage(entity, installed: installed) {
                names.append(exact)
            } else if let best = resolver.bestPackage(for: entity, installed: installed) {
                names.append(best)
                notes.append(note(entity, best))
            } else {
                return nil
            }
        }
        return names.isEmpty ? nil : (names, notes)
    }

    /// "vim, git and the htop package" -> ["vim", "git", "htop"].
    static func entities(_ phrase: String) -> [String] {
        let fillers: Set<String> = ["a", "an", "the", "package", "packages", "program", "app", "application", "tool", "some", "me", "new"]
        return phrase.replacingOccurrences(of: " and ", with: ",").replacingOccurrences(of: " & ", with: ",")
            .split(separator: ",").map { part in
                part.split(separator: " ").map(String.init).filter { !fillers.contains($0) }.joined(separator: " ")
            }
            .filter { !$0.isEmpty }
    }

    /// The capture groups of a whole-clause match (nil for a group that did not take part), or nil.
    static func match(_ text: String, _ pattern: String) -> [String?]? {
        guard let expression = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$") else { return nil }
        let range = NSRange(text.startIndex..., in: text)
        guard let result = expression.firstMatch(in: text, range: range) else { return nil }
        return (1..<max(1, result.numberOfRanges)).map { index in
            Range(result.range(at: index), in: text).map { String(text[$0]) }
        }
    }

    /// A word as a shell would need it.
    package static func shellQuoted(_ word: String) -> String {
        let safe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_./=+:@%,"))
        if !word.isEmpty, word.unicodeScalars.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// Package names for the intent grammar, from a snapshot's search index.
package struct IndexResolver: Intent.Resolver {
    package let engine: SearchEngine

    package init(engine: SearchEngine) { self.engine = engine }

    package func exactPackage(_ phrase: String, installed: Bool) -> String? {
        guard let document = engine.package(named: phrase) else { return nil }
        if installed { return document.installedVersion.isEmpty ? nil : document.name }
        return document.repository.isEmpty ? nil : document.name
    }

    package func bestPackage(for phrase: String, installed: Bool) -> String? {
        let results = engine.search(phrase, kinds: [.package], limit: 50)
        let eligible = results.first { result in
            installed ? !result.document.installedVersion.isEmpty : !result.document.repository.isEmpty
        }
        guard let eligible, eligible.bm25Rank != nil, eligible.embeddingRank != nil else { return nil }
        return eligible.document.name
    }
}
