import Foundation
import Services
import TOML

/// A parsed and validated recipe: what `rast-build` builds. Every path is absolute.
/// The format is documented in docs/recipe.md.
package struct Recipe: Sendable {
    /// Lower-case letters, digits and hyphens; names the outputs (`output/NAME.raw`).
    package var name: String
    package var description: String?
    /// The recipe file as it was named (used in error positions).
    package var file: String
    /// The absolute directory of the recipe file; relative paths in the recipe start here.
    package var baseDirectory: String
    /// SHA-256 (lower-case hex) of the recipe file's bytes, for caches and the manifest.
    package var recipeHash: String
    /// The kernel to build or take from a repository; nil when the recipe has no [kernel].
    package var kernel: KernelSpec?
    package var packages: PackageSpec
    package var repositories: [RepositorySpec]
    package var system: SystemSpec
    package var users: [UserSpec]
    package var files: [FileOverlay]
    package var snapshots: SnapshotSpec
    package var disk: DiskSpec
    package var output: OutputSpec
    package var bootTest: BootTestSpec
    /// `[[containers]]`: images stored at build time, containers started at boot.
    package var containers: [ContainerSpec] = []
    /// How the image reaches the network, and whether it runs an SSH server.
    package var network: NetworkSpec = NetworkSpec()
    /// Services defined in snapshot 0 (`/etc/rast/services/NAME.toml`), beside the ones
    /// `network` makes.
    package var services: [ServiceDefinition] = []
    /// Where each key was written, by key path ("disk.size", "users[0].name", "packages.local[1]").
    var positions: [String: TOMLPosition]

    /// Where `keyPath` (for example "kernel.source" or "users[0].ssh_keys[1]") is written in
    /// the recipe, so later stages can point at the line that caused a problem.
    package func position(of keyPath: String) -> TOMLPosition? {
        positions[keyPath]
    }

    /// The packages to install into snapshot 0: `packages.install`, plus the kernel package
    /// when the recipe has a kernel and does not list it.
    package var packagesToInstall: [String] {
        var names = packages.install
        if let kernel, !names.contains(kernel.package) { names.append(kernel.package) }
        return names
    }

    /// The file an output format is written to: `output.directory/NAME.raw` or `.qcow2`.
    package func outputPath(for format: OutputFormat) -> String {
        output.directory + "/" + name + "." + format.rawValue
    }
}

/// The `[kernel]` table: build a kernel from source with a profile, or take a packaged one.
package struct KernelSpec: Sendable, Equatable {
    /// Where the kernel comes from.
    package enum Source: Sendable, Equatable {
        /// A local tarball or unpacked source directory (absolute path).
        case local(path: String)
        /// A tarball downloaded over HTTPS and checked against its SHA-256 (lower-case hex).
        case https(url: String, sha256: String)
        /// A git repository (URL, or absolute path of a local repository) at a ref.
        case git(url: String, ref: String)
        /// A kernel package taken from the repositories instead of building one.
        case packaged(name: String)
    }

    package var source: Source
    /// The profile named in the recipe ("base" when not given).
    package var profile: String
    /// The profiles merged in order: always "base", then the named profile if it is another.
    package var profiles: [String]
    /// Extra config fragments (absolute paths), merged after the profiles.
    package var fragments: [String]
    /// Options applied last, in the order written.
    package var options: [KernelOption]
    /// When true, a requested option that the kernel's config drops or changes fails the build.
    package var strict: Bool
    /// The package the kernel is installed as ("linux-rast-PROFILE", or the packaged name).
    package var package: String

    /// True when the kernel stage builds this kernel (false for a packaged kernel).
    package var isBuilt: Bool {
        if case .packaged = source { return false }
        return true
    }
}

/// One `CONFIG_...` option of `kernel.options`.
package struct KernelOption: Sendable, Equatable {
    package enum Value: Sendable, Equatable {
        case yes
        case module
        case no
        case number(Int64)
        case hex(String)
        case string(String)
    }

    /// The full option name, `CONFIG_...`.
    package var name: String
    package var value: Value

    package init(name: String, value: Value) {
        self.name = name
        self.value = value
    }

    /// The option as a line of a kernel `.config` file.
    package var configLine: String {
        switch value {
        case .yes: return "\(name)=y"
        case .module: return "\(name)=m"
        case .no: return "# \(name) is not set"
        case .number(let n): return "\(name)=\(n)"
        case .hex(let text): return "\(name)=\(text)"
        case .string(let text):
            let escaped = text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\(name)=\"\(escaped)\""
        }
    }
}

