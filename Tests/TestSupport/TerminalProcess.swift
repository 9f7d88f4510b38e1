import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A program run on a pseudo-terminal the test holds, as a person would run it in a terminal:
/// its stdin, stdout and stderr are the terminal; the test types with `send` and reads the
/// screen's text with `waitFor`. It runs in a process group of its own, which `kill()` (and
/// dropping the object) ends with SIGKILL, children included.
package final class TerminalProcess: @unchecked Sendable {
    package let pid: pid_t
    private let master: Int32
    /// The terminal's slave side, kept open so that its modes can be read after the program ended.
    package let slave: Int32
    private final class Shared: Sendable {
        let text = Mutex("")
        let finished = Mutex<Termination?>(nil)
    }
    private let shared = Shared()

    package init(_ arguments: [String], environment: [String: String] = [:]) throws {
        // posix_openpt, unlockpt and ptsname are hidden from Swift (no _XOPEN_SOURCE): the
        // Linux ioctls they wrap, TIOCSPTLCK and TIOCGPTN (_IOW/_IOR('T', 0x31/0x30, int)).
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard master >= 0 else { throw SystemError("open", path: "/dev/ptmx") }
        var unlock: Int32 = 0
        var number: Int32 = 0
        guard ioctl(master, UInt(0x4004_5431), &unlock) == 0, ioctl(master, UInt(0x8004_5430), &number) == 0 else {
            close(master)
            throw SystemError("unlock the pseudo-terminal", path: "/dev/ptmx")
        }
        let slavePath = "/dev/pts/\(number)"
        let slave = open(slavePath, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else {
            close(master)
            throw SystemError("open", path: slavePath)
        }
        var size = winsize(ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(slave, UInt(TIOCSWINSZ), &size)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for target in Int32(0)...2 { posix_spawn_file_actions_adddup2(&actions, slave, target) }
        var merged = ProcessInfo.processInfo.environment
        merged["TERM"] = "vt100"
        for (key, value) in environment { merged[key] = value }
        let envp = merged.map { "\($0.key)=\($0.value)" }
        var child: pid_t = 0
        func cStrings(_ list: [String]) -> [UnsafeMutablePointer<CChar>?] { list.map { strdup($0) } + [nil] }
        let argv = cStrings(arguments)
        let env = cStrings(envp)
        defer { for pointer in argv + env { free(pointer) } }
        // A process group of its own, no signals blocked, rast's handled signals at their defaults.
        let result = SpawnAttributes.with(flags: Int16(POSIX_SPAWN_SETPGROUP)) { attributes in
            posix_spawn(&child, arguments[0], &actions, &attributes, argv, env)
        }
        guard result == 0 else {
            close(master)
            close(slave)
            throw SystemError("spawn", path: arguments[0], errno: result)
        }
        pid = child
        let process = child
        self.master = master
        self.slave = slave
        let shared = self.shared
        Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 {
                    // EIO once no process holds the slave open; we hold it, so poll for the end.
                    if shared.finished.withLock({ $0 != nil }) { break }
                    usleep(50_000)
                    continue
                }
                let chunk = String(decoding: buffer[0..<count], as: UTF8.self)
                shared.text.withLock { $0 += chunk }
            }
        }.start()
        Thread {
            var status: Int32 = 0
            while waitpid(process, &status, 0) == -1, errno == EINTR {}
            shared.finished.withLock { $0 = Termination(waitStatus: status) }
        }.start()
    }

    deinit {
        kill()
        _ = wait(timeout: 10)
        close(master)
        close(slave)
    }

    /// Everything the program and its children wrote to the terminal so far.
    package var output: String { shared.text.withLock { $0 } }
    package var termination: Termination? { shared.finished.withLock { $0 } }

    /// Types `text` (a person's Enter is "\r").
    package func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Waits until the output from byte offset `from` on contains `wanted`; returns the
    /// offset after it, or nil on timeout (or when the program ended without printing it).
    package func waitFor(_ wanted: String, from: Int = 0, timeout: Double) -> Int? {
        let deadline = Date().addingTimeInterval(timeout)
        func find() -> Int? {
            shared.text.withLock { all in
                let bytes = Array(all.utf8)
                let needle = Array(wanted.utf8)
                guard !needle.isEmpty, bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
                for start in from...(bytes.count - needle.count) where bytes[start] == needle[0] {
                    if bytes[start..<(start + needle.count)].elementsEqual(needle) { return start + needle.count }
                }
                return nil
            }
        }
        while Date() < deadline {
            if let found = find() { return found }
            if termination != nil {
                usleep(200_000)
                return find()
            }
            usleep(100_000)
        }
        return nil
    }

    /// The output from byte offset `from` on.
    package func output(from offset: Int) -> String {
        shared.text.withLock { String(decoding: Array($0.utf8).dropFirst(offset), as: UTF8.self) }
    }

    /// Waits for the program to end; nil on timeout.
    package func wait(timeout: Double) -> Termination? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let termination { return termination }
            usleep(50_000)
        }
        return termination
    }

    /// SIGKILL to the program's process group.
    package func kill() {
        if termination == nil { Glibc.kill(-pid, SIGKILL) }
    }
}
