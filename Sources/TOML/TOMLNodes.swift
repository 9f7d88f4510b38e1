/// A mutable table while the document is parsed.
final class TableNode {
    enum Definition: Equatable {
        case root
        case implicit
        case header
        case arrayElement
        /// Created by dotted keys in the section (or inline table) with this number.
        case dotted(Int)
        case inline
    }

    enum Content {
        case value(TOMLValue)
        case table(TableNode)
        case arrayOfTables(ArrayOfTablesNode)
    }

    struct Entry {
        let key: String
        let keyPosition: TOMLPosition
        var content: Content
    }

    var definition: Definition
    var position: TOMLPosition
    var entries: [Entry] = []
    var index: [String: Int] = [:]

    init(definition: Definition, position: TOMLPosition) {
        self.definition = definition
        self.position = position
    }

    func lookup(_ key: String) -> Entry? {
        index[key].map { entries[$0] }
    }

    func add(_ key: String, at position: TOMLPosition, _ content: Content) {
        index[key] = entries.count
        entries.append(Entry(key: key, keyPosition: position, content: content))
    }

    func freeze(inline: Bool = false) -> TOMLTable {
        let origin: TOMLTable.Origin
        switch definition {
        case .root: origin = .document
        case .implicit: origin = .implicit
        case .header: origin = .header
        case .arrayElement: origin = .arrayOfTablesElement
        case .dotted: origin = inline ? .inline : .dottedKeys
        case .inline: origin = .inline
        }
        let frozen = entries.map { entry -> TOMLTable.Entry in
            let value: TOMLValue
            switch entry.content {
            case .value(let v):
                value = v
            case .table(let node):
                value = .table(node.freeze(inline: inline || definition == .inline))
            case .arrayOfTables(let array):
                value = .array(array.tables.map { .table($0.freeze()) }, array.position)
            }
            return TOMLTable.Entry(key: entry.key, keyPosition: entry.keyPosition, value: value)
        }
        return TOMLTable(position: position, origin: origin, entries: frozen)
    }
}

/// An array of tables while the document is parsed; `[[name]]` appends to it.
final class ArrayOfTablesNode {
    let position: TOMLPosition
    var tables: [TableNode]

    init(position: TOMLPosition, first: TableNode) {
        self.position = position
        self.tables = [first]
    }
}

/// The last column computed, so positions on one long line are found without rescanning it.
final class ColumnCache {
    var lineStart = -1
    var offset = 0
    var column = 1
}

/// One part of a (possibly dotted) key.
struct KeyPart {
    let name: String
    let position: TOMLPosition
}

enum ASCII {
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let hash: UInt8 = 0x23
    static let apostrophe: UInt8 = 0x27
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E
    static let colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D
    static let leftBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let rightBracket: UInt8 = 0x5D
    static let underscore: UInt8 = 0x5F
    static let leftBrace: UInt8 = 0x7B
    static let rightBrace: UInt8 = 0x7D
    static let delete: UInt8 = 0x7F

    static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
    }
    static func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || isDigit(c) || c == underscore || c == minus
    }
    /// Control characters TOML does not allow unescaped (tab is allowed).
    static func isForbiddenControl(_ c: UInt8) -> Bool { (c < 0x20 && c != tab) || c == delete }
    /// Bytes that end a bare value (number, boolean, date-time).
    static func endsValue(_ c: UInt8) -> Bool {
        c == space || c == tab || c == lineFeed || c == carriageReturn || c == hash || c == comma
            || c == rightBracket || c == rightBrace
    }
}

/// Formats a key path for messages, quoting parts that are not bare keys.
func displayKey(_ parts: [String]) -> String {
    parts.map { part in
        if !part.isEmpty, part.utf8.allSatisfy(ASCII.isBareKey) { return part }
        return TOMLDocument.basicString(part)
    }.joined(separator: ".")
}

func hex4(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
