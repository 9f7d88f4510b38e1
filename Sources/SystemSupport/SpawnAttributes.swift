#if canImport(Glibc)
import Glibc
#endif

/// posix_spawn attributes for a child that starts with the signal state programs expect,
/// whatever rast does with signals: none blocked, and the signals rast handles (SIGINT,
/// SIGTERM, SIGHUP, SIGPIPE, SIGQUIT) back to their default action.
package enum SpawnAttributes {
    /// Calls `body` with such attributes. `flags` are set besides: POSIX_SPAWN_SETPGROUP
    /// for a process group of the child's own, or the setsid flag (CLinux's
    /// `rast_spawn_setsid_flag()`) for a session of its own.
    package static func with<R>(flags: Int16 = 0, _ body: (inout posix_spawnattr_t) throws -> R) rethrows -> R {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | flags)
        posix_spawnattr_setpgroup(&attributes, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        return try body(&attributes)
    }
}
