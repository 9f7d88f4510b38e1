import Foundation
import Synchronization
import SystemPackage

/// A log written as lines arrive (make's or makepkg's output, a guest's console), with its
/// most recent text kept for error messages. Owns its descriptor: `close()` or `deinit`
/// closes it. A write that fails (a full disk) is reported once in the debug log and does not
/// stop the work the log describes.
package final class LogFile: Sendable {
    package let path: String
    private struct State {
        var file: FileDescriptor?
        var recent: [String] = []
        var failed = false
    }
    private let state: Mutex<State>

    /// Creates (or empties) the file at `path`, and its directory.
    package init(path: String) throws {
        self.path = path
        try Files.createDirectory((path as NSString).deletingLastPathComponent)
        let file = try FileDescriptor.open(path: path, .writeOnly, options: [.create, .truncate],
                                           permissions: FilePermissions(rawValue: 0o644), operation: "create log file")
        state = Mutex(State(file: file))
    }

    package func write(_ text: String) {
        state.withLock { state in
            if let file = state.file, !state.failed {
                do {
                    try file.writeAll(text.utf8, path: path)
                } catch {
                    state.failed = true
                    RastLog.logger.debug("log \(path): \(error); later lines go unwritten")
                }
            }
            state.recent.append(text)
            if state.recent.count > 400 { state.recent.removeFirst(200) }
        }
    }

    /// The last `lines` lines written.
    package func tail(lines: Int) -> String {
        let recent = state.withLock { $0.recent }
        return recent.joined().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Closes the file now; later writes only reach `tail`.
    package func close() {
        state.withLock { state in
            try? state.file?.close()
            state.file = nil
        }
    }

    deinit { close() }
}
