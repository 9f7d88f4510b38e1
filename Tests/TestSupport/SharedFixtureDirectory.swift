import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

extension TemporaryDirectory {
    /// A temporary directory that lasts as long as the test process, for a fixture built once
    /// and shared by all its tests (an image, a package pool): when the process exits,
    /// whatever is still mounted below it is unmounted and it is removed.
    package static func forTestProcess(prefix: String) throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory(prefix: prefix)
        let first = directoriesToRemoveAtExit.withLock { directories in
            directories.append(directory.path)
            return directories.count == 1
        }
        if first { atexit { removeDirectoriesAtExit() } }
        return directory
    }
}

private let directoriesToRemoveAtExit = Mutex<[String]>([])

private func removeDirectoriesAtExit() {
    for directory in directoriesToRemoveAtExit.withLock({ $0 }) {
        try? Mounts.unmountAll(under: directory)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
