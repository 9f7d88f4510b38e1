import BootEntries
import Foundation
import SystemSupport
import TestSupport
import Testing

@Suite struct BootConfigurationTests {
    static let templates = BootTemplates(directory: ProjectPaths.root + "/bootloader")
    static let menu = BootMenu(
        filesystemUUID: "5d0b8e8e-3c1f-4d5e-9a55-0c3f6b1c2a11", rootPartitionUUID: "0a1b2c3d-0000-4000-8000-000000000003",
        kernelArguments: "console=ttyS0 quiet",
        entries: [
            BootEntry(title: "rastOS snapshot 2", slot: "tmp0", snapshot: 2, kernel: "vmlinuz-linux-rast-base"),
            BootEntry(title: "rastOS previous deployment (snapshot 1)", slot: "tmp", snapshot: 1,
                      kernel: "vmlinuz-linux-rast-base", initrd: "initramfs.img"),
        ])

    @Test func grubMenuHasOneEntryPerDeploymentInOrderAndPassesGrubScriptCheck() throws {
        try Require.programs("grub-script-check")
        let config = try BootConfiguration.grub(Self.menu, templates: Self.templates)
        let titles = config.split(separator: "\n").filter { $0.hasPrefix("menuentry") }
        #expect(titles.count == 2)
        #expect(titles[0].contains("'rastOS snapshot 2'"))
        #expect(config.contains("linux /@.snapshots/boot/boot-tmp0/vmlinuz-linux-rast-base root=PARTUUID=0a1b2c3d-0000-4000-8000-000000000003 rootflags=subvol=@.snapshots/rootfs/snapshot-tmp0 ro rootwait rast.slot=tmp0 console=ttyS0 quiet"))
        #expect(config.contains("initrd /@.snapshots/boot/boot-tmp/initramfs.img"))
        #expect(config.contains("search --no-floppy --fs-uuid --set=root 5d0b8e8e-3c1f-4d5e-9a55-0c3f6b1c2a11"))
        let scratch = try Scratch()
        let path = scratch.appending("grub.cfg")
        try Files.write(path, string: config)
        let check = try Command("grub-script-check", [path]).run(check: false)
        #expect(check.status == 0, "grub-script-check: \(check.standardError)")
    }

    @Test func limineMenuPointsAtKernelsOnTheESP() throws {
        let config = try BootConfiguration.limine(Self.menu, templates: Self.templates)
        #expect(config.contains("/rastOS snapshot 2\n    protocol: linux\n    kernel_path: boot():/rastos/tmp0/vmlinuz-linux-rast-base"))
        #expect(config.contains("module_path: boot():/rastos/tmp/initramfs.img"))
        #expect(config.contains("timeout: 3"))
    }

    @Test func hostileTitlesAndUnknownPlaceholdersAreErrors() throws {
        var menu = Self.menu
        menu.entries[0].title = "x' ; reboot ; '"
        #expect(throws: BootTemplateError.self) { try BootConfiguration.grub(menu, templates: Self.templates) }
        let scratch = try Scratch()
        try Command("cp", ["-r", Self.templates.directory + "/grub", scratch.path + "/"]).run()
        try Files.write(scratch.appending("grub/grub.cfg"), string: "set timeout={{timeuot}}\n")
        #expect {
            try BootConfiguration.grub(Self.menu, templates: BootTemplates(directory: scratch.path))
        } throws: { error in "\(error)" == "boot loader template grub/grub.cfg uses unknown placeholder {{timeuot}}" }
        try Files.removeTree(scratch.appending("grub/entry.cfg"))
        #expect {
            try BootConfiguration.grub(Self.menu, templates: BootTemplates(directory: scratch.path))
        } throws: { error in "\(error)".contains("grub/entry.cfg is missing") }
    }
}
