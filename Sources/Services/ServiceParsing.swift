import SystemSupport
import TOML

extension ServiceDefinition {
    /// Reads the definition file `file` (its text in `bytes`) of the service `name`.
    /// Throws every problem, each with file:line:column and key.
    package static func parse(bytes: [UInt8], file: String, name: String) throws(ServiceErrors) -> LocatedDefinition {
        let document: TOMLTable
        do {
            document = try TOMLDocument.parse(bytes: bytes, file: file)
        } catch {
            throw ServiceErrors([ServiceError(error)])
        }
        var errors: [ServiceError] = []
        let position = TOMLPosition(file: file, line: 1, column: 1)
        if let problem = nameProblem(name) {
            errors.append(ServiceError(position: position, keyPath: "", message: "the file name: \(problem) (the file is NAME.toml)"))
        }
        let located = decode(document, name: name, file: file, keyPrefix: "", errors: &errors)
        guard let located, errors.isEmpty else { throw ServiceErrors(errors) }
        return located
    }

    /// Reads a definition from a table (a file's document, or a recipe's `[[services]]`
    /// entry, whose `name` key the caller has read: pass it in `extraKeys`). Problems are
    /// appended to `errors`; nil when a required part is missing or wrong.
    package static func decode(_ table: TOMLTable, name: String, file: String, keyPrefix: String,
                              extraKeys: [String] = [], errors: inout [ServiceError]) -> LocatedDefinition? {
        var reader = DefinitionReader(table: table, prefix: keyPrefix, errors: errors)
        defer { errors = reader.errors }
        reader.rejectUnknownKeys(known: keys + extraKeys)

        let description = reader.string("description") ?? ""
        var program: Program?
        if let value = table["command"] {
            program = reader.program(value)
        } else {
            reader.error(at: table.position, key: "command",
                         "missing required key 'command': the program to run (a string for /bin/sh -c, or an array of the program and its arguments)")
        }
        let user = reader.string("user")
        if let user, !isAccountName(user) {
            reader.error(at: table["user"]?.position ?? table.position, key: "user",
                         "'\(user)' is not a user name: up to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'")
        }
        let environment = reader.environment()
        var workingDirectory = reader.string("working_directory")
        if let directory = workingDirectory, !directory.hasPrefix("/") {
            reader.error(at: table["working_directory"]?.position ?? table.position, key: "working_directory",
                         "'\(directory)' is not an absolute path")
            workingDirectory = nil
        }
        var depends: [String] = []
        var dependsPositions: [TOMLPosition] = []
        for (index, entry) in reader.stringArray("depends").enumerated() {
            let key = "depends[\(index)]"
            if let problem = nameProblem(entry.value) {
                reader.error(at: entry.position, key: key, problem)
            } else if entry.value == name {
                reader.error(at: entry.position, key: key, "a service cannot depend on itself")
            } else if let first = depends.firstIndex(of: entry.value) {
                reader.error(at: entry.position, key: key,
                             "'\(entry.value)' is listed twice (first at \(dependsPositions[first].lineAndColumn))")
            } else {
                depends.append(entry.value)
                dependsPositions.append(entry.position)
            }
        }
        var restart = RestartPolicy.always
        if let text = reader.string("restart") {
            if let policy = RestartPolicy(rawValue: text) {
                restart = policy
            } else {
                reader.error(at: table["restart"]?.position ?? table.position, key: "restart",
                             "'\(text)' is not a restart policy: use \"always\", \"on-failure\" or \"never\"")
            }
        }
        let restartDelay = reader.duration("restart_delay") ?? 1000
        let restartDelayMax = reader.duration("restart_delay_max") ?? max(30_000, restartDelay)
        if restartDelayMax < restartDelay, let position = table["restart_delay_max"]?.position {
            reader.error(at: position, key: "restart_delay_max",
                         "the longest delay (\(formatDuration(restartDelayMax))) is shorter than restart_delay (\(formatDuration(restartDelay)))")
        }
        let stopTimeout = reader.duration("stop_timeout") ?? 10_000
        let readiness = reader.readiness()
        let logging = reader.logging()
        let enabled = reader.boolean("enabled") ?? true

        guard let program else { return nil }
        let definition = ServiceDefinition(
            name: name, description: description, program: program, user: user, environment: environment,
            workingDirectory: workingDirectory, depends: depends, restart: restart, restartDelay: restartDelay,
            restartDelayMax: restartDelayMax, stopTimeout: stopTimeout, readiness: readiness, logging: logging, enabled: enabled)
        return LocatedDefinition(definition: definition, file: file, position: table.position, dependsPositions: dependsPositions,
                                 keyPrefix: keyPrefix)
    }

