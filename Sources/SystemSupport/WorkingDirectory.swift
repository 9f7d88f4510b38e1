import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The directory this process started in, held open, so that the programs it starts begin
/// there even while libalpm has moved the whole process elsewhere: a transaction's commit
/// chdir()s into the target root while it extracts each package (and restores the directory
/// afterwards). A child started by another thread in that window would inherit the root; once
/// its owner deletes it, the child's shell fails with "getcwd() failed". rast itself never
/// changes its working directory, so the one it started in is the one its children should get.
package enum InitialWorkingDirectory {
    /// Opened on first use; -1 when the directory cannot be opened (then children inherit ours).
    private static let descriptor: Int32 = rast_open_directory_path(".")

    /// Takes note of the directory now: call it before anything may change the process's
    /// working directory (libalpm's commit does).
    package static func capture() { _ = descriptor }

    /// Makes a child start in the initial directory: for spawns that name no directory of their own.
    package static func add(to actions: inout posix_spawn_file_actions_t) {
        if descriptor >= 0 { rast_spawn_add_fchdir(&actions, descriptor) }
    }
}
