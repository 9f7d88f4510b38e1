import CLinux
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// An external program to run: argv, environment changes, working directory, input.
package struct Command: Sendable, CustomStringConvertible {
    package enum Input: Sendable {
        case null
        case inherit
        case bytes([UInt8])
    }

    /// How the child's stdout and stderr are handled.
    package enum Output: @unchecked Sendable {
        /// Collected and returned in the result.
        case capture
        /// Passed through to our own stdout/stderr (interactive programs).
        case inherit
        /// Each line (split at `\n` and `\r`) of stdout and stderr, in arrival order.
        case lines((String) -> Void)
        /// Like `lines`, but the handler returns `true` to stop the program (SIGTERM to its
        /// process group, SIGKILL two seconds later): for watching a VM's console.
        case linesUntil((String) -> Bool)
        /// Like `linesUntil`, and the handler is also called with `nil` every `interval`
        /// seconds, whether or not the program printed anything: for stopping a program that
        /// stays silent too long.
        case watch(interval: Double, (String?) -> Bool)
    }

    package var arguments: [String]
    package var environment: [String: String]
    package var removedEnvironment: [String]
    package var workingDirectory: String?
    package var input: Input
    /// The signal a timeout or a `linesUntil` handler stops the program with.
    package var stopSignal: Int32 = SIGTERM

    package init(_ program: String, _ arguments: [String] = [], environment: [String: String] = [:],
                workingDirectory: String? = nil, input: Input = .null) {
        self.arguments = [program] + arguments
        self.environment = environment
        self.removedEnvironment = []
        self.workingDirectory = workingDirectory
        self.input = input
    }

    package var program: String { arguments[0] }

    package var description: String {
        arguments.map { arg in
            arg.isEmpty || arg.contains(where: { " \"'$\\".contains($0) }) ? "'\(arg)'" : arg
        }.joined(separator: " ")
    }

    /// The absolute path of `name` in `PATH` (or `name` itself when it contains a slash).
    package static func find(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        var dirs = path.split(separator: ":").map(String.init)
        for extra in ["/usr/sbin", "/sbin"] where !dirs.contains(extra) { dirs.append(extra) }
        for dir in dirs {
            let candidate = dir + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs the command; throws `CommandError.failed` on a non-zero exit unless `check` is false.
    /// With `timeout` (seconds), the program is stopped when it runs longer and the result's
    /// `timedOut` is set.
    @discardableResult
    package func run(output: Output = .capture, check: Bool = true, timeout: Double? = nil) throws -> CommandResult {
        guard let executable = Command.find(program) else {
            throw CommandError.notFound(program: program)
        }
        try checkCancelled()
        RastLog.logger.debug("run: \(description)")
        let result = try spawnAndWait(executable: executable, output: output, timeout: timeout)
        RastLog.logger.debug("\(program) \(result.termination)")
        if check, result.timedOut {
            throw CommandError.timedOut(command: description, seconds: timeout ?? 0, output: result.combinedTail(lines: 20))
        }
        if check, result.termination != .exited(0), !result.stoppedByHandler {
            throw CommandError.failed(command: description, termination: result.termination,
                                      output: result.combinedTail(lines: 20))
        }
        return result
    }

    /// Runs the command and returns its stdout with the trailing newline removed.
    package func output() throws -> String {
        var text = try run().standardOutput
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    private func spawnAndWait(executable: String, output: Output, timeout: Double?) throws -> CommandResult {
        Command.ignoreBrokenPipes
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }

        // Raw descriptors: posix_spawn's file actions take them, and the output collector polls
        // them and writes the input non-blocking, which swift-system has no API for.
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var inPipe: [Int32] = [-1, -1]
        defer {
            for fd in outPipe + errPipe + inPipe where fd >= 0 { close(fd) }
        }
        let capturing: Bool
        if case .inherit = output { capturing = false } else { capturing = true }
        if capturing {
            try SystemError.check("pipe") { rast_pipe_cloexec(&outPipe) }
            try SystemError.check("pipe") { rast_pipe_cloexec(&errPipe) }
            posix_spawn_file_actions_adddup2(&fileActions, outPipe[1], 1)
            posix_spawn_file_actions_adddup2(&fileActions, errPipe[1], 2)
        }
        switch input {
        case .null:
            posix_spawn_file_actions_addopen(&fileActions, 0, "/dev/null", O_RDONLY, 0)
        case .inherit:
            break
        case .bytes:
            try SystemError.check("pipe") { rast_pipe_cloexec(&inPipe) }
            posix_spawn_file_actions_adddup2(&fileActions, inPipe[0], 0)
        }

        // Interactive children stay in our process group so they own the terminal.
        var ownGroup = true
        if case .inherit = input { ownGroup = false }
        let pid = try spawn(executable, fileActions: &fileActions, ownProcessGroup: ownGroup)
        let cancelledAlready = Cancellation.shared.register(child: pid)
        defer { Cancellation.shared.unregister(child: pid) }
        if cancelledAlready { kill(-pid, SIGTERM) }

        var collector = OutputCollector(output: output, child: pid, stopSignal: stopSignal,
                                        deadline: timeout.map { Stopwatch.now() + $0 })
        if capturing {
            close(outPipe[1]); outPipe[1] = -1
            close(errPipe[1]); errPipe[1] = -1
        }
        var inputBytes: [UInt8] = []
        if case .bytes(let bytes) = input {
            close(inPipe[0]); inPipe[0] = -1
            inputBytes = bytes
            // Written between reads: a child that answers before it has read all of its input
            // must not block on a full output pipe while we block on a full input pipe.
            _ = fcntl(inPipe[1], F_SETFL, fcntl(inPipe[1], F_GETFL) | O_NONBLOCK)
        }
        // The collector closes the input pipe once everything is written or the child stopped
        // reading; it is no longer ours to close after that.
        let inputFD = inPipe[1]
        inPipe[1] = -1
        collector.exchange(stdout: outPipe[0], stderr: errPipe[0], stdin: inputFD, input: inputBytes)

        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            if errno != EINTR { throw SystemError("waitpid", path: executable) }
        }
        let termination = Termination(waitStatus: status)
        try checkCancelled()
        return CommandResult(termination: termination, standardOutput: collector.stdoutText,
                             standardError: collector.stderrText, timedOut: collector.timedOut,
                             stoppedByHandler: collector.stopped, inputWritten: collector.inputWritten)
    }

    /// A child that exits without reading all of its input must not kill us with SIGPIPE:
    /// writes to its pipe fail with EPIPE instead, which means "the child stopped reading".
    /// (Children get the default disposition back through posix_spawn's SETSIGDEF.)
    private static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Our environment with `removedEnvironment` taken out and `environment` put in.
    func mergedEnvironment() -> [String] {
        var values: [String: String] = [:]
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                values[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            index += 1
        }
        for key in removedEnvironment { values[key] = nil }
        for (key, value) in environment { values[key] = value }
        return values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// posix_spawn of `executable` with our arguments and merged environment: the signal mask
    /// cleared, the signals rast handles back to their defaults, and (with `ownProcessGroup`) a
    /// process group of its own, so that stopping it reaches everything it started. It starts in
    /// our `workingDirectory`, or else where rast started (see InitialWorkingDirectory).
    func spawn(_ executable: String, fileActions: inout posix_spawn_file_actions_t, ownProcessGroup: Bool) throws -> pid_t {
        if let workingDirectory {
            rast_spawn_add_chdir(&fileActions, workingDirectory)
        } else {
            InitialWorkingDirectory.add(to: &fileActions)
        }
        var pid: pid_t = 0
        let result = SpawnAttributes.with(flags: ownProcessGroup ? Int16(POSIX_SPAWN_SETPGROUP) : 0) { attributes in
            withCStrings(arguments) { argv in
                withCStrings(mergedEnvironment()) { envp in
                    posix_spawn(&pid, executable, &fileActions, &attributes, argv, envp)
                }
            }
        }
        if result != 0 { throw SystemError("spawn", path: executable, errno: result) }
        return pid
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

/// Reads both pipes until they close, keeping text and feeding line handlers.
private struct OutputCollector {
    let output: Command.Output
    let child: pid_t
    let stopSignal: Int32
    let deadline: Double?
    var stdoutBytes: [UInt8] = []
    var stderrBytes: [UInt8] = []
    var pendingLine: [UInt8] = []
    var timedOut = false
    var stopped = false
    var killAt: Double?
    var nextTick: Double?
    /// How many bytes of the input the child took before it finished or stopped reading.
    var inputWritten = 0

    init(output: Command.Output, child: pid_t, stopSignal: Int32, deadline: Double?) {
        self.output = output
        self.child = child
        self.stopSignal = stopSignal
        self.deadline = deadline
    }

    /// The stop signal now, SIGKILL if the group is still there later (programs that clean
    /// up on a signal get the time to do so).
    mutating func stopChild() {
        guard killAt == nil else { return }
        kill(-child, stopSignal)
        kill(child, stopSignal)
        killAt = Stopwatch.now() + (stopSignal == SIGTERM ? 2 : 60)
    }

    var stdoutText: String { String(decoding: stdoutBytes, as: UTF8.self) }
    var stderrText: String { String(decoding: stderrBytes, as: UTF8.self) }

    /// Writes `input` to `stdin` and reads `stdout` and `stderr`, all in one poll loop, until
    /// the output pipes close (or, without output pipes, until the input is written). Negative
    /// descriptors are not used. `stdin` is closed here: after the last byte, or when the child
    /// stopped reading (EPIPE).
    mutating func exchange(stdout: Int32, stderr: Int32, stdin: Int32, input: [UInt8]) {
        var fds = [pollfd(fd: stdout, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: stderr, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: stdin, events: Int16(POLLOUT), revents: 0)]
        var inputOffset = 0
        func closeInput() {
            if fds[2].fd >= 0 { close(fds[2].fd) }
            fds[2].fd = -1
        }
        if stdin >= 0, input.isEmpty { closeInput() }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let now = Stopwatch.now()
            if let deadline, now >= deadline, !timedOut, !stopped {
                timedOut = true
                stopChild()
            }
            if let killAt, now >= killAt {
                kill(-child, SIGKILL)
                kill(child, SIGKILL)
                self.killAt = .infinity
            }
            if case .watch(let interval, let handler) = output, !stopped, !timedOut {
                if nextTick == nil { nextTick = now + interval }
                if let tick = nextTick, now >= tick {
                    nextTick = now + interval
                    if handler(nil) {
                        stopped = true
                        stopChild()
                    }
                }
            }
            // A stopped child reads no more input.
            if timedOut || stopped { closeInput() }
            if fds[0].fd < 0, fds[1].fd < 0, fds[2].fd < 0 { break }
            var wait: Int32 = -1
            if let deadline, killAt == nil { wait = Int32(max(0, min(1000, (deadline - now) * 1000))) + 1 }
            if let killAt, killAt.isFinite { wait = 200 }
            if let nextTick, !stopped {
                let untilTick = Int32(max(0, min(1000, (nextTick - now) * 1000))) + 1
                wait = wait < 0 ? untilTick : min(wait, untilTick)
            }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[2].fd >= 0, fds[2].revents != 0 {
                let written = input.withUnsafeBytes { buffer in
                    write(fds[2].fd, buffer.baseAddress! + inputOffset, buffer.count - inputOffset)
                }
                if written >= 0 {
                    inputOffset += written
                    if inputOffset == input.count { closeInput() }
                } else if errno != EINTR && errno != EAGAIN {
                    // EPIPE: the child closed its end (or exited) without reading everything.
                    closeInput()
                }
            }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if count <= 0 {
                    if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    fds[i].fd = -1
                    continue
                }
                let chunk = buffer[0..<count]
                consume(chunk, isError: i == 1)
            }
        }
        closeInput()
        inputWritten = inputOffset
        flushLine()
    }

    private mutating func consume(_ chunk: ArraySlice<UInt8>, isError: Bool) {
        let stopHandler: ((String) -> Bool)?
        switch output {
        case .linesUntil(let handler): stopHandler = handler
        case .watch(_, let handler): stopHandler = { handler($0) }
        default: stopHandler = nil
        }
        if let handler = stopHandler {
            if isError { stderrBytes.append(contentsOf: chunk) } else { stdoutBytes.append(contentsOf: chunk) }
            trim()
            for byte in chunk {
                if byte == 10 || byte == 13 {
                    if !pendingLine.isEmpty {
                        let line = String(decoding: pendingLine, as: UTF8.self)
                        pendingLine.removeAll(keepingCapacity: true)
                        if !stopped, handler(line) {
                            stopped = true
                            stopChild()
                        }
                    }
                } else {
                    pendingLine.append(byte)
                }
            }
        } else if case .lines(let handler) = output {
            // Keep a bounded tail for error messages; lines go to the handler.
            if isError { stderrBytes.append(contentsOf: chunk) } else { stdoutBytes.append(contentsOf: chunk) }
            trim()
            for byte in chunk {
                if byte == 10 || byte == 13 {
                    if !pendingLine.isEmpty {
                        handler(String(decoding: pendingLine, as: UTF8.self))
                        pendingLine.removeAll(keepingCapacity: true)
                    }
                } else {
                    pendingLine.append(byte)
                }
            }
        } else if isError {
            stderrBytes.append(contentsOf: chunk)
        } else {
            stdoutBytes.append(contentsOf: chunk)
        }
    }

    private mutating func trim() {
        let limit = 256 * 1024
        if stdoutBytes.count > 2 * limit { stdoutBytes.removeFirst(stdoutBytes.count - limit) }
        if stderrBytes.count > 2 * limit { stderrBytes.removeFirst(stderrBytes.count - limit) }
    }

    private mutating func flushLine() {
        guard !pendingLine.isEmpty else { return }
        let line = String(decoding: pendingLine, as: UTF8.self)
        pendingLine.removeAll()
        if case .lines(let handler) = output { handler(line) }
        if case .linesUntil(let handler) = output, !stopped, handler(line) { stopped = true }
        if case .watch(_, let handler) = output, !stopped, handler(line) { stopped = true }
    }
}

/// How a child process ended.
package enum Termination: Sendable, Equatable, CustomStringConvertible {
    /// It called exit() (or returned from main) with this status.
    case exited(Int32)
    /// A signal ended it.
    case signalled(Int32)

    /// Decodes a status from waitpid(2).
    package init(waitStatus status: Int32) {
        self = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }

    /// The status a shell would show in `$?`: the exit status, or 128 + the signal number.
    package var shellStatus: Int32 {
        switch self {
        case .exited(let code): return code
        case .signalled(let signal): return 128 + signal
        }
    }

    package var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signalled(let signal):
            let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                          SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL",
                                          SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM"]
            return "was killed by signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
        }
    }
}

