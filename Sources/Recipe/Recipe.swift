import Foundation
import Services
import TOML

/// A parsed and validated recipe: what `rast-build` builds. Every path is absolute.
/// The format is documented in docs/recipe.md.
public struct Recipe: Sendable {
    /// Lower-case letters, digits and hyphens; names the outputs (`output/NAME.raw`).
    public var name: String
    public var description: String?
    /// The recipe file as it was named (used in error positions).
    public var file: String
    /// The absolute directory of the recipe file; relative paths in the recipe start here.
    public var baseDirectory: String
    /// SHA-256 (lower-case hex) of the recipe file's bytes, for caches and the manifest.
    public var recipeHash: String
    /// The kernel to build or take from a repository; nil when the recipe has no [kernel].
    public var kernel: KernelSpec?
    public var packages: PackageSpec
    public var repositories: [RepositorySpec]
    public var system: SystemSpec
    public var users: [UserSpec]
    public var files: [FileOverlay]
    public var snapshots: SnapshotSpec
    public var disk: DiskSpec
    public var output: OutputSpec
    public var bootTest: BootTestSpec
    /// `[[containers]]`: images stored at build time, containers started at boot.
    public var containers: [ContainerSpec] = []
    /// How the image reaches the network, and whether it runs an SSH server.
    public var network: NetworkSpec = NetworkSpec()
    /// Services defined in snapshot 0 (`/etc/rast/services/NAME.toml`), beside the ones
    /// `network` makes.
    public var services: [ServiceDefinition] = []
    /// Where each key was written, by key path ("disk.size", "users[0].name", "packages.local[1]").
    var positions: [String: TOMLPosition]

    /// Where `keyPath` (for example "kernel.source" or "users[0].ssh_keys[1]") is written in
    /// the recipe, so later stages can point at the line that caused a problem.
    public func position(of keyPath: String) -> TOMLPosition? {
        positions[keyPath]
    }

    /// The packages to install into snapshot 0: `packages.install`, plus the kernel package
    /// when the recipe has a kernel and does not list it.
    public var packagesToInstall: [String] {
        var names = packages.install
        if let kernel, !names.contains(kernel.package) { names.append(kernel.package) }
        return names
    }

    /// The file an output format is written to: `output.directory/NAME.raw` or `.qcow2`.
    public func outputPath(for format: OutputFormat) -> String {
        output.directory + "/" + name + "." + format.rawValue
    }
}

/// The `[kernel]` table: build a kernel from source with a profile, or take a packaged one.
public struct KernelSpec: Sendable, Equatable {
    /// Where the kernel comes from.
    public enum Source: Sendable, Equatable {
        /// A local tarball or unpacked source directory (absolute path).
        case local(path: String)
        /// A tarball downloaded over HTTPS and checked against its SHA-256 (lower-case hex).
        case https(url: String, sha256: String)
        /// A git repository (URL, or absolute path of a local repository) at a ref.
        case git(url: String, ref: String)
        /// A kernel package taken from the repositories instead of building one.
        case packaged(name: String)
    }

    public var source: Source
    /// The profile named in the recipe ("base" when not given).
    public var profile: String
    /// The profiles merged in order: always "base", then the named profile if it is another.
    public var profiles: [String]
    /// Extra config fragments (absolute paths), merged after the profiles.
    public var fragments: [String]
    /// Options applied last, in the order written.
    public var options: [KernelOption]
    /// When true, a requested option that the kernel's config drops or changes fails the build.
    public var strict: Bool
    /// The package the kernel is installed as ("linux-rast-PROFILE", or the packaged name).
    public var package: String

    /// True when the kernel stage builds this kernel (false for a packaged kernel).
    public var isBuilt: Bool {
        if case .packaged = source { return false }
        return true
    }
}

