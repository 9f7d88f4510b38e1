import Foundation
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// A btrfs filesystem laid out the way astOS's installer and its `ast` commands leave it
/// (ASTOS.md; astOS's main.py and astpk.py): no rast state at all.
///
/// History it stands for: the installer made snapshot 0 and deployed it to slot `tmp`;
/// `ast branch 0` made snapshot 1; `ast deploy 1` put it into slot `tmp0`, made that the
/// default subvolume and wrote grub.cfg (first entry: snapshot 1 in `tmp0`, then "astOS last
/// booted deployment (snapshot 0)" in `tmp`); after booting it, `ast etc-update` saved the
/// running /etc into etc-1, so etc-1's fstab names slot `tmp0`, as astOS's sed left it.
package final class AstosFixture {
    package let fs: BtrfsFixture
    package let layout: Layout
    package let filesystemUUID: String
    package static let efiUUID = "ABCD-1234"

    package init() throws {
        try Require.programs("busybox", "btrfs")
        fs = try BtrfsFixture(size: "512M", label: "astos")
        layout = Layout(top: fs.mountPoint)
        do {
            filesystemUUID = try Command("blkid", ["-s", "UUID", "-o", "value", fs.imagePath]).output().lowercased()
            try build()
        } catch {
            fs.close()
            throw error
        }
    }

    private func build() throws {
        let top = layout.top
        for name in ["@.snapshots", "@home", "@var", "@etc", "@boot"] { try btrfs("subvolume", "create", top + "/" + name) }
        for directory in ["ast", "boot", "etc", "root", "rootfs", "tmp", "var", "ast/root", "ast/tmp", "ast/snapshots"] {
            try Files.createDirectory(layout.snapshots + "/" + directory)
        }

        // Snapshot 0: what pacstrap put into @ (a busybox root here), its /etc and /boot.
        let staging = top + "/@"
        try btrfs("subvolume", "create", staging)
        try TreeFixture.populate(staging)
        try Files.createDirectory(staging + "/usr/share/ast/db/local")
        try Files.write(staging + "/usr/share/ast/db/local/ALPM_DB_VERSION", string: "9\n")
        try Files.write(staging + "/etc/fstab", string: fstab(slot: "tmp"))
        try Files.write(staging + "/etc/ast.conf", string: "aur::False\n")
        for name in ["vmlinuz-linux", "initramfs-linux.img", "initramfs-linux-fallback.img"] {
            try Files.write(staging + "/boot/" + name, string: "\(name) of the astOS fixture\n")
        }
        try btrfs("subvolume", "snapshot", "-r", staging, layout.root(0))
        for (part, directory) in [(layout.etc(0), "/etc"), (layout.boot(0), "/boot")] {
            let work = part + "-work"
            try btrfs("subvolume", "create", work)
            try TreeCopy.copyContents(of: staging + directory, into: work)
            try btrfs("subvolume", "snapshot", "-r", work, part)
            try btrfs("subvolume", "delete", work)
        }

        // Slot tmp: snapshot 0 deployed by the installer.
        try deploy(0, to: "tmp")
        // ast branch 0 → snapshot 1; ast deploy 1 → slot tmp0, the default.
        for (source, copy) in zip(layout.triple(0), layout.triple(1)) {
            try btrfs("subvolume", "snapshot", "-r", source, copy)
        }
        try deploy(1, to: "tmp0")
        try btrfs("subvolume", "set-default", layout.root("tmp0"))
        // ast etc-update while slot tmp0 runs: etc-1 becomes a copy of the running /etc.
        try btrfs("subvolume", "delete", layout.etc(1))
        try btrfs("subvolume", "snapshot", "-r", layout.etc("tmp0"), layout.etc(1))
        try btrfs("subvolume", "delete", staging)

        try Files.createDirectory(top + "/@boot/grub")
        // grub-mkconfig writes grub.cfg under umask 077: only root reads it.
        try Files.write(layout.grubConfig, string: grubConfig(next: ("tmp0", 1), previous: ("tmp", 0)), mode: 0o600)
        try Files.write(layout.astosDirectory + "/fstree", string: "{'name': 'root', 'children': [{'name': '0', 'children': [{'name': 1}]}]}")
        try Files.write(layout.astosDirectory + "/snapshots/1-desc", string: "desktop\n")
        try Files.write(layout.astosDirectory + "/part", string: filesystemUUID + "\n")
        try Files.write(layout.astosDirectory + "/upstate", string: "0 2024-01-01\n")
    }

    private func btrfs(_ arguments: String...) throws {
        try Command("btrfs", arguments).run()
    }

    /// astOS's deploy of `id` into `slot`: writable snapshots of the triple, /etc and /boot
    /// copied into the root, the slot names in fstab edited, the snapshot number recorded.
    private func deploy(_ id: Int, to slot: String) throws {
        for (source, copy) in zip(layout.triple(id), layout.triple(slot)) {
            try btrfs("subvolume", "snapshot", source, copy)
        }
        // The root's /etc and /boot already hold what etc-N and boot-N hold here.
        let root = layout.root(slot)
        for path in [root + "/etc/fstab", layout.etc(slot) + "/fstab"] {
            try Files.write(path, string: fstab(slot: slot))
        }
        try Files.write(root + "/usr/share/ast/snap", string: "\(id)")
    }

    /// astOS's /etc/fstab for a slot (ASTOS.md 1.4).
    package func fstab(slot: String) -> String {
        let uuid = "UUID=\(filesystemUUID)"
        return """
            \(uuid) / btrfs subvol=@.snapshots/rootfs/snapshot-\(slot),compress=zstd,noatime,ro 0 0
            \(uuid) /.snapshots btrfs subvol=@.snapshots,compress=zstd,noatime 0 0
            \(uuid) /home btrfs subvol=@home,compress=zstd,noatime 0 0
            \(uuid) /var btrfs subvol=@var,compress=zstd,noatime 0 0
            \(uuid) /etc btrfs subvol=@.snapshots/etc/etc-\(slot),compress=zstd,noatime 0 0
            \(uuid) /boot btrfs subvol=@.snapshots/boot/boot-\(slot),compress=zstd,noatime 0 0
            UUID=\(Self.efiUUID) /boot/efi vfat umask=0077 0 2
            /.snapshots/ast/root /root none bind 0 0
            /.snapshots/ast/tmp /tmp none bind 0 0

            """
    }

    /// grub.cfg as grub-mkconfig writes it inside astOS's chroot, with the slot names edited
    /// in, the first entry renamed and the previous deployment appended (ASTOS.md 1.5).
    package func grubConfig(next: (slot: String, snapshot: Int), previous: (slot: String, snapshot: Int)?) -> String {
        func entry(_ title: String, slot: String) -> String {
            """
            menuentry '\(title)' --class arch --class gnu-linux --class gnu --class os $menuentry_id_option 'gnulinux-simple-\(filesystemUUID)' {
            \tload_video
            \tset gfxpayload=keep
            \tinsmod gzio
            \tinsmod part_gpt
            \tinsmod btrfs
            \tsearch --no-floppy --fs-uuid --set=root \(filesystemUUID)
            \techo\t'Loading Linux linux ...'
            \tlinux\t/@.snapshots/rootfs/snapshot-\(slot)/boot/vmlinuz-linux root=UUID=\(filesystemUUID) rw rootflags=subvol=@.snapshots/rootfs/snapshot-\(slot)  loglevel=3 quiet
            \techo\t'Loading initial ramdisk ...'
            \tinitrd\t/@.snapshots/rootfs/snapshot-\(slot)/boot/initramfs-linux.img
            }

            """
        }
        var text = """
            #
            # DO NOT EDIT THIS FILE
            #
            # It is automatically generated by grub-mkconfig using templates
            # from /etc/grub.d and settings from /etc/default/grub
            #

            ### BEGIN /etc/grub.d/00_header ###
            insmod part_gpt
            insmod part_msdos
            if [ -s $prefix/grubenv ]; then
              load_env
            fi
            set default="0"
            terminal_input console
            terminal_output console
            if [ x$feature_timeout_style = xy ] ; then
              set timeout_style=menu
              set timeout=5
            # Fallback normal timeout code in case the timeout_style feature is
            # unavailable.
            else
              set timeout=5
            fi
            ### END /etc/grub.d/00_header ###

            ### BEGIN /etc/grub.d/10_linux ###

            """
        text += entry("astOS Linux snapshot \(next.snapshot)", slot: next.slot)
        text += "\n### END /etc/grub.d/10_linux ###\n"
        if let previous {
            text += entry("astOS last booted deployment (snapshot \(previous.snapshot))", slot: previous.slot)
        }
        return text
    }

    /// Lets an unprivileged user reach the filesystem (the fixture's directories are 0700).
    package func openToEveryone() {
        for path in [fs.directory.path, fs.mountPoint] { chmod(path, 0o755) }
    }

    /// Every path under the top level with its size and modification time, for "nothing
    /// changed" comparisons.
    package func listing() throws -> String {
        try Command("find", [layout.top, "-printf", "%p %s %T@ %m\n"]).output().split(separator: "\n").sorted().joined(separator: "\n")
    }

    package func close() { fs.close() }
}
