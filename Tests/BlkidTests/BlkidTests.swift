import Blkid
import Fdisk
import Foundation
import SystemSupport
import Testing
import TestSupport

/// Filesystems are made with the real mkfs tools and every probe is compared with what the
/// `blkid` command line tool prints for the same file or device.
@Suite("Blkid")
struct BlkidTests {
    static let mib: UInt64 = 1 << 20

    @Test(arguments: [
        ("btrfs", ["mkfs.btrfs", "-q", "-f", "-L", "rast-root"], "rast-root"),
        ("vfat", ["mkfs.fat", "-n", "RASTESP"], "RASTESP"),
        ("ext4", ["mkfs.ext4", "-q", "-F", "-L", "rast-home"], "rast-home"),
    ])
    func filesystemMatchesBlkidCommand(type: String, mkfs: [String], label: String) throws {
        try Require.programs("blkid", "truncate", mkfs[0])
        let scratch = try Scratch()
        let image = scratch.appending("fs.img")
        try Command("truncate", ["-s", "128M", image]).run()
        try Command(mkfs[0], Array(mkfs.dropFirst()) + [image]).run()

        let found = try #require(try Blkid.filesystem(at: image))
        let cli = try BlkidCLI.export(image)
        #expect(found.type == type)
        #expect(found.label == label)
        #expect(found.type == cli["TYPE"])
        #expect(found.uuid == cli["UUID"])
        #expect(found.label == cli["LABEL"])
        #expect(found.uuid?.isEmpty == false)
        var expected = cli
        expected["DEVNAME"] = nil
        #expect(found.values == expected)
    }

    @Test func emptyAndRandomFilesHaveNoFilesystem() throws {
        try Require.programs("truncate", "head")
        let scratch = try Scratch()
        let zeros = scratch.appending("zeros.img")
        try Command("truncate", ["-s", "16M", zeros]).run()
        #expect(try Blkid.filesystem(at: zeros) == nil)
        #expect(try Blkid.partitionTable(at: zeros) == nil)

        let random = scratch.appending("random.img")
        try Command("sh", ["-c", "head -c 4194304 /dev/urandom > '\(random)'"]).run()
        #expect(try Blkid.filesystem(at: random) == nil)

        let empty = scratch.appending("empty.img")
        try Files.write(empty, string: "")
        #expect(try Blkid.filesystem(at: empty) == nil)
    }

