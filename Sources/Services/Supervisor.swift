import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a service is doing, as `rast service list` shows it.
package enum ServiceState: String, Sendable, Codable {
    /// Up and ready.
    case running
    /// Up, waiting for its dependencies or for its readiness check.
    case starting
    /// Its last run failed, and it is waiting for the restart (backoff) or stays down by its policy.
    case failed
    /// Down: stopped by `rast service stop`, or ended cleanly and not restarted by its policy.
    case stopped
    /// Ended and about to be started again (between runs, after a clean exit).
    case restarting
    /// Defined with `enabled = false`: not started at boot.
    case disabled
    /// Enabled in the definitions, but not supervised in this boot (added after boot, or
    /// refused at boot because of a problem in its definition).
    case inactive
}

/// The supervisor's view of one service (s6-svstat plus what the finish script recorded).
package struct RuntimeStatus: Sendable, Codable, Equatable {
    package var up: Bool
    package var wantedUp: Bool
    package var ready: Bool
    package var pid: Int?
    /// Seconds since the service last went up or down.
    package var seconds: Int
    /// Restarts since boot (every time the finish script let s6 start the program again).
    package var restarts: Int
    /// Failures in a row (what the backoff grows with).
    package var consecutiveFailures: Int
    /// The last run's exit status, or nil when a signal ended it (then `lastSignal`).
    package var lastExitStatus: Int?
    package var lastSignal: Int?
    /// The last run ended because it was stopped (`rast service stop`), not by itself.
    package var stoppedOnRequest: Bool = false

    package var lastRunFailed: Bool {
        if let status = lastExitStatus { return status != 0 }
        return lastSignal != nil
    }

    /// "exited with status 3", "killed by signal 9 (SIGKILL)", or nil before the first exit.
    package var lastExit: String? {
        if let status = lastExitStatus { return "exited with status \(status)" }
        if let signal = lastSignal { return "killed by signal \(signal)\(signalName(signal).map { " (\($0))" } ?? "")" }
        return nil
    }

    package var state: ServiceState {
        if up { return ready ? .running : .starting }
        if stoppedOnRequest, !wantedUp { return .stopped }
        if lastRunFailed { return .failed }
        return wantedUp ? .restarting : .stopped
    }
}

