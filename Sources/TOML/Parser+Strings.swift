/// Basic, literal and multi-line strings, and escapes.
extension Parser {
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
}
