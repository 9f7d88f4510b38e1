import Blkid
import Fdisk
import Foundation
import Recipe
import SystemSupport

/// A partitioned, formatted disk image whose ESP and root partition are attached to loop
/// devices of their own (offset and size limit into the image). The host kernel has no GPT
/// parser and GRUB cannot find the start of partitions announced with BLKPG on a loop device
/// (HDIO_GETGEO fails there), so each partition gets its own loop device and the whole disk
/// is attached only for grub-install.
public final class AttachedDisk {
    public struct PartitionRecord: Sendable, Codable, Equatable {
        public let number: Int
        public let name: String
        public let type: String
        public let startBytes: UInt64
        public let sizeBytes: UInt64
        public let partitionUUID: String
        public var filesystem: String?
        public var filesystemUUID: String?

        public init(number: Int, name: String, type: String, startBytes: UInt64, sizeBytes: UInt64,
                    partitionUUID: String, filesystem: String? = nil, filesystemUUID: String? = nil) {
            self.number = number
            self.name = name
            self.type = type
            self.startBytes = startBytes
            self.sizeBytes = sizeBytes
            self.partitionUUID = partitionUUID
            self.filesystem = filesystem
            self.filesystemUUID = filesystemUUID
        }
    }

    public let imagePath: String
    public let diskGUID: String
    public private(set) var partitions: [PartitionRecord]
    private var loops: [Int: LoopDevice] = [:]

    /// A disk (image file or block device) with this partition table; nothing is attached yet.
    public init(imagePath: String, diskGUID: String, partitions: [PartitionRecord]) {
        self.imagePath = imagePath
        self.diskGUID = diskGUID
        self.partitions = partitions
    }

    public func partition(named name: String) -> PartitionRecord? { partitions.first { $0.name == name } }

    /// Attaches a partition to its own loop device (once).
    @discardableResult
    public func attach(_ partition: PartitionRecord, teardown: Teardown) throws -> String {
        if let loop = loops[partition.number] { return loop.path }
        let loop = try LoopDevice(file: imagePath, offset: partition.startBytes, sizeLimit: partition.sizeBytes)
        loops[partition.number] = loop
        teardown.push("loop device \(loop.path) (partition \(partition.number))") { loop.detach() }
        return loop.path
    }

    /// The loop device of an attached partition.
    public func device(of partition: PartitionRecord) -> String {
        loops[partition.number]?.path ?? "(partition \(partition.number) is not attached)"
    }

    /// Detaches every partition's loop device.
    public func detach() {
        for loop in loops.values { loop.detach() }
        loops.removeAll()
    }

    public var root: PartitionRecord {
        get throws {
            guard let root = partition(named: DiskStage.rootName) else { throw UserError("the image has no root partition") }
            return root
        }
    }

    func record(filesystem: String, uuid: String?, forPartition number: Int) {
        guard let index = partitions.firstIndex(where: { $0.number == number }) else { return }
        partitions[index].filesystem = filesystem
        partitions[index].filesystemUUID = uuid
    }
}

/// The disk stage: a sparse raw image with a GPT written through libfdisk (BIOS boot when
/// the recipe boots with BIOS, the ESP, the root partition), attached to a loop device with
/// its partitions announced to the kernel, the ESP formatted FAT32 and the root btrfs.
public struct DiskStage {
    public static let biosName = "BIOS boot"
    public static let espName = "EFI system"
    public static let rootName = "rastOS root"

    public let disk: DiskSpec
    public let imagePath: String
    public let progress: ProgressReporter

    public func run(teardown: Teardown) throws -> AttachedDisk {
        try Require.tools(["mkfs.btrfs", "mkfs.fat"], for: "the disk stage")
        progress.begin("disk: partitioning a \(ByteCount.format(disk.size)) GPT image")
        try Command("truncate", ["-s", String(disk.size), imagePath]).run()
        let table = try PartitionTable.create(.gpt, on: imagePath)
        if disk.hasBIOSBootPartition {
            _ = try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(UInt64(disk.biosBootSize)), name: Self.biosName))
        }
        _ = try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(UInt64(disk.espSize)), name: Self.espName))
        _ = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: Self.rootName))
        try table.write()
        let diskGUID = try table.diskID()
        let partitions = try table.partitions().map { partition in
            AttachedDisk.PartitionRecord(number: partition.number, name: partition.name ?? "", type: partition.type.description,
                                         startBytes: partition.startBytes, sizeBytes: partition.sizeBytes,
                                         partitionUUID: partition.uuid ?? "", filesystem: nil, filesystemUUID: nil)
        }

        let attached = AttachedDisk(imagePath: imagePath, diskGUID: diskGUID, partitions: partitions)
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
        progress.end("disk", summary: partitions.map { "\($0.number): \($0.name) \(ByteCount.format(Int64($0.sizeBytes)))" }.joined(separator: ", "))
        return attached
    }
}

/// Checks for host tools before a stage starts, naming the Debian package.
enum Require {
    static let packages: [String: String] = [
        "mkfs.btrfs": "btrfs-progs", "mkfs.fat": "dosfstools", "mmd": "mtools", "mcopy": "mtools", "mren": "mtools", "mdir": "mtools",
        "grub-install": "grub-pc-bin", "grub-mkimage": "grub-efi-amd64-bin", "makepkg": "makepkg",
        "repo-add": "pacman-package-manager", "qemu-system-x86_64": "qemu-system-x86", "ldd": "libc-bin",
        "pacman-key": "pacman-package-manager", "limine": "limine (not in Debian 12; recipes/pkgbuilds/limine packages it)",
    ]

    static func tools(_ names: [String], for stage: String) throws {
        let missing = names.filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            let list = missing.map { "\($0) (\(packages[$0] ?? $0))" }.joined(separator: ", ")
            throw UserError("\(stage) needs \(list); `make deps` installs them")
        }
    }
}
