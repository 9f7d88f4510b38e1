import Foundation
import SystemSupport

/// One assignment in a kernel configuration fragment: `CONFIG_FOO=y`, `CONFIG_BAR="text"` or
/// `# CONFIG_BAZ is not set` (value `n`), with where it came from.
package struct ConfigOption: Sendable, Equatable {
    package let symbol: String        // without the CONFIG_ prefix
    package let value: String         // y, m, n, a number or a quoted string as written
    package let file: String
    package let line: Int

    /// The line as it appears in a .config.
    package init(symbol: String, value: String, file: String, line: Int) {
        self.symbol = symbol
        self.value = value
        self.file = file
        self.line = line
    }

    package var configLine: String {
        value == "n" ? "# CONFIG_\(symbol) is not set" : "CONFIG_\(symbol)=\(value)"
    }
}

package enum KernelConfigError: CausedError, CustomStringConvertible, Sendable {
    case unreadable(file: String, cause: any Error)
    case syntax(file: String, line: Int, text: String, reason: String)
    case unknownSymbols([ConfigOption])
    case optionsChanged([ConfigReport.Change])

    package var description: String {
        switch self {
        case .unreadable(let file, let cause):
            return "cannot read kernel configuration fragment \(file): \(cause)"
        case .syntax(let file, let line, let text, let reason):
            return "\(file):\(line): \(reason): \(text)"
        case .unknownSymbols(let options):
            let lines = options.map { "\($0.file):\($0.line): CONFIG_\($0.symbol) is not a symbol of this kernel's Kconfig" }
            return "unknown kernel configuration symbols:\n" + lines.joined(separator: "\n")
        case .optionsChanged(let changes):
            return "requested kernel options did not survive olddefconfig (--strict):\n"
                + changes.map { "  " + $0.description }.joined(separator: "\n")
        }
    }

    /// Why a fragment could not be read.
    package var cause: (any Error)? {
        if case .unreadable(_, let cause) = self { return cause }
        return nil
    }
}

/// Parses and merges configuration fragments the way scripts/kconfig/merge_config.sh does:
/// later fragments override earlier ones (each override is recorded), and the merged list
/// becomes KCONFIG_ALLCONFIG for `allnoconfig`, followed by `olddefconfig`.
package struct ConfigFragmentSet: Sendable {
    package struct Override: Sendable, CustomStringConvertible {
        package let symbol: String
        package let previous: ConfigOption
        package let replacement: ConfigOption
        package var description: String {
            "CONFIG_\(symbol) redefined by \((replacement.file as NSString).lastPathComponent):\(replacement.line): \(previous.value) -> \(replacement.value)"
        }
    }

    /// The final requested value of every symbol, in first-mention order.
    package private(set) var options: [ConfigOption] = []
    package private(set) var overrides: [Override] = []
    private var index: [String: Int] = [:]

    package init() {}

    package mutating func add(_ option: ConfigOption) {
        if let position = index[option.symbol] {
            let previous = options[position]
            if previous.value != option.value {
                overrides.append(Override(symbol: option.symbol, previous: previous, replacement: option))
            }
            options[position] = option
        } else {
            index[option.symbol] = options.count
            options.append(option)
        }
    }

    package mutating func add(fragmentAt path: String) throws {
        let text: String
        do {
            text = try Files.readString(path)
        } catch {
            throw KernelConfigError.unreadable(file: path, cause: error)
        }
        for option in try ConfigFragmentSet.parse(text, file: path) { add(option) }
    }

    package subscript(symbol: String) -> ConfigOption? {
        index[symbol].map { options[$0] }
    }

    /// The merged fragment, the input of `make KCONFIG_ALLCONFIG=... allnoconfig`.
    package var mergedText: String {
        options.map(\.configLine).joined(separator: "\n") + "\n"
    }

    /// Parses a fragment (or a whole .config). Comments other than "is not set" and blank
    /// lines are skipped; anything else that is not an assignment is a syntax error.
    package static func parse(_ text: String, file: String) throws -> [ConfigOption] {
        var result: [ConfigOption] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            let lineNumber = number + 1
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let body = line.dropFirst().trimmingCharacters(in: .whitespaces)
                if body.hasPrefix("CONFIG_"), body.hasSuffix(" is not set") {
                    let symbol = String(body.dropFirst(7).dropLast(" is not set".count))
                    guard isSymbolName(symbol) else {
                        throw KernelConfigError.syntax(file: file, line: lineNumber, text: line, reason: "malformed symbol name")
                    }
                    result.append(ConfigOption(symbol: symbol, value: "n", file: file, line: lineNumber))
                }
                continue
            }
            guard line.hasPrefix("CONFIG_"), let equals = line.firstIndex(of: "=") else {
                throw KernelConfigError.syntax(file: file, line: lineNumber, text: line,
                                               reason: "expected CONFIG_NAME=value or '# CONFIG_NAME is not set'")
            }
            let symbol = String(line[line.index(line.startIndex, offsetBy: 7)..<equals])
            let value = String(line[line.index(after: equals)...])
            guard isSymbolName(symbol) else {
                throw KernelConfigError.syntax(file: file, line: lineNumber, text: line, reason: "malformed symbol name")
            }
            guard isValue(value) else {
                throw KernelConfigError.syntax(file: file, line: lineNumber, text: line,
                                               reason: "a value must be y, m, n, a number, or a double-quoted string")
            }
            result.append(ConfigOption(symbol: symbol, value: value, file: file, line: lineNumber))
        }
        return result
    }

    static func isSymbolName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 || ($0 >= 97 && $0 <= 122) }
    }

    static func isValue(_ value: String) -> Bool {
        if ["y", "m", "n"].contains(value) { return true }
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { return true }
        if Int(value) != nil { return true }
        if value.hasPrefix("0x"), !value.dropFirst(2).isEmpty, value.dropFirst(2).allSatisfy(\.isHexDigit) { return true }
        return false
    }
}

