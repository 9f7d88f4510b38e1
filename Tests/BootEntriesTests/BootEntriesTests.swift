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

    /// The menu with the ESP copies Limine loads (named by content, as the deploy names them).
    static var limineMenu: BootMenu {
        var menu = menu
        menu.entries[0].espKernel = LimineLayout.kernelPath(name: "vmlinuz-linux-rast-base", sha256: String(repeating: "a1", count: 32))
        menu.entries[1].espKernel = LimineLayout.kernelPath(name: "vmlinuz-linux-rast-base", sha256: String(repeating: "b2", count: 32))
        menu.entries[1].espInitrd = LimineLayout.kernelPath(name: "initramfs.img", sha256: String(repeating: "c3", count: 32))
        return menu
    }

    @Test func limineMenuPointsAtKernelsOnTheESPAndParsesBack() throws {
        let config = try BootConfiguration.limine(Self.limineMenu, templates: Self.templates)
        #expect(config.contains("/rastOS snapshot 2\n    protocol: linux\n    kernel_path: boot():/rastos/a1a1a1a1a1a1a1a1-vmlinuz-linux-rast-base"))
        #expect(config.contains("module_path: boot():/rastos/c3c3c3c3c3c3c3c3-initramfs.img"))

        let parsed = try LimineConfig(parsing: config)
        #expect(parsed.globals["timeout"] == "3")
        #expect(parsed.globals["serial"] == "yes")
        #expect(parsed.entries.map(\.title) == ["rastOS snapshot 2", "rastOS previous deployment (snapshot 1)"])
        #expect(parsed.entries[0].value("cmdline") == Self.menu.commandLine(for: Self.menu.entries[0]))
        #expect(parsed.entries[0].value("cmdline")?.contains("root=PARTUUID=0a1b2c3d-0000-4000-8000-000000000003 rootflags=subvol=@.snapshots/rootfs/snapshot-tmp0") == true)
        #expect(parsed.entries[1].loadedPaths.compactMap(LimineConfig.bootPartitionPath) == [
            "rastos/b2b2b2b2b2b2b2b2-vmlinuz-linux-rast-base", "rastos/c3c3c3c3c3c3c3c3-initramfs.img",
        ])
        #expect(LimineLayout.hashPrefix(ofKernelPath: "rastos/c3c3c3c3c3c3c3c3-initramfs.img") == "c3c3c3c3c3c3c3c3")
        #expect(LimineLayout.hashPrefix(ofKernelPath: "rastos/vmlinuz-linux") == nil)
    }

    @Test func limineEntryWithoutACopyOnTheESPIsAnError() throws {
        var menu = Self.limineMenu
        menu.entries[1].espInitrd = nil
        #expect {
            try BootConfiguration.limine(menu, templates: Self.templates)
        } throws: { error in "\(error)".contains("Limine reads kernels from the ESP only, and no ESP copy of initramfs.img was given") }
    }

    @Test func limineConfigParserNamesTheLineOfWhatItCannotRead() throws {
        #expect(throws: LimineConfig.ParseError(line: 3, message: "'kernel_path boot():/x' is not `key: value`, an entry (/Title) or a comment")) {
            try LimineConfig(parsing: "timeout: 0\n/entry\nkernel_path boot():/x\n")
        }
        #expect(throws: LimineConfig.ParseError(line: 2, message: "entry 'half' has no protocol")) {
            try LimineConfig(parsing: "# comment\n/half\n    kernel_path: boot():/k\n")
        }
        #expect(throws: LimineConfig.ParseError(line: 1, message: "an entry without a title")) { try LimineConfig(parsing: "/\n") }
        // A directory entry with sub-entries needs no protocol; macros and comments are skipped.
        let nested = try LimineConfig(parsing: "${ARGS}=quiet\n/+Linux\n//One\n  protocol: linux\n  kernel_path: boot():/a\n  module_path: boot():/b\n")
        #expect(nested.entries.map(\.depth) == [1, 2])
        #expect(nested.entries[1].loadedPaths == ["boot():/a", "boot():/b"])
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
