import ArgumentParser
import CommandLineSupport
import Foundation
import HostCommands
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rast container repl`: an interactive shell for the container commands.
struct ContainerRepl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repl", abstract: "An interactive prompt for the container commands (help, info, ps, images, run, stop, rm, exit).")
    @OptionGroup var store: ContainerOptions

    static let help = """
        Commands (each takes the options of `rast container COMMAND`; `help COMMAND` shows them):
          info                         the runtime, cgroups and stores
          ps [-a]                      containers (running; -a: all)
          images                       stored images
          pull IMAGE                   fetch an image (REGISTRY/REPO:TAG or oci:DIR[:REF])
          run [OPTIONS] IMAGE [CMD]    run a container (-d in the background, --rm, -it, ...)
          logs | exec | stats | inspect | kill NAME ...
          stop NAME...                 SIGTERM, then SIGKILL after 10 s
          rm [-f] NAME...              remove containers
          rmi IMAGE... | prune [-a]    remove images, unused layers
          exit                         leave (also quit or Ctrl-D)
        """

    func run() throws {
        _ = try store.host()  // root and the stores, before the first prompt
        let editor = LineEditor(prompt: "rast> ")
        while let line = editor.readLine() {
            let words: [String]
            do { words = try Self.split(line) } catch {
                EntryPoint.printError("\(error)")
                continue
            }
            guard let verb = words.first else { continue }
            switch verb {
            case "exit", "quit":
                return
            case "help", "?":
                if words.count > 1 {
                    print(Self.subcommandHelp(words[1]))
                } else {
                    print(Self.help)
                }
            case _ where !Self.verbs.contains(verb):
                EntryPoint.printError("unknown command '\(verb)'; type help")
            default:
                _ = EntryPoint.execute(ContainerCommand.self, programName: "rast container",
                                       arguments: [verb, "--data", store.data] + words.dropFirst())
            }
        }
    }

    /// The container commands the prompt runs.
    static let verbs: Set<String> = Set(ContainerCommand.configuration.subcommands.flatMap { [$0.configuration.commandName ?? ""] + $0.configuration.aliases })
        .subtracting(["repl", "_monitor", "boot", ""])

    static func subcommandHelp(_ name: String) -> String {
        for command in ContainerCommand.configuration.subcommands where command.configuration.commandName == name {
            return command.helpMessage(columns: nil)
        }
        return "no command '\(name)'; type help"
    }

    /// Splits a line into words like a shell: blanks separate, quotes group, backslash escapes.
    static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if character == "\\", quote != "'" {
                escaped = true
                inWord = true
                continue
            }
            if let open = quote {
                if character == open { quote = nil } else { current.append(character) }
                continue
            }
            if character == "\"" || character == "'" {
                quote = character
                inWord = true
            } else if character == " " || character == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(character)
                inWord = true
            }
        }
        if quote != nil { throw ValidationError("unterminated quote") }
        if inWord { words.append(current) }
        return words
    }
}

/// Line input with editing on a terminal (arrows, Home/End, Backspace/Delete, Ctrl-A/E/B/F/K/U/W/L,
/// history with Up/Down; Ctrl-C drops the line, Ctrl-D on an empty line ends); plain lines
/// when standard input is no terminal.
final class LineEditor {
    let prompt: String
    private var history: [String] = []
    private let interactive: Bool

    init(prompt: String) {
        self.prompt = prompt
        let term = ProcessInfo.processInfo.environment["TERM"] ?? ""
        interactive = isatty(0) == 1 && isatty(1) == 1 && term != "dumb" && !term.isEmpty
    }

    func readLine() -> String? {
        guard interactive else {
            FileHandle.standardOutput.write(Data(prompt.utf8))
            let line = Swift.readLine()
            if line == nil { print("") }
            return line
        }
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else { return Swift.readLine() }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ECHO | ICANON | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &raw.c_cc) { bytes in
            bytes[Int(VMIN)] = 1
            bytes[Int(VTIME)] = 0
        }
        tcsetattr(0, TCSAFLUSH, &raw)
        defer {
            tcsetattr(0, TCSAFLUSH, &saved)
        }
        var buffer: [Character] = []
        var cursor = 0
        var historyIndex = history.count
        var pending = ""  // the line being typed while browsing history
        func redraw() {
            let tail = buffer.count - cursor
            emit("\r" + prompt + String(buffer) + "\u{1b}[K" + (tail > 0 ? "\u{1b}[\(tail)D" : ""))
        }
        func recall(_ index: Int) {
            if historyIndex == history.count { pending = String(buffer) }
            historyIndex = index
            buffer = Array(index == history.count ? pending : history[index])
            cursor = buffer.count
            redraw()
        }
        emit(prompt)
        while let byte = readByte() {
            switch byte {
            case 13, 10:  // Enter
                emit("\r\n")
                let line = String(buffer)
                if !line.trimmingCharacters(in: .whitespaces).isEmpty, history.last != line { history.append(line) }
                return line
            case 4:  // Ctrl-D
                if buffer.isEmpty {
                    emit("\r\n")
                    return nil
                }
                if cursor < buffer.count { buffer.remove(at: cursor); redraw() }
            case 3:  // Ctrl-C
                emit("^C\r\n")
                buffer = []
                cursor = 0
                historyIndex = history.count
                emit(prompt)
            case 127, 8:  // Backspace
                if cursor > 0 {
                    cursor -= 1
                    buffer.remove(at: cursor)
                    redraw()
                }
            case 1: cursor = 0; redraw()  // Ctrl-A
            case 5: cursor = buffer.count; redraw()  // Ctrl-E
            case 2: if cursor > 0 { cursor -= 1; redraw() }  // Ctrl-B
            case 6: if cursor < buffer.count { cursor += 1; redraw() }  // Ctrl-F
            case 11: buffer.removeSubrange(cursor...); redraw()  // Ctrl-K
            case 21: buffer.removeSubrange(..<cursor); cursor = 0; redraw()  // Ctrl-U
            case 23:  // Ctrl-W: the word before the cursor
                var start = cursor
                while start > 0, buffer[start - 1] == " " { start -= 1 }
                while start > 0, buffer[start - 1] != " " { start -= 1 }
                buffer.removeSubrange(start..<cursor)
                cursor = start
                redraw()
            case 12: emit("\u{1b}[H\u{1b}[2J"); redraw()  // Ctrl-L
            case 27:  // escape sequences: arrows, Home, End, Delete
                guard let next = readByte() else { break }
                guard next == UInt8(ascii: "[") || next == UInt8(ascii: "O"), let code = readByte() else { break }
                switch code {
                case UInt8(ascii: "A"): if historyIndex > 0 { recall(historyIndex - 1) }
                case UInt8(ascii: "B"): if historyIndex < history.count { recall(historyIndex + 1) }
                case UInt8(ascii: "C"): if cursor < buffer.count { cursor += 1; redraw() }
                case UInt8(ascii: "D"): if cursor > 0 { cursor -= 1; redraw() }
                case UInt8(ascii: "H"): cursor = 0; redraw()
                case UInt8(ascii: "F"): cursor = buffer.count; redraw()
                case UInt8(ascii: "0")...UInt8(ascii: "9"):
                    // ESC [ n ~: 1/7 Home, 4/8 End, 3 Delete.
                    var number = Int(code - UInt8(ascii: "0"))
                    while let more = readByte(), more != UInt8(ascii: "~") {
                        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(more) else { break }
                        number = number * 10 + Int(more - UInt8(ascii: "0"))
                    }
                    if number == 3, cursor < buffer.count { buffer.remove(at: cursor) }
                    if number == 1 || number == 7 { cursor = 0 }
                    if number == 4 || number == 8 { cursor = buffer.count }
                    redraw()
                default: break
                }
            default:
                guard byte >= 32 else { break }
                // One UTF-8 character: the lead byte says how many continuation bytes follow.
                var bytes = [byte]
                let extra = byte >= 0xF0 ? 3 : byte >= 0xE0 ? 2 : byte >= 0xC0 ? 1 : 0
                for _ in 0..<extra { if let more = readByte() { bytes.append(more) } }
                for character in String(decoding: bytes, as: UTF8.self) {
                    buffer.insert(character, at: cursor)
                    cursor += 1
                }
                redraw()
            }
        }
        return nil
    }

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let count = read(0, &byte, 1)
            if count == 1 { return byte }
            if count < 0, errno == EINTR { continue }
            return nil
        }
    }

    private func emit(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
}
