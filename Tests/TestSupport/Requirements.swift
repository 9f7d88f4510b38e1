import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a test needs from the machine. A missing requirement is a test failure with a clear
/// message (CI runs as root with every package installed), never a silent pass.
package struct MissingRequirement: Error, CustomStringConvertible {
    package let description: String
}

package enum Require {
    /// Root, for mounts, loop devices and btrfs ioctls.
    package static func root() throws {
        guard geteuid() == 0 else {
            throw MissingRequirement(description: "this test needs root (mounts, loop devices, btrfs); run the tests as root, as CI does with `bash .ci/run`")
        }
    }

    /// Programs in PATH; the message names the Debian package that provides each.
    package static func programs(_ names: String...) throws {
        let missing = names.filter { Command.find($0) == nil }
        guard missing.isEmpty else {
            let hints = missing.map { "\($0) (apt-get install \(debianPackage[$0] ?? $0))" }
            throw MissingRequirement(description: "this test needs \(hints.joined(separator: ", ")); `make deps` installs everything")
        }
    }

    /// Loop devices (root plus /dev/loop-control).
    package static func loopDevices() throws {
        try root()
        guard access("/dev/loop-control", R_OK | W_OK) == 0 else {
            throw MissingRequirement(description: "this test needs loop devices, but /dev/loop-control is not usable")
        }
    }

    package static func file(_ path: String, hint: String) throws {
        guard Files.exists(path) else {
            throw MissingRequirement(description: "this test needs \(path) (\(hint))")
        }
    }

    /// An environment variable that would change what the test checks must not be set.
    package static func unset(_ variable: String, because reason: String) throws {
        if let value = ProcessInfo.processInfo.environment[variable] {
            throw MissingRequirement(description: "this test needs \(variable) unset (it is \(value)): \(reason)")
        }
    }

    static let debianPackage: [String: String] = [
        "mkfs.btrfs": "btrfs-progs", "btrfs": "btrfs-progs", "makepkg": "makepkg",
        "repo-add": "pacman-package-manager", "pacman": "pacman-package-manager",
        "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
        "sgdisk": "gdisk", "mkfs.fat": "dosfstools", "mcopy": "mtools", "mmd": "mtools",
        "grub-install": "grub-pc-bin grub2-common", "grub-mkimage": "grub-efi-amd64-bin",
        "bsdtar": "libarchive-tools", "git": "git", "gpg": "gnupg", "partx": "util-linux",
        "pacstrap": "arch-install-scripts", "zstd": "zstd", "blkid": "util-linux",
        "sfdisk": "fdisk", "busybox": "busybox-static",
        "skopeo": "skopeo", "umoci": "umoci", "docker-registry": "docker-registry", "openssl": "openssl", "crun": "crun",
        "s6-svscan": "s6", "s6-svstat": "s6", "dropbear": "dropbear-bin", "patchelf": "patchelf",
        "ssh": "openssh-client", "ssh-keygen": "openssh-client",
        "mdir": "mtools", "mren": "mtools", "mdel": "mtools", "fsck.fat": "dosfstools",
    ]
}
