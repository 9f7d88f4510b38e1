/// Parses TOML 1.0 documents into tables whose keys and values carry their source positions.
///
/// The parser works on the UTF-8 bytes in one pass. Tables are built as reference nodes
/// (headers can reopen a table defined far above) and frozen into value types at the end.
/// Nesting is limited to `maximumDepth`, so hostile input gets an error instead of a
/// stack overflow.
public enum TOMLDocument {
    /// The deepest nesting of tables and arrays accepted.
    public static let maximumDepth = 128

    /// Parses `text`; `file` names the source in positions and errors.
    public static func parse(_ text: String, file: String) throws(TOMLError) -> TOMLTable {
        var parser = Parser(bytes: Array(text.utf8), file: file)
        return try parser.parseDocument()
    }

    /// Parses raw file contents, rejecting invalid UTF-8 with the position of the first bad byte.
    public static func parse(bytes: [UInt8], file: String) throws(TOMLError) -> TOMLTable {
        if let bad = firstInvalidUTF8(bytes) {
            var line = 1
            var column = 1
            for byte in bytes[..<bad] {
                if byte == 0x0A {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {
                    column += 1
                }
            }
            let hex = String(bytes[bad], radix: 16, uppercase: true)
            throw TOMLError(position: TOMLPosition(file: file, line: line, column: column),
                            message: "invalid UTF-8 (byte 0x\(hex)); a TOML document must be UTF-8 text",
                            key: keyBeingRead(bytes, before: bad, line: line, file: file))
        }
        var parser = Parser(bytes: bytes, file: file)
        return try parser.parseDocument()
    }

    /// The key whose value holds offset `bad`: the document parsed up to there stops inside
    /// that value (an unterminated string), and the parser knows which key it was reading.
    /// Nil when the byte is outside any value (a comment) or the text before it is broken.
    static func keyBeingRead(_ bytes: [UInt8], before bad: Int, line: Int, file: String) -> String? {
        var parser = Parser(bytes: Array(bytes[..<bad]), file: file)
        do {
            _ = try parser.parseDocument()
            return nil
        } catch {
            return error.position.line == line ? error.key : nil
        }
    }

    /// The offset of the first byte that is not part of well-formed UTF-8, or nil.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            var length = 0
            var minimum: UInt32 = 0
            var scalar: UInt32 = 0
            if b0 & 0xE0 == 0xC0 {
                length = 2; minimum = 0x80; scalar = UInt32(b0 & 0x1F)
            } else if b0 & 0xF0 == 0xE0 {
                length = 3; minimum = 0x800; scalar = UInt32(b0 & 0x0F)
            } else if b0 & 0xF8 == 0xF0 {
                length = 4; minimum = 0x10000; scalar = UInt32(b0 & 0x07)
            } else {
                return i
            }
            guard i + length <= n else { return i }
            for k in 1..<length {
                let byte = bytes[i + k]
                guard byte & 0xC0 == 0x80 else { return i }
                scalar = scalar << 6 | UInt32(byte & 0x3F)
            }
            // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
            guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return i }
            i += length
        }
        return nil
    }
}

// MARK: - Building blocks

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

private enum ASCII {
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
        var quoted = "\""
        for scalar in part.unicodeScalars {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            case "\t": quoted += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    quoted += "\\u" + hex4(scalar.value)
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return quoted + "\""
    }.joined(separator: ".")
}

