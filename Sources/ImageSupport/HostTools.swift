import SystemSupport

/// Checks for host tools before a stage starts, naming the Debian package.
package enum HostTools {
    package static let packages: [String: String] = [
        "mkfs.btrfs": "btrfs-progs", "mkfs.fat": "dosfstools", "mmd": "mtools", "mcopy": "mtools", "mren": "mtools", "mdir": "mtools",
        "grub-install": "grub-pc-bin", "grub-mkimage": "grub-efi-amd64-bin", "makepkg": "makepkg",
        "repo-add": "pacman-package-manager", "qemu-system-x86_64": "qemu-system-x86", "ldd": "libc-bin",
        "pacman-key": "pacman-package-manager", "limine": "limine (not in Debian 12; recipes/pkgbuilds/limine packages it)",
    ]

    /// Fails naming each missing tool and its Debian package.
    package static func require(_ names: [String], for stage: String) throws {
        let missing = names.filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            let list = missing.map { "\($0) (\(packages[$0] ?? $0))" }.joined(separator: ", ")
            throw UserError("\(stage) needs \(list); `make deps` installs them")
        }
    }
}
