import Foundation
import TOML

/// Edits of definition files that keep everything else as written (comments, order).
package enum DefinitionEditing {
    /// The text with `enabled` set: the value of an existing top-level `enabled` key is
    /// replaced where it is written; otherwise `enabled = VALUE` is added after the leading
    /// comments (top-level keys must come before any table header).
    package static func settingEnabled(_ enabled: Bool, in text: String, file: String) throws(ServiceErrors) -> String {
        let document: TOMLTable
        do {
            document = try TOMLDocument.parse(text, file: file)
        } catch {
            throw ServiceErrors([ServiceError(error)])
        }
        let value = enabled ? "true" : "false"
        var lines = text.components(separatedBy: "\n")
        if let existing = document["enabled"] {
            guard let current = existing.boolean else {
                throw ServiceErrors([ServiceError(position: existing.position, keyPath: "enabled", message: "expected a boolean (true or false), found \(existing.typeDescription)")])
            }
            let position = existing.position
            let index = position.line - 1
            guard lines.indices.contains(index) else { return text }
            var scalars = Array(lines[index].unicodeScalars)
            let start = position.column - 1
            let old = current ? "true" : "false"
            guard start >= 0, start + old.unicodeScalars.count <= scalars.count,
                  String(String.UnicodeScalarView(scalars[start..<(start + old.unicodeScalars.count)])) == old else { return text }
            scalars.replaceSubrange(start..<(start + old.unicodeScalars.count), with: value.unicodeScalars)
            lines[index] = String(String.UnicodeScalarView(scalars))
            return lines.joined(separator: "\n")
        }
        var insertAt = 0
        while insertAt < lines.count, lines[insertAt].trimmingCharacters(in: .whitespaces).hasPrefix("#") { insertAt += 1 }
        lines.insert("enabled = \(value)", at: insertAt)
        return lines.joined(separator: "\n")
    }
}
