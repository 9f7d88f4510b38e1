import CLinux
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Starting the process that stays with a detached container (`rast container _monitor ID`):
/// in a session of its own, its standard output and error appended to the container's log,
/// and a pipe on descriptor 3 on which it says "ok" once the container runs (or why not).
enum DetachedProcess {
    static func spawn(_ arguments: [String], log: String) throws -> (pid: pid_t, ready: Int32) {
        var pipe: [Int32] = [-1, -1]
        try SystemError.check("pipe") { rast_pipe_cloexec(&pipe) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 3)
        InitialWorkingDirectory.add(to: &actions)
        var pid: pid_t = 0
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let result = SpawnAttributes.with(flags: rast_spawn_setsid_flag()) { attributes in
            posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        }
        close(pipe[1])
        guard result == 0 else {
            close(pipe[0])
            throw SystemError("spawn", path: arguments[0], errno: result)
        }
        return (pid, pipe[0])
    }

    /// Everything written to `fd` until the writer closes it.
    static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        close(fd)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits for the child `pid` (reaping other orphans that come our way); its exit
    /// status, 128 + the signal when a signal ended it.
    static func wait(for pid: pid_t) -> Int32 {
        while true {
            var status: Int32 = 0
            let reaped = waitpid(-1, &status, 0)
            if reaped < 0 {
                if errno == EINTR { continue }
                return -1  // ECHILD: not our child after all
            }
            guard reaped == pid else { continue }
            return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
    }
}
