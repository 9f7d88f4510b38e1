/// Parses TOML 1.0 documents into tables whose keys and values carry their source positions.
///
/// The parser works on the UTF-8 bytes in one pass. Tables are built as reference nodes
/// (headers can reopen a table defined far above) and frozen into value types at the end.
/// Nesting is limited to `maximumDepth`, so hostile input gets an error instead of a
/// stack overflow.
package enum TOMLDocument {
    /// The deepest nesting of tables and arrays accepted.
    package static let maximumDepth = 128

    /// `text` as a TOML basic string: in double quotes, with quotes, backslashes and control
    /// characters escaped. For writing TOML, and for quoting keys in messages.
    package static func basicString(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.unicodeScalars {
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
    }

    /// Parses `text`; `file` names the source in positions and errors.
    package static func parse(_ text: String, file: String) throws(TOMLError) -> TOMLTable {
        var parser = Parser(bytes: Array(text.utf8), file: file)
        return try parser.parseDocument()
    }

    /// Parses raw file contents, rejecting invalid UTF-8 with the position of the first bad byte.
    package static func parse(bytes: [UInt8], file: String) throws(TOMLError) -> TOMLTable {
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
