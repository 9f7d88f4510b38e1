import CLinux
import Foundation
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A loop device bound to a file, through the kernel's loop-control interface.
///
/// The device is configured with autoclear: once the last user (our descriptor, a mount,
/// grub-install) lets go, the kernel detaches it, so even a crashed build leaves no loop
/// device behind after its mounts are gone. Partitions of a GPT image are announced with the
/// BLKPG ioctl (what `partx -a` does), because the host kernel has no GPT parser.
package final class LoopDevice {
    package let path: String
    package let backingFile: String
    /// Ours until `detach()`; the kernel keeps the device bound while it is open.
    private var device: FileDescriptor?
    private var partitions: [Int] = []

    /// Attaches `file` (optionally a window of it) to a free loop device.
    package init(file: String, offset: UInt64 = 0, sizeLimit: UInt64 = 0, readOnly: Bool = false) throws {
        backingFile = file
        let mode: FileDescriptor.AccessMode = readOnly ? .readOnly : .readWrite
        let backing = try FileDescriptor.open(path: file, mode)
        defer { try? backing.close() }
        let control = try FileDescriptor.open(path: "/dev/loop-control", .readWrite)
        defer { try? control.close() }

        var attempts = 0
        while true {
            let number = rast_loop_get_free(control.rawValue)
            if number < 0 { throw SystemError("find a free loop device") }
            let devicePath = "/dev/loop\(number)"
            let device: FileDescriptor
            do {
                device = try FileDescriptor.open(FilePath(devicePath), mode, options: .closeOnExec)
            } catch let error as Errno {
                // devtmpfs may lag a moment behind LOOP_CTL_GET_FREE.
                if error == .noSuchFileOrDirectory, attempts < 50 { attempts += 1; usleep(20_000); continue }
                throw SystemError("open", path: devicePath, errno: error)
            }
            if rast_loop_configure(device.rawValue, backing.rawValue, offset, sizeLimit, readOnly ? 1 : 0, 1, file) == 0 {
                path = devicePath
                self.device = device
                RastLog.logger.debug("attached \(file) to \(devicePath)")
                return
            }
            let error = errno
            try? device.close()
            // Another process took this device between GET_FREE and CONFIGURE: try the next.
            if error == EBUSY, attempts < 50 { attempts += 1; continue }
            throw SystemError("attach \(file) to", path: devicePath, errno: error)
        }
    }

    /// The device node of partition `number` once it was added.
    package func partitionPath(_ number: Int) -> String { "\(path)p\(number)" }

    /// Announces a partition to the kernel and waits for its device node.
    package func addPartition(number: Int, start: Int64, length: Int64) throws {
        guard let device else { throw SystemError("add partition \(number) to", path: path, errno: EBADF) }
        if rast_blkpg_partition(device.rawValue, 1, Int32(number), start, length) != 0 {
            throw SystemError("add partition \(number) to", path: path)
        }
        partitions.append(number)
        let node = partitionPath(number)
        for _ in 0..<250 where access(node, F_OK) != 0 { usleep(20_000) }
        if access(node, F_OK) != 0 {
            throw UserError("the kernel added partition \(number) of \(path) but \(node) did not appear")
        }
    }

    /// Removes the partitions added through `addPartition` (retrying while they are busy).
    package func removePartitions() {
        guard let device else { return }
        for number in partitions.reversed() {
            var attempts = 0
            while rast_blkpg_partition(device.rawValue, 0, Int32(number), 0, 0) != 0, errno == EBUSY, attempts < 50 {
                attempts += 1
                usleep(100_000)
            }
        }
        partitions.removeAll()
    }

    /// Lets go of the device: removes partitions and closes our descriptor, after which the
    /// kernel detaches it as soon as nothing else holds it (autoclear). With `force`, also
    /// clears the binding at once.
    package func detach(force: Bool = true) {
        guard let device else { return }
        waitUntilReleased()
        removePartitions()
        _ = rast_block_flush(device.rawValue)
        if force { _ = rast_loop_clear(device.rawValue) }
        try? device.close()
        self.device = nil
        RastLog.logger.debug("released \(path)")
    }

    deinit { detach() }

    /// Waits (up to five seconds) until no file system holds the device any more. Our own
    /// unmount may not have been the last reference: a process that created a mount namespace
    /// a moment earlier holds a copy of the mount until it drops it, and the file system's last
    /// writes happen only then. Flushing before that would lose them.
    private func waitUntilReleased() {
        for attempt in 0..<250 {
            do {
                // O_EXCL on a block device: fails with EBUSY while a file system holds it.
                let probe = try FileDescriptor.open(FilePath(path), .readOnly, options: [.exclusiveCreate, .closeOnExec])
                try? probe.close()
                if attempt > 0 { RastLog.logger.debug("\(path) was released after \(attempt * 20) ms") }
                return
            } catch {
                guard (error as? Errno) == .resourceBusy else { return }
            }
            usleep(20_000)
        }
        RastLog.logger.notice("\(path) is still in use by another process; detaching it when that ends")
    }

    /// Loop devices whose backing file is `file` (from sysfs).
    package static func devices(backing file: String) -> [String] {
        guard let names = try? FileManagerShim.contents(of: "/sys/block") else { return [] }
        return names.filter { $0.hasPrefix("loop") }.compactMap { name in
            guard let backing = try? Files.readString("/sys/block/\(name)/loop/backing_file") else { return nil }
            let trimmed = backing.trimmingCharacters(in: .newlines)
            return trimmed == file || trimmed == file + " (deleted)" ? "/dev/\(name)" : nil
        }
    }
}

/// Directory listing without pulling Foundation's FileManager into hot paths.
package enum FileManagerShim {
    package static func contents(of directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw SystemError("open directory", path: directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}