/// The `[packages]` table.
package struct PackageSpec: Sendable, Equatable {
    package init(local: [String] = [], aur: [String] = [], install: [String]) {
        self.local = local
        self.aur = aur
        self.install = install
    }

    /// PKGBUILD directories (absolute) built with makepkg into the build's local repository.
    package var local: [String]
    /// AUR package names, cloned from the AUR's git repositories and built like local ones.
    package var aur: [String]
    /// Packages installed into snapshot 0 (never empty).
    package var install: [String]
}

/// One `[[repositories]]` entry: a remote pacman repository.
package struct RepositorySpec: Sendable, Equatable {
    package init(name: String, servers: [String], sigLevel: [String]? = nil) {
        self.name = name
        self.servers = servers
        self.sigLevel = sigLevel
    }

    package var name: String
    /// Server URLs in order; `$repo` and `$arch` are replaced as in pacman.conf.
    package var servers: [String]
    /// The SigLevel tokens as written ("Required", "DatabaseOptional"); nil means pacman's default.
    package var sigLevel: [String]?

    /// The server URLs with `$repo` and `$arch` filled in.
    package func serverURLs(architecture: String = "x86_64") -> [String] {
        servers.map {
            $0.replacingOccurrences(of: "$repo", with: name).replacingOccurrences(of: "$arch", with: architecture)
        }
    }
}

/// The `[system]` table.
package struct SystemSpec: Sendable, Equatable {
    package var hostname: String
    package var timezone: String
    package var locale: String
    /// Extra kernel command line arguments (may be empty).
    package var kernelCommandLine: String
    /// A crypt(3) hash for root; nil leaves root locked.
    package var rootPasswordHash: String?
}

/// One `[[users]]` entry.
package struct UserSpec: Sendable, Equatable {
    package init(name: String, uid: Int? = nil, groups: [String] = [], shell: String = "/bin/sh", passwordHash: String? = nil, sshKeys: [String] = []) {
        self.name = name
        self.uid = uid
        self.groups = groups
        self.shell = shell
        self.passwordHash = passwordHash
        self.sshKeys = sshKeys
    }

    package var name: String
    /// Nil lets useradd choose.
    package var uid: Int?
    package var groups: [String]
    package var shell: String
    /// A crypt(3) hash; nil means no password (log in with an SSH key).
    package var passwordHash: String?
    /// OpenSSH public keys for `~/.ssh/authorized_keys`.
    package var sshKeys: [String]
}

/// One `[[files]]` entry: a file or directory copied into snapshot 0.
package struct FileOverlay: Sendable, Equatable {
    package init(source: String, destination: String, mode: UInt32? = nil) {
        self.source = source
        self.destination = destination
        self.mode = mode
    }

    /// Absolute path on the build machine.
    package var source: String
    /// Absolute path inside the image.
    package var destination: String
    /// Permission bits; nil keeps the source's.
    package var mode: UInt32?
}

/// The `[snapshots]` table: the tree of snapshots the image starts with.
package struct SnapshotSpec: Sendable, Equatable {
    package init(tree: [Node], deploy: Int) {
        self.tree = tree
        self.deploy = deploy
    }

    /// One snapshot of the tree; snapshot 0 (the base) is implicit.
    package struct Node: Sendable, Equatable {
        package init(id: Int, parent: Int, description: String = "") {
            self.id = id
            self.parent = parent
            self.description = description
        }

        package var id: Int
        package var parent: Int
        package var description: String
    }

    /// In the order written; every parent is 0 or another node's id, and there are no cycles.
    package var tree: [Node]
    /// The snapshot deployed in the image (0 or an id of the tree).
    package var deploy: Int

    /// The tree in an order where every parent comes before its children.
    package var creationOrder: [Node] {
        var created: Set<Int> = [0]
        var remaining = tree
        var ordered: [Node] = []
        while !remaining.isEmpty {
            let ready = remaining.filter { created.contains($0.parent) }
            // Validation rejects cycles and missing parents; stop rather than loop if one slips by.
            if ready.isEmpty { break }
            for node in ready { created.insert(node.id) }
            ordered += ready
            remaining.removeAll { created.contains($0.id) }
        }
        return ordered
    }
}

