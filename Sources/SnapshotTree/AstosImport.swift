import BootEntries
import Btrfs
import Foundation
import SystemSupport

/// Reads an astOS installation's tree so that rast can take it over:
/// `/.snapshots/ast/fstree` is the `str()` of anytree's DictExporter output, a Python literal
/// such as `{'name': 'root', 'children': [{'name': '0'}, {'name': 1, 'children': [...]}]}`
/// (names are strings or ints), descriptions are `/.snapshots/ast/snapshots/N-desc`, and
/// each slot's `/usr/share/ast/snap` says which snapshot it holds.
enum AstosImport {
    static func read(_ layout: Layout) throws -> TreeState {
        let path = layout.astosDirectory + "/fstree"
        let text = try Files.readString(path)
        var parser = PythonLiteralParser(text: text)
        let value: PythonLiteral
        do {
            value = try parser.parse()
        } catch {
            throw SnapshotError.astosImport(path: path, reason: "\(error)", cause: error)
        }
        var state = TreeState()
        try walk(value, parent: nil, isRoot: true, into: &state, path: path, layout: layout)
        state.snapshots.sort { $0.id < $1.id }
        for slot in Layout.slots {
            let snap = layout.root(slot) + "/usr/share/ast/snap"
            if let text = try? Files.readString(snap), let id = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                // Deployed when astOS created the slot's subvolume.
                let created = (try? Btrfs.subvolumeInfo(layout.root(slot)))?.creationTime ?? Date()
                state.setSlot(slot, snapshot: id, deployed: created)
            }
        }
        let installed = InstalledBootConfig.read(layout)
        state.next = nextSlot(layout, state: state, bootConfig: installed)
        state.boot = bootSettings(layout, next: state.next, bootConfig: installed)
        return state
    }

    /// The slot that boots next: the default subvolume. Reading that needs root; without it,
    /// the slot the boot menu's first entry boots, else the slot deployed last (astOS's deploy
    /// and rollback both create the slot they deploy), else the only slot.
    static func nextSlot(_ layout: Layout, state: TreeState, bootConfig: InstalledBootConfig?) -> String? {
        let present = Layout.slots.filter { Files.exists(layout.root($0)) }
        if let defaultID = try? Btrfs.defaultSubvolumeID(fs: layout.top) {
            return present.first { (try? Btrfs.subvolumeID(layout.root($0))) == defaultID }
        }
        if let slot = bootConfig?.entries.first?.slot, present.contains(slot) { return slot }
        let created = present.compactMap { slot in
            (try? Btrfs.subvolumeInfo(layout.root(slot))).map { (slot, $0.creationTransaction) }
        }
        if created.count == present.count, let newest = created.max(by: { $0.1 < $1.1 }) { return newest.0 }
        return present.count == 1 ? present.first : nil
    }

    /// The boot settings of an astOS installation, derived from what it boots with: the
    /// filesystem UUID (the menu's `search --fs-uuid`, astOS's `ast/part`, or the filesystem
    /// itself), the kernel's root= and other arguments, kernel and initramfs names from the
    /// first menu entry, the menu timeout, and the mount options of the next slot's fstab.
    /// Deploy then keeps that fstab's other lines (the ESP, astOS's bind mounts).
    static func bootSettings(_ layout: Layout, next: String?, bootConfig: InstalledBootConfig?) -> BootMenuSettings? {
        let entry = bootConfig?.entries.first
        let partFile = (try? Files.readString(layout.astosDirectory + "/part"))?.trimmingCharacters(in: .whitespacesAndNewlines)
        let rootArgument = entry?.argument("root")
        let uuid = entry?.searchUUID
            ?? rootArgument.flatMap { $0.hasPrefix("UUID=") ? String($0.dropFirst(5)) : nil }
            ?? partFile.flatMap { $0.isEmpty ? nil : $0 }
            ?? (try? Btrfs.filesystemUUID(layout.top))?.uuidString.lowercased()
        guard let uuid else { return nil }
        let ignored = ["root=", "rootflags=", "rast.slot="]
        let arguments = (entry?.arguments ?? []).filter { argument in
            argument != "rw" && argument != "ro" && !ignored.contains { argument.hasPrefix($0) }
        }
        var partitionUUID = ""
        if let rootArgument, rootArgument.hasPrefix("PARTUUID=") { partitionUUID = String(rootArgument.dropFirst(9)) }
        var settings = BootMenuSettings(loader: Files.exists(layout.limineConfig) && !Files.exists(layout.grubConfig) ? .limine : .grub,
                                        distributor: distributor(from: entry?.title), filesystemUUID: uuid,
                                        rootPartitionUUID: partitionUUID, kernelArguments: arguments.joined(separator: " "),
                                        timeoutSeconds: bootConfig?.timeoutSeconds ?? 5,
                                        mountOptions: next.flatMap { mountOptions(layout, slot: $0) } ?? "compress=zstd,noatime")
        settings.rootDevice = partitionUUID.isEmpty ? (rootArgument ?? "UUID=\(uuid)") : nil
        settings.kernel = entry?.kernelPath.map { ($0 as NSString).lastPathComponent }
        settings.initrd = entry?.initrdPaths.map { ($0 as NSString).lastPathComponent }.last { $0.hasPrefix("initramfs") }
        settings.rewritesFSTab = true
        settings.serialConsole = bootConfig?.serialConsole ?? false
        return settings
    }

    /// "astOS Linux snapshot 1" → "astOS Linux"; astOS when the title says nothing.
    static func distributor(from title: String?) -> String {
        guard let title, let range = title.range(of: " snapshot ") ?? title.range(of: " last booted deployment") else { return "astOS" }
        let name = title[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
        return name.isEmpty ? "astOS" : name
    }

    /// The options of the `/` line of a slot's fstab, without `subvol=` and `ro`/`rw`.
    static func mountOptions(_ layout: Layout, slot: String) -> String? {
        guard let table = (try? Files.readString(layout.etc(slot) + "/fstab")) ?? (try? Files.readString(layout.root(slot) + "/etc/fstab")) else {
            return nil
        }
        for line in table.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 4, !fields[0].hasPrefix("#"), fields[1] == "/", fields[2] == "btrfs" else { continue }
            let options = fields[3].split(separator: ",").filter { !$0.hasPrefix("subvol=") && !$0.hasPrefix("subvolid=") && $0 != "ro" && $0 != "rw" }
            return options.isEmpty ? nil : options.joined(separator: ",")
        }
        return nil
    }

    private static func walk(_ node: PythonLiteral, parent: Int?, isRoot: Bool, into state: inout TreeState,
                             path: String, layout: Layout) throws {
        guard case .dictionary(let entries) = node else {
            throw SnapshotError.astosImport(path: path, reason: "a tree node is not a dictionary")
        }
        var id: Int?
        if !isRoot {
            switch entries["name"] {
            case .string(let name)?: id = Int(name)
            case .integer(let value)?: id = value
            default: break
            }
            guard let id else { throw SnapshotError.astosImport(path: path, reason: "a node has no numeric name") }
            if state.contains(id) { throw SnapshotError.astosImport(path: path, reason: "snapshot \(id) appears twice") }
            let descPath = layout.astosDirectory + "/snapshots/\(id)-desc"
            let description = (try? Files.readString(descPath))?.split(separator: "\n").first.map(String.init)
                ?? (id == 0 ? "base snapshot" : "")
            state.snapshots.append(SnapshotRecord(id: id, parent: parent, description: description, created: ""))
        }
        if case .list(let children)? = entries["children"] {
            for child in children {
                try walk(child, parent: id, isRoot: false, into: &state, path: path, layout: layout)
            }
        }
    }
}

