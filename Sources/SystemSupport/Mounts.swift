import CLinux
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of /proc/self/mountinfo.
package struct MountEntry: Sendable, Equatable {
    package let mountID: Int
    package let root: String        // the path inside the filesystem (a btrfs subvolume path)
    package let mountPoint: String
    package let options: String
    package let fileSystemType: String
    package let source: String
    package let superOptions: String

    /// The `subvol=` value for btrfs mounts.
    package var subvolume: String? {
        for option in superOptions.split(separator: ",") where option.hasPrefix("subvol=") {
            return String(option.dropFirst("subvol=".count))
        }
        return nil
    }
}

/// The mount table of this process's namespace.
package struct MountTable: Sendable {
    package let entries: [MountEntry]

    package static func read() throws -> MountTable {
        let text = try Files.readString("/proc/self/mountinfo")
        return MountTable(entries: text.split(separator: "\n").compactMap(parse))
    }

    /// Mounts at or below `path`, deepest first (the order to unmount them in).
    package func mounts(under path: String) -> [MountEntry] {
        let base = Mounts.normalize(path)
        return entries.filter { entry in
            entry.mountPoint == base || entry.mountPoint.hasPrefix(base == "/" ? "/" : base + "/")
        }.sorted { $0.mountPoint.count > $1.mountPoint.count }
    }

    /// The entry that is mounted on `path` itself (the last one when stacked).
    package func entry(at path: String) -> MountEntry? {
        let base = Mounts.normalize(path)
        return entries.last { $0.mountPoint == base }
    }

    private static func parse(_ line: Substring) -> MountEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: false)
        guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 3 else { return nil }
        return MountEntry(
            mountID: Int(fields[0]) ?? -1,
            root: unescape(fields[3]),
            mountPoint: unescape(fields[4]),
            options: String(fields[5]),
            fileSystemType: String(fields[dash + 1]),
            source: unescape(fields[dash + 2]),
            superOptions: fields.count > dash + 3 ? String(fields[dash + 3]) : "")
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    private static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var chars = Array(field.utf8)[...]
        while let c = chars.popFirst() {
            if c == UInt8(ascii: "\\"), chars.count >= 3,
               let value = UInt8(String(decoding: chars.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                chars = chars.dropFirst(3)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// mount(2) and umount2(2), with errors that name the source, target and options.
package enum Mounts {
    package static func normalize(_ path: String) -> String {
        let standardized = (path as NSString).standardizingPath
        return standardized.count > 1 && standardized.hasSuffix("/") ? String(standardized.dropLast()) : standardized
    }

    /// Generic options (ro, nosuid, nodev, noexec, noatime, ...) become mount flags; the rest
    /// go to the filesystem as its data string.
    package static func mount(_ source: String, on target: String, type: String? = nil,
                             options: [String] = [], flags: UInt = 0) throws {
        var allFlags = flags
        var data: [String] = []
        let generic: [String: UInt] = [
            "ro": UInt(MS_RDONLY), "nosuid": UInt(MS_NOSUID), "nodev": UInt(MS_NODEV), "noexec": UInt(MS_NOEXEC),
            "noatime": UInt(MS_NOATIME), "nodiratime": UInt(MS_NODIRATIME), "relatime": UInt(MS_RELATIME),
            "sync": UInt(MS_SYNCHRONOUS), "rw": 0,
        ]
        for option in options {
            if let flag = generic[option] { allFlags |= flag } else { data.append(option) }
        }
        let dataString = data.joined(separator: ",")
        let result = Glibc.mount(source, target, type, allFlags, dataString.isEmpty ? nil : dataString)
        if result != 0 {
            let error = errno
            let shown = options.joined(separator: ",")
            let what = "mount \(source) (\(type ?? "bind")\(shown.isEmpty ? "" : ", \(shown)")) on"
            throw SystemError(what, path: target, errno: error)
        }
        RastLog.logger.debug("mounted \(source) on \(target) \(options.joined(separator: ","))")
    }

    package static func bind(_ source: String, on target: String, recursive: Bool = false, readOnly: Bool = false) throws {
        var flags = UInt(MS_BIND)
        if recursive { flags |= UInt(MS_REC) }
        try mount(source, on: target, flags: flags)
        if readOnly {
            try mount("none", on: target, flags: UInt(MS_BIND | MS_REMOUNT | MS_RDONLY))
        }
    }

    /// Makes `target` private so mounts below it do not propagate to the host.
    package static func makePrivate(_ target: String, recursive: Bool = true) throws {
        try mount("none", on: target, flags: UInt(MS_PRIVATE) | (recursive ? UInt(MS_REC) : 0))
    }

    /// Unmounts `target`. Busy mounts are retried briefly, then detached lazily when `lazyFallback`.
    package static func unmount(_ target: String, lazyFallback: Bool = true) throws {
        var attempts = 0
        while umount2(target, 0) != 0 {
            let error = errno
            if error == EINVAL || error == ENOENT { return }   // not mounted
            if error == EBUSY, attempts < 20 {
                attempts += 1
                usleep(100_000)
                continue
            }
            if lazyFallback, umount2(target, Int32(MNT_DETACH)) == 0 {
                RastLog.logger.debug("lazily detached busy mount \(target)")
                return
            }
            throw SystemError("unmount", path: target, errno: error)
        }
        RastLog.logger.debug("unmounted \(target)")
    }

    /// Unmounts everything at or below `path`, deepest first.
    package static func unmountAll(under path: String) throws {
        var firstError: Error?
        for entry in try MountTable.read().mounts(under: path) {
            do { try unmount(entry.mountPoint) } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }

    /// Gives the process (its main thread, which does all mounting, and every child it
    /// starts) a private mount namespace: mounts made from now on vanish when the process
    /// ends, however it ends. Call first thing in `main`, as root.
    package static func enterPrivateNamespace() throws {
        if rast_private_mount_namespace() != 0 { throw SystemError("create a private mount namespace") }
        RastLog.logger.debug("running in a private mount namespace")
        detachInheritedWorkMounts()
    }

    /// The name every temporary directory that holds mounts starts with (`rast-build`'s work
    /// directory, `rast-install`'s scratch directory): no other process needs what is mounted
    /// there.
    package static let workDirectoryPrefix = ".rast-work-"

    /// A new mount namespace starts as a copy of its parent's, including the mounts another
    /// rast process has open in its work directory at that moment. Such a copy would keep
    /// that process's file systems, and so its loop devices and image files, alive until this
    /// process ends, long after the owner unmounted them. Each one is detached here, in this
    /// namespace only.
    static func detachInheritedWorkMounts() {
        guard let table = try? MountTable.read() else { return }
        for entry in table.entries.sorted(by: { $0.mountPoint.count > $1.mountPoint.count })
        where entry.mountPoint.contains("/" + workDirectoryPrefix) {
            if umount2(entry.mountPoint, Int32(MNT_DETACH)) == 0 {
                RastLog.logger.debug("detached \(entry.mountPoint), inherited from another process's work directory")
            }
        }
    }

    package static func isMountPoint(_ path: String) -> Bool {
        (try? MountTable.read().entry(at: path)) != nil
    }

    /// Whether `path` lives on a btrfs filesystem.
    package static func isBtrfs(_ path: String) -> Bool {
        var info = statfs()
        guard statfs(path, &info) == 0 else { return false }
        return Int(info.f_type) == rast_btrfs_super_magic()
    }
}
