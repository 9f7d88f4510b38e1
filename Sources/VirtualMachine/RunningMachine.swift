import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A QEMU machine running beside us, for work that talks to the guest while it runs (an SSH
/// login, a command over a forwarded port): the serial console is logged and kept, callers
/// wait for console lines, and `stop()` (or dropping it) ends QEMU. `QEMU.boot` is the
/// one-shot form that only watches the console.
package final class RunningMachine: Sendable {
    package let accelerator: String
    package let consoleLog: String
    /// QEMU's command line.
    package let commandLine: String
    private let process: BackgroundProcess
    private let console: Console
    private let started: Stopwatch
    private let scratch: TemporaryDirectory

    /// Console lines, each with the seconds since QEMU started.
    final class Console: Sendable {
        let lines = Mutex<[(seconds: Double, text: String)]>([])
    }

    /// How a wait for the console ended.
    package enum ConsoleEvent: Sendable, Equatable {
        case line(String, seconds: Double)
        case kernelPanic(String)
        case exited(status: Int32)
        case timedOut
    }

    /// Starts QEMU for `configuration`; the console goes to `consoleLog`. Under a tentative
    /// KVM (no decision yet, no `RAST_ACCEL`), this waits for the kernel's first console line,
    /// and a guest that stays silent for `QEMU.kvmSilenceSeconds` (or a QEMU that ends first) is
    /// stopped and started again under TCG, as `QEMU.boot` does.
    package init(_ configuration: MachineConfiguration, consoleLog: String,
                kvmSilenceSeconds: Double = QEMU.kvmSilenceSeconds) throws {
        let scratch = try TemporaryDirectory(prefix: "rast-qemu")
        var varsCopy: String?
        if configuration.firmware == .uefi {
            guard Files.exists(QEMU.ovmfCode), Files.exists(QEMU.ovmfVars) else {
                try? scratch.remove()
                throw QEMUError.missingFirmware(QEMU.ovmfCode)
            }
            let copy = scratch.appending("OVMF_VARS.fd")
            try Command("cp", [QEMU.ovmfVars, copy]).run()
            varsCopy = copy
        }
        let log = try LogFile(path: consoleLog)
        var accelerator = QEMU.accelerator(for: configuration)
        let watch = accelerator == "kvm" && QEMU.forcedAccelerator == nil
        while true {
            let command = Command(configuration.program, QEMU.arguments(for: configuration, accelerator: accelerator, varsCopy: varsCopy))
            log.write("# \(command)\n")
            let console = Console()
            let stopwatch = Stopwatch()
            let process = try BackgroundProcess(command) { rawLine in
                let line = rawLine.filter { $0 != "\u{1B}" }
                log.write(line + "\n")
                console.lines.withLock { $0.append((stopwatch.elapsed, line)) }
            }
            if watch, accelerator == "kvm" {
                var kernelSeen = false
                while stopwatch.elapsed < kvmSilenceSeconds, process.isRunning, !kernelSeen {
                    kernelSeen = console.lines.withLock { $0.contains { QEMU.isKernelLine($0.text) } }
                    if !kernelSeen { usleep(100_000) }
                }
                kernelSeen = kernelSeen || console.lines.withLock { $0.contains { QEMU.isKernelLine($0.text) } }
                if !kernelSeen {
                    process.stop(grace: 2)
                    QEMU.remember("tcg", for: configuration.program)
                    log.write("# KVM: no kernel line within \(Int(kvmSilenceSeconds)) s; starting again with TCG\n")
                    accelerator = "tcg"
                    continue
                }
                QEMU.remember("kvm", for: configuration.program)
            }
            self.process = process
            self.console = console
            self.started = stopwatch
            self.commandLine = command.description
            break
        }
        self.accelerator = accelerator
        self.consoleLog = consoleLog
        self.scratch = scratch
    }

    deinit {
        stop()
        try? scratch.remove()
    }

    /// Seconds since QEMU started.
    package var elapsed: Double { started.elapsed }
    package var isRunning: Bool { process.isRunning }
    package var consoleLines: [String] { console.lines.withLock { $0.map(\.text) } }

    /// Waits for the first console line (from line `from` on) that `matches`, a kernel panic,
    /// QEMU's exit or the timeout. Returns the event and the index after the line.
    package func waitForConsole(from index: Int = 0, timeout: Double,
                               matching matches: (String) -> Bool) -> (event: ConsoleEvent, next: Int) {
        let deadline = Stopwatch.now() + timeout
        var cursor = index
        while true {
            let lines = console.lines.withLock { Array($0.dropFirst(cursor)) }
            for (offset, line) in lines.enumerated() {
                if line.text.contains("Kernel panic - not syncing") { return (.kernelPanic(line.text), cursor + offset + 1) }
                if matches(line.text) { return (.line(line.text, seconds: line.seconds), cursor + offset + 1) }
            }
            cursor += lines.count
            if let status = process.exitStatus {
                // Lines that arrived together with the exit.
                if console.lines.withLock({ $0.count }) > cursor { continue }
                return (.exited(status: status), cursor)
            }
            if Stopwatch.now() >= deadline { return (.timedOut, cursor) }
            if Cancellation.shared.isCancelled { return (.timedOut, cursor) }
            usleep(50_000)
        }
    }

    /// Ends QEMU (SIGTERM, SIGKILL after two seconds).
    package func stop() {
        process.stop(grace: 2)
    }

    /// Waits for QEMU to exit by itself (the guest powered off); nil on timeout.
    @discardableResult
    package func waitForExit(timeout: Double) -> Int32? {
        process.wait(timeout: timeout)
    }
}

extension QEMU {
    /// True when 127.0.0.1:`port` can be bound right now (QEMU's `hostfwd` needs that).
    package static func isLocalPortFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port)).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now (for a `hostfwd`).
    package static func freeLocalPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw SystemError("bind 127.0.0.1:0") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