/// One `CONFIG_...` option of `kernel.options`.
public struct KernelOption: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case yes
        case module
        case no
        case number(Int64)
        case hex(String)
        case string(String)
    }

    /// The full option name, `CONFIG_...`.
    public var name: String
    public var value: Value

    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }

    /// The option as a line of a kernel `.config` file.
    public var configLine: String {
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
public struct PackageSpec: Sendable, Equatable {
    public init(local: [String] = [], aur: [String] = [], install: [String]) {
        self.local = local
        self.aur = aur
        self.install = install
    }

    /// PKGBUILD directories (absolute) built with makepkg into the build's local repository.
    public var local: [String]
    /// AUR package names, cloned from the AUR's git repositories and built like local ones.
    public var aur: [String]
    /// Packages installed into snapshot 0 (never empty).
    public var install: [String]
}

/// One `[[repositories]]` entry: a remote pacman repository.
public struct RepositorySpec: Sendable, Equatable {
    public init(name: String, servers: [String], sigLevel: [String]? = nil) {
        self.name = name
        self.servers = servers
        self.sigLevel = sigLevel
    }

    public var name: String
    /// Server URLs in order; `$repo` and `$arch` are replaced as in pacman.conf.
    public var servers: [String]
    /// The SigLevel tokens as written ("Required", "DatabaseOptional"); nil means pacman's default.
    public var sigLevel: [String]?

    /// The server URLs with `$repo` and `$arch` filled in.
    public func serverURLs(architecture: String = "x86_64") -> [String] {
        servers.map {
            $0.replacingOccurrences(of: "$repo", with: name).replacingOccurrences(of: "$arch", with: architecture)
        }
    }
}

/// The `[system]` table.
public struct SystemSpec: Sendable, Equatable {
    public var hostname: String
    public var timezone: String
    public var locale: String
    /// Extra kernel command line arguments (may be empty).
    public var kernelCommandLine: String
    /// A crypt(3) hash for root; nil leaves root locked.
    public var rootPasswordHash: String?
}

/// One `[[users]]` entry.
public struct UserSpec: Sendable, Equatable {
    public init(name: String, uid: Int? = nil, groups: [String] = [], shell: String = "/bin/sh", passwordHash: String? = nil, sshKeys: [String] = []) {
        self.name = name
        self.uid = uid
        self.groups = groups
        self.shell = shell
        self.passwordHash = passwordHash
        self.sshKeys = sshKeys
    }

    public var name: String
    /// Nil lets useradd choose.
    public var uid: Int?
    public var groups: [String]
    public var shell: String
    /// A crypt(3) hash; nil means no password (log in with an SSH key).
    public var passwordHash: String?
    /// OpenSSH public keys for `~/.ssh/authorized_keys`.
    public var sshKeys: [String]
}

/// One `[[files]]` entry: a file or directory copied into snapshot 0.
public struct FileOverlay: Sendable, Equatable {
    public init(source: String, destination: String, mode: UInt32? = nil) {
        self.source = source
        self.destination = destination
        self.mode = mode
    }

    /// Absolute path on the build machine.
    public var source: String
    /// Absolute path inside the image.
    public var destination: String
    /// Permission bits; nil keeps the source's.
    public var mode: UInt32?
}

/// The `[snapshots]` table: the tree of snapshots the image starts with.
public struct SnapshotSpec: Sendable, Equatable {
    public init(tree: [Node], deploy: Int) {
        self.tree = tree
        self.deploy = deploy
    }

    /// One snapshot of the tree; snapshot 0 (the base) is implicit.
    public struct Node: Sendable, Equatable {
        public init(id: Int, parent: Int, description: String = "") {
            self.id = id
            self.parent = parent
            self.description = description
        }

        public var id: Int
        public var parent: Int
        public var description: String
    }

    /// In the order written; every parent is 0 or another node's id, and there are no cycles.
    public var tree: [Node]
    /// The snapshot deployed in the image (0 or an id of the tree).
    public var deploy: Int

    /// The tree in an order where every parent comes before its children.
    public var creationOrder: [Node] {
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
public enum Firmware: String, Sendable, CaseIterable, Equatable {
    case bios
    case uefi
}

public enum Bootloader: String, Sendable, CaseIterable, Equatable {
    case grub
    case limine
}

/// btrfs transparent compression, as in the `compress=` mount option.
public struct BtrfsCompression: Sendable, Equatable, CustomStringConvertible {
    public init(algorithm: Algorithm, level: Int? = nil) {
        self.algorithm = algorithm
        self.level = level
    }

    public enum Algorithm: String, Sendable, CaseIterable {
        case none
        case zlib
        case lzo
        case zstd
    }

    public var algorithm: Algorithm
    /// zlib 1...9, zstd 1...15; nil for the default level.
    public var level: Int?

    /// "zstd:3", "lzo", "none".
    public var description: String {
        level.map { "\(algorithm.rawValue):\($0)" } ?? algorithm.rawValue
    }

    /// The mount option (`compress=zstd:3`), or nil for no compression.
    public var mountOption: String? {
        algorithm == .none ? nil : "compress=\(description)"
    }
}

/// The `[disk]` table. The GPT disk holds, in order: 1 MiB for the table and alignment,
/// the BIOS boot partition (when booting with BIOS), the ESP, the btrfs root (the rest),
/// and 1 MiB for the backup GPT.
public struct DiskSpec: Sendable, Equatable {
    public init(size: Int64, biosBootSize: Int64, espSize: Int64, filesystemLabel: String, compression: BtrfsCompression, bootloader: Bootloader, firmware: [Firmware]) {
        self.size = size
        self.biosBootSize = biosBootSize
        self.espSize = espSize
        self.filesystemLabel = filesystemLabel
        self.compression = compression
        self.bootloader = bootloader
        self.firmware = firmware
    }

    public static let mebibyte: Int64 = 1 << 20
    /// Space before the first partition (protective MBR, GPT, alignment).
    public static let leadingSpace: Int64 = 1 << 20
    /// Space after the last partition (backup GPT).
    public static let trailingSpace: Int64 = 1 << 20
    public static let minimumRootSize: Int64 = 256 << 20
    /// FAT32 needs at least 65525 clusters; 32 MiB is the smallest ESP that formats as FAT32.
    public static let minimumESPSize: Int64 = 32 << 20

    /// Size of the whole image in bytes.
    public var size: Int64
    /// Size of the BIOS boot partition; it exists only when `firmware` contains `.bios`.
    public var biosBootSize: Int64
    public var espSize: Int64
    public var filesystemLabel: String
    public var compression: BtrfsCompression
    public var bootloader: Bootloader
    public var firmware: [Firmware]

    /// True when the disk gets a BIOS boot partition.
    public var hasBIOSBootPartition: Bool { firmware.contains(.bios) }

    /// The root partition's size: everything the other partitions and the GPT leave.
    public var rootSize: Int64 {
        size - DiskSpec.leadingSpace - (hasBIOSBootPartition ? biosBootSize : 0) - espSize - DiskSpec.trailingSpace
    }
}

public enum OutputFormat: String, Sendable, CaseIterable, Equatable {
    case raw
    case qcow2
}

public enum QCOW2Compression: String, Sendable, CaseIterable, Equatable {
    case none
    case zlib
    case zstd
}

/// The `[output]` table.
public struct OutputSpec: Sendable, Equatable {
    /// Absolute; written relative to the current directory in the recipe.
    public var directory: String
    public var formats: [OutputFormat]
    public var qcow2Compression: QCOW2Compression
    /// A power of two from 512 bytes to 2 MiB.
    public var qcow2ClusterSize: Int64
}

/// The `[boot_test]` table.
public struct BootTestSpec: Sendable, Equatable {
    public var enabled: Bool
    /// A subset of `disk.firmware`.
    public var firmware: [Firmware]
    /// Seconds before a boot that has not reported success counts as failed.
    public var timeout: Int
    /// Guest memory in bytes.
    public var memory: Int64
}
