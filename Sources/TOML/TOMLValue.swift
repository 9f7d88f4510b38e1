/// A place in a TOML source: the file name and a 1-based line and column. Columns count
/// Unicode scalars, so a tab or an "é" is one column, as most editors show them.
package struct TOMLPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    package let file: String
    package let line: Int
    package let column: Int

    package init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, the form compilers use and editors jump to.
    package var description: String { "\(file):\(line):\(column)" }

    /// `line:column`, for messages that refer to another place in the same file.
    package var lineAndColumn: String { "\(line):\(column)" }

    package static func < (lhs: TOMLPosition, rhs: TOMLPosition) -> Bool {
        if lhs.file != rhs.file { return lhs.file < rhs.file }
        if lhs.line != rhs.line { return lhs.line < rhs.line }
        return lhs.column < rhs.column
    }
}

/// A document that is not valid TOML: where, which key (when known) and what is wrong.
package struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    package let position: TOMLPosition
    package let message: String
    /// The dotted path of the key being read when the error happened, when there was one.
    package let key: String?

    package var description: String { "\(position): \(message)" }
}

/// An offset date-time, local date-time, local date or local time, with its original text.
package struct TOMLDateTime: Sendable, Hashable, CustomStringConvertible {
    package enum Kind: String, Sendable, Hashable {
        case offsetDateTime = "offset date-time"
        case localDateTime = "local date-time"
        case localDate = "local date"
        case localTime = "local time"
    }

    package let kind: Kind
    /// The value exactly as written in the document.
    package let text: String
    /// Date fields; 0 for a local time.
    package let year: Int
    package let month: Int
    package let day: Int
    /// Time fields; 0 for a local date.
    package let hour: Int
    package let minute: Int
    package let second: Int
    package let nanosecond: Int
    /// Minutes east of UTC for an offset date-time (0 for `Z`); nil otherwise.
    package let offsetMinutes: Int?

    package init(kind: Kind, text: String, year: Int = 0, month: Int = 0, day: Int = 0, hour: Int = 0,
                minute: Int = 0, second: Int = 0, nanosecond: Int = 0, offsetMinutes: Int? = nil) {
        self.kind = kind
        self.text = text
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.nanosecond = nanosecond
        self.offsetMinutes = offsetMinutes
    }

    package var description: String { text }
}

/// A TOML value together with the position where it starts in its document.
package enum TOMLValue: Sendable {
    case string(String, TOMLPosition)
    case integer(Int64, TOMLPosition)
    case float(Double, TOMLPosition)
    case boolean(Bool, TOMLPosition)
    case dateTime(TOMLDateTime, TOMLPosition)
    /// A static array or an array of tables (`[[name]]`); the position is its first `[`.
    case array([TOMLValue], TOMLPosition)
    case table(TOMLTable)

    /// Where the value starts; for a table, where it is defined.
    package var position: TOMLPosition {
        switch self {
        case .string(_, let position), .integer(_, let position), .float(_, let position),
             .boolean(_, let position), .dateTime(_, let position), .array(_, let position):
            return position
        case .table(let table):
            return table.position
        }
    }

    /// The TOML type name: "string", "integer", "float", "boolean", "date-time", "array", "table".
    package var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .dateTime(let value, _): return value.kind.rawValue
        case .array: return "array"
        case .table: return "table"
        }
    }

    /// The type name with its article, for messages: "a string", "an integer".
    package var typeDescription: String {
        let name = typeName
        let article = name.first.map { "aeiou".contains($0) } == true ? "an" : "a"
        return "\(article) \(name)"
    }

    package var string: String? {
        if case .string(let value, _) = self { return value }
        return nil
    }

    package var integer: Int64? {
        if case .integer(let value, _) = self { return value }
        return nil
    }

    package var float: Double? {
        if case .float(let value, _) = self { return value }
        return nil
    }

    package var boolean: Bool? {
        if case .boolean(let value, _) = self { return value }
        return nil
    }

    package var dateTime: TOMLDateTime? {
        if case .dateTime(let value, _) = self { return value }
        return nil
    }

    package var array: [TOMLValue]? {
        if case .array(let value, _) = self { return value }
        return nil
    }

    package var table: TOMLTable? {
        if case .table(let value) = self { return value }
        return nil
    }
}

/// A table with its keys in document order; every key knows where it was written.
package struct TOMLTable: Sendable {
    /// How the table came to exist, which decides how it may be extended and how to name it.
    package enum Origin: Sendable, Hashable {
        /// The document's root table.
        case document
        /// A `[name]` header.
        case header
        /// One element of an array of tables, from a `[[name]]` header.
        case arrayOfTablesElement
        /// Created on the way to a deeper header (`[a.b]` creates `a`).
        case implicit
        /// Created by a dotted key (`a.b = 1` creates `a`).
        case dottedKeys
        /// An inline table `{ ... }` (or a table created by a dotted key inside one).
        case inline
    }

    /// One key of the table: its name, where the key was written, and its value.
    package struct Entry: Sendable {
        package let key: String
        package let keyPosition: TOMLPosition
        package let value: TOMLValue
    }

    /// Where the table is defined: its header's `[`, an inline table's `{`, 1:1 for the root,
    /// or the key that created it.
    package let position: TOMLPosition
    package let origin: Origin
    package let entries: [Entry]
    private let index: [String: Int]

    init(position: TOMLPosition, origin: Origin, entries: [Entry]) {
        self.position = position
        self.origin = origin
        self.entries = entries
        var index: [String: Int] = [:]
        for (offset, entry) in entries.enumerated() { index[entry.key] = offset }
        self.index = index
    }

    /// The keys in document order.
    package var keys: [String] { entries.map(\.key) }
    package var count: Int { entries.count }
    package var isEmpty: Bool { entries.isEmpty }

    package subscript(key: String) -> TOMLValue? {
        index[key].map { entries[$0].value }
    }

    /// The entry for `key` (its key position and value), or nil.
    package func entry(_ key: String) -> Entry? {
        index[key].map { entries[$0] }
    }
}
