/// One problem in what a TOML document says, found by the program that reads it (a recipe, a
/// service definition): where (file, line, column), which key, and what is wrong.
package struct TOMLProblem: Error, Sendable, Equatable, CustomStringConvertible {
    package let position: TOMLPosition
    /// The key path: "disk.size", "users[1].name", "ready.tcp", "services[0].depends[1]";
    /// empty when the problem concerns no key (a syntax error between keys).
    package let keyPath: String
    /// One sentence.
    package let message: String
    /// The other place involved, for duplicates ("first defined at ...").
    package let relatedPosition: TOMLPosition?

    package init(position: TOMLPosition, keyPath: String, message: String, relatedPosition: TOMLPosition? = nil) {
        self.position = position
        self.keyPath = keyPath
        self.message = message
        self.relatedPosition = relatedPosition
    }

    /// A document that is not valid TOML, at the key being read when there was one.
    package init(_ error: TOMLError) {
        self.init(position: error.position, keyPath: error.key ?? "", message: error.message)
    }

    /// `file:line:column: error: key: message`, one line.
    package var description: String {
        keyPath.isEmpty ? "\(position): error: \(message)" : "\(position): error: \(keyPath): \(message)"
    }
}

/// Every problem found, sorted by file and position.
package struct TOMLProblems: Error, Sendable, CustomStringConvertible {
    package let errors: [TOMLProblem]

    package init(_ errors: [TOMLProblem]) {
        // A stable sort: problems at the same place keep the order they were found in.
        self.errors = errors.enumerated().sorted { lhs, rhs in
            lhs.element.position == rhs.element.position ? lhs.offset < rhs.offset : lhs.element.position < rhs.element.position
        }.map(\.element)
    }

    /// One problem per line.
    package var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
