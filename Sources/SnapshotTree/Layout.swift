import BootEntries
import Foundation

/// The astOS-compatible layout under the top level (subvolid=5) of a rastOS btrfs filesystem.
///
/// ```
/// TOP/
///   @.snapshots/                      mounted at /.snapshots
///     rootfs/snapshot-N               root of snapshot N            (read-only)
///     etc/etc-N   boot/boot-N         its /etc and /boot            (read-only)
///     rootfs/snapshot-tmp, -tmp0      the two deployment slots (A/B, writable); the btrfs
///     etc/etc-tmp...  boot/boot-tmp... default subvolume is the slot that boots next
///     */…-chrKEY                      working copies: chrN while N changes (N's lock),
///                                     chrN.commit and chrdeploy.SLOT while a change commits
///     rast/state.json                 the tree, descriptions, deployments (format-versioned)
///     rast/journal.json               present only while a change is being applied
///     rast/lock                       serialises rast invocations
///   @home  @var  @boot (GRUB's files and grub.cfg)
/// ```
/// Snapshot N is the triple (snapshot-N, etc-N, boot-N); etc-N is authoritative for /etc,
/// as in astOS, and is copied into a working copy's root when the copy is made.
package struct Layout: Sendable {
    package static let slots = ["tmp", "tmp0"]
    package static let workingCopyMarker = "-chr"

    /// The mount point of the filesystem's top level.
    package let top: String
    /// Where @.snapshots is: below `top`, or its own mount (/.snapshots on a running system,
    /// enough for the commands that only read the tree).
    package let snapshots: String

    package init(top: String) {
        self.top = top.count > 1 && top.hasSuffix("/") ? String(top.dropLast()) : top
        snapshots = self.top + "/@.snapshots"
    }

    /// A read-only view through a mounted @.snapshots (no access to the top level).
    package init(mountedSnapshots: String) {
        top = mountedSnapshots
        snapshots = mountedSnapshots
    }

    package var stateDirectory: String { snapshots + "/rast" }
    package var stateFile: String { stateDirectory + "/state.json" }
    package var journalFile: String { stateDirectory + "/journal.json" }
    package var lockFile: String { stateDirectory + "/lock" }
    package var home: String { top + "/@home" }
    package var variable: String { top + "/@var" }
    package var bootLoader: String { top + "/@boot" }
    package var grubConfig: String { bootLoader + "/grub/grub.cfg" }
    /// A limine.conf in @boot, as an installation made by other tools may have it; rast's own
    /// Limine menu is on the ESP (`LimineLayout.configPath`), since Limine reads FAT only.
    package var limineConfig: String { bootLoader + "/limine.conf" }

    /// astOS's own state, read when adopting an astOS installation.
    package var astosDirectory: String { snapshots + "/ast" }

    package func root(_ name: String) -> String { snapshots + "/rootfs/snapshot-\(name)" }
    package func etc(_ name: String) -> String { snapshots + "/etc/etc-\(name)" }
    package func boot(_ name: String) -> String { snapshots + "/boot/boot-\(name)" }

    /// The three subvolumes of a snapshot, slot or working copy.
    package func triple(_ name: String) -> [String] { [root(name), etc(name), boot(name)] }

    package func root(_ id: Int) -> String { root(String(id)) }
    package func etc(_ id: Int) -> String { etc(String(id)) }
    package func boot(_ id: Int) -> String { boot(String(id)) }
    package func triple(_ id: Int) -> [String] { triple(String(id)) }

    /// Names of working copies.
    package static func workingCopy(of id: Int) -> String { "chr\(id)" }
    static func commitCopy(of id: Int) -> String { "chr\(id).commit" }
    static func deployCopy(slot: String) -> String { "chrdeploy.\(slot)" }

    /// Path from the top level, as GRUB and rootflags=subvol= want it.
    package func relative(_ path: String) -> String {
        path.hasPrefix(top + "/") ? String(path.dropFirst(top.count + 1)) : path
    }

    package static func otherSlot(_ slot: String) -> String { slot == "tmp" ? "tmp0" : "tmp" }
}