func signalName(_ number: Int) -> String? {
    let names = [1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
                 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM"]
    return names[number]
}

package enum SupervisorError: Error, CustomStringConvertible, Sendable {
    case notSupervised(name: String, scanDirectory: String)
    case timedOut(name: String, action: String, seconds: Double, state: String)

    package var description: String {
        switch self {
        case .notSupervised(let name, let scan):
            return "service '\(name)' is not supervised in this boot (no \(scan)/\(name)); `rast service list` shows what is"
        case .timedOut(let name, let action, let seconds, let state):
            return "service '\(name)' did not \(action) within \(Int(seconds)) seconds (it is \(state))"
        }
    }
}

/// The running supervision tree: s6-svscan on `paths.scanDirectory`, one s6-supervise per
/// service, controlled with s6-svc and read with s6-svstat.
package struct Supervisor: Sendable {
    package let paths: SupervisionPaths

    package init(paths: SupervisionPaths = .system) {
        self.paths = paths
    }

    /// True when the supervision tree runs (s6-svscan's control pipe exists).
    package var isRunning: Bool {
        Files.exists(paths.scanDirectory + "/.s6-svscan/control")
    }

    package func isSupervised(_ name: String) -> Bool {
        Files.exists(paths.serviceDirectory(name) + "/run")
    }

    /// Names of the service directories in the scan directory.
    package func supervisedNames() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.scanDirectory)) ?? []
        // Containers with a restart policy have service directories too (data/container): `rast
        // container` manages those.
        return names.filter {
            !$0.hasPrefix(".") && Files.exists(paths.serviceDirectory($0) + "/run") && !Files.exists(paths.serviceDirectory($0) + "/data/container")
        }.sorted()
    }

    /// The status of a supervised service; nil when it has no service directory, or its
    /// supervisor has not started yet.
    package func status(_ name: String) throws -> RuntimeStatus? {
        let directory = paths.serviceDirectory(name)
        // No status file yet: s6-supervise has not started on it (or is just starting).
        guard isSupervised(name), Files.exists(directory + "/supervise/status") else { return nil }
        let result = try Command("s6-svstat", ["-o", "up,wantedup,ready,pid,exitcode,signum,updownfor", directory]).run(check: false)
        guard result.status == 0 else {
            if result.status == 1 { return nil }   // s6-supervise not running (yet) on it
            throw UserError("s6-svstat \(directory) failed: \(result.combinedTail(lines: 3))")
        }
        let fields = result.standardOutput.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        guard fields.count == 7 else { throw UserError("s6-svstat printed something unexpected for \(directory): \(result.standardOutput)") }
        func number(_ file: String) -> Int { Int(((try? Files.readString(directory + "/data/" + file)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }
        var status = RuntimeStatus(up: fields[0] == "true", wantedUp: fields[1] == "true", ready: fields[2] == "true",
                                   pid: Int(fields[3]).flatMap { $0 > 0 ? $0 : nil }, seconds: Int(fields[6]) ?? 0,
                                   restarts: number("restarts"), consecutiveFailures: number("failures"),
                                   lastExitStatus: nil, lastSignal: nil,
                                   stoppedOnRequest: Files.exists(directory + "/data/stopped") || Files.exists(directory + "/data/stop-requested"))
        // The finish script records every exit as "STATUS SIGNAL" (256 = killed by a signal).
        if let recorded = try? Files.readString(directory + "/data/last-exit") {
            let parts = recorded.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if parts.count == 2 {
                if parts[0] == 256 { status.lastSignal = parts[1] } else { status.lastExitStatus = parts[0] }
            }
        }
        return status
    }

    /// Brings a service up and waits until it is up (and ready, unless `ready` is false).
    package func start(_ name: String, timeout: Double = 30) throws {
        let directory = try supervisedDirectory(name)
        try Command("s6-svc", ["-u", directory]).run()
        try wait(name, until: { $0.up && $0.ready }, action: "become ready", timeout: timeout)
    }

    /// Stops a service (SIGTERM, SIGKILL after its stop timeout) and waits until it is down.
    package func stop(_ name: String, timeout: Double = 60) throws {
        let directory = try supervisedDirectory(name)
        try Files.write(directory + "/data/stop-requested", string: "")
        try Command("s6-svc", ["-d", directory]).run()
        try wait(name, until: { !$0.up }, action: "stop", timeout: timeout)
        // Its finish script marks the stop when it is done.
        let stopwatch = Stopwatch()
        while !Files.exists(directory + "/data/stopped"), stopwatch.elapsed < 10 { usleep(50_000) }
    }

    /// Stops and starts a service again (a restart asked for is not counted as a failure).
    package func restart(_ name: String, timeout: Double = 60) throws {
        let directory = try supervisedDirectory(name)
        guard let before = try status(name) else { throw SupervisorError.notSupervised(name: name, scanDirectory: paths.scanDirectory) }
        if before.up {
            try Files.write(directory + "/data/restart-requested", string: "")
            let oldPID = before.pid
            try Command("s6-svc", ["-u", "-r", directory]).run()
            try wait(name, until: { $0.up && $0.ready && $0.pid != oldPID }, action: "restart", timeout: timeout)
        } else {
            try start(name, timeout: timeout)
        }
    }

    func supervisedDirectory(_ name: String) throws -> String {
        guard isSupervised(name) else { throw SupervisorError.notSupervised(name: name, scanDirectory: paths.scanDirectory) }
        return paths.serviceDirectory(name)
    }

    /// Polls the status until `condition` holds.
    package func wait(_ name: String, until condition: (RuntimeStatus) -> Bool, action: String, timeout: Double) throws {
        let stopwatch = Stopwatch()
        var last: RuntimeStatus?
        while stopwatch.elapsed < timeout {
            try checkCancelled()
            last = try status(name)
            if let last, condition(last) { return }
            usleep(100_000)
        }
        throw SupervisorError.timedOut(name: name, action: action, seconds: timeout, state: last?.state.rawValue ?? "not supervised")
    }

    // MARK: Logs

    package func logFile(_ name: String) -> String { paths.logDirectory(name) + "/current" }

    /// The last `count` lines of the service's log (from the rotated files too when `current`
    /// has fewer).
    package func logLines(_ name: String, count: Int) -> [String] {
        guard count > 0 else { return [] }
        let directory = paths.logDirectory(name)
        var files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("@") }.sorted()
        files.append("current")
        var lines: [String] = []
        for file in files.reversed() {
            guard let text = try? Files.readString(directory + "/" + file) else { continue }
            lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) + lines
            if lines.count >= count { break }
        }
        return Array(lines.suffix(count))
    }

    /// Prints the lines written to the log from now on (after rotations too) until `stop`
    /// returns true or the process is interrupted.
    package func follow(_ name: String, output: (String) -> Void, stop: () -> Bool = { false }) throws {
        let path = logFile(name)
        var offset = (try? Files.size(path)) ?? 0
        var pending: [UInt8] = []
        while !stop() {
            try checkCancelled()
            let size = (try? Files.size(path)) ?? 0
            if size < offset { offset = 0 }   // rotated: a new, shorter current
            if size > offset, let bytes = try? readRange(path, from: offset, count: Int(size - offset)) {
                offset += Int64(bytes.count)
                pending += bytes
                while let newline = pending.firstIndex(of: 10) {
                    output(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            usleep(200_000)
        }
    }

    private func readRange(_ path: String, from offset: Int64, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: count)
        let read = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard read >= 0 else { throw SystemError("pread", path: path) }
        return Array(buffer.prefix(read))
    }
}