/// The Python literal subset astOS writes: dicts, lists, tuples, strings, ints, None, True, False.
indirect enum PythonLiteral: Equatable {
    case dictionary([String: PythonLiteral])
    case list([PythonLiteral])
    case string(String)
    case integer(Int)
    case none
    case bool(Bool)
}

struct PythonLiteralParser {
    struct ParseError: Error, CustomStringConvertible {
        let offset: Int
        let message: String
        var description: String { "offset \(offset): \(message)" }
    }

    private let chars: [Character]
    private var index = 0
    private var depth = 0

    init(text: String) { chars = Array(text) }

    mutating func parse() throws -> PythonLiteral {
        let value = try parseValue()
        skipSpace()
        guard index == chars.count else { throw ParseError(offset: index, message: "unexpected text after the literal") }
        return value
    }

    private mutating func skipSpace() {
        while index < chars.count, chars[index].isWhitespace { index += 1 }
    }

    private mutating func parseValue() throws -> PythonLiteral {
        skipSpace()
        guard index < chars.count else { throw ParseError(offset: index, message: "unexpected end") }
        depth += 1
        defer { depth -= 1 }
        guard depth < 512 else { throw ParseError(offset: index, message: "nested too deeply") }
        switch chars[index] {
        case "{": return try parseDictionary()
        case "[", "(": return try parseList()
        case "'", "\"": return .string(try parseString())
        default:
            if chars[index] == "-" || chars[index].isNumber {
                let start = index
                index += 1
                while index < chars.count, chars[index].isNumber { index += 1 }
                guard let value = Int(String(chars[start..<index])) else { throw ParseError(offset: start, message: "bad integer") }
                return .integer(value)
            }
            for (word, value) in [("None", PythonLiteral.none), ("True", .bool(true)), ("False", .bool(false))] {
                if chars[index...].starts(with: word) {
                    index += word.count
                    return value
                }
            }
            throw ParseError(offset: index, message: "unexpected character '\(chars[index])'")
        }
    }

    private mutating func parseDictionary() throws -> PythonLiteral {
        index += 1
        var result: [String: PythonLiteral] = [:]
        while true {
            skipSpace()
            guard index < chars.count else { throw ParseError(offset: index, message: "unterminated dictionary") }
            if chars[index] == "}" { index += 1; return .dictionary(result) }
            let key: String
            switch try parseValue() {
            case .string(let text): key = text
            case .integer(let value): key = String(value)
            default: throw ParseError(offset: index, message: "dictionary keys must be strings")
            }
            skipSpace()
            guard index < chars.count, chars[index] == ":" else { throw ParseError(offset: index, message: "expected ':'") }
            index += 1
            result[key] = try parseValue()
            skipSpace()
            if index < chars.count, chars[index] == "," { index += 1 }
        }
    }

    private mutating func parseList() throws -> PythonLiteral {
        let close: Character = chars[index] == "[" ? "]" : ")"
        index += 1
        var result: [PythonLiteral] = []
        while true {
            skipSpace()
            guard index < chars.count else { throw ParseError(offset: index, message: "unterminated list") }
            if chars[index] == close { index += 1; return .list(result) }
            result.append(try parseValue())
            skipSpace()
            if index < chars.count, chars[index] == "," { index += 1 }
        }
    }

    private mutating func parseString() throws -> String {
        let quote = chars[index]
        index += 1
        var result = ""
        while index < chars.count {
            let c = chars[index]
            index += 1
            if c == quote { return result }
            if c == "\\", index < chars.count {
                let escaped = chars[index]
                index += 1
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                default: result.append(escaped)
                }
            } else {
                result.append(c)
            }
        }
        throw ParseError(offset: index, message: "unterminated string")
    }
}
