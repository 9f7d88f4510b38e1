import CommandLineSupport
import DiskImage
import Fdisk
import Foundation
import RastInstallCLI
import SystemSupport
import TestSupport
import Testing

/// Option values are checked like a recipe's, before anything is touched.
@Suite struct PersonalisationValidationTests {
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINydRzvC4WcnJQptV2yOfxGjN4msUhY0xeebqTFwlKZH admin@rastos-demo"
    static let hash = "$6$saltsalt$Vw2KpAowsx9uMc1ngWxLFGxoJ0MSrtzLxYrXQ1WOvjzE4xZ2Ln5wLl3aOa0M1LxK9bY5wzLJ1cQ2U5dlzjY5G/"

    static func option(of error: any Error) -> String? {
        guard case .invalidOption(let option, _, _) = error as? InstallError else { return nil }
        return option
    }

    @Test(arguments: [
        (Personalisation(hostname: "-lab"), "--hostname"),
        (Personalisation(hostname: "lab_one"), "--hostname"),
        (Personalisation(timezone: "../etc/passwd"), "--timezone"),
        (Personalisation(user: "Alice"), "--user"),
        (Personalisation(user: "root"), "--user"),
        (Personalisation(user: "alice", sshKeys: ["ssh-ed25519 AAAAbad"]), "--ssh-key"),
        (Personalisation(user: "alice", sshKeys: ["ssh-rsa " + String(key.split(separator: " ")[1])]), "--ssh-key"),
        (Personalisation(user: "alice", passwordHash: "hunter2"), "--password-hash"),
        (Personalisation(rootPasswordHash: "$6$"), "--root-password-hash"),
        (Personalisation(rootPasswordHash: String(hash.dropLast(56))), "--root-password-hash"),
        (Personalisation(sshKeys: [key]), "--ssh-key"),
        (Personalisation(passwordHash: hash), "--password-hash"),
        (Personalisation(user: "alice", groups: ["Wheel"]), "--group"),
    ])
    func badValuesNameTheirOption(personalisation: Personalisation, option: String) {
        #expect {
            try personalisation.validate()
        } throws: { error in
            Self.option(of: error) == option && "\(error)".hasSuffix("nothing was written")
        }
    }

    @Test func goodValuesPass() throws {
        try Personalisation(hostname: "lab-1", timezone: "Europe/Berlin", user: "alice", groups: ["wheel"], sshKeys: [Self.key],
                            passwordHash: Self.hash, rootPasswordHash: Self.hash, newIdentifiers: true).validate()
    }

    @Test func secretsAreNotRepeatedInErrors() {
        #expect {
            try Personalisation(user: "alice", passwordHash: "my secret password").validate()
        } throws: { error in !"\(error)".contains("my secret password") }
    }

    @Test func sshKeyFilesAreReadLineByLine() throws {
        let scratch = try Scratch("rast-install-keys")
        let file = scratch.appending("keys.pub")
        try Files.write(file, string: "# my keys\n\n\(Self.key)\n  \(Self.key.replacingOccurrences(of: "admin@", with: "other@"))  \n")
        let keys = try Personalisation.sshKeys(fromFile: file)
        #expect(keys.count == 2)
        #expect(keys.first == Self.key)
        try Files.write(file, string: "ssh-ed25519 notbase64!\n")
        #expect { _ = try Personalisation.sshKeys(fromFile: file) } throws: { Self.option(of: $0) == "--ssh-key-file" }
        #expect { _ = try Personalisation.sshKeys(fromFile: scratch.appending("missing")) } throws: { Self.option(of: $0) == "--ssh-key-file" }
    }
}

/// The command line: help that explains, option errors before any work.
@Suite struct RastInstallCommandTests {
    @Test func helpExplainsTheToolAndItsSafetyRules() {
        let help = RastInstall.helpMessage()
        for text in ["IMAGE", "TARGET", "--yes", "--dry-run", "--size", "--hostname", "--user", "--ssh-key", "--password-hash",
                     "--root-password-hash", "--timezone", "--new-uuids", "--no-verify", "BLKZEROOUT", "mounted", "working copy"] {
            #expect(help.contains(text), "--help mentions \(text)")
        }
    }

