import CLinux
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A program one of whose standard streams is a pipe the caller streams through: `btrfs send`
/// whose stdout we read, `btrfs receive` whose stdin we write. Its stderr goes to a temporary
/// file (read for the error message), so a chatty program can never block on a full pipe.
/// The child runs in its own process group and is stopped with SIGTERM on cancellation;
/// `finish()` waits for it and throws `CommandError.failed` on a non-zero exit.
package final class PipedProcess {
    /// Which of the child's streams is the pipe.
    package enum Pipe: Sendable { case standardInput, standardOutput }

    package let command: Command
    package let pipe: Pipe
    /// Our end of the pipe, closed by `finish()`, `terminate()` or `deinit`.
    private var pipeEnd: FileDescriptor?
    private var pid: pid_t
    private let errorLog: String
    private var result: CommandResult?

    package init(_ command: Command, pipe: Pipe) throws {
        guard let executable = Command.find(command.program) else { throw CommandError.notFound(program: command.program) }
        try checkCancelled()
        self.command = command
        self.pipe = pipe
        // Writing into a pipe whose reader died must be an error (EPIPE), not the end of rast.
        signal(SIGPIPE, SIG_IGN)

        let (errorFile, errorLog) = try FileDescriptor.createUnique(
            prefix: "/tmp/rast-stderr.", operation: "create temporary file for the stderr of", reportedPath: command.program)
        self.errorLog = errorLog
        defer { try? errorFile.close() }

        // The pipe stays raw Int32s until spawned: posix_spawn's file actions take them.
        var fds: [Int32] = [-1, -1]
        if rast_pipe_cloexec(&fds) != 0 {
            unlink(errorLog)
            throw SystemError("pipe")
        }
        let childEnd = pipe == .standardInput ? fds[0] : fds[1]
        let ourEnd = pipe == .standardInput ? fds[1] : fds[0]
        defer { close(childEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if pipe == .standardInput {
            posix_spawn_file_actions_adddup2(&actions, childEnd, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, childEnd, 1)
        }
        posix_spawn_file_actions_adddup2(&actions, errorFile.rawValue, 2)

        let child: pid_t
        do {
            child = try command.spawn(executable, fileActions: &actions, ownProcessGroup: true)
        } catch {
            close(ourEnd)
            unlink(errorLog)
            throw error
        }
        pipeEnd = FileDescriptor(rawValue: ourEnd)
        pid = child
        RastLog.logger.debug("run: \(command.description) (streaming its \(pipe == .standardInput ? "stdin" : "stdout"))")
        if Cancellation.shared.register(child: child) { kill(-child, SIGTERM) }
    }

    /// The child's process id (also its process group's).
    package var processID: pid_t { pid }

    /// Whether the child is still running (it may have exited without being reaped).
    package var isRunning: Bool {
        guard result == nil, pid > 0 else { return false }
        return kill(pid, 0) == 0
    }

    deinit {
        terminate()
        unlink(errorLog)
    }

    /// Reads what the child wrote to its stdout; 0 at its end.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(pipe == .standardOutput)
        guard let pipeEnd else { return 0 }
        while true {
            do {
                return try pipeEnd.read(into: buffer, retryOnInterrupt: false)
            } catch let error as Errno {
                // A signal: stop when it was the one that cancels rast, else read on.
                if error == .interrupted { try checkCancelled(); continue }
                throw SystemError("read the output of", path: command.program, errno: error)
            }
        }
    }

    /// Writes all of `bytes` to the child's stdin. A child that exited early makes this fail
    /// with the child's own error message.
    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(pipe == .standardInput)
        guard let pipeEnd else { throw SystemError("write to the input of", path: command.program, errno: EPIPE) }
        var offset = 0
        while offset < bytes.count {
            do {
                // Not writeAll: a signal must be able to cancel the write (checkCancelled).
                offset += try pipeEnd.write(UnsafeRawBufferPointer(rebasing: bytes[offset...]), retryOnInterrupt: false)
            } catch let error as Errno {
                if error == .interrupted { try checkCancelled(); continue }
                if error == .brokenPipe {
                    // The child is gone: its exit status and stderr say why.
                    _ = try finish()
                }
                throw SystemError("write to the input of", path: command.program, errno: error)
            }
        }
    }

    /// Closes our end of the pipe, waits for the child and returns how it ended; a non-zero
    /// exit throws `CommandError.failed` with the end of its stderr.
    @discardableResult
    package func finish() throws -> CommandResult {
        if let result { return try checked(result) }
        closePipe()
        let status = reap()
        let result = CommandResult(termination: status, standardOutput: "", standardError: errorText())
        self.result = result
        RastLog.logger.debug("exit \(status): \(command.program)")
        try checkCancelled()
        return try checked(result)
    }

    /// Stops the child (SIGTERM to its group, SIGKILL if it lingers) and reaps it.
    package func terminate() {
        guard result == nil, pid > 0 else { closePipe(); return }
        closePipe()
        kill(-pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<50 {
            if waitpid(pid, &status, WNOHANG) == pid { finishTerminated(status); return }
            usleep(20_000)
        }
        kill(-pid, SIGKILL)
        finishTerminated(reapStatus())
    }

    private func finishTerminated(_ status: Int32) {
        Cancellation.shared.unregister(child: pid)
        result = CommandResult(termination: Termination(waitStatus: status), standardOutput: "", standardError: errorText())
    }

    private func checked(_ result: CommandResult) throws -> CommandResult {
        guard result.termination == .exited(0) else {
            throw CommandError.failed(command: command.description, termination: result.termination, output: result.combinedTail(lines: 20))
        }
        return result
    }

    private func closePipe() {
        try? pipeEnd?.close()
        pipeEnd = nil
    }

    private func reap() -> Termination {
        let status = Termination(waitStatus: reapStatus())
        Cancellation.shared.unregister(child: pid)
        return status
    }

    private func reapStatus() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { return 0 }
        }
        return status
    }

    private func errorText() -> String {
        let bytes = (try? Files.read(errorLog)) ?? []
        return String(decoding: bytes.suffix(64 * 1024), as: UTF8.self)
    }
}