    static func isAccountName(_ name: String) -> Bool {
        guard let first = name.first, name.count <= 32, first.isASCII, first.isLowercase || first == "_" else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    /// Durations: an integer number of seconds, or a string "250ms", "5s", "2m", "1h".
    static func parseDuration(_ text: String) -> Int? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5m" must not be read as "5" + "m" of "ms", and "2ms" not as "2m" + "s".
            if suffix == "s", number.hasSuffix("m") { continue }
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
                  number.first?.isNumber == true, let value = Double(number) else { return nil }
            let milliseconds = value * factor
            return milliseconds <= 86_400_000 ? Int(milliseconds.rounded()) : nil
        }
        return nil
    }

    /// "1s", "250ms", "2m", for messages and rendered files.
    package static func formatDuration(_ milliseconds: Int) -> String {
        if milliseconds % 3_600_000 == 0, milliseconds > 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0, milliseconds > 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}

/// Typed access to the keys of one definition table, collecting problems.
struct DefinitionReader {
    let table: TOMLTable
    let prefix: String
    var errors: [ServiceError]

    mutating func error(at position: TOMLPosition, key: String, _ message: String) {
        errors.append(ServiceError(position: position, keyPath: prefix + key, message: message))
    }

    mutating func rejectUnknownKeys(known: [String]) {
        for entry in table.entries where !known.contains(entry.key) {
            error(at: entry.keyPosition, key: entry.key, unknownKeyMessage(entry.key, known: known))
        }
    }

    mutating func typeError(_ value: TOMLValue, key: String, expected: String) {
        error(at: value.position, key: key, "expected \(expected), found \(value.typeDescription)")
    }

    /// The value of `key` when `extract` takes it (it has the type wanted); reported as not
    /// `expected` otherwise.
    mutating func value<T>(_ key: String, expected: String, as extract: (TOMLValue) -> T?) -> T? {
        guard let value = table[key] else { return nil }
        guard let typed = extract(value) else {
            typeError(value, key: key, expected: expected)
            return nil
        }
        return typed
    }

    mutating func string(_ key: String) -> String? {
        value(key, expected: "a string", as: \.string)
    }

    mutating func boolean(_ key: String) -> Bool? {
        value(key, expected: "a boolean (true or false)", as: \.boolean)
    }

    mutating func stringArray(_ key: String) -> [(value: String, position: TOMLPosition)] {
        guard let elements = value(key, expected: "an array of strings", as: \.array) else { return [] }
        var result: [(String, TOMLPosition)] = []
        for (index, element) in elements.enumerated() {
            if let text = element.string {
                result.append((text, element.position))
            } else {
                typeError(element, key: "\(key)[\(index)]", expected: "a string")
            }
        }
        return result
    }

    mutating func duration(_ key: String, in table: TOMLTable? = nil, path: String? = nil) -> Int? {
        let source = table ?? self.table
        let keyPath = path ?? key
        guard let value = source[key] else { return nil }
        switch value {
        case .integer(let seconds, _):
            guard (0...86_400).contains(seconds) else {
                error(at: value.position, key: keyPath, "\(seconds) seconds is out of range: use 0 to 86400")
                return nil
            }
            return Int(seconds) * 1000
        case .string(let text, _):
            guard let milliseconds = ServiceDefinition.parseDuration(text) else {
                error(at: value.position, key: keyPath, "'\(text)' is not a duration: use seconds as an integer, or a string such as \"500ms\", \"5s\", \"2m\" (at most a day)")
                return nil
            }
            return milliseconds
        default:
            typeError(value, key: keyPath, expected: "a duration (seconds as an integer, or a string such as \"5s\")")
            return nil
        }
    }