    @Test func badArgumentsFailBeforeAnyWork() throws {
        let scratch = try Scratch("rast-install-cli")
        let target = scratch.appending("disk.img")
        #expect(EntryPoint.execute(RastInstall.self, programName: "rast-install", arguments: ["image.raw", target, "--size", "lots"]) != 0)
        #expect(EntryPoint.execute(RastInstall.self, programName: "rast-install",
                                   arguments: ["image.raw", target, "--ssh-key", PersonalisationValidationTests.key]) == 1)
        #expect(EntryPoint.execute(RastInstall.self, programName: "rast-install", arguments: ["/nonexistent/image.raw", target, "--dry-run"]) == 1)
        #expect(!Files.exists(target))
    }

    @Test func argumentsBecomeARequest() throws {
        let command = try RastInstall.parse(["a.qcow2", "/dev/null", "--size", "3G", "--no-verify", "--no-grow", "-y",
                                             "--hostname", "h", "--user", "u", "--group", "wheel", "--ssh-key",
                                             PersonalisationValidationTests.key, "--new-uuids"])
        let request = try command.request()
        #expect(request.size == 3 << 30)
        #expect(!request.verify && !request.grow && request.confirmed)
        #expect(request.personalisation == Personalisation(hostname: "h", user: "u", groups: ["wheel"],
                                                           sshKeys: [PersonalisationValidationTests.key], newIdentifiers: true))
    }
}

/// The libfdisk additions rast-install grows disks with, on a plain file.
@Suite struct PartitionResizeTests {
    @Test func growingTheLastPartitionOfAnEnlargedDisk() throws {
        try Require.programs("sgdisk")
        let scratch = try Scratch("rast-install-fdisk")
        let disk = scratch.appending("disk.img")
        try Command("truncate", ["-s", "100M", disk]).run()
        let table = try PartitionTable.create(.gpt, on: disk)
        try table.addPartition(NewPartition(type: .efiSystem, size: .bytes(8 << 20), name: "esp"))
        let root = try table.addPartition(NewPartition(type: .linuxRootX86_64, size: .restOfDisk, name: "root"))
        try table.write()

        // The disk grows: libfdisk moves the backup GPT when it opens the table.
        try Command("truncate", ["-s", "300M", disk]).run()
        let before = try Command("sgdisk", ["-v", disk]).run(check: false).standardOutput
        #expect(!before.contains("No problems found"), "sgdisk sees the misplaced backup header: \(before)")
        let grown = try PartitionTable(path: disk, readOnly: false)
        #expect(grown.hasUnwrittenChanges)
        #expect(throws: FdiskError.self) { try grown.resizePartition(root.number, to: .bytes(400 << 20)) }
        let resized = try grown.resizePartition(root.number, to: .restOfDisk)
        #expect(resized.startSector == root.startSector)
        #expect((resized.endSector + 1) % 2048 == 0, "the end is aligned to 1 MiB")
        #expect(resized.endSector <= grown.usableSectors.upperBound)
        #expect(grown.usableSectors.upperBound - resized.endSector < 2048)
        let uuid = UUID()
        try grown.setPartitionUUID(1, uuid)
        try grown.write()

        let after = try Command("sgdisk", ["-v", disk]).run(check: false).standardOutput
        #expect(after.contains("No problems found"), "sgdisk -v: \(after)")
        let reread = try PartitionTable(path: disk).partitions()
        #expect(reread.last?.sizeBytes == resized.sizeBytes)
        #expect(reread.first?.uuid == uuid.uuidString.lowercased())
        #expect(reread.first?.name == "esp", "other fields stay")

        // Shrinking to an explicit size works too; a partition that is not there is named.
        let again = try PartitionTable(path: disk, readOnly: false)
        #expect(try again.resizePartition(root.number, to: .bytes(100 << 20)).sizeBytes == 100 << 20)
        #expect { try again.resizePartition(7, to: .restOfDisk) } throws: { "\($0)".contains("no partition 7") }
    }
}

/// The records beside an image (its manifest) are read before anything else; a manifest that
/// cannot be decoded is refused with the decoder's error as the cause.
@Suite struct ImageRecordsTests {
    @Test func aMalformedManifestIsRefusedWithItsDecodingError() throws {
        let scratch = try TemporaryDirectory(prefix: "rast-records")
        let image = scratch.appending("demo.raw")
        try Files.write(image, string: "")
        try Files.write(scratch.appending("demo.manifest.json"), string: "{\"outputs\": 7}")
        #expect {
            _ = try ImageRecords.load(besides: image)
        } throws: { error in
            guard case .invalidImage(let path, let reason, let cause)? = error as? InstallError else { return false }
            return path == image && reason.contains("demo.manifest.json cannot be read") && cause is DecodingError
                && error.underlying(DecodingError.self) != nil
        }
    }
}
