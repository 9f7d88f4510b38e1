import Blkid
import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where an image goes: a block device (written in place) or a file (written under a
/// temporary name beside it and renamed when complete).
package struct Target: Sendable {
    package enum Kind: Sendable, Equatable {
        case blockDevice
        /// A regular file; `exists` is false when rast-install creates it.
        case file(exists: Bool)
    }

    /// The path as given.
    package let path: String
    /// The path with symbolic links resolved (/dev/disk/by-id/... → /dev/sdb).
    package let resolvedPath: String
    package let kind: Kind
    /// The device's size, or the existing file's size (0 for a new file).
    package let size: Int64
    /// The kernel's name (sdb, nvme0n1, loop3) and major:minor, for block devices.
    package let kernelName: String?
    /// Vendor and model from sysfs, when the device reports them.
    package let model: String?

    package var isBlockDevice: Bool { kind == .blockDevice }

    /// Looks at `path` without changing anything.
    package static func examine(_ path: String) throws -> Target {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let error = errno
            guard error == ENOENT else { throw SystemError("stat", path: path, errno: error) }
            let parent = (path as NSString).deletingLastPathComponent
            guard Files.isDirectory(parent.isEmpty ? "." : parent) else {
                throw InstallError.refused(target: path, reason: "its directory \(parent) does not exist")
            }
            return Target(path: path, resolvedPath: absolute(path), kind: .file(exists: false), size: 0, kernelName: nil, model: nil)
        }
        let realPath = resolve(path) ?? absolute(path)
        switch st.st_mode & S_IFMT {
        case S_IFREG:
            return Target(path: path, resolvedPath: realPath, kind: .file(exists: true), size: Int64(st.st_size), kernelName: nil, model: nil)
        case S_IFBLK:
            // Only sysfs is read here: a device is opened after the checks found it free.
            let device = BlockDevice(rdev: st.st_rdev)
            return Target(path: path, resolvedPath: realPath, kind: .blockDevice, size: try device.size(), kernelName: device.name,
                          model: device.model)
        case S_IFDIR:
            throw InstallError.refused(target: path, reason: "it is a directory; give a block device or an image file to write")
        default:
            throw InstallError.refused(target: path, reason: "it is neither a block device nor a regular file")
        }
    }

    /// `path` with every symbolic link resolved, or nil when it does not exist.
    static func resolve(_ path: String) -> String? {
        realpath(path, nil).map { pointer -> String in
            defer { free(pointer) }
            return String(cString: pointer)
        }
    }

    private static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// What is on the device now, in the words the refusal without --yes uses (it reads the
    /// partition table: call it only for a target that passed `problems`).
    package var overwriteWarning: String {
        var lines = ["\(path)\(resolvedPath != path ? " (\(resolvedPath))" : ""): \(ByteCount.format(size))\(model.map { ", \($0)" } ?? "")"]
        let currentPartitions = kernelName.map { BlockDevice(name: $0).describePartitions(path: resolvedPath) } ?? []
        if currentPartitions.isEmpty {
            lines.append("  no partitions")
        } else {
            lines += currentPartitions.map { "  " + $0 }
        }
        return lines.joined(separator: "\n")
    }

    /// Every reason not to write the target: mounted (itself or a partition), the running
    /// system's root, swap, held by device-mapper/RAID, a loop device over the image, or a
    /// file attached to a loop device. Empty when it is free.
    package func problems(image: String) -> [String] {
        var problems: [String] = []
        let imagePath = Target.resolve(image) ?? image
        var imageStat = stat()
        var targetStat = stat()
        let sameFile = stat(image, &imageStat) == 0 && stat(resolvedPath, &targetStat) == 0
            && imageStat.st_dev == targetStat.st_dev && imageStat.st_ino == targetStat.st_ino
        switch kind {
        case .file(let exists):
            if resolvedPath == imagePath || sameFile { problems.append("it is the image itself") }
            if exists {
                let loops = LoopDevice.devices(backing: resolvedPath)
                if !loops.isEmpty {
                    problems.append("it is attached to \(loops.joined(separator: ", ")) (in use; detach it with losetup -d first)")
                }
            }
        case .blockDevice:
            guard let name = kernelName else { return problems }
            let device = BlockDevice(name: name)
            if device.isPartition {
                problems.append("it is a partition (\(name)), not a whole disk; give the disk itself")
            }
            if let sectorSize = device.logicalSectorSize, sectorSize != 512 {
                problems.append("its logical sector size is \(sectorSize) bytes; rast-build's GPT assumes 512-byte sectors")
            }
            problems += device.usage()
            if let backing = device.loopBackingFile, backing == imagePath {
                problems.append("it is a loop device over the image itself")
            }
        }
        return problems
    }
}

/// A block device seen through sysfs (/sys/dev/block/MAJOR:MINOR → /sys/block/NAME).
struct BlockDevice {
    let name: String
    let sysfs: String

    init(rdev: dev_t) {
        let number = deviceNumber(rdev)
        let link = "/sys/dev/block/" + number
        let target = Target.resolve(link) ?? link
        sysfs = target
        name = (target as NSString).lastPathComponent
    }

    init(name: String) {
        self.name = name
        let direct = "/sys/class/block/" + name
        sysfs = Target.resolve(direct) ?? direct
    }

