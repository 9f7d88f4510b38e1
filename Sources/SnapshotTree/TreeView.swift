import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The tree as a person (or a script, with `--json`) reads it.
package struct TreeView: Codable, Sendable {
    package struct Node: Codable, Sendable {
        package var id: Int
        package var description: String
        package var booted: Bool
        package var next: Bool
        package var children: [Node]
    }

    package var trees: [Node]

    package init(state: TreeState, current: Int?, next: Int?) {
        func node(_ record: SnapshotRecord) -> Node {
            Node(id: record.id, description: record.description, booted: record.id == current, next: record.id == next,
                 children: state.children(of: record.id).map(node))
        }
        trees = state.children(of: nil).map(node)
    }

    /// astOS's rendering: `root`, then each snapshot as `N - description`, the booted one
    /// marked `*` and the one that boots next marked `(next boot)`.
    package func render() -> String {
        var lines = ["root"]
        func walk(_ nodes: [Node], prefix: String) {
            for (index, node) in nodes.enumerated() {
                let last = index == nodes.count - 1
                var label = "\(node.id)\(node.booted ? "*" : "")"
                if !node.description.isEmpty { label += " - \(node.description)" }
                if node.next && !node.booted { label += " (next boot)" }
                lines.append(prefix + (last ? "└── " : "├── ") + label)
                walk(node.children, prefix: prefix + (last ? "    " : "│   "))
            }
        }
        walk(trees, prefix: "")
        return lines.joined(separator: "\n")
    }
}

/// `rast status`: what is booted, what boots next, locks and space.
package struct StatusReport: Codable, Sendable {
    package var bootedSlot: String?
    package var bootedSnapshot: Int?
    package var nextSlot: String?
    package var nextSnapshot: Int?
    package var slots: [SlotRecord]
    package var snapshotCount: Int
    package var workingCopies: [String]
    package var pendingJournal: Bool
    /// Whether another rast command holds the lock; nil when that cannot be seen (the lock
    /// file is not readable for this user).
    package var lockHeld: Bool?
    package var bytesTotal: Int64
    package var bytesUsed: Int64

    package var lines: [String] {
        var lines: [String] = []
        lines.append("booted:  " + (bootedSnapshot.map { "snapshot \($0) (slot \(bootedSlot ?? "?"))" } ?? "nothing deployed"))
        lines.append("next:    " + (nextSnapshot.map { "snapshot \($0) (slot \(nextSlot ?? "?"))" } ?? "nothing deployed"))
        for slot in slots { lines.append("slot \(slot.slot): snapshot \(slot.snapshot), deployed \(slot.deployed)") }
        lines.append("snapshots: \(snapshotCount)")
        let lock: String
        switch lockHeld {
        case true?: lock = "another rast command is running"
        case false?: lock = "none held"
        case nil: lock = "unknown (the lock file cannot be read; run as root to see)"
        }
        lines.append("locks:   " + lock
                     + (workingCopies.isEmpty ? "" : "; \(workingCopies.count) working copies (in use, or left by an interrupted command: `rast tmp`)"))
        if pendingJournal { lines.append("journal: an interrupted change is pending; the next rast command completes it") }
        lines.append("space:   \(ByteCount.format(bytesUsed)) used of \(ByteCount.format(bytesTotal))")
        return lines
    }
}

extension SnapshotStore {
    package func treeView() throws -> TreeView {
        TreeView(state: try state(), current: try currentSnapshot(), next: try nextSnapshot())
    }

    package func status() throws -> StatusReport {
        let state = try state()
        var info = statvfs()
        let statOK = statvfs(layout.top, &info) == 0
        let total = statOK ? Int64(info.f_blocks) * Int64(info.f_frsize) : 0
        let free = statOK ? Int64(info.f_bfree) * Int64(info.f_frsize) : 0
        // Probed without taking it or creating anything: status is read-only.
        let lockHeld = FileLock.isHeld(path: layout.lockFile)
        let running = runningSlot(state)
        return StatusReport(
            bootedSlot: running, bootedSnapshot: running.flatMap { state.slot($0)?.snapshot },
            nextSlot: state.next, nextSnapshot: state.next.flatMap { state.slot($0)?.snapshot },
            slots: state.slots, snapshotCount: state.snapshots.count, workingCopies: try workingCopies(),
            pendingJournal: Files.exists(layout.journalFile), lockHeld: lockHeld,
            bytesTotal: total, bytesUsed: total - free)
    }
}

/// The per-snapshot configuration, astOS's `key::value` lines (`aur::True`), parsed robustly:
/// blank lines and `#` comments are skipped, whitespace is trimmed, values are kept whole.
package struct SnapshotConfig: Sendable, Equatable {
    package static let path = "/etc/rast.conf"
    package static let astosPath = "/etc/ast.conf"

    package private(set) var values: [(key: String, value: String)] = []

    package init(text: String) {
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#"), let separator = line.range(of: "::") else { continue }
            let key = line[..<separator.lowerBound].trimmingCharacters(in: .whitespaces)
            let value = line[separator.upperBound...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { continue }
            values.removeAll { $0.key == key }
            values.append((key, value))
        }
    }

    /// Reads /etc/rast.conf, or astOS's /etc/ast.conf, of an etc directory.
    package static func load(etcDirectory: String) -> SnapshotConfig {
        for name in ["rast.conf", "ast.conf"] {
            if let text = try? Files.readString(etcDirectory + "/" + name) { return SnapshotConfig(text: text) }
        }
        return SnapshotConfig(text: "")
    }

    package subscript(key: String) -> String? { values.last { $0.key == key }?.value }

    /// astOS wrote booleans as Python's True/False.
    package func flag(_ key: String) -> Bool {
        guard let value = self[key]?.lowercased() else { return false }
        return ["true", "yes", "1", "on"].contains(value)
    }

    package static func == (lhs: SnapshotConfig, rhs: SnapshotConfig) -> Bool {
        lhs.values.map { "\($0.key)=\($0.value)" } == rhs.values.map { "\($0.key)=\($0.value)" }
    }
}
