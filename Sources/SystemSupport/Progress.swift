import Foundation
import Synchronization
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// One report of long-running work: which task, how far, and in what unit.
package struct ProgressUpdate: Sendable {
    package enum Unit: Sendable { case bytes, items, percent }

    package var task: String
    package var completed: Int64
    package var total: Int64?
    package var unit: Unit
    package var detail: String?

    package init(task: String, completed: Int64, total: Int64?, unit: Unit = .items, detail: String? = nil) {
        self.task = task
        self.completed = completed
        self.total = total
        self.unit = unit
        self.detail = detail
    }

    package var fraction: Double? {
        guard let total, total > 0 else { return nil }
        return min(1, max(0, Double(completed) / Double(total)))
    }
}

/// Where long work reports to. The command line renders it; tests can collect it.
package protocol ProgressReporter: Sendable {
    /// A new stage or step begins ("rootfs: installing packages").
    func begin(_ task: String)
    func update(_ update: ProgressUpdate)
    /// The task ended; `summary` says how ("done in 12.3 s").
    func end(_ task: String, summary: String)
    /// A line of information that belongs with the current task.
    func note(_ message: String)
}

/// Reports nothing.
package struct SilentProgress: ProgressReporter {
    package init() {}
    package func begin(_ task: String) {}
    package func update(_ update: ProgressUpdate) {}
    package func end(_ task: String, summary: String) {}
    package func note(_ message: String) {}
}

/// Progress on stderr: a redrawn bar on a terminal, throttled plain lines otherwise
/// (CI logs, pipes).
package final class TerminalProgress: ProgressReporter {
    private struct State {
        var lastDraw: Double = 0
        var lastPlainPercent: [String: Int] = [:]
        var barShown = false
    }
    private let state = Mutex(State())
    private let interactive: Bool
    private let width = 30

    package init(interactive: Bool? = nil) {
        self.interactive = interactive ?? (isatty(2) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb")
    }

    package func begin(_ task: String) {
        emitLine("==> \(task)")
    }

    package func update(_ update: ProgressUpdate) {
        let now = Date().timeIntervalSinceReferenceDate
        if interactive {
            let draw = state.withLock { state -> Bool in
                let finished = update.total.map { update.completed >= $0 } ?? false
                guard finished || now - state.lastDraw >= 0.1 else { return false }
                state.lastDraw = now
                state.barShown = true
                return true
            }
            if draw { write("\r\u{1B}[K" + render(update)) }
        } else {
            // Plain output: one line every 10 percent (or on each detail change when no total).
            guard let fraction = update.fraction else { return }
            let percent = Int(fraction * 100) / 10 * 10
            let print = state.withLock { state -> Bool in
                let key = update.task
                if let last = state.lastPlainPercent[key], last >= percent { return false }
                state.lastPlainPercent[key] = percent
                return true
            }
            if print { write("    " + render(update) + "\n") }
        }
    }

    package func end(_ task: String, summary: String) {
        state.withLock { $0.lastPlainPercent[task] = nil }
        emitLine("    \(task): \(summary)")
    }

    package func note(_ message: String) {
        emitLine("    \(message)")
    }

    private func emitLine(_ text: String) {
        let clear = state.withLock { state -> Bool in
            defer { state.barShown = false }
            return state.barShown
        }
        write((clear && interactive ? "\r\u{1B}[K" : "") + text + "\n")
    }

    private func render(_ update: ProgressUpdate) -> String {
        var text = update.task
        if let fraction = update.fraction {
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            text += " [\(bar)] \(String(format: "%3d%%", Int(fraction * 100)))"
        }
        switch update.unit {
        case .bytes:
            text += " " + ByteCount.format(update.completed)
            if let total = update.total { text += " / " + ByteCount.format(total) }
        case .items:
            if let total = update.total { text += " \(update.completed)/\(total)" } else { text += " \(update.completed)" }
        case .percent:
            break
        }
        if let detail = update.detail { text += "  " + detail }
        return text
    }

    private func write(_ text: String) {
        _ = try? FileDescriptor.standardError.writeAll(text.utf8)
    }
}

/// Human-readable sizes and size parsing ("512M", "2G", "1.5GiB").
package enum ByteCount {
    package static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }

    /// Parses sizes with binary suffixes K, M, G, T (optionally "iB" or "B"); nil when malformed.
    package static func parse(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var number = trimmed
        var multiplier: Int64 = 1
        let suffixes: [(String, Int64)] = [
            ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
            ("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10),
            ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1),
        ]
        for (suffix, factor) in suffixes where trimmed.uppercased().hasSuffix(suffix.uppercased()) {
            number = String(trimmed.dropLast(suffix.count))
            multiplier = factor
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }),
              let value = Double(number), value >= 0 else { return nil }
        let bytes = value * Double(multiplier)
        guard bytes < 9.0e18 else { return nil }
        return Int64(bytes.rounded())
    }
}

/// Wall-clock timing of a piece of work.
package struct Stopwatch: Sendable {
    private let start: Double
    package init() { start = Stopwatch.now() }
    package var elapsed: Double { Stopwatch.now() - start }
    package static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    package var formatted: String { String(format: "%.1f s", elapsed) }
}
