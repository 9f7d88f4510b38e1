import BootEntries
import Foundation
import Recipe
import SnapshotTree
import SystemSupport

/// The boot loader stage. The menu itself (grub.cfg in @boot, or limine.conf) was written by
/// `SnapshotStore.deploy`, the code `rast deploy` runs on the installed system; this stage
/// installs the loaders that read it:
/// - BIOS: grub-install (i386-pc) into the BIOS boot partition, modules in @boot/grub;
/// - UEFI: a removable-path GRUB image (EFI/BOOT/BOOTX64.EFI) built with grub-mkimage with an
///   embedded configuration that finds the btrfs root by UUID, written to the FAT ESP with
///   mtools (the host kernel cannot mount FAT), modules in @boot/grub/x86_64-efi;
/// - Limine: only where the `limine` program exists (it does not on Debian 12): otherwise a
///   clear error before any work is done (see `preflight`).
public struct BootLoaderStage {
    public static let grubEFIModules = [
        "part_gpt", "part_msdos", "btrfs", "fat", "search", "search_fs_uuid", "search_label", "configfile", "normal",
        "linux", "serial", "terminal", "echo", "test", "boot", "all_video", "gzio", "zstd", "reboot", "halt",
    ]

    /// The boot loader and the firmware it is installed for (the recipe's disk.bootloader and disk.firmware).
    public let bootloader: Bootloader
    public let firmware: [Firmware]
    public let disk: AttachedDisk
    public let layout: Layout
    public let templates: BootTemplates
    public let workDirectory: String
    public let progress: ProgressReporter

    public init(recipe: Recipe, disk: AttachedDisk, layout: Layout, templates: BootTemplates, workDirectory: String,
                progress: ProgressReporter) {
        self.init(bootloader: recipe.disk.bootloader, firmware: recipe.disk.firmware, disk: disk, layout: layout,
                  templates: templates, workDirectory: workDirectory, progress: progress)
    }

    /// The stage without a recipe (rast-install reinstalls the loaders of a built image).
    public init(bootloader: Bootloader, firmware: [Firmware], disk: AttachedDisk, layout: Layout, templates: BootTemplates,
                workDirectory: String, progress: ProgressReporter) {
        self.bootloader = bootloader
        self.firmware = firmware
        self.disk = disk
        self.layout = layout
        self.templates = templates
        self.workDirectory = workDirectory
        self.progress = progress
    }

    /// Fails early when the recipe's boot loader cannot be installed on this machine.
    public static func preflight(_ recipe: Recipe) throws {
        try preflight(bootloader: recipe.disk.bootloader, firmware: recipe.disk.firmware)
    }

    /// Fails early when `bootloader` cannot be installed for `firmware` on this machine.
    public static func preflight(bootloader: Bootloader, firmware: [Firmware]) throws {
        switch bootloader {
        case .grub:
            var tools = ["mmd", "mcopy"]
            if firmware.contains(.bios) { tools.append("grub-install") }
            if firmware.contains(.uefi) { tools.append("grub-mkimage") }
            try Require.tools(tools, for: "installing GRUB")
            if firmware.contains(.bios), !Files.isDirectory("/usr/lib/grub/i386-pc") {
                throw UserError("GRUB for BIOS needs /usr/lib/grub/i386-pc (apt-get install grub-pc-bin)")
            }
            if firmware.contains(.uefi), !Files.isDirectory("/usr/lib/grub/x86_64-efi") {
                throw UserError("GRUB for UEFI needs /usr/lib/grub/x86_64-efi (apt-get install grub-efi-amd64-bin)")
            }
        case .limine:
            guard Command.find("limine") != nil else {
                throw UserError("the recipe asks for the Limine boot loader (disk.bootloader = \"limine\"), but the `limine` program is not installed on this machine and no reachable package archive has it; install Limine from its upstream release, or use bootloader = \"grub\"")
            }
            for file in ["limine-bios.sys", "BOOTX64.EFI"] where limineFile(file) == nil {
                throw UserError("Limine is installed but its \(file) was not found in /usr/share/limine or /usr/local/share/limine")
            }
        }
    }

    static func limineFile(_ name: String) -> String? {
        ["/usr/share/limine", "/usr/local/share/limine"].map { $0 + "/" + name }.first(where: Files.exists)
    }

    public func run() throws {
        guard let esp = disk.partition(named: DiskStage.espName) else { throw UserError("the image has no ESP") }
        let espDevice = disk.device(of: esp)
        switch bootloader {
        case .grub:
            if firmware.contains(.bios) { try installGrubBIOS() }
            if firmware.contains(.uefi) { try installGrubUEFI(espDevice: espDevice) }
        case .limine:
            try installLimine(espDevice: espDevice)
        }
    }

