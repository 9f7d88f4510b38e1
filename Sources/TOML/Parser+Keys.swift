/// Keys, dotted keys and table headers, and the rules about redefining tables.
extension Parser {
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
        try parseAssignment(to: parts, written: written, depth: depth + parts.count, into: table, section: section)
        return written
    }

    /// Reads the `= value` after a key (`parts`, shown as `written`) and stores the value,
    /// which is nested `depth` levels deep.
    mutating func parseAssignment(to parts: [KeyPart], written: String, depth: Int, into table: TableNode, section: Int) throws(TOMLError) {
        skipSpaces()
        guard peek() == ASCII.equals else {
            throw error("expected '=' after key '\(written)', found \(found())", at: here)
        }
        i += 1
        skipSpaces()
        let value = try parseValue(depth: depth, key: written)
        try insert(parts, value, into: table, section: section)
    }

    /// Stores a value under a dotted key, creating (or reusing) the tables on the way.
    func insert(_ parts: [KeyPart], _ value: TOMLValue, into table: TableNode, section: Int) throws(TOMLError) {
        let node = try walk(parts, from: table, creating: .dotted(section)) { (entry, name, part) throws(TOMLError) -> TableNode in
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
                return next
            case .arrayOfTables(let array):
                throw error("cannot add to array of tables '\(name)' (defined at \(array.position.lineAndColumn)) with dotted keys", at: part.position)
            case .value(let existing):
                if case .table(let inline) = existing {
                    throw error("cannot add to inline table '\(name)' (defined at \(inline.position.lineAndColumn)): inline tables are complete where they are written", at: part.position)
                }
                throw error("key '\(name)' is already defined as \(existing.typeDescription) at \(entry.keyPosition.lineAndColumn)", at: part.position)
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

        let node = try walk(parts, from: root, creating: .implicit) { (entry, name, part) throws(TOMLError) -> TableNode in
            switch entry.content {
            case .table(let next):
                if next.definition == .inline {
                    throw error("cannot extend inline table '\(name)' (defined at \(next.position.lineAndColumn))", at: part.position)
                }
                return next
            case .arrayOfTables(let array):
                // A header below an array of tables extends its last element.
                return array.tables[array.tables.count - 1]
            case .value(let existing):
                throw conflict(name: name, existing: existing, keyPosition: entry.keyPosition, at: part.position)
            }
        }

        guard let last = parts.last else { return written }
        let name = displayKey(names)
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

    /// Goes down the tables that all but the last part of a dotted key name, from `start`,
    /// making each missing one as `created`; `existing` decides how to go on through an entry
    /// that is there (given the dotted name so far, for messages) or throws. Returns the table
    /// the last part belongs in.
    func walk(_ parts: [KeyPart], from start: TableNode, creating created: TableNode.Definition,
              through existing: (TableNode.Entry, String, KeyPart) throws(TOMLError) -> TableNode) throws(TOMLError) -> TableNode {
        var node = start
        var walked: [String] = []
        for part in parts.dropLast() {
            walked.append(part.name)
            if let entry = node.lookup(part.name) {
                node = try existing(entry, displayKey(walked), part)
            } else {
                let next = TableNode(definition: created, position: part.position)
                node.add(part.name, at: part.position, .table(next))
                node = next
            }
        }
        return node
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
}
