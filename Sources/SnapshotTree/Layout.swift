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
public struct Layout: Sendable {
    public static let slots = ["tmp", "tmp0"]
    public static let workingCopyMarker = "-chr"

    /// The mount point of the filesystem's top level.
    public let top: String
    /// Where @.snapshots is: below `top`, or its own mount (/.snapshots on a running system,
    /// enough for the commands that only read the tree).
    public let snapshots: String

    public init(top: String) {
        self.top = top.count > 1 && top.hasSuffix("/") ? String(top.dropLast()) : top
        snapshots = self.top + "/@.snapshots"
    }

    /// A read-only view through a mounted @.snapshots (no access to the top level).
    public init(mountedSnapshots: String) {
        top = mountedSnapshots
        snapshots = mountedSnapshots
    }

    public var stateDirectory: String { snapshots + "/rast" }
    public var stateFile: String { stateDirectory + "/state.json" }
    public var journalFile: String { stateDirectory + "/journal.json" }
    public var lockFile: String { stateDirectory + "/lock" }
    public var home: String { top + "/@home" }
    public var variable: String { top + "/@var" }
    public var bootLoader: String { top + "/@boot" }
    public var grubConfig: String { bootLoader + "/grub/grub.cfg" }
    /// A limine.conf in @boot, as an installation made by other tools may have it; rast's own
    /// Limine menu is on the ESP (`LimineLayout.configPath`), since Limine reads FAT only.
    public var limineConfig: String { bootLoader + "/limine.conf" }

    /// astOS's own state, read when adopting an astOS installation.
    public var astosDirectory: String { snapshots + "/ast" }

    public func root(_ name: String) -> String { snapshots + "/rootfs/snapshot-\(name)" }
    public func etc(_ name: String) -> String { snapshots + "/etc/etc-\(name)" }
    public func boot(_ name: String) -> String { snapshots + "/boot/boot-\(name)" }

    /// The three subvolumes of a snapshot, slot or working copy.
    public func triple(_ name: String) -> [String] { [root(name), etc(name), boot(name)] }

    public func root(_ id: Int) -> String { root(String(id)) }
    public func etc(_ id: Int) -> String { etc(String(id)) }
    public func boot(_ id: Int) -> String { boot(String(id)) }
    public func triple(_ id: Int) -> [String] { triple(String(id)) }

    /// Names of working copies.
    public static func workingCopy(of id: Int) -> String { "chr\(id)" }
    static func commitCopy(of id: Int) -> String { "chr\(id).commit" }
    static func deployCopy(slot: String) -> String { "chrdeploy.\(slot)" }

    /// Path from the top level, as GRUB and rootflags=subvol= want it.
    public func relative(_ path: String) -> String {
        path.hasPrefix(top + "/") ? String(path.dropFirst(top.count + 1)) : path
    }

    public static func otherSlot(_ slot: String) -> String { slot == "tmp" ? "tmp0" : "tmp" }
}
