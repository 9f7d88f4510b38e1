import Foundation
import SystemSupport

/// One bootable deployment: a slot (`tmp` or `tmp0`) holding a copy of snapshot N.
package struct BootEntry: Sendable, Equatable, Codable {
    package var title: String
    package var slot: String
    package var snapshot: Int
    /// Kernel file name inside the slot's /boot (e.g. `vmlinuz-linux-rast-base`).
    package var kernel: String
    package var initrd: String?
    /// Where Limine reads the kernel and initramfs: their copies on the ESP (`LimineLayout`),
    /// since Limine cannot read btrfs. Unused by GRUB, which reads the slot's /boot.
    package var espKernel: String?
    package var espInitrd: String?

    package init(title: String, slot: String, snapshot: Int, kernel: String, initrd: String? = nil,
                espKernel: String? = nil, espInitrd: String? = nil) {
        self.title = title
        self.slot = slot
        self.snapshot = snapshot
        self.kernel = kernel
        self.initrd = initrd
        self.espKernel = espKernel
        self.espInitrd = espInitrd
    }
}

/// Where Limine's files live on the ESP (FAT). Limine 8 looks for its menu at /limine.conf,
/// /limine/limine.conf, /boot/limine.conf, /boot/limine/limine.conf and /EFI/BOOT/limine.conf,
/// in that order, on the partition it was started from first; rast uses the fourth, where the
/// BIOS stage 3 also lives.
///
/// ```
/// ESP/
///   EFI/BOOT/BOOTX64.EFI             Limine for UEFI (the removable path)
///   boot/limine/limine-bios.sys      Limine's BIOS stage 3 (stages 1 and 2: MBR, BIOS boot partition)
///   boot/limine/limine.conf          the menu rast writes (limine.conf.new while it is replaced)
///   rastos/HASH-vmlinuz-…            each deployment's kernel and initramfs, named by the first
///   rastos/HASH-initramfs-….img      16 hex digits of their SHA-256 (.tmp while being copied)
/// ```
/// Content names make a copy reusable by both slots and never rewritten in place: a file under
/// its final name is complete, and the menu only ever names complete files.
package enum LimineLayout {
    package static let configPath = "boot/limine/limine.conf"
    package static let configDirectory = "boot/limine"
    package static let stage3Path = "boot/limine/limine-bios.sys"
    package static let efiDirectory = "EFI/BOOT"
    package static let efiPath = "EFI/BOOT/BOOTX64.EFI"
    package static let kernelDirectory = "rastos"

    /// The ESP path of a kernel or initramfs file `name` whose SHA-256 is `sha256`.
    package static func kernelPath(name: String, sha256: String) -> String {
        "\(kernelDirectory)/\(sha256.prefix(16))-\(name)"
    }

    /// The SHA-256 prefix a kernel file's ESP name carries, or nil when it is not such a name.
    package static func hashPrefix(ofKernelPath path: String) -> String? {
        guard path.hasPrefix(kernelDirectory + "/") else { return nil }
        let name = path.dropFirst(kernelDirectory.count + 1)
        let prefix = name.prefix(16)
        guard prefix.count == 16, prefix.allSatisfy(\.isHexDigit), name.dropFirst(16).hasPrefix("-") else { return nil }
        return String(prefix)
    }
}

package enum BootLoader: String, Sendable, Codable, CaseIterable {
    case grub, limine
}