/// What happened to each requested option in the final .config.
package struct ConfigReport: Sendable {
    package struct Change: Sendable, CustomStringConvertible {
        package let option: ConfigOption
        /// The final value, `n` when the symbol ended up unset.
        package let actual: String

        package var description: String {
            let origin = "\((option.file as NSString).lastPathComponent):\(option.line)"
            if actual == "n" {
                return "CONFIG_\(option.symbol) was dropped: requested \(option.value), not set in the final .config (\(origin)); an unmet dependency usually causes this"
            }
            return "CONFIG_\(option.symbol) was changed: requested \(option.value), final .config has \(actual) (\(origin))"
        }
    }

    package let requested: Int
    package let changes: [Change]

    package var isClean: Bool { changes.isEmpty }

    /// Compares every requested option with the final configuration.
    package init(requested: ConfigFragmentSet, finalConfig: String) throws {
        var final: [String: String] = [:]
        for option in try ConfigFragmentSet.parse(finalConfig, file: ".config") {
            final[option.symbol] = option.value
        }
        self.requested = requested.options.count
        changes = requested.options.compactMap { option in
            let actual = final[option.symbol] ?? "n"
            return actual == option.value ? nil : Change(option: option, actual: actual)
        }
    }
}

/// The configuration symbols a kernel source tree defines, read from its Kconfig files, so
/// that a misspelt or nonexistent option is an error instead of a silent no-op.
package enum KconfigSymbols {
    package static func scan(sourceTree: String) throws -> Set<String> {
        var symbols = Set<String>()
        guard let enumerator = FileManager.default.enumerator(atPath: sourceTree) else {
            throw UserError("cannot read the kernel source tree \(sourceTree)")
        }
        while let relative = enumerator.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            guard name.hasPrefix("Kconfig") else { continue }
            guard let data = FileManager.default.contents(atPath: sourceTree + "/" + relative) else { continue }
            scanText(data, into: &symbols)
        }
        return symbols
    }

    static func scanText(_ data: Data, into symbols: inout Set<String>) {
        for line in data.split(separator: UInt8(ascii: "\n")) {
            var slice = line[...]
            while let first = slice.first, first == 32 || first == 9 { slice = slice.dropFirst() }
            let keyword: Int
            if slice.starts(with: Array("config ".utf8)) || slice.starts(with: Array("config\t".utf8)) {
                keyword = 7
            } else if slice.starts(with: Array("menuconfig ".utf8)) || slice.starts(with: Array("menuconfig\t".utf8)) {
                keyword = 11
            } else {
                continue
            }
            var rest = slice.dropFirst(keyword)
            while let first = rest.first, first == 32 || first == 9 { rest = rest.dropFirst() }
            let name = rest.prefix { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 || ($0 >= 97 && $0 <= 122) }
            if !name.isEmpty { symbols.insert(String(decoding: name, as: UTF8.self)) }
        }
    }
}
