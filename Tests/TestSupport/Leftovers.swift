import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a build or an install may leave attached or mounted below a directory.
package enum Leftovers {
    /// Mounts strictly below `directory`.
    package static func mounts(under directory: String) throws -> [String] {
        try MountTable.read().mounts(under: directory)
            .filter { $0.mountPoint != Mounts.normalize(directory) }
            .map(\.mountPoint)
    }

    /// Backing files of loop devices whose file lies below `directory`. The kernel lets go of
    /// an autoclear loop device once its last user closed it, so this waits up to two seconds
    /// for them to go (a leak lasts forever).
    package static func loopDevices(under directory: String) throws -> [String] {
        func attached() throws -> [String] {
            try FileManagerShim.contents(of: "/sys/block").filter { $0.hasPrefix("loop") }.compactMap { name -> String? in
                guard let backing = try? Files.readString("/sys/block/\(name)/loop/backing_file") else { return nil }
                return backing.hasPrefix(directory) ? backing : nil
            }
        }
        var loops = try attached()
        for _ in 0..<20 where !loops.isEmpty {
            usleep(100_000)
            loops = try attached()
        }
        return loops
    }
}
