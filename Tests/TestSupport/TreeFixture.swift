import BootEntries
import Foundation
import SnapshotTree
import SystemSupport

/// A real btrfs filesystem holding a rastOS layout whose snapshot 0 is a tiny busybox root.
package final class TreeFixture {
    package let fs: BtrfsFixture
    package let layout: Layout
    package let store: SnapshotStore

    package static let settings = BootMenuSettings(loader: .grub, filesystemUUID: "11111111-2222-4333-8444-555555555555",
                                           rootPartitionUUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                           kernelArguments: "console=ttyS0")

    /// The FAT image standing in for the ESP of a Limine tree (nil for GRUB).
    package let espImage: String?

    /// `loader: .limine` adds a 64 MiB FAT image as the ESP, reached through mtools.
    package init(bootedSlot: String? = nil, loader: BootLoader = .grub) throws {
        try Require.programs("busybox", "chroot")
        fs = try BtrfsFixture(size: "512M")
        layout = Layout(top: fs.mountPoint)
        var settings = TreeFixture.settings
        settings.loader = loader
        if loader == .limine {
            try Require.programs("mkfs.fat", "mdir", "mmd", "mcopy", "mren", "mdel")
            let image = fs.directory.appending("esp.img")
            try Command("mkfs.fat", ["-C", "-F", "32", "-n", "RASTESP", image, String(64 * 1024)]).run()
            espImage = image
        } else {
            espImage = nil
        }
        let builder = SnapshotStore(layout: layout, templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
        let root = try builder.beginBase()
        try TreeFixture.populate(root)
        try builder.commitBase(boot: settings)
        builder.unlock()
        store = SnapshotStore(layout: layout, bootedSlot: bootedSlot,
                              templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
        if let espImage { store.espProvider = { MtoolsESP(image: espImage) } }
    }

    /// The ESP of a Limine tree.
    package var esp: ESPVolume? { espImage.map { MtoolsESP(image: $0) } }

    package static func populate(_ root: String) throws {
        for dir in ["bin", "etc", "boot", "proc", "sys", "dev", "run", "tmp", "var", "home", "usr/share"] {
            try Files.createDirectory(root + "/" + dir)
        }
        try Command("cp", ["/bin/busybox", root + "/bin/busybox"]).run()
        for tool in ["sh", "cat", "echo", "touch", "rm", "ls", "mkdir", "false", "true", "test"] {
            try Command("ln", ["-s", "busybox", root + "/bin/" + tool]).run()
        }
        try Files.write(root + "/etc/hostname", string: "base\n")
        try Files.write(root + "/boot/vmlinuz-linux-test", string: "not really a kernel\n")
    }

    package func file(_ id: Int, _ path: String) -> String? {
        try? Files.readString(layout.root(id) + path)
    }

    package func close() {
        store.unlock()
        fs.close()
    }
}

