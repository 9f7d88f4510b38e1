/// What went wrong with a container; each case names the container or option.
package enum ContainerError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidOption(String, reason: String)
    case notFound(String)
    case ambiguous(String, matches: [String])
    case nameInUse(String, id: String)
    case running(String, action: String)
    case notRunning(String)
    case noCommand(image: String)
    case runtime(command: String, status: Int32, output: String)
    case runtimeMissing(String)
    case record(path: String, reason: String)
    case user(String, reason: String)

    package var description: String {
        switch self {
        case .invalidOption(let option, let reason): return "\(option): \(reason)"
        case .notFound(let name): return "no container '\(name)' (see rast container ps -a)"
        case .ambiguous(let name, let matches): return "'\(name)' matches several containers: \(matches.joined(separator: ", "))"
        case .nameInUse(let name, let id): return "the name '\(name)' is taken by container \(id.prefix(12)); remove it first (rast container rm \(name))"
        case .running(let name, let action): return "container \(name) is running; stop it before you \(action) it, or use --force"
        case .notRunning(let name): return "container \(name) is not running"
        case .noCommand(let image): return "\(image) names no command to run; give one after the image"
        case .runtime(let command, let status, let output):
            return "\(command) failed (exit status \(status))\(output.isEmpty ? "" : ": " + output)"
        case .runtimeMissing(let program): return "the container runtime \(program) is not installed (it comes with the crun package)"
        case .record(let path, let reason): return "container record \(path): \(reason)"
        case .user(let user, let reason): return "user '\(user)': \(reason)"
        }
    }
}

import SystemSupport

/// Debug lines (RAST_DEBUG=1, --verbose) with the time since the process started, to see where
/// a container's start goes.
enum Trace {
    static let processStart: Double = {
        guard let stat = try? Files.readString("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return Stopwatch.now() }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return Stopwatch.now() }
        return ticks / 100  // USER_HZ; CLOCK_MONOTONIC counts from boot as the start time does
    }()

    static func mark(_ step: @autoclosure () -> String) {
        guard RastLog.debugRequested else { return }
        RastLog.logger.debug("container: \(step()) at \(Int((Stopwatch.now() - processStart) * 1000)) ms")
    }
}
