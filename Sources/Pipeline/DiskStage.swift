import Blkid
import Foundation
import ImageSupport
import Recipe
import SystemSupport

/// The disk stage: a sparse raw image with a GPT written through libfdisk (BIOS boot when
/// the recipe boots with BIOS, the ESP, the root partition), attached to a loop device with
/// its partitions announced to the kernel, the ESP formatted FAT32 and the root btrfs.
package struct DiskStage {
    package static let biosName = PartitionName.biosBoot
    package static let espName = PartitionName.esp
    package static let rootName = PartitionName.root

    package let disk: DiskSpec
    package let imagePath: String
    package let progress: ProgressReporter

    package func run(teardown: Teardown) throws -> AttachedDisk {
        try HostTools.require(["mkfs.btrfs", "mkfs.fat"], for: "the disk stage")
        progress.begin("disk: partitioning a \(ByteCount.format(disk.size)) GPT image")
        let attached = try AttachedDisk.partitioned(imagePath, as: disk, biosBoot: disk.hasBIOSBootPartition)
        if let esp = attached.partition(named: Self.espName) {
            try Command("mkfs.fat", ["-F", "32", "-n", "RASTESP", try attached.attach(esp, teardown: teardown)]).run()
            attached.record(filesystem: "vfat", uuid: try Blkid.filesystem(at: attached.device(of: esp))?.uuid, forPartition: esp.number)
        }
        let root = try attached.root
        try Command("mkfs.btrfs", ["-q", "-f", "-L", disk.filesystemLabel, try attached.attach(root, teardown: teardown)]).run()
        guard let uuid = try Blkid.filesystem(at: attached.device(of: root))?.uuid else {
            throw UserError("mkfs.btrfs ran, but libblkid finds no filesystem UUID on \(attached.device(of: root))")
        }
        attached.record(filesystem: "btrfs", uuid: uuid, forPartition: root.number)
        progress.end("disk", summary: attached.partitions.map { "\($0.number): \($0.name) \(ByteCount.format(Int64($0.sizeBytes)))" }.joined(separator: ", "))
        return attached
    }
}