    @Test func partitionInsideGptImageWithoutLoopDevice() throws {
        try Require.loopDevices()
        try Require.programs("blkid", "mkfs.btrfs", "mkfs.fat", "truncate")
        let scratch = try Scratch()
        let image = scratch.appending("disk.img")
        try Command("truncate", ["-s", "256M", image]).run()
        let table = try PartitionTable.create(.gpt, on: image)
        try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(Self.mib), name: "bios"))
        let esp = try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(64 * Self.mib), name: "esp"))
        let root = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: "root"))
        try table.write()

        // Filesystems go into the partitions through offset-limited loop devices.
        try Command("mkfs.fat", ["-n", "ESP", "--offset", String(esp.startSector), image,
                                 String(esp.sizeBytes / 1024)]).run()
        do {
            let rootLoop = try LoopDevice(file: image, offset: root.startBytes, sizeLimit: root.sizeBytes)
            defer { rootLoop.detach() }
            try Command("mkfs.btrfs", ["-q", "-f", "-L", "rastos", rootLoop.path]).run()
        }

        let rootFS = try #require(try Blkid.filesystem(inPartition: 3, of: image))
        #expect(rootFS.type == "btrfs")
        #expect(rootFS.label == "rastos")
        #expect(rootFS.partUUID == root.uuid)
        #expect(rootFS["PART_ENTRY_NAME"] == "root")
        let espFS = try #require(try Blkid.filesystem(inPartition: 2, of: image))
        #expect(espFS.type == "vfat")
        #expect(espFS.label == "ESP")
        #expect(espFS.partUUID == esp.uuid)
        #expect(try Blkid.filesystem(inPartition: 1, of: image) == nil)
        #expect(try Blkid.filesystem(at: image, offset: root.startBytes, size: root.sizeBytes)?.uuid == rootFS.uuid)

        // The kernel's view through a partitioned loop device, read by the blkid tool.
        let loop = try LoopDevice(file: image)
        defer { loop.detach() }
        for partition in try table.partitions() {
            try loop.addPartition(number: partition.number, start: Int64(partition.startBytes), length: Int64(partition.sizeBytes))
        }
        defer { loop.removePartitions() }
        for (number, ours) in [(2, espFS), (3, rootFS)] {
            let device = loop.partitionPath(number)
            var cli = try BlkidCLI.export(device)
            cli["DEVNAME"] = nil
            // libblkid finds the entry itself when probing a partition device.
            #expect(try Blkid.filesystem(at: device)?.values == cli)
            // An image file has no parent disk device (major:minor); all else is the same.
            #expect(cli["PART_ENTRY_DISK"] == "\(try deviceNumber(loop.path))")
            cli["PART_ENTRY_DISK"] = nil
            #expect(ours.values == cli, "partition \(number)")
        }
    }

    @Test(arguments: PartitionTableKind.allCases)
    func partitionTableMatchesFdiskAndBlkidCommand(kind: PartitionTableKind) throws {
        try Require.programs("blkid", "truncate")
        let scratch = try Scratch()
        let image = scratch.appending("disk.img")
        try Command("truncate", ["-s", "128M", image]).run()
        let table = try PartitionTable.create(kind, on: image)
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(32 * Self.mib), name: kind == .gpt ? "esp" : nil))
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk, name: kind == .gpt ? "data" : nil))
        try table.write()
        let written = try table.partitions()

        let found = try #require(try Blkid.partitionTable(at: image))
        #expect(found.type == kind.rawValue)
        #expect(found.id == (try table.diskID()))
        #expect(found.id == (try BlkidCLI.export(image))["PTUUID"])
        #expect(found.partitions.map(\.number) == written.map(\.number))
        #expect(found.partitions.map(\.startBytes) == written.map(\.startBytes))
        #expect(found.partitions.map(\.sizeBytes) == written.map(\.sizeBytes))
        #expect(found.partitions.map(\.uuid) == written.map(\.uuid))
        #expect(found.partitions.map(\.name) == written.map(\.name))
        switch kind {
        case .gpt:
            #expect(found.partitions.map { $0.type.uppercased() } == written.map { $0.type.gptGUID ?? "" })
        case .dos:
            #expect(found.partitions.map(\.type) == ["0xef", "0x83"])
        }
        #expect(try Blkid.filesystem(at: image) == nil, "a bare table is no filesystem")
    }

    @Test func twoSignaturesAreAmbivalentNotAGuess() throws {
        try Require.programs("mkfs.btrfs", "mkfs.ext4", "dd", "truncate")
        let scratch = try Scratch()
        let btrfs = scratch.appending("btrfs.img")
        let both = scratch.appending("both.img")
        try Command("truncate", ["-s", "128M", btrfs, both]).run()
        try Command("mkfs.btrfs", ["-q", "-f", btrfs]).run()
        try Command("mkfs.ext4", ["-q", "-F", both]).run()
        // Copy the btrfs superblock (at 64 KiB) over the ext4 filesystem.
        try Command("dd", ["if=\(btrfs)", "of=\(both)", "bs=64K", "skip=1", "seek=1", "count=1",
                           "conv=notrunc", "status=none"]).run()
        let error = try #require(throws: BlkidError.self) { try Blkid.filesystem(at: both) }
        #expect(error == .ambivalent(path: both, offset: 0))
        #expect(error.description.contains("more than one filesystem signature"))
    }

    @Test func missingFileAndMissingPartition() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let missing = scratch.appending("missing.img")
        let error = try #require(throws: BlkidError.self) { try Blkid.filesystem(at: missing) }
        #expect(error == .open(path: missing, errno: ENOENT))
        #expect(error.description == "open \(missing): No such file or directory")

        let image = scratch.appending("disk.img")
        try Command("truncate", ["-s", "16M", image]).run()
        #expect(throws: BlkidError.noSuchPartition(number: 1, path: image)) {
            try Blkid.filesystem(inPartition: 1, of: image)
        }
        let table = try PartitionTable.create(.gpt, on: image)
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        try table.write()
        #expect(throws: BlkidError.noSuchPartition(number: 2, path: image)) {
            try Blkid.filesystem(inPartition: 2, of: image)
        }
        #expect(try Blkid.filesystem(inPartition: 1, of: image) == nil)
    }
}

/// "major:minor" of a block device, as PART_ENTRY_DISK writes it.
private func deviceNumber(_ path: String) throws -> String {
    try Command("stat", ["-L", "-c", "%Hr:%Lr", path]).output()
}
