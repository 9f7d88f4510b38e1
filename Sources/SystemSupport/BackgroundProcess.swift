import CLinux
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A program running beside us (a virtual machine, a supervisor in a test), in its own
/// process group: its stdout and stderr arrive line by line on a reader thread, `stop()` ends
/// the whole group (SIGTERM, then SIGKILL after a grace period), and `wait()` collects the
/// exit status. Dropping the last reference stops it. `Command.run` is for programs we wait for.
package final class BackgroundProcess: Sendable {
    package let pid: pid_t
    package let commandLine: String
    private let shared = Shared()

    /// What the reader thread and the owner share.
    private final class Shared: Sendable {
        let status = Mutex<Int32?>(nil)
        let finished = DispatchSemaphore(value: 0)
    }

    /// Starts `command` (its environment and working directory apply); `lines` is called on
    /// a reader thread for every line of output, stdout and stderr together.
    package init(_ command: Command, lines: @escaping @Sendable (String) -> Void) throws {
        guard let executable = Command.find(command.program) else { throw CommandError.notFound(program: command.program) }
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        var pipe: [Int32] = [-1, -1]
        try SystemError.check("pipe") { rast_pipe_cloexec(&pipe) }
        posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&fileActions, pipe[1], 1)
        posix_spawn_file_actions_adddup2(&fileActions, pipe[1], 2)
        let spawned = Result { try command.spawn(executable, fileActions: &fileActions, ownProcessGroup: true) }
        close(pipe[1])
        let child: pid_t
        do {
            child = try spawned.get()
        } catch {
            close(pipe[0])
            throw error
        }
        pid = child
        commandLine = command.description
        RastLog.logger.debug("started (pid \(child)): \(command.description)")
        if Cancellation.shared.register(child: child) { kill(-child, SIGTERM) }

        let readEnd = pipe[0]
        let process = child
        let thread = Thread { [shared] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                for byte in buffer[0..<count] {
                    if byte == 10 || byte == 13 {
                        if !pending.isEmpty { lines(String(decoding: pending, as: UTF8.self)) }
                        pending.removeAll(keepingCapacity: true)
                    } else {
                        pending.append(byte)
                    }
                }
            }
            if !pending.isEmpty { lines(String(decoding: pending, as: UTF8.self)) }
            close(readEnd)
            var status: Int32 = 0
            while waitpid(process, &status, 0) == -1, errno == EINTR {}
            let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            Cancellation.shared.unregister(child: process)
            RastLog.logger.debug("exit \(code) (pid \(process))")
            shared.status.withLock { $0 = code }
            shared.finished.signal()
        }
        thread.start()
    }

    deinit {
        if exitStatus == nil { stop(grace: 2) }
    }

    /// The exit status once the program ended (and its output was read), else nil.
    package var exitStatus: Int32? { shared.status.withLock { $0 } }
    package var isRunning: Bool { exitStatus == nil }

    /// Waits until the program ended (up to `timeout` seconds); returns its exit status.
    @discardableResult
    package func wait(timeout: Double? = nil) -> Int32? {
        if let status = exitStatus { return status }
        if let timeout {
            guard shared.finished.wait(timeout: .now() + timeout) == .success else { return nil }
        } else {
            shared.finished.wait()
        }
        shared.finished.signal()   // later waits return at once
        return exitStatus
    }

    /// Ends the process group: `signal` now, SIGKILL after `grace` seconds; returns the status.
    @discardableResult
    package func stop(signal: Int32 = SIGTERM, grace: Double = 5) -> Int32? {
        guard isRunning else { return exitStatus }
        kill(-pid, signal)
        kill(pid, signal)
        if let status = wait(timeout: grace) { return status }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        return wait(timeout: 10)
    }
}