/// The boot menu of a rastOS disk: what the boot loader configuration is generated from.
/// The image builder and `rast deploy` both fill one of these and render it, so the first
/// boot and every later deployment use the same code.
package struct BootMenu: Sendable, Equatable, Codable {
    package var distributor: String
    /// The btrfs filesystem UUID (GRUB finds the root with it).
    package var filesystemUUID: String
    /// The root partition's PARTUUID (the kernel cannot resolve `root=UUID=` without an initramfs).
    package var rootPartitionUUID: String
    /// Extra kernel arguments (`console=ttyS0`, the recipe's kernel_cmdline).
    package var kernelArguments: String
    /// The first entry boots by default.
    package var entries: [BootEntry]
    package var timeoutSeconds: Int
    package var serialConsole: Bool
    /// The kernel's `root=` value; nil: `PARTUUID=rootPartitionUUID`.
    package var rootDevice: String?

    package init(distributor: String = "rastOS", filesystemUUID: String, rootPartitionUUID: String,
                kernelArguments: String = "console=ttyS0", entries: [BootEntry] = [], timeoutSeconds: Int = 3,
                serialConsole: Bool = true) {
        self.distributor = distributor
        self.filesystemUUID = filesystemUUID
        self.rootPartitionUUID = rootPartitionUUID
        self.kernelArguments = kernelArguments
        self.entries = entries
        self.timeoutSeconds = timeoutSeconds
        self.serialConsole = serialConsole
    }

    /// The subvolume (path from the top level) that is the root of a slot.
    package static func rootSubvolume(slot: String) -> String { "@.snapshots/rootfs/snapshot-\(slot)" }
    /// The subvolume holding a slot's /boot.
    package static func bootSubvolume(slot: String) -> String { "@.snapshots/boot/boot-\(slot)" }

    /// The kernel command line of an entry.
    package func commandLine(for entry: BootEntry) -> String {
        var parts = ["root=\(rootDevice ?? "PARTUUID=\(rootPartitionUUID)")", "rootflags=subvol=\(BootMenu.rootSubvolume(slot: entry.slot))",
                     "ro", "rootwait", "rast.slot=\(entry.slot)"]
        if !kernelArguments.isEmpty { parts.append(kernelArguments) }
        return parts.joined(separator: " ")
    }
}

package enum BootTemplateError: Error, CustomStringConvertible {
    case missing(path: String)
    case unknownPlaceholder(template: String, name: String)
    case unsafeValue(field: String, value: String)
    case notOnESP(title: String, file: String)

    package var description: String {
        switch self {
        case .missing(let path):
            return "boot loader template \(path) is missing (set RAST_DATA_DIR to the directory holding bootloader/)"
        case .unknownPlaceholder(let template, let name):
            return "boot loader template \(template) uses unknown placeholder {{\(name)}}"
        case .notOnESP(let title, let file):
            return "boot entry '\(title)': Limine reads kernels from the ESP only, and no ESP copy of \(file) was given"
        case .unsafeValue(let field, let value):
            return "boot menu \(field) '\(value)' contains characters that cannot appear in a boot loader configuration"
        }
    }
}

/// The templates under `bootloader/` (in the repository, or /usr/share/rast/bootloader in an image).
package struct BootTemplates: Sendable {
    package let directory: String

    package init(directory: String = DataDirectory.locate() + "/bootloader") {
        self.directory = directory
    }

    func load(_ name: String) throws -> String {
        let path = directory + "/" + name
        guard let text = try? Files.readString(path) else { throw BootTemplateError.missing(path: path) }
        return text
    }

    /// Replaces `{{name}}` placeholders; an unknown placeholder is an error, not silent text.
    static func fill(_ template: String, name: String, values: [String: String]) throws -> String {
        var output = ""
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                output += rest[open.lowerBound...]
                return output
            }
            let key = String(rest[open.upperBound..<close.lowerBound])
            guard let value = values[key] else { throw BootTemplateError.unknownPlaceholder(template: name, name: key) }
            output += value
            rest = rest[close.upperBound...]
        }
        output += rest
        return output
    }
}

