import TOML

/// One problem in a recipe: where (file, line, column), which key, and what is wrong.
public struct RecipeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let position: TOMLPosition
    /// The key path: "disk.size", "users[1].name", "snapshots.tree[2].parent"; empty when
    /// the problem concerns no key (a syntax error between keys).
    public let keyPath: String
    /// One sentence.
    public let message: String
    /// The other place involved, for duplicates ("first defined at ...").
    public let relatedPosition: TOMLPosition?

    public init(position: TOMLPosition, keyPath: String, message: String, relatedPosition: TOMLPosition? = nil) {
        self.position = position
        self.keyPath = keyPath
        self.message = message
        self.relatedPosition = relatedPosition
    }

    /// `file:line:column: error: key: message`, one line.
    public var description: String {
        keyPath.isEmpty ? "\(position): error: \(message)" : "\(position): error: \(keyPath): \(message)"
    }
}

/// Every problem found in a recipe, sorted by position.
public struct RecipeErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [RecipeError]

    public init(_ errors: [RecipeError]) {
        // A stable sort: problems at the same place keep the order they were found in.
        self.errors = errors.enumerated().sorted { lhs, rhs in
            lhs.element.position == rhs.element.position ? lhs.offset < rhs.offset : lhs.element.position < rhs.element.position
        }.map(\.element)
    }

    /// One problem per line.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