    /// grub-install embeds core.img in the BIOS boot partition of the whole disk (attached
    /// for this step). The root partition is a loop device of its own, a different "drive" to
    /// GRUB, so grub-install makes core.img find it with `search.fs_uuid` at boot, which is what
    /// we want anyway; the device map tells grub-install which loop device is which drive.
    func installGrubBIOS() throws {
        let stopwatch = Stopwatch()
        progress.begin("boot loader: GRUB for BIOS (grub-install --target=i386-pc)")
        let whole = try LoopDevice(file: disk.imagePath)
        defer { whole.detach() }
        let deviceMap = layout.bootLoader + "/grub/device.map"
        try Files.write(deviceMap, string: "(hd0) \(whole.path)\n(hd1) \(disk.device(of: try disk.root))\n")
        defer { unlink(deviceMap) }
        try Command("grub-install", ["--target=i386-pc", "--boot-directory=\(layout.bootLoader)",
                                     "--modules=part_gpt btrfs search_fs_uuid", "--no-floppy", whole.path]).run()
        progress.end("boot loader: BIOS", summary: "installed in \(stopwatch.formatted)")
    }

    func installGrubUEFI(espDevice: String) throws {
        let stopwatch = Stopwatch()
        progress.begin("boot loader: GRUB for UEFI (removable EFI/BOOT/BOOTX64.EFI)")
        let root = try disk.root
        guard let uuid = root.filesystemUUID else { throw UserError("the root filesystem has no UUID") }
        let early = workDirectory + "/grub-early.cfg"
        try Files.write(early, string: try BootConfiguration.grubEarlyConfig(filesystemUUID: uuid, templates: templates))
        let image = workDirectory + "/BOOTX64.EFI"
        try Command("grub-mkimage", ["-O", "x86_64-efi", "-p", "/@boot/grub", "-c", early, "-o", image] + Self.grubEFIModules).run()
        // The configuration loads modules from $prefix/x86_64-efi, as grub-install would set up.
        let modules = layout.bootLoader + "/grub/x86_64-efi"
        try Files.createDirectory(modules)
        for name in try FileManagerShim.contents(of: "/usr/lib/grub/x86_64-efi") where name.hasSuffix(".mod") || name.hasSuffix(".lst") {
            try TreeCopy.copy("/usr/lib/grub/x86_64-efi/" + name, to: modules + "/" + name)
        }
        try Command("mmd", ["-i", espDevice, "::/EFI", "::/EFI/BOOT"]).run()
        try Command("mcopy", ["-i", espDevice, image, "::/EFI/BOOT/BOOTX64.EFI"]).run()
        progress.end("boot loader: UEFI", summary: "installed in \(stopwatch.formatted)")
    }

    func installLimine(espDevice: String) throws {
        try Self.preflight(bootloader: bootloader, firmware: firmware)
        progress.begin("boot loader: Limine")
        // Limine reads FAT only: the menu and each deployment's kernel go to the ESP.
        let state = try SnapshotStore(layout: layout, templates: templates).state()
        try Command("mmd", ["-i", espDevice, "::/EFI", "::/EFI/BOOT", "::/rastos", "::/limine"]).run()
        for slot in state.slots {
            try Command("mmd", ["-i", espDevice, "::/rastos/\(slot.slot)"]).run()
            for name in try FileManagerShim.contents(of: layout.boot(slot.slot)) where name.hasPrefix("vmlinuz") || name.hasPrefix("initramfs") {
                try Command("mcopy", ["-i", espDevice, layout.boot(slot.slot) + "/" + name, "::/rastos/\(slot.slot)/\(name)"]).run()
            }
        }
        try Command("mcopy", ["-i", espDevice, layout.limineConfig, "::/limine/limine.conf"]).run()
        if let efi = Self.limineFile("BOOTX64.EFI"), firmware.contains(.uefi) {
            try Command("mcopy", ["-i", espDevice, efi, "::/EFI/BOOT/BOOTX64.EFI"]).run()
        }
        if let sys = Self.limineFile("limine-bios.sys"), firmware.contains(.bios) {
            try Command("mcopy", ["-i", espDevice, sys, "::/limine/limine-bios.sys"]).run()
            try Command("limine", ["bios-install", disk.imagePath]).run()
        }
        progress.end("boot loader: Limine", summary: "installed")
    }
}
