import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM turned into cooperative cancellation.
///
/// Child processes run in their own process groups (so a terminal's ^C does not reach them
/// behind our back); on a signal, every running child group gets SIGTERM, the flag is set,
/// and the code that waits for the child throws. Long loops call `checkCancelled()`. Cleanup
/// then runs through the ordinary `defer`/`catch` paths: mounts are released and loop devices
/// detached before the program exits.
package final class Cancellation: Sendable {
    package static let shared = Cancellation()

    private struct State {
        var cancelled = false
        var signal: Int32 = 0
        var children: Set<pid_t> = []
    }
    private let state = Mutex(State())

    package var isCancelled: Bool { state.withLock { $0.cancelled } }
    /// The signal that cancelled the process (0 when none did).
    package var signal: Int32 { state.withLock { $0.signal } }

    /// Installs the handlers. Call once from an executable's entry point.
    package func installSignalHandlers() {
        let queue = DispatchQueue(label: "rast.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.cancel(signal: sig) }
            source.resume()
            sources.append(source)
        }
        signalSources = sources
    }

    /// Marks the process cancelled and asks every running child process group to stop.
    package func cancel(signal: Int32 = SIGINT) {
        let children = state.withLock { state -> Set<pid_t> in
            state.cancelled = true
            if state.signal == 0 { state.signal = signal }
            return state.children
        }
        for pid in children { kill(-pid, SIGTERM) }
    }

    func register(child: pid_t) -> Bool {
        state.withLock { state in
            state.children.insert(child)
            return state.cancelled
        }
    }

    func unregister(child: pid_t) {
        _ = state.withLock { $0.children.remove(child) }
    }

    /// Throws `CancellationError` once a signal arrived.
    package func check() throws {
        if isCancelled { throw InterruptedError(signal: signal) }
    }
}

// Kept alive for the life of the process; written once by installSignalHandlers.
nonisolated(unsafe) private var signalSources: [DispatchSourceSignal] = []

/// Thrown when SIGINT/SIGTERM interrupted the work.
package struct InterruptedError: Error, CustomStringConvertible, Sendable {
    package let signal: Int32
    package var description: String {
        signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted"
    }
}

/// Shorthand for `Cancellation.shared.check()`.
package func checkCancelled() throws {
    try Cancellation.shared.check()
}
