/// Arrays and inline tables.
extension Parser {
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
            try parseAssignment(to: parts, written: written, depth: depth + parts.count - 1, into: node, section: inlineSection)
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