/// What a finished command left behind.
package struct CommandResult: Sendable {
    /// Whether the program exited (and with which status) or was killed by a signal.
    package let termination: Termination
    package let standardOutput: String
    package let standardError: String
    /// The program ran past its timeout and was stopped.
    package var timedOut = false
    /// A `linesUntil` handler asked for the program to stop.
    package var stoppedByHandler = false
    /// How many bytes of `.bytes` input the program read before it ended or closed its input.
    package var inputWritten = 0

    package init(termination: Termination, standardOutput: String, standardError: String,
                timedOut: Bool = false, stoppedByHandler: Bool = false, inputWritten: Int = 0) {
        self.termination = termination
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.timedOut = timedOut
        self.stoppedByHandler = stoppedByHandler
        self.inputWritten = inputWritten
    }

    /// The status as a shell shows it (`$?`): the exit status, or 128 + the signal number.
    /// Use `termination` to tell `exit 130` from SIGINT.
    package var status: Int32 { termination.shellStatus }

    /// The last lines of stderr (or stdout when stderr is empty), for error messages.
    package func combinedTail(lines: Int) -> String {
        let source = standardError.isEmpty ? standardOutput : standardError
        let all = source.split(separator: "\n", omittingEmptySubsequences: true)
        return all.suffix(lines).joined(separator: "\n")
    }
}

package enum CommandError: Error, CustomStringConvertible, Sendable {
    case notFound(program: String)
    case failed(command: String, termination: Termination, output: String)
    case timedOut(command: String, seconds: Double, output: String)

    package var description: String {
        switch self {
        case .notFound(let program):
            return "\(program) was not found in PATH; install it (see `make deps`)"
        case .failed(let command, let termination, let output):
            let tail = output.isEmpty ? "" : ":\n" + output
            return "`\(command)` \(termination)\(tail)"
        case .timedOut(let command, let seconds, let output):
            let tail = output.isEmpty ? "" : ":\n" + output
            return "`\(command)` did not finish within \(Int(seconds)) seconds and was stopped\(tail)"
        }
    }
}
