import SystemSupport
import TOML

/// Collects every problem while a recipe is read, and where each key was written.
final class Diagnostics {
    var errors: [RecipeError] = []
    var positions: [String: TOMLPosition] = [:]

    func error(_ message: String, at position: TOMLPosition, key: String, related: TOMLPosition? = nil) {
        errors.append(RecipeError(position: position, keyPath: key, message: message, relatedPosition: related))
    }

    /// Reports a value that occurs twice, at the second place, naming the first.
    func duplicate(_ what: String, second: Located<some Any>, first: Located<some Any>) {
        error("duplicate \(what) (first defined at \(first.position.lineAndColumn), \(first.keyPath))",
              at: second.position, key: second.keyPath, related: first.position)
    }
}

/// A value read from the recipe, with where it was written and its key path.
struct Located<Value> {
    let value: Value
    let position: TOMLPosition
    let keyPath: String

    /// Another value at the same place.
    func with<Other>(_ value: Other) -> Located<Other> {
        Located<Other>(value: value, position: position, keyPath: keyPath)
    }
}

/// Reads one table of the recipe: typed accessors that report wrong types, and unknown keys
/// reported (with a suggestion) as soon as the reader is made.
struct TableReader {
    let table: TOMLTable
    /// The key path of the table itself ("" for the document, "disk", "users[0]").
    let path: String
    let diagnostics: Diagnostics

    init(_ table: TOMLTable, path: String, known: [String], diagnostics: Diagnostics) {
        self.table = table
        self.path = path
        self.diagnostics = diagnostics
        if !path.isEmpty { diagnostics.positions[path] = table.position }
        for entry in table.entries where !known.contains(entry.key) {
            diagnostics.error(unknownKeyMessage(entry.key, known: known), at: entry.keyPosition, key: keyPath(entry.key))
        }
    }

    var position: TOMLPosition { table.position }

    /// How to name this table in messages: " in [disk]", " in this users entry", "" for the document.
    var displayName: String {
        if path.isEmpty { return "" }
        if path.hasSuffix("]"), let bracket = path.lastIndex(of: "[") {
            return " in this \(path[..<bracket]) entry"
        }
        return " in [\(path)]"
    }

    func keyPath(_ key: String) -> String {
        path.isEmpty ? key : path + "." + key
    }

    func has(_ key: String) -> Bool { table[key] != nil }

    func value(_ key: String) -> Located<TOMLValue>? {
        guard let value = table[key] else { return nil }
        let located = Located(value: value, position: value.position, keyPath: keyPath(key))
        diagnostics.positions[located.keyPath] = located.position
        return located
    }

    /// Reports `key` as missing, at the position of this table.
    func missing(_ key: String, _ detail: String? = nil) {
        let message = "missing required key '\(key)'\(displayName)" + (detail.map { ": " + $0 } ?? "")
        diagnostics.error(message, at: position, key: keyPath(key))
    }

    func typeError(_ located: Located<TOMLValue>, expected: String) {
        diagnostics.error("expected \(expected), found \(located.value.typeDescription)", at: located.position, key: located.keyPath)
    }

    func string(_ key: String) -> Located<String>? {
        guard let located = value(key) else { return nil }
        return TableReader.string(located, diagnostics: diagnostics)
    }

    func requiredString(_ key: String) -> Located<String>? {
        guard has(key) else {
            missing(key)
            return nil
        }
        return string(key)
    }

    /// The value of `key` when `extract` takes it (it has the type wanted); reported as
    /// not `expected` otherwise.
    func value<T>(_ key: String, expected: String, as extract: (TOMLValue) -> T?) -> Located<T>? {
        guard let located = value(key) else { return nil }
        guard let typed = extract(located.value) else {
            typeError(located, expected: expected)
            return nil
        }
        return located.with(typed)
    }

    func integer(_ key: String) -> Located<Int64>? {
        value(key, expected: "an integer", as: \.integer)
    }

    func boolean(_ key: String) -> Located<Bool>? {
        value(key, expected: "a boolean (true or false)", as: \.boolean)
    }

    /// An array of strings; elements of another type are reported one by one and skipped.
    func stringArray(_ key: String) -> Located<[Located<String>]>? {
        guard let located = value(key, expected: "an array of strings", as: \.array) else { return nil }
        var strings: [Located<String>] = []
        for (index, element) in located.value.enumerated() {
            let elementPath = "\(located.keyPath)[\(index)]"
            diagnostics.positions[elementPath] = element.position
            if let text = element.string {
                strings.append(Located(value: text, position: element.position, keyPath: elementPath))
            } else {
                diagnostics.error("expected a string, found \(element.typeDescription)", at: element.position, key: elementPath)
            }
        }
        return located.with(strings)
    }

    /// A size: integer bytes, or a string with a binary suffix ("512M", "2G").
    func size(_ key: String) -> Located<Int64>? {
        guard let located = value(key) else { return nil }
        switch located.value {
        case .integer(let bytes, _):
            guard bytes >= 0 else {
                diagnostics.error("a size cannot be negative", at: located.position, key: located.keyPath)
                return nil
            }
            return located.with(bytes)
        case .string(let text, _):
            guard let bytes = TableReader.parseSize(text) else {
                diagnostics.error("'\(text)' is not a size: use bytes or a number with K, M, G or T", at: located.position, key: located.keyPath)
                return nil
            }
            return located.with(bytes)
        default:
            typeError(located, expected: "a size (bytes as an integer, or a string such as \"2G\")")
            return nil
        }
    }

    /// Sizes are bytes or a decimal number followed by K, M, G or T (binary units; "KiB",
    /// "MiB", ... and a trailing "B" are accepted too).
    static func parseSize(_ text: String) -> Int64? {
        // ByteCount also accepts surrounding spaces; a recipe size must be written tightly.
        guard let first = text.first, let last = text.last, first.isASCII, first.isNumber, !last.isWhitespace else { return nil }
        return ByteCount.parse(text)
    }

    /// A sub-table (a `[header]` table or an inline table).
    func table(_ key: String, known: [String]) -> TableReader? {
        guard let located = value(key, expected: "a table ([\(keyPath(key))])", as: \.table) else { return nil }
        return TableReader(located.value, path: located.keyPath, known: known, diagnostics: diagnostics)
    }

    /// An array of tables (`[[key]]` or an array of inline tables).
    func arrayOfTables(_ key: String, known: [String]) -> [TableReader]? {
        tables(key)?.map { TableReader($0.value, path: $0.keyPath, known: known, diagnostics: diagnostics) }
    }

    /// The tables of an array of tables, each with its key path ("users[1]"); elements that
    /// are not tables are reported and left out.
    func tables(_ key: String) -> [Located<TOMLTable>]? {
        guard let located = value(key, expected: "an array of tables ([[\(keyPath(key))]])", as: \.array) else { return nil }
        var tables: [Located<TOMLTable>] = []
        for (index, element) in located.value.enumerated() {
            let elementPath = "\(located.keyPath)[\(index)]"
            guard let table = element.table else {
                diagnostics.error("expected a table, found \(element.typeDescription)", at: element.position, key: elementPath)
                continue
            }
            tables.append(Located(value: table, position: table.position, keyPath: elementPath))
        }
        return tables
    }

    static func string(_ located: Located<TOMLValue>, diagnostics: Diagnostics) -> Located<String>? {
        guard let text = located.value.string else {
            diagnostics.error("expected a string, found \(located.value.typeDescription)", at: located.position, key: located.keyPath)
            return nil
        }
        return located.with(text)
    }
}
