import Fdisk
import Foundation
import SystemSupport
import Testing
import TestSupport

/// Tables are written to sparse files and checked with the independent tools sgdisk and
/// sfdisk (and blkid through loop devices for PARTUUIDs).
@Suite("Fdisk")
struct FdiskTests {
    static let mib: UInt64 = 1 << 20

    @Test func gptWithBiosBootEspAndRootMatchesSgdiskAndSfdisk() throws {
        try Require.programs("sgdisk", "sfdisk", "truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "1G")
        let diskID = "5E1F4D3C-2B1A-4F0E-9D8C-7B6A59483726"
        let espUUID = try #require(UUID(uuidString: "0A1B2C3D-4E5F-4061-8273-94A5B6C7D8E9"))

        let table = try PartitionTable.create(.gpt, on: image, diskID: diskID)
        try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(Self.mib), name: "bios"))
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(256 * Self.mib), name: "esp", uuid: espUUID))
        let root = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: "rastos"))
        try table.write()

        let partitions = try table.partitions()
        #expect(partitions.map(\.number) == [1, 2, 3])
        #expect(partitions.map(\.startSector) == [2048, 4096, 528_384])
        #expect(partitions.map(\.sizeBytes).prefix(2) == [Self.mib, 256 * Self.mib])
        #expect(partitions.map(\.type) == [.biosBoot, .efiSystem, .linuxRootX86_64])
        #expect(partitions.map(\.name) == ["bios", "esp", "rastos"])
        #expect(partitions[1].uuid == espUUID.uuidString.lowercased())
        #expect(partitions[1].typeName == "EFI System")
        // "Rest of disk" ends on the last alignment boundary before the backup GPT.
        #expect(table.usableSectors.upperBound == table.sectorCount - 34)
        #expect((root.endSector + 1) % 2048 == 0)
        #expect(root.endSector <= table.usableSectors.upperBound)
        #expect(table.usableSectors.upperBound - root.endSector < 2048)
        #expect(try table.diskID() == diskID.lowercased())

        let verify = try Command("sgdisk", ["-v", image]).output()
        #expect(verify.contains("No problems found"), "sgdisk -v: \(verify)")

        let dump = try SfdiskDump.read(image)
        #expect(dump.label == "gpt")
        #expect(dump.id.lowercased() == diskID.lowercased())
        #expect(dump.partitions.count == 3)
        for (ours, theirs) in zip(partitions, dump.partitions) {
            #expect(theirs.start == ours.startSector)
            #expect(theirs.size == ours.sizeSectors)
            #expect(theirs.type == ours.type.gptGUID)
            #expect(theirs.uuid?.lowercased() == ours.uuid)
            #expect(theirs.name == ours.name)
        }

        // A fresh reader sees exactly what was written.
        let reread = try PartitionTable(path: image)
        #expect(reread.kind == .gpt)
        #expect(try reread.partitions() == partitions)
        #expect(try reread.diskID() == diskID.lowercased())
    }

    @Test func mbrTableMatchesSfdisk() throws {
        try Require.programs("sfdisk", "truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "256M")
        let table = try PartitionTable.create(.dos, on: image, diskID: "1234abcd")
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(64 * Self.mib), bootable: true))
        try table.addPartition(NewPartition(type: try PartitionType(parsing: "0x83"), size: .restOfDisk))
        try table.write()

        let partitions = try table.partitions()
        #expect(partitions.map(\.startSector) == [2048, 133_120])
        #expect(partitions.map { $0.type.mbrCode } == [0xEF, 0x83])
        #expect(partitions.map(\.bootable) == [true, false])
        #expect(partitions.map(\.uuid) == ["1234abcd-01", "1234abcd-02"])
        #expect(partitions.allSatisfy { $0.name == nil })

        let dump = try SfdiskDump.read(image)
        #expect(dump.label == "dos")
        #expect(dump.id == "0x1234abcd")
        #expect(dump.partitions.map(\.start) == partitions.map(\.startSector))
        #expect(dump.partitions.map(\.size) == partitions.map(\.sizeSectors))
        #expect(dump.partitions.map(\.type) == ["ef", "83"])
        #expect(dump.partitions.map { $0.bootable ?? false } == [true, false])
        try Command("sfdisk", ["--verify", image]).run()

        let reread = try PartitionTable(path: image)
        #expect(reread.kind == .dos)
        #expect(try reread.partitions() == partitions)
        #expect(try reread.diskID() == "1234abcd")
    }

    @Test(arguments: PartitionTableKind.allCases)
    func partUUIDsMatchWhatBlkidSeesOnLoopPartitions(kind: PartitionTableKind) throws {
        try Require.loopDevices()
        try Require.programs("blkid", "truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        let table = try PartitionTable.create(kind, on: image)
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(8 * Self.mib)))
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        try table.write()
        let partitions = try table.partitions()

        let loop = try LoopDevice(file: image)
        defer { loop.detach() }
        for partition in partitions {
            try loop.addPartition(number: partition.number, start: Int64(partition.startBytes), length: Int64(partition.sizeBytes))
        }
        defer { loop.removePartitions() }
        for partition in partitions {
            let values = try BlkidCLI.export(loop.partitionPath(partition.number))
            #expect(values["PART_ENTRY_UUID"] == partition.uuid)
            #expect(values["PART_ENTRY_OFFSET"] == String(partition.startSector))
            #expect(values["PART_ENTRY_SIZE"] == String(partition.sizeSectors))
        }
        #expect(try BlkidCLI.export(image)["PTUUID"] == table.diskID())
    }

    @Test func readsTablesWrittenBySgdisk() throws {
        try Require.programs("sgdisk", "truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "128M")
        try Command("sgdisk", ["-U", "11111111-2222-4333-8444-555555555555",
                               "-n", "1:0:+1M", "-t", "1:ef02", "-c", "1:grub",
                               "-n", "2:0:+32M", "-t", "2:ef00", "-u", "2:66666666-7777-4888-9999-AAAAAAAAAAAA",
                               "-n", "3:0:0", "-t", "3:8304", image]).run()
        let table = try PartitionTable(path: image)
        #expect(table.kind == .gpt)
        #expect(try table.diskID() == "11111111-2222-4333-8444-555555555555")
        let partitions = try table.partitions()
        #expect(partitions.map(\.type) == [.biosBoot, .efiSystem, .linuxRootX86_64])
        #expect(partitions.map(\.name) == ["grub", nil, nil])
        #expect(partitions[1].uuid == "66666666-7777-4888-9999-aaaaaaaaaaaa")
        let dump = try SfdiskDump.read(image)
        #expect(dump.partitions.map(\.start) == partitions.map(\.startSector))
        #expect(dump.partitions.map(\.size) == partitions.map(\.sizeSectors))
    }

    @Test func nothingReachesTheFileBeforeWrite() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        do {
            let table = try PartitionTable.create(.gpt, on: image)
            try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
            #expect(try table.partitions().count == 1)
        }
        #expect(try PartitionTable(path: image).kind == nil)
        #expect(try Files.read(image).prefix(1 << 16).allSatisfy { $0 == 0 })
    }

    @Test func writingATableWipesAnOldFilesystemSignature() throws {
        try Require.programs("mkfs.ext4", "blkid", "truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        try Command("mkfs.ext4", ["-q", "-F", image]).run()
        #expect(try BlkidCLI.export(image)["TYPE"] == "ext4")
        let table = try PartitionTable.create(.gpt, on: image)
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        try table.write()
        let values = try BlkidCLI.export(image)
        #expect(values["PTTYPE"] == "gpt")
        #expect(values["TYPE"] == nil)
    }

    @Test func customAlignment() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "128M")
        let table = try PartitionTable.create(.gpt, on: image, alignment: 4 * Self.mib)
        try table.addPartition(NewPartition(type: .biosBoot, size: .bytes(Self.mib)))
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        let partitions = try table.partitions()
        #expect(partitions.map(\.startSector) == [8192, 16384])
        #expect(throws: FdiskError.self) { try PartitionTable.create(.gpt, on: image, alignment: 3000) }
    }

    @Test func fixedStart() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        let table = try PartitionTable.create(.gpt, on: image)
        let partition = try table.addPartition(NewPartition(type: .linuxFilesystem, size: .bytes(8 * Self.mib), startBytes: 16 * Self.mib))
        #expect(partition.startBytes == 16 * Self.mib)
        #expect(partition.sizeBytes == 8 * Self.mib)
    }

    @Test func partitionLargerThanDiskIsNamedClearly() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        for kind in PartitionTableKind.allCases {
            let table = try PartitionTable.create(kind, on: image)
            try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(16 * Self.mib), name: kind == .gpt ? "esp" : nil))
            let error = try #require(throws: FdiskError.self) {
                try table.addPartition(NewPartition(type: .linuxFilesystem, size: .bytes(100 * Self.mib), name: kind == .gpt ? "root" : nil))
            }
            guard case .doesNotFit(let partition, let requested, let available, let path) = error else {
                Issue.record("unexpected error \(error)")
                continue
            }
            #expect(partition == (kind == .gpt ? "2 (root)" : "2 (linux)"))
            #expect(requested == 100 * Self.mib)
            #expect(available < 48 * Self.mib && available > 46 * Self.mib)
            #expect(path == image)
            #expect(error.description.contains("needs 104857600 bytes (100.0 MiB) but only"))
            #expect(error.description.hasSuffix("are free on \(image)"))
            #expect(try table.partitions().count == 1)

            // Once the disk is full, even "the rest" does not fit.
            try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
            #expect(throws: FdiskError.self) { try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk)) }
        }
    }

    @Test func badTypeStringsAreNamedClearly() throws {
        for text in ["not-a-type", "12345678-zzzz-4000-8000-000000000000", "0x1ff", "", "root-arm64"] {
            let error = try #require(throws: FdiskError.self) { try PartitionType(parsing: text) }
            guard case .invalidType(let value, _) = error else {
                Issue.record("unexpected error \(error)")
                continue
            }
            #expect(value == text)
            #expect(error.description.hasPrefix("invalid partition type \"\(text)\": "))
        }
        #expect(try PartitionType(parsing: "bios-boot") == .biosBoot)
        #expect(try PartitionType(parsing: "ESP") == .efiSystem)
        #expect(try PartitionType(parsing: "c12a7328-f81f-11d2-ba4b-00a0c93ec93b") == .efiSystem)
        #expect(try PartitionType(parsing: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") == .linuxRootX86_64)
        #expect(try PartitionType(parsing: "linux") == .linuxFilesystem)
        #expect(try PartitionType(parsing: "0x83").mbrCode == 0x83)
        #expect(try PartitionType(parsing: "ef").mbrCode == 0xEF)
    }

    @Test func typesAndSettingsATableCannotHold() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "64M")
        let dos = try PartitionTable.create(.dos, on: image)
        let biosBoot = try #require(throws: FdiskError.self) {
            try dos.addPartition(NewPartition(type: .biosBoot, size: .bytes(Self.mib)))
        }
        #expect(biosBoot == .typeNotSupported(type: "bios-boot", table: "dos", path: image))
        #expect(throws: FdiskError.unsupported("a partition name", table: "dos", path: image)) {
            try dos.addPartition(NewPartition(type: .linuxFilesystem, size: .bytes(Self.mib), name: "root"))
        }
        #expect(throws: FdiskError.self) { try dos.setDiskID("not hex") }

        let gpt = try PartitionTable.create(.gpt, on: image)
        #expect(throws: FdiskError.typeNotSupported(type: "0x83", table: "gpt", path: image)) {
            try gpt.addPartition(NewPartition(type: .mbr(0x83), size: .bytes(Self.mib)))
        }
        #expect(throws: FdiskError.self) { try gpt.setDiskID("1234abcd") }
        // A GUID libfdisk does not know is still a valid GPT type.
        let custom = try PartitionType.gpt("01234567-89AB-CDEF-0123-456789ABCDEF")
        #expect(try gpt.addPartition(NewPartition(type: custom, size: .bytes(Self.mib))).type == custom)
    }

    @Test func missingFilesAndMissingTables() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let missing = scratch.appending("missing.img")
        let error = try #require(throws: FdiskError.self) { try PartitionTable(path: missing) }
        #expect(error == .system(function: "open", path: missing, errno: ENOENT))
        #expect(error.description == "open \(missing): No such file or directory")

        let image = try makeImage(scratch, size: "16M")
        let table = try PartitionTable(path: image)
        #expect(table.kind == nil)
        #expect(throws: FdiskError.noPartitionTable(path: image)) { try table.partitions() }
        #expect(throws: FdiskError.noPartitionTable(path: image)) {
            try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        }
    }

    @Test func readOnlyTableRefusesToWrite() throws {
        try Require.programs("truncate")
        let scratch = try Scratch()
        let image = try makeImage(scratch, size: "16M")
        let created = try PartitionTable.create(.gpt, on: image)
        try created.write()
        let table = try PartitionTable(path: image)
        try table.addPartition(NewPartition(type: .linuxFilesystem, size: .restOfDisk))
        #expect(throws: FdiskError.readOnly(path: image)) { try table.write() }
        #expect(try PartitionTable(path: image).partitions().isEmpty)
    }
}

private func makeImage(_ scratch: Scratch, size: String) throws -> String {
    let path = scratch.appending("disk.img")
    try? Files.removeTree(path)
    try Command("truncate", ["-s", size, path]).run()
    return path
}

/// `sfdisk --json`, the independent reader the tables are compared with.
private struct SfdiskDump: Decodable {
    struct Entry: Decodable {
        let start: UInt64
        let size: UInt64
        let type: String
        let uuid: String?
        let name: String?
        let bootable: Bool?
    }
    let label: String
    let id: String
    let partitions: [Entry]

    private struct Root: Decodable { let partitiontable: SfdiskDump }

    static func read(_ image: String) throws -> SfdiskDump {
        let json = try Command("sfdisk", ["--json", image]).output()
        return try JSONDecoder().decode(Root.self, from: Data(json.utf8)).partitiontable
    }
}
