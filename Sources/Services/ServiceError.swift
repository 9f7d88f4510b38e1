import TOML

/// One problem in a service definition: where (file, line, column), which key, what is wrong.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public let position: TOMLPosition
    /// The key path ("command", "ready.tcp", "depends[1]"; prefixed with "services[N]." in a
    /// recipe); empty for problems that concern no key (a syntax error).
    public let keyPath: String
    /// One sentence.
    public let message: String

    public init(position: TOMLPosition, keyPath: String, message: String) {
        self.position = position
        self.keyPath = keyPath
        self.message = message
    }

    /// `file:line:column: error: key: message`, the form the recipe's errors have.
    public var description: String {
        keyPath.isEmpty ? "\(position): error: \(message)" : "\(position): error: \(keyPath): \(message)"
    }
}

/// Every problem found, sorted by file and position.
public struct ServiceErrors: Error, Sendable, CustomStringConvertible {
    public let errors: [ServiceError]

    public init(_ errors: [ServiceError]) {
        self.errors = errors.enumerated().sorted { lhs, rhs in
            lhs.element.position == rhs.element.position ? lhs.offset < rhs.offset : lhs.element.position < rhs.element.position
        }.map(\.element)
    }

    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}
