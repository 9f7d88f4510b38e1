import Foundation
import Synchronization

/// A build log: every line of make's output, and its tail for error messages.
public final class LogFile: Sendable {
    public let path: String
    private struct State {
        let handle: FileHandle
        var recent: [String] = []
    }
    private let state: Mutex<State>

    public init(path: String) throws {
        self.path = path
        try Files.createDirectory((path as NSString).deletingLastPathComponent)
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw SystemError("create log file", path: path)
        }
        state = Mutex(State(handle: handle))
    }

    public func write(_ text: String) {
        state.withLock { state in
            state.handle.write(Data(text.utf8))
            state.recent.append(text)
            if state.recent.count > 400 { state.recent.removeFirst(200) }
        }
    }

    public func tail(lines: Int) -> String {
        let recent = state.withLock { $0.recent }
        return recent.joined().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    deinit { state.withLock { try? $0.handle.close() } }
}
