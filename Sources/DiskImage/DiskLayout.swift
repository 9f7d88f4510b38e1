import Blkid
import Fdisk
import Foundation
import ImageSupport
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The partitions of a rastOS disk as rast-build lays them out (see Pipeline's DiskStage):
///
/// ```
/// LBA 0, 1..33      protective MBR, primary GPT
/// 1 MiB             "BIOS boot"   (when the image boots with BIOS; GRUB's core.img)
///                   "EFI system"  FAT32 ESP (EFI/BOOT/BOOTX64.EFI)
///                   "rastOS root" btrfs with the snapshot layout, to the end
/// last 33 sectors   backup GPT
/// ```
/// rast-install finds partitions by these names.
package struct DiskLayout: Sendable {
    package let diskGUID: String
    package let sectorSize: UInt64
    package let partitions: [AttachedDisk.PartitionRecord]

    package var root: AttachedDisk.PartitionRecord? { partition(named: PartitionName.root) }
    package var esp: AttachedDisk.PartitionRecord? { partition(named: PartitionName.esp) }
    package var biosBoot: AttachedDisk.PartitionRecord? { partition(named: PartitionName.biosBoot) }

    package func partition(named name: String) -> AttachedDisk.PartitionRecord? {
        partitions.first { $0.name == name }
    }

    /// Reads the GPT of a disk (image file or device) and probes each partition's filesystem.
    package static func read(disk path: String) throws -> DiskLayout {
        let table = try PartitionTable(path: path)
        guard table.kind == .gpt else {
            throw InstallError.invalidImage(path: path, reason: table.kind == nil ? "it has no partition table" : "its partition table is \(table.kind?.rawValue ?? "?"), not GPT")
        }
        var records: [AttachedDisk.PartitionRecord] = []
        for partition in try table.partitions() {
            let filesystem = try? Blkid.filesystem(at: path, offset: partition.startBytes, size: partition.sizeBytes)
            records.append(AttachedDisk.PartitionRecord(partition, filesystem: filesystem?.type, filesystemUUID: filesystem?.uuid))
        }
        return DiskLayout(diskGUID: try table.diskID(), sectorSize: table.sectorSize, partitions: records)
    }

    /// Reads the layout of an image without writing it anywhere: a sparse sketch of the
    /// virtual disk in `scratch` gets the image's first and last MiB (both GPTs) and the first
    /// MiB of each partition (where the filesystems keep their superblocks); libfdisk and
    /// libblkid read that. The image must hold a GPT whose "rastOS root" partition is btrfs.
    package static func inspect(_ image: ImageSource, scratch: String) throws -> DiskLayout {
        let sketch = scratch + "/layout.sketch"
        let file = try FileDescriptor.open(path: sketch, .readWrite, options: [.create, .truncate],
                                           permissions: .ownerReadWrite, operation: "create")
        defer { unlink(sketch) }
        return try file.closeAfter(path: sketch) { try inspect(image, sketch: sketch, file: file) }
    }

    private static func inspect(_ image: ImageSource, sketch: String, file: FileDescriptor) throws -> DiskLayout {
        try file.resize(to: image.virtualSize, path: sketch)
        let window: Int64 = 1 << 20
        func copy(_ offset: Int64) throws {
            let start = max(0, min(offset, image.virtualSize))
            let length = Int(min(window, image.virtualSize - start))
            guard length > 0 else { return }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 4096)
            defer { buffer.deallocate() }
            try image.read(at: start, into: buffer)
            try file.writeAll(toAbsoluteOffset: start, buffer, path: sketch)
        }
        guard image.virtualSize >= 2 * window else {
            throw InstallError.invalidImage(path: image.path, reason: "its disk is only \(ByteCount.format(image.virtualSize))")
        }
        try copy(0)
        try copy(image.virtualSize - window)
        let table: DiskLayout
        do {
            table = try read(disk: sketch)
        } catch let error as InstallError {
            if case .invalidImage(_, let reason, let cause) = error { throw InstallError.invalidImage(path: image.path, reason: reason, cause: cause) }
            throw error
        } catch let error as FdiskError {
            throw InstallError.invalidImage(path: image.path, reason: "its partition table cannot be read: \(error)", cause: error)
        }
        for partition in table.partitions {
            guard partition.startBytes + partition.sizeBytes <= UInt64(image.virtualSize) else {
                throw InstallError.invalidImage(path: image.path, reason: "partition \(partition.number) ends past the end of the disk")
            }
            try copy(Int64(partition.startBytes))
        }
        let layout = try read(disk: sketch)
        guard let root = layout.root else {
            let names = layout.partitions.map { "'\($0.name)'" }.joined(separator: ", ")
            throw InstallError.invalidImage(path: image.path, reason: "its GPT has no partition named '\(PartitionName.root)' (it has \(names.isEmpty ? "none" : names)); was it built by rast-build?")
        }
        guard root.filesystem == "btrfs" else {
            throw InstallError.invalidImage(path: image.path, reason: "partition \(root.number) ('\(PartitionName.root)') holds \(root.filesystem.map { "a \($0) filesystem" } ?? "no filesystem libblkid recognises"), not btrfs")
        }
        return layout
    }
}
