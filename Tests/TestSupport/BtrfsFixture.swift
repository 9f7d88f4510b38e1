import Foundation
import SystemSupport

/// A real btrfs filesystem on a sparse loop file, mounted in a temporary directory.
/// `mountPoint` is the top level (subvolid=5). `close()` unmounts and deletes everything;
/// call it in a `defer` so failures clean up too.
public final class BtrfsFixture {
    public let directory: TemporaryDirectory
    public let imagePath: String
    public let mountPoint: String
    private var loop: LoopDevice?

    public init(size: String = "512M", label: String = "rast-test") throws {
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
    public var devicePath: String? { loop?.path }

    public func path(_ relative: String) -> String { mountPoint + "/" + relative }

    /// Unmounts (everything below the mount point too), detaches and deletes.
    public func close() {
        try? Mounts.unmountAll(under: directory.path)
        loop?.detach()
        loop = nil
        try? directory.remove()
    }

    deinit { close() }
}

/// Temporary directory that removes itself (after unmounting what is below it).
public final class Scratch {
    public let directory: TemporaryDirectory
    public var path: String { directory.path }

    public init(_ prefix: String = "rast-test") throws {
        directory = try TemporaryDirectory(prefix: prefix)
    }

    public func appending(_ component: String) -> String { directory.appending(component) }

    /// The directory `name` in here with a tmpfs of `size` ("1m", "150m") mounted on it: a
    /// small disk that runs full. Unmount it when done (removing the scratch directory does too).
    public func smallDisk(_ name: String, size: String) throws -> String {
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
