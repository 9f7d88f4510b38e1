import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A program that takes over our terminal while we wait for it: a virtual machine's serial
/// console, for example. It inherits stdin, stdout and stderr and stays in our process group
/// (so it may read the terminal and change its modes); the terminal's modes are put back when
/// it ends, even if it was killed in raw mode. SIGINT, SIGTERM or SIGHUP to us (see
/// `Cancellation`) stop it with SIGTERM, SIGKILL after `grace` seconds. `Command.run` with
/// `.inherit` is the form for programs whose process id nobody needs while they run.
package final class ForegroundProcess {
    package let pid: pid_t
    package let commandLine: String
    private var terminal: termios?
    private var termination: Termination?

    /// Starts `command` (through `Command.spawn`: its environment and working directory apply).
    package init(_ command: Command) throws {
        guard let executable = Command.find(command.program) else { throw CommandError.notFound(program: command.program) }
        try checkCancelled()
        var saved = termios()
        terminal = isatty(0) == 1 && tcgetattr(0, &saved) == 0 ? saved : nil

        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        // Our process group: it may read the terminal and change its modes.
        let child = try command.spawn(executable, fileActions: &fileActions, ownProcessGroup: false)
        pid = child
        commandLine = command.description
        RastLog.logger.debug("started in the foreground (pid \(child)): \(command.description)")
    }

    deinit {
        if termination == nil {
            kill(pid, SIGKILL)
            _ = try? wait()
        }
    }

    /// Waits until the program ends; a cancellation of this process (a signal) stops it first.
    /// The terminal's modes are restored before this returns.
    @discardableResult
    package func wait(grace: Double = 5) throws -> Termination {
        if let termination { return termination }
        var status: Int32 = 0
        var stopping: Stopwatch?
        var killed = false
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped == -1, errno != EINTR { throw SystemError("waitpid", path: commandLine) }
            if Cancellation.shared.isCancelled {
                if stopping == nil {
                    kill(pid, SIGTERM)
                    stopping = Stopwatch()
                } else if !killed, let stopping, stopping.elapsed >= grace {
                    kill(pid, SIGKILL)
                    killed = true
                }
            }
            usleep(50_000)
        }
        if var saved = terminal { tcsetattr(0, TCSANOW, &saved) }
        let ended = Termination(waitStatus: status)
        RastLog.logger.debug("\(commandLine): \(ended) (pid \(pid))")
        termination = ended
        return ended
    }
}
