import BootEntries
import Foundation
import SystemSupport
import TestSupport
import Testing

/// The two ways onto an ESP behave alike: a directory (a mounted vfat, on a running system)
/// and mtools on a FAT image (the host, whose kernel has no vfat). The FAT images are made
/// with mkfs.fat and checked with fsck.fat after the changes.
@Suite struct ESPVolumeTests {
    enum Kind: String, CaseIterable { case mounted, mtools }

    static func volume(_ kind: Kind, in scratch: Scratch) throws -> ESPVolume {
        switch kind {
        case .mounted:
            try Files.createDirectory(scratch.appending("esp"))
            return MountedESP(directory: scratch.appending("esp"))
        case .mtools:
            try Require.programs("mkfs.fat", "mdir", "mmd", "mcopy", "mren", "mdel")
            let image = scratch.appending("esp.img")
            try Command("mkfs.fat", ["-C", "-F", "32", "-n", "RASTESP", image, String(40 * 1024)]).run()
            return MtoolsESP(image: image)
        }
    }

    @Test(arguments: Kind.allCases)
    func filesAreReplacedThroughTemporaryNames(_ kind: Kind) throws {
        let scratch = try Scratch("rast-esp")
        let esp = try Self.volume(kind, in: scratch)
        try esp.makeDirectories("boot/limine")
        try esp.makeDirectories("boot/limine")  // again: nothing to do
        #expect(try esp.entries(in: "boot") == ["limine/"])
        #expect(try esp.entries(in: "nowhere") == nil)
        #expect(try esp.read("boot/limine/limine.conf") == nil)

        try esp.replace("boot/limine/limine.conf", with: Array("timeout: 0\n".utf8))
        try esp.replace("boot/limine/limine.conf", with: Array("timeout: 5\n".utf8))
        #expect(try esp.read("boot/limine/limine.conf") == Array("timeout: 5\n".utf8))
        #expect(try esp.files(in: "boot/limine") == ["limine.conf"], "no .new file is left")

        // A kernel-sized file with every byte value goes in unchanged.
        let kernel = scratch.appending("vmlinuz")
        try Files.writeAtomically(kernel, bytes: (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) })
        try esp.makeDirectories("rastos")
        try esp.install(kernel, as: "rastos/0123456789abcdef-vmlinuz")
        #expect(try esp.files(in: "rastos") == ["0123456789abcdef-vmlinuz"])
        #expect(try esp.read("rastos/0123456789abcdef-vmlinuz").map { SHA256.hash($0) } == (try SHA256.hash(file: kernel)))
        #expect(try esp.exists("rastos/0123456789abcdef-vmlinuz"))
        try esp.remove("rastos/0123456789abcdef-vmlinuz")
        try esp.remove("rastos/0123456789abcdef-vmlinuz")  // gone already: nothing to do
        #expect(try esp.files(in: "rastos").isEmpty)
        #expect(try esp.freeBytes() > 30 << 20)

        if kind == .mtools, let image = (esp as? MtoolsESP)?.image {
            let fsck = try Command("fsck.fat", ["-n", image]).run(check: false)
            #expect(fsck.status == 0, "fsck.fat finds the FAT consistent: \(fsck.standardOutput)")
        }
    }

    @Test(arguments: Kind.allCases)
    func aFileLargerThanTheFreeSpaceIsRefusedBeforeAnythingIsWritten(_ kind: Kind) throws {
        try Require.programs("mkfs.fat", "mdir", "mmd", "mcopy", "mren", "mdel")
        let scratch = try Scratch("rast-esp")
        let image = scratch.appending("small.img")
        try Command("mkfs.fat", ["-C", image, "4096"]).run()
        let esp: ESPVolume = kind == .mtools ? MtoolsESP(image: image) : try Self.volume(.mounted, in: scratch)
        let big = scratch.appending("big")
        let size = (try esp.freeBytes()) + (1 << 20)
        try Command("truncate", ["-s", String(size), big]).run()
        #expect {
            try esp.install(big, as: "big")
        } throws: { error in
            guard case ESPError.full(_, let path, let needed, _) = error else { return false }
            return path == "big" && needed == size && "\(error)".contains("make disk.esp_size larger")
        }
        #expect(try esp.entries(in: "") == [])
    }

    /// mtools reaches an ESP inside a whole-disk image by its offset (`disk.raw@@OFFSET`),
    /// as rast does for an image whose root partition is mounted from a loop device.
    @Test func mtoolsWorksOnAPartitionInsideADiskImage() throws {
        try Require.programs("sgdisk", "mkfs.fat", "mdir", "mmd", "mcopy", "mren", "mdel", "fsck.fat")
        let scratch = try Scratch("rast-esp")
        let disk = scratch.appending("disk.raw")
        try Command("truncate", ["-s", "80M", disk]).run()
        try Command("sgdisk", ["-o", "-n", "1:2048:+1M", "-t", "1:ef02", "-n", "2:0:+40M", "-t", "2:ef00", "-n", "3:0:0", disk]).run()
        let offset: UInt64 = 4096 * 512
        let esp = scratch.appending("esp.part")
        try Command("mkfs.fat", ["-C", "-F", "32", esp, String(40 * 1024)]).run()
        try Command("dd", ["if=\(esp)", "of=\(disk)", "bs=1M", "seek=2", "conv=notrunc,sparse", "status=none"]).run()
        let volume = MtoolsESP(image: disk, offset: offset)
        #expect(volume.location == "\(disk)@@\(offset)")
        try volume.makeDirectories("boot/limine")
        try volume.replace("boot/limine/limine.conf", with: Array("serial: yes\n".utf8))
        #expect(try volume.read("boot/limine/limine.conf") == Array("serial: yes\n".utf8))
        // The bytes landed inside partition 2, and the partition table is untouched.
        try Command("dd", ["if=\(disk)", "of=\(esp)", "bs=1M", "skip=2", "count=40", "status=none"]).run()
        #expect(try Command("fsck.fat", ["-n", esp]).run(check: false).status == 0)
        #expect(try MtoolsESP(image: esp).read("boot/limine/limine.conf") == Array("serial: yes\n".utf8))
        #expect(try Command("sgdisk", ["-v", disk]).output().contains("No problems found"))
    }
}
