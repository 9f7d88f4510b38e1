import Fdisk
import Foundation
import Recipe
import SystemSupport

/// The names rast-build gives the partitions of a disk; rast-install and the boot loader
/// installer find partitions by them.
package enum PartitionName {
    /// GRUB's core.img or Limine's stage 2 (when the image boots with BIOS).
    package static let biosBoot = "BIOS boot"
    /// The FAT32 EFI system partition.
    package static let esp = "EFI system"
    /// The btrfs filesystem with the snapshot layout.
    package static let root = "rastOS root"
}

/// A partitioned, formatted disk image whose ESP and root partition are attached to loop
/// devices of their own (offset and size limit into the image). The host kernel has no GPT
/// parser and GRUB cannot find the start of partitions announced with BLKPG on a loop device
/// (HDIO_GETGEO fails there), so each partition gets its own loop device and the whole disk
/// is attached only for grub-install.
package final class AttachedDisk {
    package struct PartitionRecord: Sendable, Codable, Equatable {
        package let number: Int
        package let name: String
        package let type: String
        package let startBytes: UInt64
        package let sizeBytes: UInt64
        package let partitionUUID: String
        package var filesystem: String?
        package var filesystemUUID: String?
    }

    package let imagePath: String
    package let diskGUID: String
    package private(set) var partitions: [PartitionRecord]
    private var loops: [Int: LoopDevice] = [:]

    /// A disk (image file or block device) with this partition table; nothing is attached yet.
    package init(imagePath: String, diskGUID: String, partitions: [PartitionRecord]) {
        self.imagePath = imagePath
        self.diskGUID = diskGUID
        self.partitions = partitions
    }

    package func partition(named name: String) -> PartitionRecord? { partitions.first { $0.name == name } }

    /// Attaches a partition to its own loop device (once).
    @discardableResult
    package func attach(_ partition: PartitionRecord, teardown: Teardown) throws -> String {
        if let loop = loops[partition.number] { return loop.path }
        let loop = try LoopDevice(file: imagePath, offset: partition.startBytes, sizeLimit: partition.sizeBytes)
        loops[partition.number] = loop
        teardown.push("loop device \(loop.path) (partition \(partition.number))") { loop.detach() }
        return loop.path
    }

    /// The loop device of an attached partition.
    package func device(of partition: PartitionRecord) -> String {
        loops[partition.number]?.path ?? "(partition \(partition.number) is not attached)"
    }

    /// Detaches every partition's loop device.
    package func detach() {
        for loop in loops.values { loop.detach() }
        loops.removeAll()
    }

    package var root: PartitionRecord {
        get throws {
            guard let root = partition(named: PartitionName.root) else { throw UserError("the image has no root partition") }
            return root
        }
    }

    /// Notes the filesystem a stage made on a partition.
    package func record(filesystem: String, uuid: String?, forPartition number: Int) {
        guard let index = partitions.firstIndex(where: { $0.number == number }) else { return }
        partitions[index].filesystem = filesystem
        partitions[index].filesystemUUID = uuid
    }
}

extension AttachedDisk.PartitionRecord {
    /// The record of a partition as the table lists it, with the filesystem on it when known.
    package init(_ partition: Partition, filesystem: String? = nil, filesystemUUID: String? = nil) {
        self.init(number: partition.number, name: partition.name ?? "", type: partition.type.description,
                  startBytes: partition.startBytes, sizeBytes: partition.sizeBytes,
                  partitionUUID: partition.uuid ?? "", filesystem: filesystem, filesystemUUID: filesystemUUID)
    }
}

extension AttachedDisk {
    /// A new sparse image of `disk.size` bytes at `imagePath` with rastOS's GPT, written through
    /// libfdisk: a BIOS boot partition when `biosBoot`, the ESP and the root partition (the rest
    /// of the disk), named as `PartitionName` says. Nothing is formatted or attached yet.
    package static func partitioned(_ imagePath: String, as disk: DiskSpec, biosBoot: Bool) throws -> AttachedDisk {
        try Command("truncate", ["-s", String(disk.size), imagePath]).run()
        let table = try PartitionTable.create(.gpt, on: imagePath)
        if biosBoot {
            _ = try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(UInt64(disk.biosBootSize)), name: PartitionName.biosBoot))
        }
        _ = try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(UInt64(disk.espSize)), name: PartitionName.esp))
        _ = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: PartitionName.root))
        try table.write()
        return AttachedDisk(imagePath: imagePath, diskGUID: try table.diskID(), partitions: try table.partitions().map { PartitionRecord($0) })
    }
}
