/// Values: dispatch on the first byte, booleans, integers and floats.
extension Parser {
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
}