/// Firmware a disk image boots with.
package enum Firmware: String, Sendable, CaseIterable, Equatable {
    case bios
    case uefi
}

package enum Bootloader: String, Sendable, CaseIterable, Equatable {
    case grub
    case limine
}

/// btrfs transparent compression, as in the `compress=` mount option.
package struct BtrfsCompression: Sendable, Equatable, CustomStringConvertible {
    package init(algorithm: Algorithm, level: Int? = nil) {
        self.algorithm = algorithm
        self.level = level
    }

    package enum Algorithm: String, Sendable, CaseIterable {
        case none
        case zlib
        case lzo
        case zstd
    }

    package var algorithm: Algorithm
    /// zlib 1...9, zstd 1...15; nil for the default level.
    package var level: Int?

    /// "zstd:3", "lzo", "none".
    package var description: String {
        level.map { "\(algorithm.rawValue):\($0)" } ?? algorithm.rawValue
    }

    /// The mount option (`compress=zstd:3`), or nil for no compression.
    package var mountOption: String? {
        algorithm == .none ? nil : "compress=\(description)"
    }
}

/// The `[disk]` table. The GPT disk holds, in order: 1 MiB for the table and alignment,
/// the BIOS boot partition (when booting with BIOS), the ESP, the btrfs root (the rest),
/// and 1 MiB for the backup GPT.
package struct DiskSpec: Sendable, Equatable {
    package init(size: Int64, biosBootSize: Int64, espSize: Int64, filesystemLabel: String, compression: BtrfsCompression, bootloader: Bootloader, firmware: [Firmware]) {
        self.size = size
        self.biosBootSize = biosBootSize
        self.espSize = espSize
        self.filesystemLabel = filesystemLabel
        self.compression = compression
        self.bootloader = bootloader
        self.firmware = firmware
    }

    package static let mebibyte: Int64 = 1 << 20
    /// Space before the first partition (protective MBR, GPT, alignment).
    package static let leadingSpace: Int64 = 1 << 20
    /// Space after the last partition (backup GPT).
    package static let trailingSpace: Int64 = 1 << 20
    package static let minimumRootSize: Int64 = 256 << 20
    /// FAT32 needs at least 65525 clusters; 32 MiB is the smallest ESP that formats as FAT32.
    package static let minimumESPSize: Int64 = 32 << 20

    /// Size of the whole image in bytes.
    package var size: Int64
    /// Size of the BIOS boot partition; it exists only when `firmware` contains `.bios`.
    package var biosBootSize: Int64
    package var espSize: Int64
    package var filesystemLabel: String
    package var compression: BtrfsCompression
    package var bootloader: Bootloader
    package var firmware: [Firmware]

    /// True when the disk gets a BIOS boot partition.
    package var hasBIOSBootPartition: Bool { firmware.contains(.bios) }

    /// The root partition's size: everything the other partitions and the GPT leave.
    package var rootSize: Int64 {
        size - DiskSpec.leadingSpace - (hasBIOSBootPartition ? biosBootSize : 0) - espSize - DiskSpec.trailingSpace
    }
}

package enum OutputFormat: String, Sendable, CaseIterable, Equatable {
    case raw
    case qcow2
}

package enum QCOW2Compression: String, Sendable, CaseIterable, Equatable {
    case none
    case zlib
    case zstd
}

/// The `[output]` table.
package struct OutputSpec: Sendable, Equatable {
    /// Absolute; written relative to the current directory in the recipe.
    package var directory: String
    package var formats: [OutputFormat]
    package var qcow2Compression: QCOW2Compression
    /// A power of two from 512 bytes to 2 MiB.
    package var qcow2ClusterSize: Int64
}

/// The `[boot_test]` table.
package struct BootTestSpec: Sendable, Equatable {
    package var enabled: Bool
    /// A subset of `disk.firmware`.
    package var firmware: [Firmware]
    /// Seconds before a boot that has not reported success counts as failed.
    package var timeout: Int
    /// Guest memory in bytes.
    package var memory: Int64
}
