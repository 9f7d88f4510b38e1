import Foundation

/// A Limine 8 configuration file (`limine.conf`) read back: what `rast check` and the tests
/// compare with the ESP. The syntax, as Limine 8 reads it:
///
/// ```
/// # a comment (on a line of its own)
/// timeout: 3                  global options before the first entry
/// ${NAME}=value               a macro
/// /Title                      an entry; //Title a sub-entry, /+Title an expanded directory
///     protocol: linux         options of the entry above
///     kernel_path: boot():/rastos/…-vmlinuz-linux
/// ```
package struct LimineConfig: Sendable, Equatable {
    package struct Entry: Sendable, Equatable {
        package var title: String
        /// 1 for `/Title`, 2 for `//Title`, ...
        package var depth: Int
        package var line: Int
        /// Option names in lower case, with their values in order (module_path may repeat).
        package var options: [(key: String, value: String)]

        package func value(_ key: String) -> String? { options.first { $0.key == key }?.value }
        package func values(_ key: String) -> [String] { options.filter { $0.key == key }.map(\.value) }

        /// Files the entry loads: its kernel and modules (initramfs).
        package var loadedPaths: [String] { values("kernel_path") + values("module_path") }

        package static func == (lhs: Entry, rhs: Entry) -> Bool {
            lhs.title == rhs.title && lhs.depth == rhs.depth && lhs.line == rhs.line
                && lhs.options.map(\.key) == rhs.options.map(\.key) && lhs.options.map(\.value) == rhs.options.map(\.value)
        }
    }

    package var globals: [String: String]
    package var entries: [Entry]

    package struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        package let line: Int
        package let message: String
        package var description: String { "limine.conf line \(line): \(message)" }

        package init(line: Int, message: String) {
            self.line = line
            self.message = message
        }
    }

    /// Parses the text; a line that is none of the forms above is an error naming the line.
    package init(parsing text: String) throws {
        globals = [:]
        entries = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("/") {
                let depth = line.prefix { $0 == "/" }.count
                var title = line.dropFirst(depth)
                if title.hasPrefix("+") { title = title.dropFirst() }
                guard !title.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw ParseError(line: number, message: "an entry without a title")
                }
                entries.append(Entry(title: String(title), depth: depth, line: number, options: []))
                continue
            }
            if line.hasPrefix("${") {
                guard line.contains("}="), line.count > 4 else { throw ParseError(line: number, message: "a macro is written ${NAME}=value") }
                continue
            }
            let notAnOption = ParseError(line: number, message: "'\(line)' is not `key: value`, an entry (/Title) or a comment")
            guard let colon = line.firstIndex(of: ":") else { throw notAnOption }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else { throw notAnOption }
            if entries.isEmpty {
                globals[key] = value
            } else {
                entries[entries.count - 1].options.append((key, value))
            }
        }
        for (index, entry) in entries.enumerated() where entry.value("protocol") == nil {
            // An entry without a protocol is only valid as a directory of sub-entries.
            let hasChildren = index + 1 < entries.count && entries[index + 1].depth > entry.depth
            if !hasChildren { throw ParseError(line: entry.line, message: "entry '\(entry.title)' has no protocol") }
        }
    }

    /// The path on the boot partition of a Limine path of the form `boot():/path` (nil for paths
    /// on other partitions, which rast does not write).
    package static func bootPartitionPath(_ value: String) -> String? {
        let prefix = "boot():/"
        guard value.hasPrefix(prefix) else { return nil }
        return String(value.dropFirst(prefix.count))
    }
}