    mutating func program(_ value: TOMLValue) -> ServiceDefinition.Program? {
        switch value {
        case .string(let text, _):
            guard !text.allSatisfy(\.isWhitespace) else {
                error(at: value.position, key: "command", "the command is empty")
                return nil
            }
            return .shell(text)
        case .array(let elements, _):
            var words: [String] = []
            for (index, element) in elements.enumerated() {
                if let text = element.string {
                    words.append(text)
                } else {
                    typeError(element, key: "command[\(index)]", expected: "a string")
                }
            }
            guard words.count == elements.count else { return nil }
            guard let first = words.first, !first.isEmpty else {
                error(at: value.position, key: "command", "the command is empty: give the program and its arguments")
                return nil
            }
            return .arguments(words)
        default:
            typeError(value, key: "command", expected: "a string (run by /bin/sh -c) or an array of strings (the program and its arguments)")
            return nil
        }
    }

    mutating func environment() -> [(name: String, value: String)] {
        guard let environment = value("environment", expected: "a table of NAME = \"value\"", as: \.table) else { return [] }
        var result: [(name: String, value: String)] = []
        for entry in environment.entries {
            let key = "environment.\(entry.key)"
            let nameValid = entry.key.first.map { $0.isASCII && ($0.isLetter || $0 == "_") } == true
                && entry.key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
            if !nameValid {
                error(at: entry.keyPosition, key: key, "'\(entry.key)' is not an environment variable name: letters, digits and '_', not starting with a digit")
                continue
            }
            guard let text = entry.value.string else {
                typeError(entry.value, key: key, expected: "a string")
                continue
            }
            result.append((entry.key, text))
        }
        return result
    }

    mutating func readiness() -> ServiceDefinition.Readiness? {
        guard let ready = value("ready", expected: "a table: { tcp = PORT } or { command = \"...\" }", as: \.table) else { return nil }
        for entry in ready.entries where !["tcp", "command"].contains(entry.key) {
            error(at: entry.keyPosition, key: "ready.\(entry.key)", unknownKeyMessage(entry.key, known: ["tcp", "command"]))
        }
        let tcp = ready["tcp"]
        let command = ready["command"]
        if tcp != nil, let command {
            error(at: command.position, key: "ready.command", "give either 'tcp' or 'command', not both")
            return nil
        }
        if let tcp {
            guard let port = tcp.integer, (1...65535).contains(port) else {
                error(at: tcp.position, key: "ready.tcp", tcp.integer == nil ? "expected a port number, found \(tcp.typeDescription)" : "\(tcp.integer ?? 0) is not a TCP port: use 1 to 65535")
                return nil
            }
            return .tcp(port: Int(port))
        }
        if let command {
            guard let text = command.string, !text.allSatisfy(\.isWhitespace) else {
                error(at: command.position, key: "ready.command", command.string == nil ? "expected a string, found \(command.typeDescription)" : "the readiness command is empty")
                return nil
            }
            return .command(text)
        }
        error(at: ready.position, key: "ready", "missing 'tcp' (a port that listens when the service is ready) or 'command' (exits 0 when it is)")
        return nil
    }

    mutating func logging() -> ServiceDefinition.Logging {
        var logging = ServiceDefinition.Logging()
        guard let log = value("log", expected: "a table: { max_size = \"1M\", keep = 10 }", as: \.table) else { return logging }
        for entry in log.entries where !["max_size", "keep"].contains(entry.key) {
            error(at: entry.keyPosition, key: "log.\(entry.key)", unknownKeyMessage(entry.key, known: ["max_size", "keep"]))
        }
        if let size = log["max_size"] {
            var bytes: Int64?
            if let number = size.integer { bytes = number } else if let text = size.string, text.first?.isNumber == true { bytes = ByteCount.parse(text) }
            // s6-log rotates files between 4 KiB and 256 MiB.
            if let bytes, (4096...(256 << 20)).contains(bytes) {
                logging.maxSize = bytes
            } else {
                error(at: size.position, key: "log.max_size", "expected a size from 4K to 256M (bytes, or a string such as \"1M\")")
            }
        }
        if let keep = log["keep"] {
            if let count = keep.integer, (1...1000).contains(count) {
                logging.keep = Int(count)
            } else {
                error(at: keep.position, key: "log.keep", "expected the number of rotated files to keep, 1 to 1000")
            }
        }
        return logging
    }
}