    var isPartition: Bool { Files.exists(sysfs + "/partition") }

    var model: String? {
        let parts = ["vendor", "model"].compactMap { try? Files.readString(sysfs + "/device/" + $0) }
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        if !parts.isEmpty { return parts.joined(separator: " ") }
        if let backing = loopBackingFile { return "loop device over \(backing)" }
        return nil
    }

    var logicalSectorSize: Int? {
        (try? Files.readString(sysfs + "/queue/logical_block_size")).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    var loopBackingFile: String? {
        (try? Files.readString(sysfs + "/loop/backing_file")).map { $0.trimmingCharacters(in: .newlines) }
    }

    /// The kernel's partitions of this disk (sysfs children with a `partition` file).
    var partitionNames: [String] {
        ((try? FileManagerShim.contents(of: sysfs)) ?? []).filter { Files.exists(sysfs + "/" + $0 + "/partition") }
    }

    /// "MAJOR:MINOR" of the disk and each of its partitions.
    var deviceNumbers: Set<String> {
        var numbers = Set<String>()
        for directory in [sysfs] + partitionNames.map({ sysfs + "/" + $0 }) {
            if let number = try? Files.readString(directory + "/dev") { numbers.insert(number.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return numbers
    }

    /// The size in bytes (sysfs counts 512-byte sectors whatever the device's sector size).
    func size() throws -> Int64 {
        guard let text = try? Files.readString(sysfs + "/size"), let sectors = Int64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw UserError("cannot read the size of \(name) from \(sysfs)/size")
        }
        return sectors * 512
    }

    /// The partition table on the device, one line per partition (what would be lost).
    func describePartitions(path: String) -> [String] {
        guard let table = try? Blkid.partitionTable(at: path) else { return [] }
        return table.partitions.map { entry in
            var text = "partition \(entry.number): \(ByteCount.format(Int64(entry.sizeBytes)))"
            if let name = entry.name, !name.isEmpty { text += " '\(name)'" }
            if let filesystem = try? Blkid.filesystem(at: path, offset: entry.startBytes, size: entry.sizeBytes) {
                text += ", \(filesystem.type)"
                if let label = filesystem.label { text += " '\(label)'" }
            }
            return text
        }
    }

    /// Why the device is in use: mounted (the disk or a partition, btrfs included), the
    /// running system's root, active swap, held by device-mapper or RAID.
    func usage() -> [String] {
        var problems: [String] = []
        let numbers = deviceNumbers
        let names = Set([name] + partitionNames)
        func number(ofDevicePath path: String) -> String? {
            var st = stat()
            guard path.hasPrefix("/"), stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK else { return nil }
            return deviceNumber(st.st_rdev)
        }
        // Mounts: mountinfo's MAJOR:MINOR is the filesystem's device (an anonymous one for
        // btrfs), so the mount source is compared as well.
        if let text = try? Files.readString("/proc/self/mountinfo") {
            var seen = Set<String>()
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: false)
                guard let dash = fields.firstIndex(of: "-"), fields.count > dash + 2, fields.count > 4 else { continue }
                let source = String(fields[dash + 2])
                guard numbers.contains(String(fields[2])) || number(ofDevicePath: source).map(numbers.contains) == true else { continue }
                let mountPoint = String(fields[4])
                guard seen.insert(mountPoint).inserted else { continue }
                problems.append(mountPoint == "/"
                    ? "it holds the running system's root filesystem (\(source) is mounted on /)"
                    : "\(source) is mounted on \(mountPoint)")
            }
        }
        // Mounted btrfs filesystems list all their devices here (multi-device ones too).
        if problems.isEmpty {
            for uuid in (try? FileManagerShim.contents(of: "/sys/fs/btrfs")) ?? [] {
                for device in (try? FileManagerShim.contents(of: "/sys/fs/btrfs/\(uuid)/devices")) ?? [] where names.contains(device) {
                    problems.append("\(device) belongs to the mounted btrfs filesystem \(uuid)")
                }
            }
        }
        if let swaps = try? Files.readString("/proc/swaps") {
            for line in swaps.split(separator: "\n").dropFirst() {
                guard let path = line.split(separator: " ").first.map(String.init),
                      let swapNumber = number(ofDevicePath: path), numbers.contains(swapNumber) else { continue }
                problems.append("\(path) is in use as swap")
            }
        }
        for device in [name] + partitionNames {
            let directory = device == name ? sysfs : sysfs + "/" + device
            let holders = (try? FileManagerShim.contents(of: directory + "/holders")) ?? []
            if !holders.isEmpty {
                problems.append("\(device) is held by \(holders.joined(separator: ", ")) (device-mapper, LVM, dm-crypt or RAID)")
            }
        }
        return problems
    }
}

/// "MAJOR:MINOR" of a device number (glibc's major()/minor() are macros Swift cannot call).
func deviceNumber(_ rdev: dev_t) -> String {
    let value = UInt64(rdev)
    let major = ((value >> 8) & 0xfff) | ((value >> 32) & ~UInt64(0xfff))
    let minor = (value & 0xff) | ((value >> 12) & ~UInt64(0xff))
    return "\(major):\(minor)"
}
