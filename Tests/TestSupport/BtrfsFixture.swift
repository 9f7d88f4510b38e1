import Foundation
import SystemSupport

/// A real btrfs filesystem on a sparse loop file, mounted in a temporary directory.
/// `mountPoint` is the top level (subvolid=5). `close()` unmounts and deletes everything;
/// call it in a `defer` so failures clean up too.
package final class BtrfsFixture {
    package let directory: TemporaryDirectory
    package let imagePath: String
    package let mountPoint: String
    private var loop: LoopDevice?

    package init(size: String = "512M", label: String = "rast-test") throws {
        try Require.loopDevices()
        try Require.programs("mkfs.btrfs")
        directory = try TemporaryDirectory(prefix: "rast-btrfs")
        imagePath = directory.appending("fs.img")
        mountPoint = directory.appending("mnt")
        do {
            try Command("truncate", ["-s", size, imagePath]).run()
            try Command("mkfs.btrfs", ["-q", "-f", "-L", label, imagePath]).run()
            try Files.createDirectory(mountPoint)
            let device = try LoopDevice(file: imagePath)
            loop = device
            try Mounts.mount(device.path, on: mountPoint, type: "btrfs", options: ["subvolid=5"])
        } catch {
            close()
            throw error
        }
    }

    /// The loop device holding the filesystem.
    package var devicePath: String? { loop?.path }

    package func path(_ relative: String) -> String { mountPoint + "/" + relative }

    /// Unmounts (everything below the mount point too), detaches and deletes.
    package func close() {
        try? Mounts.unmountAll(under: directory.path)
        loop?.detach()
        loop = nil
        try? directory.remove()
    }

    deinit { close() }
}

/// Temporary directory that removes itself (after unmounting what is below it).
package final class Scratch {
    package let directory: TemporaryDirectory
    package var path: String { directory.path }

    package init(_ prefix: String = "rast-test") throws {
        directory = try TemporaryDirectory(prefix: prefix)
    }

    package func appending(_ component: String) -> String { directory.appending(component) }

    /// The directory `name` in here with a tmpfs of `size` ("1m", "150m") mounted on it: a
    /// small disk that runs full. Unmount it when done (removing the scratch directory does too).
    package func smallDisk(_ name: String, size: String) throws -> String {
        try Require.root()
        let path = appending(name)
        try Files.createDirectory(path)
        try Mounts.mount("tmpfs", on: path, type: "tmpfs", options: ["size=\(size)"])
        return path
    }

    deinit {
        try? Mounts.unmountAll(under: directory.path)
        try? directory.remove()
    }
}
