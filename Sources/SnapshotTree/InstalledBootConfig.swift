import Foundation
import SystemSupport

/// What an installed boot configuration on the disk says, read back: rast's own grub.cfg and
/// limine.conf, and grub.cfg as astOS's installer and `ast` leave it (grub-mkconfig output
/// with the slot names edited in). Only what rast needs: each entry's title, the slot its
/// `rootflags=subvol=` selects, the kernel and initramfs paths and the kernel arguments.
package struct InstalledBootConfig: Sendable, Equatable {
    package struct Entry: Sendable, Equatable {
        package var title: String
        /// `tmp` or `tmp0` (or another name) from `rootflags=subvol=@.snapshots/rootfs/snapshot-SLOT`.
        package var slot: String?
        /// GRUB: the `linux` path (from the filesystem's top level); Limine: the `kernel_path`.
        package var kernelPath: String?
        package var initrdPaths: [String] = []
        /// Kernel arguments, in order.
        package var arguments: [String] = []
        /// The filesystem UUID of the entry's `search --fs-uuid`.
        package var searchUUID: String?

        /// The value of the first kernel argument `name=VALUE`.
        package func argument(_ name: String) -> String? {
            arguments.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
    }

    package var entries: [Entry] = []
    /// GRUB's `set timeout=N` (Limine's `timeout: N`).
    package var timeoutSeconds: Int?
    /// GRUB sets up a serial terminal (`serial`, `terminal_output serial`); Limine's `serial: yes`.
    package var serialConsole = false

    static let slotMarker = "rootflags=subvol=@.snapshots/rootfs/snapshot-"

    /// Parses a grub.cfg: every `menuentry` (also inside submenus), in order.
    package static func grub(_ text: String) -> InstalledBootConfig {
        var config = InstalledBootConfig()
        var current: Entry?
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            let words = shellWords(line)
            guard let first = words.first else { continue }
            if first == "serial" || (first.hasPrefix("terminal_") && words.contains("serial")) {
                config.serialConsole = true
            }
            if first == "set", words.count >= 2, words[1].hasPrefix("timeout=") {
                config.timeoutSeconds = Int(words[1].dropFirst("timeout=".count))
            } else if first == "menuentry" {
                if let current { config.entries.append(current) }
                current = Entry(title: words.count > 1 ? words[1] : "")
            } else if current != nil {
                switch first {
                case "linux", "linux16", "linuxefi":
                    current?.kernelPath = words.count > 1 ? words[1] : nil
                    current?.arguments = Array(words.dropFirst(2))
                    if let subvolume = current?.argument("rootflags").flatMap(slot(fromRootflags:)) { current?.slot = subvolume }
                case "initrd", "initrd16", "initrdefi":
                    current?.initrdPaths = Array(words.dropFirst())
                case "search":
                    if words.contains(where: { $0.hasPrefix("--fs-uuid") || $0 == "-u" }), let uuid = words.last,
                       !uuid.hasPrefix("-") {
                        current?.searchUUID = uuid
                    }
                case "}":
                    if let current { config.entries.append(current) }
                    current = nil
                default:
                    break
                }
            }
        }
        if let current { config.entries.append(current) }
        return config
    }

    /// Parses a limine.conf: entries (`/Title`) with `kernel_path`, `module_path`, `cmdline`.
    package static func limine(_ text: String) -> InstalledBootConfig {
        var config = InstalledBootConfig()
        var current: Entry?
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("/") {
                if let current { config.entries.append(current) }
                current = Entry(title: String(line.drop { $0 == "/" }))
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if key == "timeout", current == nil { config.timeoutSeconds = Int(value) }
            if key == "serial", current == nil { config.serialConsole = value == "yes" }
            guard current != nil else { continue }
            switch key {
            case "kernel_path", "path": current?.kernelPath = value
            case "module_path": current?.initrdPaths.append(value)
            case "cmdline", "kernel_cmdline":
                current?.arguments = value.split(separator: " ").map(String.init)
                if let subvolume = current?.argument("rootflags").flatMap(slot(fromRootflags:)) { current?.slot = subvolume }
            default: break
            }
        }
        if let current { config.entries.append(current) }
        return config
    }

    /// The configuration installed on the filesystem (GRUB's, else Limine's); nil when there
    /// is none or it cannot be read (an unprivileged user and a grub.cfg of mode 600).
    static func read(_ layout: Layout) -> InstalledBootConfig? {
        if let text = try? Files.readString(layout.grubConfig) { return grub(text) }
        if let text = try? Files.readString(layout.limineConfig) { return limine(text) }
        return nil
    }

    /// `subvol=@.snapshots/rootfs/snapshot-tmp0,other` → `tmp0`.
    static func slot(fromRootflags value: String) -> String? {
        for option in value.split(separator: ",") where option.hasPrefix("subvol=") {
            var path = option.dropFirst("subvol=".count)
            while path.hasPrefix("/") { path = path.dropFirst() }
            let prefix = "@.snapshots/rootfs/snapshot-"
            if path.hasPrefix(prefix) { return String(path.dropFirst(prefix.count)) }
        }
        return nil
    }

    /// Splits a GRUB script line into words the way GRUB's lexer does for these commands:
    /// whitespace separates, single and double quotes group, `\` escapes; `{` ends a word list.
    static func shellWords(_ line: String) -> [String] {
        var words: [String] = []
        var word = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in line {
            if escaped {
                word.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else {
                    word.append(character)
                }
                continue
            }
            switch character {
            case "\\":
                escaped = true
                inWord = true
            case "'", "\"":
                quote = character
                inWord = true
            case "#" where !inWord:
                return words
            case " ", "\t":
                if inWord { words.append(word) }
                word = ""
                inWord = false
            default:
                word.append(character)
                inWord = true
            }
        }
        if inWord { words.append(word) }
        return words
    }
}