/// Renders boot loader configurations from a `BootMenu`.
package enum BootConfiguration {
    static let generatedNote = "Generated by rast \(RastVersion.string); do not edit (changes are overwritten)."

    /// GRUB's grub.cfg (read from @boot/grub/grub.cfg by both the BIOS and the UEFI image).
    package static func grub(_ menu: BootMenu, templates: BootTemplates = BootTemplates()) throws -> String {
        try validate(menu)
        let entryTemplate = try templates.load("grub/entry.cfg")
        var entries: [String] = []
        for entry in menu.entries {
            let initrd = entry.initrd.map { "    initrd /\(BootMenu.bootSubvolume(slot: entry.slot))/\($0)\n" } ?? ""
            entries.append(try BootTemplates.fill(entryTemplate, name: "grub/entry.cfg", values: [
                "title": entry.title, "id": "rast-\(entry.slot)", "fs_uuid": menu.filesystemUUID,
                "boot_path": BootMenu.bootSubvolume(slot: entry.slot), "kernel": entry.kernel,
                "cmdline": menu.commandLine(for: entry), "initrd": initrd,
            ]))
        }
        let serial = menu.serialConsole ? try templates.load("grub/serial.cfg") : ""
        return try BootTemplates.fill(try templates.load("grub/grub.cfg"), name: "grub/grub.cfg", values: [
            "generated": generatedNote, "timeout": String(menu.timeoutSeconds), "serial": serial,
            "entries": entries.joined(separator: "\n"),
        ])
    }

    /// The configuration embedded in GRUB's removable UEFI image.
    package static func grubEarlyConfig(filesystemUUID: String, templates: BootTemplates = BootTemplates()) throws -> String {
        try BootTemplates.fill(try templates.load("grub/early.cfg"), name: "grub/early.cfg", values: ["fs_uuid": filesystemUUID])
    }

    /// Limine's limine.conf: each entry loads the copies of its slot's kernel and initramfs on
    /// the ESP (`BootEntry.espKernel`, `espInitrd`).
    package static func limine(_ menu: BootMenu, templates: BootTemplates = BootTemplates()) throws -> String {
        try validate(menu)
        let entryTemplate = try templates.load("limine/entry.conf")
        var entries: [String] = []
        for entry in menu.entries {
            guard let kernel = entry.espKernel else { throw BootTemplateError.notOnESP(title: entry.title, file: entry.kernel) }
            var initrd = ""
            if let name = entry.initrd {
                guard let path = entry.espInitrd else { throw BootTemplateError.notOnESP(title: entry.title, file: name) }
                initrd = "    module_path: boot():/\(path)"
            }
            entries.append(try BootTemplates.fill(entryTemplate, name: "limine/entry.conf", values: [
                "title": entry.title, "slot": entry.slot, "kernel_path": kernel,
                "cmdline": menu.commandLine(for: entry), "initrd": initrd,
            ]))
        }
        return try BootTemplates.fill(try templates.load("limine/limine.conf"), name: "limine/limine.conf", values: [
            "generated": generatedNote, "timeout": String(menu.timeoutSeconds),
            "serial": menu.serialConsole ? "yes" : "no", "entries": entries.joined(separator: "\n"),
        ])
    }

    /// Titles, UUIDs and file names end up inside quoted configuration text.
    static func validate(_ menu: BootMenu) throws {
        func check(_ field: String, _ value: String, allowSpaces: Bool) throws {
            let forbidden: Set<Character> = allowSpaces ? ["'", "\n", "\\", "{", "}"] : ["'", "\n", "\\", "{", "}", " ", "\""]
            if value.contains(where: { forbidden.contains($0) }) { throw BootTemplateError.unsafeValue(field: field, value: value) }
        }
        try check("filesystem UUID", menu.filesystemUUID, allowSpaces: false)
        try check("root PARTUUID", menu.rootPartitionUUID, allowSpaces: false)
        if let rootDevice = menu.rootDevice { try check("root device", rootDevice, allowSpaces: false) }
        try check("kernel arguments", menu.kernelArguments, allowSpaces: true)
        for entry in menu.entries {
            try check("title", entry.title, allowSpaces: true)
            try check("kernel", entry.kernel, allowSpaces: false)
            try check("slot", entry.slot, allowSpaces: false)
            if let initrd = entry.initrd { try check("initrd", initrd, allowSpaces: false) }
            for path in [entry.espKernel, entry.espInitrd].compactMap({ $0 }) { try check("ESP path", path, allowSpaces: false) }
        }
    }
}
