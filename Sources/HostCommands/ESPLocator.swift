import BootEntries
import Blkid
import Foundation
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Finds and opens the EFI system partition of the disk that holds a rastOS root filesystem,
/// for Limine systems (their menu and kernels are on the ESP). The ESP is the partition of
/// type EFI System on the same disk as the btrfs root:
/// - a partition device (`/dev/vda3` on a running system, `/dev/sdb3` or `/dev/loop0p3` with
///   --root): the disk is its parent in sysfs, the ESP its sibling partition device;
/// - a loop device over part of an image file (`losetup --offset`, as rast-build and the
///   tests attach partitions): the disk is the loop's backing file, the ESP a range of it.
/// It is opened, in order: where it is mounted already; mounted as vfat in rast's private
/// mount namespace (the running system); through mtools (hosts without vfat, image files).
enum ESPLocator {
    static let espType = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
    static let mountPoint = "/run/rast/esp"

    enum Location: Equatable {
        case partition(device: String)
        case imageRange(file: String, offset: UInt64)
    }

    /// Where the ESP is, beside the block device holding the root filesystem.
    static func locate(besides device: String) throws -> Location {
        let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: device)).map {
            $0.hasPrefix("/") ? $0 : ((device as NSString).deletingLastPathComponent as NSString).appendingPathComponent($0)
        } ?? device
        let name = (resolved as NSString).lastPathComponent
        let sysfs = "/sys/class/block/" + name
        if Files.exists(sysfs + "/partition") {
            // A partition: its directory in sysfs sits inside the disk's.
            let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: sysfs)) ?? sysfs
            let diskName = ((real as NSString).deletingLastPathComponent as NSString).lastPathComponent
            let disk = "/dev/" + diskName
            let entry = try espEntry(in: disk, what: "disk \(disk) (holding \(device))")
            for child in (try? FileManagerShim.contents(of: "/sys/class/block/" + diskName)) ?? [] {
                let number = try? Files.readString("/sys/class/block/\(diskName)/\(child)/partition")
                if number?.trimmingCharacters(in: .whitespacesAndNewlines) == String(entry.number), Files.exists("/dev/" + child) {
                    return .partition(device: "/dev/" + child)
                }
            }
            throw UserError("the ESP is partition \(entry.number) of \(disk), but the kernel shows no device for it")
        }
        let loop = "/sys/block/\(name)/loop"
        if let backing = try? Files.readString(loop + "/backing_file").trimmingCharacters(in: .whitespacesAndNewlines), !backing.isEmpty {
            let entry = try espEntry(in: backing, what: "image file \(backing) (attached to \(device))")
            return .imageRange(file: backing, offset: entry.startBytes)
        }
        throw UserError("cannot tell which disk \(device) is on (it is neither a partition nor a loop device over part of an image file), so the ESP beside it cannot be found")
    }

    static func espEntry(in disk: String, what: String) throws -> PartitionEntry {
        guard let table = try Blkid.partitionTable(at: disk), table.type == "gpt" else {
            throw UserError("\(what) has no GPT, so it has no ESP for Limine")
        }
        guard let entry = table.partitions.first(where: { $0.type.lowercased() == espType }) else {
            throw UserError("\(what) has no EFI system partition")
        }
        return entry
    }

    /// Opens the ESP at `location`; mounts are released through `teardown`.
    static func open(_ location: Location, teardown: Teardown) throws -> ESPVolume {
        switch location {
        case .imageRange(let file, let offset):
            try requireMtools(for: "the ESP inside \(file)")
            return MtoolsESP(image: file, offset: offset)
        case .partition(let device):
            let table = try MountTable.read()
            if let mounted = table.entries.first(where: { $0.source == device && $0.fileSystemType == "vfat" }) {
                return MountedESP(directory: mounted.mountPoint)
            }
            let filesystems = (try? Files.readString("/proc/filesystems")) ?? ""
            if filesystems.split(separator: "\n").contains(where: { $0.hasSuffix("\tvfat") }) {
                try Files.createDirectory(mountPoint)
                if table.entry(at: mountPoint) == nil {
                    try Mounts.mount(device, on: mountPoint, type: "vfat", options: ["noatime"])
                    teardown.push("the ESP mount \(mountPoint)") { try Mounts.unmount(mountPoint) }
                }
                return MountedESP(directory: mountPoint)
            }
            try requireMtools(for: "the ESP \(device) (this kernel cannot mount vfat)")
            return MtoolsESP(image: device)
        }
    }

    static func requireMtools(for what: String) throws {
        let missing = MtoolsESP.tools.filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            throw UserError("writing \(what) needs mtools (\(missing.joined(separator: ", "))); apt-get install mtools")
        }
    }
}
