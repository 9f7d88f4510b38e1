import BootEntries
import DiskImage
import Foundation
import Pipeline
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

extension InstallTests {
    /// --new-uuids on a Limine image: the menu on the ESP names the new root PARTUUID, the ESP
    /// is a new FAT volume holding Limine and the kernels again, the BIOS stages are written
    /// again into the rewritten disk, and the disk boots under BIOS and UEFI.
    @Test func newUUIDsOnALimineImageBootUnderBIOSAndUEFI() throws {
        let image = try TestImage.sharedLimine()
        let scratch = try Scratch("rast-install-limine")
        let target = scratch.appending("disk.img")
        let result = try InstallTest.install(image.raw, to: target, size: (5 << 29), Personalisation(newIdentifiers: true))
        try InstallTest.expectNoLeftovers(under: scratch.path)
        #expect(result.plan.bootloader == .limine)

        let old = image.manifest
        let layout = try DiskLayout.read(disk: target)
        let root = try #require(layout.root)
        let esp = try #require(layout.esp)
        #expect(layout.diskGUID != old.disk.diskGUID)
        #expect(root.partitionUUID != old.rootPartitionUUID.lowercased())
        #expect(esp.filesystemUUID != old.disk.partitions.first { $0.name == DiskStage.espName }?.filesystemUUID, "the ESP is a new FAT volume")
        let verify = try Command("sgdisk", ["-v", target]).run(check: false).standardOutput
        #expect(verify.contains("No problems found"), "sgdisk -v: \(verify)")

        let volume = MtoolsESP(image: target, offset: esp.startBytes)
        let text = String(decoding: try #require(try volume.read(LimineLayout.configPath)), as: UTF8.self)
        let menu = try LimineConfig(parsing: text)
        #expect(menu.entries.count == 2, "both slots hold the deployed snapshot: \(menu.entries.map(\.title))")
        for entry in menu.entries {
            #expect(entry.value("cmdline")?.contains("root=PARTUUID=\(root.partitionUUID) ") == true, "\(entry.title): \(entry.value("cmdline") ?? "")")
            for path in entry.loadedPaths.compactMap(LimineConfig.bootPartitionPath) {
                let content = try #require(try volume.read(path), "\(path) is on the ESP")
                #expect(LimineLayout.hashPrefix(ofKernelPath: path).map { SHA256.hash(content).hasPrefix($0) } == true)
            }
        }
        #expect(!text.contains(old.rootPartitionUUID))
        let vendor = ProjectPaths.root + "/bootloader/limine/vendor"
        #expect(try volume.read(LimineLayout.efiPath) == (try Files.read(vendor + "/BOOTX64.EFI")))
        #expect(try volume.read(LimineLayout.stage3Path) == (try Files.read(vendor + "/limine-bios.sys")))

        for firmware in [MachineConfiguration.Firmware.bios, .uefi] {
            let boot = try InstallTest.boot(target, firmware: firmware, expectation: BootExpectation(current: old.deployed, tree: old.tree),
                                            extraChecks: "grep -q 'root=PARTUUID=\(root.partitionUUID) ' /proc/cmdline\nrast check",
                                            logDirectory: scratch.path)
            #expect(boot.passed, "\(firmware): \(boot.outcome); console log: \((try? Files.readString(boot.consoleLog))?.suffix(2000) ?? "")")
            print("install: --new-uuids Limine disk booted with \(firmware.rawValue.uppercased()) in \(String(format: "%.1f", boot.seconds)) s")
        }
    }
}
