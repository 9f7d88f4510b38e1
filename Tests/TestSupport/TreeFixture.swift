import BootEntries
import Foundation
import SnapshotTree
import SystemSupport

/// A real btrfs filesystem holding a rastOS layout whose snapshot 0 is a tiny busybox root.
public final class TreeFixture {
    public let fs: BtrfsFixture
    public let layout: Layout
    public let store: SnapshotStore

    public static let settings = BootMenuSettings(loader: .grub, filesystemUUID: "11111111-2222-4333-8444-555555555555",
                                           rootPartitionUUID: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                           kernelArguments: "console=ttyS0")

    public init(bootedSlot: String? = nil) throws {
        try Require.programs("busybox", "chroot")
        fs = try BtrfsFixture(size: "512M")
        layout = Layout(top: fs.mountPoint)
        let builder = SnapshotStore(layout: layout, templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
        let root = try builder.beginBase()
        try TreeFixture.populate(root)
        try builder.commitBase(boot: TreeFixture.settings)
        builder.unlock()
        store = SnapshotStore(layout: layout, bootedSlot: bootedSlot,
                              templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
    }

    public static func populate(_ root: String) throws {
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

    public func file(_ id: Int, _ path: String) -> String? {
        try? Files.readString(layout.root(id) + path)
    }

    public func close() {
        store.unlock()
        fs.close()
    }
}

