// The few XML documents S3 answers with (ListBucketResult, InitiateMultipartUploadResult,
// ListMultipartUploadsResult, Error, CompleteMultipartUploadResult) are flat: elements holding
// text or other elements, no mixed content that matters. This reader finds elements by name
// and decodes their text; it is not a general XML parser (FoundationXML would bring libxml2
// into the rast binary that every image carries, for five kinds of answers).

/// A parsed element: its name, its text (entities decoded) and its children.
struct XMLElement {
    var name: String
    var text = ""
    var children: [XMLElement] = []

    /// Children named `name`, at any depth below this element, in document order.
    func all(_ name: String) -> [XMLElement] {
        var result: [XMLElement] = []
        for child in children {
            if child.name == name { result.append(child) }
            result += child.all(name)
        }
        return result
    }

    /// The text of the first direct child named `name`.
    func value(_ name: String) -> String? {
        children.first { $0.name == name }?.text
    }

    /// Parses a document; nil when it is not well-formed enough to read.
    static func parse(_ bytes: [UInt8]) -> XMLElement? {
        var parser = Parser(bytes: bytes)
        return parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> XMLElement? {
            var root = XMLElement(name: "#document")
            var stack: [XMLElement] = []
            while position < bytes.count {
                if bytes[position] == UInt8(ascii: "<") {
                    if starts(with: "<?") { skip(past: "?>"); continue }
                    if starts(with: "<!--") { skip(past: "-->"); continue }
                    if starts(with: "<![CDATA[") {
                        position += 9
                        let start = position
                        skip(past: "]]>")
                        let end = max(start, position - 3)
                        if !stack.isEmpty { stack[stack.count - 1].text += String(decoding: bytes[start..<end], as: UTF8.self) }
                        continue
                    }
                    if starts(with: "<!") { skip(past: ">"); continue }
                    let closing = starts(with: "</")
                    position += closing ? 2 : 1
                    let nameStart = position
                    while position < bytes.count, !isNameEnd(bytes[position]) { position += 1 }
                    let fullName = String(decoding: bytes[nameStart..<position], as: UTF8.self)
                    let name = fullName.split(separator: ":").last.map(String.init) ?? fullName  // drop a namespace prefix
                    let tagStart = position
                    skip(past: ">")
                    guard position <= bytes.count, position > tagStart else { return nil }
                    let selfClosing = position >= 2 && bytes[position - 2] == UInt8(ascii: "/")
                    if closing {
                        guard let element = stack.popLast(), element.name == name else { return nil }
                        if stack.isEmpty { root.children.append(element) } else { stack[stack.count - 1].children.append(element) }
                    } else if selfClosing {
                        let element = XMLElement(name: name)
                        if stack.isEmpty { root.children.append(element) } else { stack[stack.count - 1].children.append(element) }
                    } else {
                        stack.append(XMLElement(name: name))
                    }
                } else {
                    let start = position
                    while position < bytes.count, bytes[position] != UInt8(ascii: "<") { position += 1 }
                    if !stack.isEmpty { stack[stack.count - 1].text += decodeEntities(String(decoding: bytes[start..<position], as: UTF8.self)) }
                }
            }
            return stack.isEmpty ? root : nil
        }

        func starts(with text: String) -> Bool {
            let pattern = Array(text.utf8)
            return position + pattern.count <= bytes.count && Array(bytes[position..<position + pattern.count]) == pattern
        }

        mutating func skip(past text: String) {
            let pattern = Array(text.utf8)
            while position < bytes.count {
                if starts(with: text) { position += pattern.count; return }
                position += 1
            }
            position = bytes.count + 1
        }

        func isNameEnd(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: ">") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: " ") || byte == 9 || byte == 10 || byte == 13
        }
    }
}

/// The entities XML predefines, by the character each stands for.
private let predefinedEntities: [Character: String] = ["&": "amp", "<": "lt", ">": "gt", "\"": "quot", "'": "apos"]

/// &amp; &lt; &gt; &quot; &apos; and numeric character references.
func decodeEntities(_ text: String) -> String {
    guard text.contains("&") else { return text }
    var out = ""
    var rest = Substring(text)
    while let amp = rest.firstIndex(of: "&") {
        out += rest[..<amp]
        rest = rest[amp...]
        guard let semicolon = rest.firstIndex(of: ";") else { break }
        let entity = rest[rest.index(after: amp)..<semicolon]
        if let character = predefinedEntities.first(where: { $0.value == entity })?.key {
            out.append(character)
        } else {
            var scalar: UInt32?
            if entity.hasPrefix("#x") || entity.hasPrefix("#X") { scalar = UInt32(entity.dropFirst(2), radix: 16) }
            else if entity.hasPrefix("#") { scalar = UInt32(entity.dropFirst(), radix: 10) }
            if let scalar, let character = Unicode.Scalar(scalar) { out.unicodeScalars.append(character) } else { out += "&\(entity);" }
        }
        rest = rest[rest.index(after: semicolon)...]
    }
    return out + rest
}

/// Escapes text for an XML element.
func escapeXML(_ text: String) -> String {
    var out = ""
    for character in text {
        if let entity = predefinedEntities[character] {
            out += "&\(entity);"
        } else {
            out.append(character)
        }
    }
    return out
}
