import BootEntries
import Foundation
import SystemSupport

/// What the ESP must hold for one Limine menu: the menu and the kernel and initramfs copies
/// its entries load (see `LimineLayout` for the ESP's layout). A journal step, so that an
/// interrupted sync is completed by the next rast command.
package struct ESPContents: Codable, Sendable, Equatable {
    package struct File: Codable, Sendable, Equatable {
        /// The path on the ESP (`rastos/HASH-vmlinuz-…`).
        package var path: String
        /// The file in the btrfs filesystem it is copied from (the slot's /boot, where it is
        /// once the journal's earlier steps ran).
        package var source: String
        /// The start of its SHA-256, as its name carries it.
        package var sha256Prefix: String
    }

    package var config: String
    package var files: [File]
}

/// Brings an ESP in step with an `ESPContents`. Idempotent, and safe to interrupt at any
/// point (the journal runs it again):
/// 1. every file the menu loads is copied in under `NAME.tmp` and renamed to its content
///    name, unless a file of that name is there (content names are never rewritten);
/// 2. the menu is written as `limine.conf.new` and renamed over `limine.conf`;
/// 3. files no entry loads (earlier deployments' kernels, `.tmp` leftovers) and a leftover
///    `limine.conf.new` are removed.
/// At every moment `limine.conf` is a complete menu, old or new, and every file it names is
/// a complete copy.
struct ESPSync {
    let volume: ESPVolume

    func apply(_ contents: ESPContents) throws {
        try volume.makeDirectories(LimineLayout.kernelDirectory)
        try volume.makeDirectories(LimineLayout.configDirectory)
        let present = Set(try volume.files(in: LimineLayout.kernelDirectory))
        var copied = Set<String>()
        for file in contents.files where !present.contains(Self.name(file.path)) && !copied.contains(file.path) {
            let actual = try SHA256.hash(file: file.source)
            guard actual.hasPrefix(file.sha256Prefix) else {
                throw UserError("\(file.source) changed while its deployment was being written (SHA-256 \(actual.prefix(16))…, expected \(file.sha256Prefix)…); run `rast boot` to regenerate the boot entries")
            }
            try volume.install(file.source, as: file.path)
            copied.insert(file.path)
        }
        try volume.replace(LimineLayout.configPath, with: Array(contents.config.utf8))
        let wanted = Set(contents.files.map { Self.name($0.path) })
        for name in try volume.files(in: LimineLayout.kernelDirectory) where !wanted.contains(name) {
            try volume.remove(LimineLayout.kernelDirectory + "/" + name)
        }
        try volume.remove(LimineLayout.configPath + ESPNames.newSuffix)
    }

    static func name(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

/// What `rast check` finds on the ESP of a Limine system.
struct LimineInspection {
    /// Problems that can keep the machine from booting (missing or unreadable menu, an entry
    /// whose kernel is missing or damaged).
    var problems: [String] = []
    /// ESP files that a damaged or missing copy leaves to be copied again.
    var damaged: [String] = []
    /// Files an interrupted sync left behind; harmless, removed by the next sync.
    var leftovers: [String] = []
    /// Slots the menu's entries boot.
    var slots: [String] = []

    init(volume: ESPVolume) {
        let menu: LimineConfig
        do {
            guard let bytes = try volume.read(LimineLayout.configPath) else {
                problems.append("the ESP (\(volume.location)) has no \(LimineLayout.configPath): Limine finds no menu")
                return
            }
            menu = try LimineConfig(parsing: String(decoding: bytes, as: UTF8.self))
        } catch {
            problems.append("\(LimineLayout.configPath) on the ESP (\(volume.location)) cannot be read: \(error)")
            return
        }
        var named = Set<String>()
        for entry in menu.entries where entry.value("protocol") != nil {
            if let cmdline = entry.value("cmdline"), let range = cmdline.range(of: "rootflags=subvol=@.snapshots/rootfs/snapshot-") {
                slots.append(String(cmdline[range.upperBound...].prefix { !$0.isWhitespace && $0 != "," }))
            }
            for value in entry.loadedPaths {
                guard let path = LimineConfig.bootPartitionPath(value) else {
                    problems.append("boot entry '\(entry.title)' loads \(value), which is not on the ESP")
                    continue
                }
                named.insert(path)
                do {
                    guard let content = try volume.read(path) else {
                        problems.append("boot entry '\(entry.title)' loads \(path), which is missing on the ESP")
                        damaged.append(path)
                        continue
                    }
                    if let prefix = LimineLayout.hashPrefix(ofKernelPath: path), !SHA256.hash(content).hasPrefix(prefix) {
                        problems.append("boot entry '\(entry.title)' loads \(path), which is damaged (its SHA-256 does not match its name)")
                        damaged.append(path)
                    }
                } catch {
                    problems.append("boot entry '\(entry.title)' loads \(path), which cannot be read: \(error)")
                }
            }
        }
        let kernels = (try? volume.files(in: LimineLayout.kernelDirectory)) ?? []
        for name in kernels where !named.contains(LimineLayout.kernelDirectory + "/" + name) {
            leftovers.append(LimineLayout.kernelDirectory + "/" + name)
        }
        let configNew = LimineLayout.configPath + ESPNames.newSuffix
        if (try? volume.exists(configNew)) == true { leftovers.append(configNew) }
    }
}

extension SnapshotStore {
    /// The ESP, for Limine systems (set by whoever opened the store: the pipeline, rast-install,
    /// or `rast` on a running system or an image).
    func espVolume() throws -> ESPVolume {
        if let resolvedESP { return resolvedESP }
        guard let espProvider else {
            throw UserError("this system boots with Limine, whose menu and kernels are on the EFI system partition, and the ESP was not found; on an image, mount its root partition from a loop device of the image file (or its partition device) so that rast can find the ESP beside it")
        }
        let volume = try espProvider()
        resolvedESP = volume
        return volume
    }
}
