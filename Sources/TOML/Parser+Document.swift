/// The document: key/value lines and table headers until the end.
extension Parser {
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
}
