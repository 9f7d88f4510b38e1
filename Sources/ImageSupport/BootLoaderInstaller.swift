import BootEntries
import Foundation
import Recipe
import SnapshotTree
import SystemSupport

/// Installs the boot loaders of a disk: the boot loader stage of rast-build, and rast-install
/// when it reinstalls them on the disk it wrote. The menu itself (grub.cfg in @boot, or limine.conf and the kernels
/// on the ESP) was written by `SnapshotStore.deploy`, the code `rast deploy` runs on the
/// installed system; this installs the loaders that read it:
/// - BIOS: grub-install (i386-pc) into the BIOS boot partition, modules in @boot/grub;
/// - UEFI: a removable-path GRUB image (EFI/BOOT/BOOTX64.EFI) built with grub-mkimage with an
///   embedded configuration that finds the btrfs root by UUID, written to the FAT ESP with
///   mtools (the host kernel cannot mount FAT), modules in @boot/grub/x86_64-efi;
/// - Limine (see `LimineInstallation` for where it comes from): BOOTX64.EFI to the ESP's
///   removable path for UEFI; for BIOS, limine-bios.sys beside the menu and
///   `limine bios-install DISK N`, which writes stage 1 to the MBR and stage 2 into the BIOS
///   boot partition N (not into the GPT's entry array, which partition-table writes such as
///   rast-install's would overwrite).
package struct BootLoaderInstaller {
    package static let grubEFIModules = [
        "part_gpt", "part_msdos", "btrfs", "fat", "search", "search_fs_uuid", "search_label", "configfile", "normal",
        "linux", "serial", "terminal", "echo", "test", "boot", "all_video", "gzio", "zstd", "reboot", "halt",
    ]

    /// The boot loader and the firmware it is installed for (the recipe's disk.bootloader and disk.firmware).
    package let bootloader: Bootloader
    package let firmware: [Firmware]
    package let disk: AttachedDisk
    package let layout: Layout
    package let templates: BootTemplates
    package let workDirectory: String
    package let progress: ProgressReporter

    package init(recipe: Recipe, disk: AttachedDisk, layout: Layout, templates: BootTemplates, workDirectory: String,
                progress: ProgressReporter) {
        self.init(bootloader: recipe.disk.bootloader, firmware: recipe.disk.firmware, disk: disk, layout: layout,
                  templates: templates, workDirectory: workDirectory, progress: progress)
    }

    /// The installer without a recipe (rast-install reinstalls the loaders of a built image).
    package init(bootloader: Bootloader, firmware: [Firmware], disk: AttachedDisk, layout: Layout, templates: BootTemplates,
                workDirectory: String, progress: ProgressReporter) {
        self.bootloader = bootloader
        self.firmware = firmware
        self.disk = disk
        self.layout = layout
        self.templates = templates
        self.workDirectory = workDirectory
        self.progress = progress
    }

    /// Fails early when `bootloader` cannot be installed for `firmware` on this machine.
    package static func preflight(bootloader: Bootloader, firmware: [Firmware]) throws {
        switch bootloader {
        case .grub:
            var tools = ["mmd", "mcopy"]
            if firmware.contains(.bios) { tools.append("grub-install") }
            if firmware.contains(.uefi) { tools.append("grub-mkimage") }
            try HostTools.require(tools, for: "installing GRUB")
            if firmware.contains(.bios), !Files.isDirectory("/usr/lib/grub/i386-pc") {
                throw UserError("GRUB for BIOS needs /usr/lib/grub/i386-pc (apt-get install grub-pc-bin)")
            }
            if firmware.contains(.uefi), !Files.isDirectory("/usr/lib/grub/x86_64-efi") {
                throw UserError("GRUB for UEFI needs /usr/lib/grub/x86_64-efi (apt-get install grub-efi-amd64-bin)")
            }
        case .limine:
            try HostTools.require(["mmd", "mcopy", "mren", "mdir"], for: "installing Limine")
        }
    }

    /// Fails early when a recipe that boots with Limine has no Limine to install from: the
    /// image's own `limine` package, or the `limine` program on this machine.
    package static func preflight(_ recipe: Recipe) throws {
        try preflight(bootloader: recipe.disk.bootloader, firmware: recipe.disk.firmware)
        if recipe.disk.bootloader == .limine, !recipe.packagesToInstall.contains("limine"), Command.find("limine") == nil {
            throw UserError("""
                the recipe asks for the Limine boot loader (disk.bootloader = "limine"), but it does not install the `limine` package and the `limine` program is not installed on this machine; add "limine" to packages.install (recipes/pkgbuilds/limine builds it from the Limine release in bootloader/limine/vendor, as recipes/limine.toml does; on Arch it comes from the mirrors), or use bootloader = "grub"
                """)
        }
    }

    package func run() throws {
        guard let esp = disk.partition(named: PartitionName.esp) else { throw UserError("the image has no ESP") }
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

    /// Limine from the image's deployed root (its `limine` package) or this machine; the menu
    /// and the kernels are on the ESP already (the deploy wrote them).
    func installLimine(espDevice: String) throws {
        try Self.preflight(bootloader: bootloader, firmware: firmware)
        let stopwatch = Stopwatch()
        let state = try SnapshotStore(layout: layout, templates: templates).state()
        let installation = try LimineInstallation.locate(imageRoot: state.next.map { layout.root($0) })
        progress.begin("boot loader: Limine \(installation.version) from \(installation.origin)")
        let esp = MtoolsESP(image: espDevice)
        guard try esp.exists(LimineLayout.configPath) else {
            throw UserError("the ESP has no \(LimineLayout.configPath); the deploy of the configure stage should have written it")
        }
        if firmware.contains(.uefi) {
            try esp.makeDirectories(LimineLayout.efiDirectory)
            try esp.install(installation.dataDirectory + "/BOOTX64.EFI", as: LimineLayout.efiPath)
        }
        if firmware.contains(.bios) {
            guard let biosBoot = disk.partition(named: PartitionName.biosBoot) else {
                throw UserError("Limine for BIOS puts its stage 2 into the BIOS boot partition, and the disk has none")
            }
            try esp.makeDirectories(LimineLayout.configDirectory)
            try esp.install(installation.dataDirectory + "/limine-bios.sys", as: LimineLayout.stage3Path)
            try Command(installation.tool, ["bios-install", disk.imagePath, String(biosBoot.number)]).run()
        }
        // The deploy put one deployment's kernel on the ESP; the next one needs room for its own.
        let kernels = try esp.files(in: LimineLayout.kernelDirectory)
        var deployed: Int64 = 0
        for slot in state.slots {
            for name in try FileManagerShim.contents(of: layout.boot(slot.slot)) where name.hasPrefix("vmlinuz") || name.hasPrefix("initramfs") {
                deployed += try Files.size(layout.boot(slot.slot) + "/" + name)
            }
        }
        let free = try esp.freeBytes()
        if free < deployed {
            throw UserError("the ESP has \(ByteCount.format(free)) free after the first deployment; the next `rast deploy` copies another kernel and initramfs (\(ByteCount.format(deployed))) there: make disk.esp_size larger")
        }
        progress.end("boot loader: Limine", summary: "installed for \(firmware.map { $0.rawValue.uppercased() }.joined(separator: " and ")) in \(stopwatch.formatted); \(kernels.count) kernel file(s) on the ESP, \(ByteCount.format(free)) free")
    }
}

/// The Limine a disk is given: the `limine` tool, which carries the BIOS stages 1 and 2 and
/// writes them (`limine bios-install`), and the boot loader files of the same release
/// (`limine-bios.sys`, `BOOTX64.EFI`). Both must come from one release.
///
/// Looked for, in order: the image's own `limine` package (`/usr/bin/limine`,
/// `/usr/share/limine` in the deployed root: recipes/pkgbuilds/limine builds it from the release
/// vendored in bootloader/limine/vendor, and on Arch it is the `limine` package), when its tool
/// runs on this machine; then the `limine` program on this machine with its data directory.
package struct LimineInstallation: Sendable {
    package let tool: String
    package let dataDirectory: String
    package let version: String
    /// "the image" or "this machine", for messages.
    package let origin: String

    package static let requiredFiles = ["limine-bios.sys", "BOOTX64.EFI"]

    package static func locate(imageRoot: String?) throws -> LimineInstallation {
        var tried: [String] = []
        if let imageRoot {
            let tool = imageRoot + "/usr/bin/limine"
            if Files.exists(tool) {
                switch check(tool: tool, data: imageRoot + "/usr/share/limine", origin: "the image") {
                case .success(let installation): return installation
                case .failure(let reason): tried.append(reason.message)
                }
            } else {
                tried.append("the image has no /usr/bin/limine (its recipe does not install the `limine` package)")
            }
        }
        if let tool = Command.find("limine") {
            let printed = try? Command(tool, ["--print-datadir"]).output()
            let candidates = [printed, "/usr/share/limine", "/usr/local/share/limine"].compactMap { $0 }
            let data = candidates.first { directory in requiredFiles.allSatisfy { Files.exists(directory + "/" + $0) } } ?? candidates[0]
            switch check(tool: tool, data: data, origin: "this machine") {
            case .success(let installation): return installation
            case .failure(let reason): tried.append(reason.message)
            }
        } else {
            tried.append("this machine has no `limine` program")
        }
        throw UserError("no Limine to install: " + tried.joined(separator: "; "))
    }

    static func check(tool: String, data: String, origin: String) -> Result<LimineInstallation, UserError> {
        let result = try? Command(tool, ["--version"]).run(check: false)
        guard let result, result.status == 0, let line = result.standardOutput.split(separator: "\n").first, line.hasPrefix("Limine ") else {
            return .failure(UserError("\(tool) (from \(origin)) does not run on this machine: \(result?.combinedTail(lines: 3) ?? "it cannot be started")"))
        }
        for file in requiredFiles where !Files.exists(data + "/" + file) {
            return .failure(UserError("\(data) (from \(origin)) has no \(file)"))
        }
        return .success(LimineInstallation(tool: tool, dataDirectory: data, version: String(line.dropFirst("Limine ".count)), origin: origin))
    }
}
