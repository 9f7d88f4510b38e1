/// The one-pass parser over the document's UTF-8 bytes: the cursor, positions and errors, and
/// whitespace; the grammar's parts are in the Parser+*.swift files beside this one.
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
}