private func hex4(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

// MARK: - The parser

struct Parser {
    let b: [UInt8]
    let file: String
    var i = 0
    var line = 1
    var lineStart = 0
    let root: TableNode
    var current: TableNode
    var currentPath: [String] = []
    /// Sections are numbered so dotted keys can extend only tables they created themselves.
    var section = 0
    var sectionCounter = 0
    /// The key whose value is being read, for error messages.
    var contextKey: String?
    let columnCache = ColumnCache()

    init(bytes: [UInt8], file: String) {
        b = bytes
        self.file = file
        root = TableNode(definition: .root, position: TOMLPosition(file: file, line: 1, column: 1))
        current = root
        // A byte order mark is not part of the document.
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF {
            i = 3
            lineStart = 3
        }
    }

    // MARK: Positions and errors

    var atEnd: Bool { i >= b.count }

    func peek(_ offset: Int = 0) -> UInt8? {
        let j = i + offset
        return j < b.count ? b[j] : nil
    }

    /// The position of `offset`, which must be on the current line.
    func position(_ offset: Int) -> TOMLPosition {
        // Resume counting from the last column computed on this line: long lines stay linear.
        var column = 1
        var j = lineStart
        if columnCache.lineStart == lineStart, columnCache.offset <= offset {
            column = columnCache.column
            j = columnCache.offset
        }
        while j < offset {
            if b[j] & 0xC0 != 0x80 { column += 1 }
            j += 1
        }
        columnCache.lineStart = lineStart
        columnCache.offset = offset
        columnCache.column = column
        return TOMLPosition(file: file, line: line, column: column)
    }

    var here: TOMLPosition { position(i) }

    func error(_ message: String, at position: TOMLPosition) -> TOMLError {
        TOMLError(position: position, message: message, key: contextKey)
    }

    /// Describes what is at the current offset, for "found ..." in messages.
    func found(at offset: Int? = nil) -> String {
        let j = offset ?? i
        guard j < b.count else { return "end of file" }
        let c = b[j]
        if c == ASCII.lineFeed || c == ASCII.carriageReturn { return "end of line" }
        if c < 0x80 {
            if ASCII.isForbiddenControl(c) { return "control character U+\(hex4(UInt32(c)))" }
            return "'\(Character(Unicode.Scalar(c)))'"
        }
        // Decode the scalar for the message; the bytes are valid UTF-8.
        var end = j + 1
        while end < b.count, b[end] & 0xC0 == 0x80 { end += 1 }
        return "'\(String(decoding: b[j..<end], as: UTF8.self))'"
    }

    // MARK: Whitespace, comments, newlines

    mutating func skipSpaces() {
        while i < b.count, b[i] == ASCII.space || b[i] == ASCII.tab { i += 1 }
    }

    /// Consumes one LF or CRLF; a carriage return on its own is an error.
    mutating func newline() throws(TOMLError) -> Bool {
        guard i < b.count else { return false }
        if b[i] == ASCII.lineFeed {
            i += 1
        } else if b[i] == ASCII.carriageReturn {
            guard peek(1) == ASCII.lineFeed else {
                throw error("a carriage return must be followed by a line feed", at: here)
            }
            i += 2
        } else {
            return false
        }
        line += 1
        lineStart = i
        return true
    }

    mutating func skipComment() throws(TOMLError) {
        i += 1
        while i < b.count {
            let c = b[i]
            if c == ASCII.lineFeed || c == ASCII.carriageReturn { return }
            if ASCII.isForbiddenControl(c) {
                throw error("control character U+\(hex4(UInt32(c))) is not allowed in a comment", at: here)
            }
            i += 1
        }
    }

    /// Skips spaces, comments and newlines (inside arrays).
    mutating func skipTrivia() throws(TOMLError) {
        while true {
            skipSpaces()
            if peek() == ASCII.hash { try skipComment() }
            if try newline() { continue }
            return
        }
    }

    /// After a key/value pair or a header only a comment may follow on the same line.
    mutating func expectLineEnd(after what: String) throws(TOMLError) {
        skipSpaces()
        if peek() == ASCII.hash { try skipComment() }
        if atEnd { return }
        if try newline() { return }
        throw error("expected a newline after \(what), found \(found())", at: here)
    }

    // MARK: Document

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        while true {
            skipSpaces()
            guard let c = peek() else { break }
            if c == ASCII.hash {
                try skipComment()
            } else if c == ASCII.lineFeed || c == ASCII.carriageReturn {
                _ = try newline()
            } else if c == ASCII.leftBracket {
                let header = try parseHeader()
                contextKey = nil
                try expectLineEnd(after: "the table header \(header)")
            } else {
                let key = try parseKeyValue(into: current, section: section, path: currentPath,
                                            depth: currentPath.count)
                try expectLineEnd(after: "the value of key '\(key)'")
                contextKey = nil
            }
        }
        return root.freeze()
    }

    // MARK: Keys

    mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            skipSpaces()
            let start = here
            guard let c = peek() else {
                throw error(parts.isEmpty ? "expected a key, found end of file" : "expected a key after '.', found end of file", at: start)
            }
            if ASCII.isBareKey(c) {
                let s = i
                while i < b.count, ASCII.isBareKey(b[i]) { i += 1 }
                parts.append(KeyPart(name: String(decoding: b[s..<i], as: UTF8.self), position: start))
            } else if c == ASCII.quote {
                if peek(1) == ASCII.quote, peek(2) == ASCII.quote {
                    throw error("a multi-line string cannot be used as a key", at: start)
                }
                parts.append(KeyPart(name: try parseBasicString(), position: start))
            } else if c == ASCII.apostrophe {
                if peek(1) == ASCII.apostrophe, peek(2) == ASCII.apostrophe {
                    throw error("a multi-line string cannot be used as a key", at: start)
                }
                parts.append(KeyPart(name: try parseLiteralString(), position: start))
            } else {
                let what = parts.isEmpty ? "expected a key" : "expected a key after '.'"
                throw error("\(what), found \(found())", at: start)
            }
            skipSpaces()
            if peek() == ASCII.dot {
                i += 1
            } else {
                return parts
            }
        }
    }

    /// Reads `key = value` and stores it; returns the key as written, for messages.
    mutating func parseKeyValue(into table: TableNode, section: Int, path: [String], depth: Int) throws(TOMLError) -> String {
        let parts = try parseKey()
        let written = displayKey(parts.map(\.name))
        contextKey = displayKey(path + parts.map(\.name))
        if depth + parts.count > TOMLDocument.maximumDepth {
            throw error("key '\(written)' nests tables deeper than \(TOMLDocument.maximumDepth) levels", at: parts[0].position)
        }
        skipSpaces()
        guard peek() == ASCII.equals else {
            throw error("expected '=' after key '\(written)', found \(found())", at: here)
        }
        i += 1
        skipSpaces()
        let value = try parseValue(depth: depth + parts.count, key: written)
        try insert(parts, value, into: table, section: section)
        return written
    }

    /// Stores a value under a dotted key, creating (or reusing) the tables on the way.
    mutating func insert(_ parts: [KeyPart], _ value: TOMLValue, into table: TableNode, section: Int) throws(TOMLError) {
        var node = table
        var walked: [String] = []
        for part in parts.dropLast() {
            walked.append(part.name)
            let name = displayKey(walked)
            if let entry = node.lookup(part.name) {
                switch entry.content {
                case .table(let next):
                    switch next.definition {
                    case .dotted(let owner) where owner == section:
                        break
                    case .implicit:
                        // Claimed by this section's dotted keys: a later [header] may not redefine it.
                        next.definition = .dotted(section)
                    case .header, .arrayElement, .root:
                        throw error("cannot add to table '\(name)' with dotted keys: it is defined by the table header at \(next.position.lineAndColumn)", at: part.position)
                    case .dotted:
                        throw error("cannot add to table '\(name)' here: it was defined by dotted keys at \(entry.keyPosition.lineAndColumn)", at: part.position)
                    case .inline:
                        throw error("cannot add to inline table '\(name)' (defined at \(next.position.lineAndColumn)): inline tables are complete where they are written", at: part.position)
                    }
                    node = next
                case .arrayOfTables(let array):
                    throw error("cannot add to array of tables '\(name)' (defined at \(array.position.lineAndColumn)) with dotted keys", at: part.position)
                case .value(let existing):
                    if case .table(let inline) = existing {
                        throw error("cannot add to inline table '\(name)' (defined at \(inline.position.lineAndColumn)): inline tables are complete where they are written", at: part.position)
                    }
                    throw error("key '\(name)' is already defined as \(existing.typeDescription) at \(entry.keyPosition.lineAndColumn)", at: part.position)
                }
            } else {
                let next = TableNode(definition: .dotted(section), position: part.position)
                node.add(part.name, at: part.position, .table(next))
                node = next
            }
        }
        guard let last = parts.last else { return }
        if let existing = node.lookup(last.name) {
            throw error("duplicate key '\(displayKey(parts.map(\.name)))' (first defined at \(existing.keyPosition.lineAndColumn))", at: last.position)
        }
        node.add(last.name, at: last.position, .value(value))
    }

    // MARK: Table headers

    /// Reads `[a.b]` or `[[a.b]]` and makes that table the current one; returns the header text.
    mutating func parseHeader() throws(TOMLError) -> String {
        let start = here
        i += 1
        let isArray = peek() == ASCII.leftBracket
        if isArray { i += 1 }
        let parts = try parseKey()
        let names = parts.map(\.name)
        let written = isArray ? "[[\(displayKey(names))]]" : "[\(displayKey(names))]"
        contextKey = displayKey(names)
        if parts.count > TOMLDocument.maximumDepth {
            throw error("table header \(written) nests tables deeper than \(TOMLDocument.maximumDepth) levels", at: start)
        }
        guard peek() == ASCII.rightBracket else {
            throw error("expected '\(isArray ? "]]" : "]")' to close the table header \(written.dropLast(isArray ? 2 : 1)), found \(found())", at: here)
        }
        i += 1
        if isArray {
            guard peek() == ASCII.rightBracket else {
                throw error("expected ']]' to close the array of tables header \(written.dropLast(2)), found \(found(at: i - 1)) followed by \(found())", at: position(i - 1))
            }
            i += 1
        }

        var node = root
        var walked: [String] = []
        for part in parts.dropLast() {
            walked.append(part.name)
            let name = displayKey(walked)
            if let entry = node.lookup(part.name) {
                switch entry.content {
                case .table(let next):
                    if next.definition == .inline {
                        throw error("cannot extend inline table '\(name)' (defined at \(next.position.lineAndColumn))", at: part.position)
                    }
                    node = next
                case .arrayOfTables(let array):
                    // A header below an array of tables extends its last element.
                    node = array.tables[array.tables.count - 1]
                case .value(let existing):
                    throw conflict(name: name, existing: existing, keyPosition: entry.keyPosition, at: part.position)
                }
            } else {
                let next = TableNode(definition: .implicit, position: part.position)
                node.add(part.name, at: part.position, .table(next))
                node = next
            }
        }

        guard let last = parts.last else { return written }
        walked.append(last.name)
        let name = displayKey(walked)
        let target: TableNode
        if isArray {
            if let entry = node.lookup(last.name) {
                switch entry.content {
                case .arrayOfTables(let array):
                    target = TableNode(definition: .arrayElement, position: start)
                    array.tables.append(target)
                case .table(let existing):
                    throw error("cannot define array of tables [[\(name)]]: '\(name)' is already a table defined at \(existing.position.lineAndColumn)", at: last.position)
                case .value(let existing):
                    if case .array = existing {
                        throw error("cannot append to static array '\(name)' (defined at \(entry.keyPosition.lineAndColumn)) with [[\(name)]]", at: last.position)
                    }
                    throw conflict(name: name, existing: existing, keyPosition: entry.keyPosition, at: last.position)
                }
            } else {
                target = TableNode(definition: .arrayElement, position: start)
                node.add(last.name, at: last.position, .arrayOfTables(ArrayOfTablesNode(position: start, first: target)))
            }
        } else {
            if let entry = node.lookup(last.name) {
                switch entry.content {
                case .table(let existing):
                    switch existing.definition {
                    case .implicit:
                        existing.definition = .header
                        existing.position = start
                    case .header, .arrayElement, .root:
                        throw error("table [\(name)] is already defined at \(existing.position.lineAndColumn)", at: start)
                    case .dotted:
                        throw error("table [\(name)] is already defined by dotted keys at \(entry.keyPosition.lineAndColumn)", at: start)
                    case .inline:
                        throw error("table [\(name)] is already defined as an inline table at \(existing.position.lineAndColumn)", at: start)
                    }
                    target = existing
                case .arrayOfTables(let array):
                    throw error("table [\(name)] conflicts with the array of tables [[\(name)]] defined at \(array.position.lineAndColumn)", at: start)
                case .value(let existing):
                    if case .table(let inline) = existing {
                        throw error("table [\(name)] is already defined as an inline table at \(inline.position.lineAndColumn)", at: start)
                    }
                    throw conflict(name: name, existing: existing, keyPosition: entry.keyPosition, at: last.position)
                }
            } else {
                target = TableNode(definition: .header, position: start)
                node.add(last.name, at: last.position, .table(target))
            }
        }
        current = target
        currentPath = names
        sectionCounter += 1
        section = sectionCounter
        return written
    }

    func conflict(name: String, existing: TOMLValue, keyPosition: TOMLPosition, at position: TOMLPosition) -> TOMLError {
        switch existing {
        case .table(let inline):
            return error("cannot extend inline table '\(name)' (defined at \(inline.position.lineAndColumn))", at: position)
        case .array:
            return error("cannot extend static array '\(name)' (defined at \(keyPosition.lineAndColumn)); only arrays of tables ([[\(name)]]) can be extended", at: position)
        default:
            return error("key '\(name)' is already defined as \(existing.typeDescription) at \(keyPosition.lineAndColumn), not a table", at: position)
        }
    }

    // MARK: Values

    mutating func parseValue(depth: Int, key: String) throws(TOMLError) -> TOMLValue {
        let start = here
        guard let c = peek() else {
            throw error("expected a value for key '\(key)', found end of file", at: start)
        }
        switch c {
        case ASCII.quote:
            if peek(1) == ASCII.quote, peek(2) == ASCII.quote {
                return .string(try parseMultilineString(literal: false), start)
            }
            return .string(try parseBasicString(), start)
        case ASCII.apostrophe:
            if peek(1) == ASCII.apostrophe, peek(2) == ASCII.apostrophe {
                return .string(try parseMultilineString(literal: true), start)
            }
            return .string(try parseLiteralString(), start)
        case ASCII.leftBracket:
            return try parseArray(depth: depth + 1, key: key)
        case ASCII.leftBrace:
            return try parseInlineTable(depth: depth + 1, key: key)
        case ASCII.lineFeed, ASCII.carriageReturn, ASCII.hash:
            throw error("expected a value for key '\(key)', found \(found())", at: start)
        default:
            if ASCII.isDigit(c) {
                if isDigits(i, 4), peek(4) == ASCII.minus { return try parseDateTime() }
                if isDigits(i, 2), peek(2) == ASCII.colon { return try parseDateTime() }
            }
            return try parseBareValue()
        }
    }

    func isDigits(_ from: Int, _ count: Int) -> Bool {
        guard from + count <= b.count else { return false }
        for k in from..<(from + count) where !ASCII.isDigit(b[k]) { return false }
        return true
    }

    /// Reads the bytes up to the end of a bare value.
    mutating func scanToken() -> String {
        let s = i
        while i < b.count, !ASCII.endsValue(b[i]) { i += 1 }
        return String(decoding: b[s..<i], as: UTF8.self)
    }

    /// Booleans, integers, floats, inf and nan.
    mutating func parseBareValue() throws(TOMLError) -> TOMLValue {
        let start = here
        let startOffset = i
        let token = scanToken()
        if token.isEmpty {
            throw error("expected a value, found \(found())", at: start)
        }
        switch token {
        case "true": return .boolean(true, start)
        case "false": return .boolean(false, start)
        case "inf", "+inf": return .float(.infinity, start)
        case "-inf": return .float(-.infinity, start)
        case "nan", "+nan": return .float(.nan, start)
        case "-nan": return .float(-Double.nan, start)
        default: break
        }
        let first = b[startOffset]
        if !(ASCII.isDigit(first) || first == ASCII.plus || first == ASCII.minus || first == ASCII.dot) {
            if token.utf8.allSatisfy(ASCII.isBareKey) {
                throw error("invalid value '\(token)': strings must be quoted (\"\(token)\")", at: start)
            }
            throw error("invalid value '\(token)'", at: start)
        }
        return try parseNumber(Array(token.utf8), text: token, at: start)
    }

    func parseNumber(_ t: [UInt8], text: String, at start: TOMLPosition) throws(TOMLError) -> TOMLValue {
        func invalid(_ reason: String) -> TOMLError {
            error("invalid number '\(text)': \(reason)", at: start)
        }
        var k = 0
        let hasSign = t[0] == ASCII.plus || t[0] == ASCII.minus
        let negative = t[0] == ASCII.minus
        if hasSign { k = 1 }

        // Hexadecimal, octal and binary integers.
        if k + 1 < t.count, t[k] == 0x30, t[k + 1] == 0x78 || t[k + 1] == 0x6F || t[k + 1] == 0x62 {
            let radix: UInt64 = t[k + 1] == 0x78 ? 16 : t[k + 1] == 0x6F ? 8 : 2
            let radixName = radix == 16 ? "hexadecimal" : radix == 8 ? "octal" : "binary"
            if hasSign { throw invalid("\(radixName) integers cannot have a sign") }
            k += 2
            guard k < t.count else { throw invalid("no digits after the prefix") }
            var value: UInt64 = 0
            var previousWasDigit = false
            while k < t.count {
                let c = t[k]
                if c == ASCII.underscore {
                    guard previousWasDigit, k + 1 < t.count else { throw invalid("underscores must be between digits") }
                    previousWasDigit = false
                    k += 1
                    continue
                }
                let digit: UInt64
                if ASCII.isDigit(c) {
                    digit = UInt64(c - 0x30)
                } else if c >= 0x61 && c <= 0x66 {
                    digit = UInt64(c - 0x61 + 10)
                } else if c >= 0x41 && c <= 0x46 {
                    digit = UInt64(c - 0x41 + 10)
                } else {
                    throw invalid("'\(Character(Unicode.Scalar(c)))' is not \(radix == 8 ? "an" : "a") \(radixName) digit")
                }
                guard digit < radix else {
                    throw invalid("'\(Character(Unicode.Scalar(c)))' is not \(radix == 8 ? "an" : "a") \(radixName) digit")
                }
                let (shifted, overflow1) = value.multipliedReportingOverflow(by: radix)
                let (sum, overflow2) = shifted.addingReportingOverflow(digit)
                guard !overflow1, !overflow2, sum <= UInt64(Int64.max) else {
                    throw error("integer '\(text)' does not fit in 64 bits", at: start)
                }
                value = sum
                previousWasDigit = true
                k += 1
            }
            guard previousWasDigit else { throw invalid("underscores must be between digits") }
            return .integer(Int64(value), start)
        }

        // Decimal integers and floats: digits may be separated by single underscores.
        var cleaned = negative ? "-" : ""
        func digits(_ what: String) throws(TOMLError) -> Int {
            var count = 0
            var previousWasDigit = false
            while k < t.count {
                let c = t[k]
                if ASCII.isDigit(c) {
                    cleaned.unicodeScalars.append(Unicode.Scalar(c))
                    count += 1
                    previousWasDigit = true
                } else if c == ASCII.underscore {
                    guard previousWasDigit, k + 1 < t.count, ASCII.isDigit(t[k + 1]) else {
                        throw invalid("underscores must be between digits")
                    }
                    previousWasDigit = false
                } else {
                    break
                }
                k += 1
            }
            if count == 0 { throw invalid(what) }
            return count
        }

        let integerStart = k
        if k < t.count, t[k] == ASCII.dot {
            throw invalid("a float needs digits before the decimal point")
        }
        let integerDigits = try digits("expected digits")
        if integerDigits > 1, t[integerStart] == 0x30 {
            throw invalid("leading zeros are not allowed")
        }
        var isFloat = false
        if k < t.count, t[k] == ASCII.dot {
            isFloat = true
            cleaned += "."
            k += 1
            _ = try digits("a decimal point must be followed by digits")
        }
        if k < t.count, t[k] == 0x65 || t[k] == 0x45 {
            isFloat = true
            cleaned += "e"
            k += 1
            if k < t.count, t[k] == ASCII.plus || t[k] == ASCII.minus {
                cleaned.unicodeScalars.append(Unicode.Scalar(t[k]))
                k += 1
            }
            _ = try digits("an exponent needs digits")
        }
        if k < t.count {
            throw invalid("unexpected '\(String(decoding: t[k...], as: UTF8.self))'")
        }
        if isFloat {
            guard let value = Double(cleaned), value.isFinite else {
                throw error("float '\(text)' is out of range", at: start)
            }
            return .float(value, start)
        }
        guard let value = Int64(cleaned) else {
            throw error("integer '\(text)' does not fit in 64 bits", at: start)
        }
        return .integer(value, start)
    }

    // MARK: Dates and times

    mutating func parseDateTime() throws(TOMLError) -> TOMLValue {
        let start = here
        let s = i
        func number(_ count: Int) -> Int? {
            guard isDigits(i, count) else { return nil }
            var value = 0
            for k in i..<(i + count) { value = value * 10 + Int(b[k] - 0x30) }
            i += count
            return value
        }
        func invalid(_ reason: String) -> TOMLError {
            var end = i
            while end < b.count, !ASCII.endsValue(b[end]) { end += 1 }
            let text = String(decoding: b[s..<max(end, i)], as: UTF8.self)
            return error("invalid date-time '\(text)': \(reason)", at: start)
        }
        func expect(_ byte: UInt8, _ reason: String) throws(TOMLError) {
            guard peek() == byte else { throw invalid(reason) }
            i += 1
        }

        var year = 0, month = 0, day = 0
        var hasDate = false
        if peek(4) == ASCII.minus {
            guard let y = number(4) else { throw invalid("expected YYYY-MM-DD") }
            try expect(ASCII.minus, "expected YYYY-MM-DD")
            guard let m = number(2) else { throw invalid("expected YYYY-MM-DD") }
            try expect(ASCII.minus, "expected YYYY-MM-DD")
            guard let d = number(2) else { throw invalid("expected YYYY-MM-DD") }
            guard (1...12).contains(m) else { throw invalid("month \(m) does not exist") }
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
            let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
            guard (1...days).contains(d) else { throw invalid("day \(d) does not exist in month \(m) of \(y)") }
            year = y; month = m; day = d
            hasDate = true
            // The time follows after 'T', 't' or a single space.
            if let c = peek(), c == 0x54 || c == 0x74 {
                i += 1
            } else if peek() == ASCII.space, isDigits(i + 1, 2), peek(3) == ASCII.colon {
                i += 1
            } else {
                if let c = peek(), !ASCII.endsValue(c) { throw invalid("unexpected \(found()) after the date") }
                let text = String(decoding: b[s..<i], as: UTF8.self)
                return .dateTime(TOMLDateTime(kind: .localDate, text: text, year: year, month: month, day: day), start)
            }
        }

        guard let hour = number(2) else { throw invalid("expected HH:MM:SS") }
        try expect(ASCII.colon, "expected HH:MM:SS")
        guard let minute = number(2) else { throw invalid("expected HH:MM:SS") }
        try expect(ASCII.colon, "expected HH:MM:SS (seconds are required)")
        guard let second = number(2) else { throw invalid("expected HH:MM:SS") }
        guard hour < 24 else { throw invalid("hour \(hour) does not exist") }
        guard minute < 60 else { throw invalid("minute \(minute) does not exist") }
        guard second < 60 else { throw invalid("second \(second) does not exist") }
        var nanosecond = 0
        if peek() == ASCII.dot {
            i += 1
            var count = 0
            while let c = peek(), ASCII.isDigit(c) {
                if count < 9 { nanosecond = nanosecond * 10 + Int(c - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { throw invalid("a decimal point must be followed by digits") }
            for _ in count..<max(count, 9) { nanosecond *= 10 }
        }
        var offset: Int?
        if hasDate {
            if let c = peek(), c == 0x5A || c == 0x7A {
                i += 1
                offset = 0
            } else if let c = peek(), c == ASCII.plus || c == ASCII.minus {
                i += 1
                guard let oh = number(2) else { throw invalid("expected an offset +HH:MM") }
                try expect(ASCII.colon, "expected an offset +HH:MM")
                guard let om = number(2) else { throw invalid("expected an offset +HH:MM") }
                guard oh < 24, om < 60 else { throw invalid("offset \(oh):\(om) does not exist") }
                offset = (oh * 60 + om) * (c == ASCII.minus ? -1 : 1)
            }
        }
        if let c = peek(), !ASCII.endsValue(c) {
            throw invalid("unexpected \(found())")
        }
        let text = String(decoding: b[s..<i], as: UTF8.self)
        let kind: TOMLDateTime.Kind = !hasDate ? .localTime : offset == nil ? .localDateTime : .offsetDateTime
        return .dateTime(TOMLDateTime(kind: kind, text: text, year: year, month: month, day: day, hour: hour,
                                      minute: minute, second: second, nanosecond: nanosecond,
                                      offsetMinutes: offset), start)
    }

    // MARK: Strings

    mutating func parseBasicString() throws(TOMLError) -> String {
        let start = here
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw error("unterminated string", at: start) }
            let c = b[i]
            switch c {
            case ASCII.quote:
                i += 1
                return String(decoding: out, as: UTF8.self)
            case ASCII.backslash:
                try parseEscape(into: &out)
            case ASCII.lineFeed, ASCII.carriageReturn:
                throw error("unterminated string (a \"...\" string must end on its line; use \"\"\" for multi-line strings)", at: start)
            default:
                if ASCII.isForbiddenControl(c) {
                    throw error("control character U+\(hex4(UInt32(c))) must be escaped in a string", at: here)
                }
                out.append(c)
                i += 1
            }
        }
    }

    mutating func parseLiteralString() throws(TOMLError) -> String {
        let start = here
        i += 1
        let s = i
        while true {
            guard i < b.count else { throw error("unterminated string", at: start) }
            let c = b[i]
            if c == ASCII.apostrophe {
                i += 1
                return String(decoding: b[s..<(i - 1)], as: UTF8.self)
            }
            if c == ASCII.lineFeed || c == ASCII.carriageReturn {
                throw error("unterminated string (a '...' string must end on its line; use ''' for multi-line strings)", at: start)
            }
            if ASCII.isForbiddenControl(c) {
                throw error("control character U+\(hex4(UInt32(c))) is not allowed in a literal string", at: here)
            }
            i += 1
        }
    }

    mutating func parseEscape(into out: inout [UInt8]) throws(TOMLError) {
        let start = here
        i += 1
        guard let c = peek() else { throw error("unterminated string", at: start) }
        i += 1
        switch c {
        case 0x62: out.append(0x08)
        case 0x74: out.append(0x09)
        case 0x6E: out.append(0x0A)
        case 0x66: out.append(0x0C)
        case 0x72: out.append(0x0D)
        case ASCII.quote: out.append(ASCII.quote)
        case ASCII.backslash: out.append(ASCII.backslash)
        case 0x75, 0x55:
            let count = c == 0x75 ? 4 : 8
            let name = c == 0x75 ? "\\u" : "\\U"
            var value: UInt32 = 0
            for _ in 0..<count {
                guard let h = peek(), ASCII.isHexDigit(h) else {
                    throw error("escape \(name) needs \(count) hexadecimal digits", at: start)
                }
                let digit = ASCII.isDigit(h) ? h - 0x30 : (h | 0x20) - 0x61 + 10
                value = value << 4 | UInt32(digit)
                i += 1
            }
            guard let scalar = Unicode.Scalar(value) else {
                let text = String(decoding: b[(i - count - 2)..<i], as: UTF8.self)
                throw error("escape \(text) is not a Unicode scalar value", at: start)
            }
            UTF8.encode(scalar) { out.append($0) }
        default:
            i -= 1
            if c > 0x20, c < 0x7F {
                throw error("invalid escape sequence '\\\(Character(Unicode.Scalar(c)))'", at: start)
            }
            throw error("invalid escape sequence: '\\' followed by \(found())", at: start)
        }
    }

    mutating func parseMultilineString(literal: Bool) throws(TOMLError) -> String {
        let start = here
        let delimiter = literal ? ASCII.apostrophe : ASCII.quote
        i += 3
        // A newline right after the opening delimiter is not part of the string.
        _ = try newline()
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw error("unterminated multi-line string", at: start) }
            let c = b[i]
            if c == delimiter {
                var count = 0
                while i + count < b.count, b[i + count] == delimiter { count += 1 }
                if count >= 3 {
                    // Up to two delimiter characters may end the content before the closing three.
                    guard count <= 5 else {
                        throw error("too many quotes: a multi-line string may end with at most two quotes before its closing delimiter", at: here)
                    }
                    out.append(contentsOf: repeatElement(delimiter, count: count - 3))
                    i += count
                    return String(decoding: out, as: UTF8.self)
                }
                out.append(contentsOf: repeatElement(delimiter, count: count))
                i += count
                continue
            }
            if c == ASCII.backslash, !literal {
                // A backslash at the end of a line trims the newline and the following whitespace.
                var j = i + 1
                while j < b.count, b[j] == ASCII.space || b[j] == ASCII.tab { j += 1 }
                if j < b.count, b[j] == ASCII.lineFeed || b[j] == ASCII.carriageReturn {
                    i = j
                    while true {
                        skipSpaces()
                        if try newline() { continue }
                        break
                    }
                    continue
                }
                try parseEscape(into: &out)
                continue
            }
            if c == ASCII.lineFeed || c == ASCII.carriageReturn {
                _ = try newline()
                out.append(ASCII.lineFeed)
                continue
            }
            if ASCII.isForbiddenControl(c) {
                throw error("control character U+\(hex4(UInt32(c))) \(literal ? "is not allowed in a literal string" : "must be escaped in a string")", at: here)
            }
            out.append(c)
            i += 1
        }
    }

    // MARK: Arrays and inline tables

    mutating func parseArray(depth: Int, key: String) throws(TOMLError) -> TOMLValue {
        let start = here
        if depth > TOMLDocument.maximumDepth {
            throw error("arrays and tables are nested deeper than \(TOMLDocument.maximumDepth) levels", at: start)
        }
        i += 1
        var values: [TOMLValue] = []
        while true {
            try skipTrivia()
            guard let c = peek() else {
                throw error("unterminated array (opened at \(start.lineAndColumn))", at: here)
            }
            if c == ASCII.rightBracket {
                i += 1
                return .array(values, start)
            }
            if c == ASCII.comma {
                throw error(values.isEmpty ? "expected a value or ']' in array, found ','" : "expected a value after ',' in array, found ','", at: here)
            }
            values.append(try parseValue(depth: depth, key: key))
            try skipTrivia()
            guard let next = peek() else {
                throw error("unterminated array (opened at \(start.lineAndColumn))", at: here)
            }
            if next == ASCII.comma {
                i += 1
            } else if next != ASCII.rightBracket {
                throw error("expected ',' or ']' in array, found \(found())", at: here)
            }
        }
    }

    mutating func parseInlineTable(depth: Int, key: String) throws(TOMLError) -> TOMLValue {
        let start = here
        if depth > TOMLDocument.maximumDepth {
            throw error("arrays and tables are nested deeper than \(TOMLDocument.maximumDepth) levels", at: start)
        }
        i += 1
        let node = TableNode(definition: .inline, position: start)
        // A section number of its own: dotted keys inside may build on each other, nothing outside may.
        sectionCounter += 1
        let inlineSection = -sectionCounter
        let savedContext = contextKey
        skipSpaces()
        if peek() == ASCII.rightBrace {
            i += 1
            return .table(node.freeze())
        }
        while true {
            skipSpaces()
            if atEnd {
                throw error("unterminated inline table (opened at \(start.lineAndColumn))", at: here)
            }
            if let c = peek(), c == ASCII.lineFeed || c == ASCII.carriageReturn {
                throw error("an inline table must be on one line; expected a key or '}', found end of line", at: here)
            }
            let parts = try parseKey()
            let written = displayKey(parts.map(\.name))
            contextKey = (savedContext.map { $0 + "." } ?? "") + written
            if depth + parts.count > TOMLDocument.maximumDepth {
                throw error("arrays and tables are nested deeper than \(TOMLDocument.maximumDepth) levels", at: parts[0].position)
            }
            skipSpaces()
            guard peek() == ASCII.equals else {
                throw error("expected '=' after key '\(written)', found \(found())", at: here)
            }
            i += 1
            skipSpaces()
            let value = try parseValue(depth: depth + parts.count - 1, key: written)
            try insert(parts, value, into: node, section: inlineSection)
            contextKey = savedContext
            skipSpaces()
            guard let c = peek() else {
                throw error("unterminated inline table (opened at \(start.lineAndColumn))", at: here)
            }
            if c == ASCII.comma {
                i += 1
                skipSpaces()
                if peek() == ASCII.rightBrace {
                    throw error("a trailing comma is not allowed in an inline table", at: here)
                }
                continue
            }
            if c == ASCII.rightBrace {
                i += 1
                return .table(node.freeze())
            }
            if c == ASCII.lineFeed || c == ASCII.carriageReturn {
                throw error("an inline table must be on one line; expected ',' or '}', found end of line", at: here)
            }
            throw error("expected ',' or '}' in inline table, found \(found())", at: here)
        }
    }
}
