// swift-tools-version:6.1
// rastOS: the tool chain for immutable, snapshot-managed Arch Linux systems.
// Module map (see docs/architecture.md and ../shared/DESIGN.md):
//   C*            one system library target per C library (module.modulemap + shim.h)
//   Btrfs Alpm Fdisk Blkid Archive Curl Git Zlib   one Swift wrapper per C library
//   SystemSupport processes, mounts, loop devices, locks, atomic writes, progress
//   TOML Recipe   a position-keeping TOML parser and the typed, validated recipe
//   SnapshotTree BootEntries QCOW2 Kernel Packages ImageSupport DiskImage Pipeline HostCommands
//   RastBuildCLI RastCLI RastInstallCLI   command trees (tested), behind thin executables
import PackageDescription

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let systemPackage: Target.Dependency = .product(name: "SystemPackage", package: "swift-system")

func system(_ name: String, pkgConfig: String?, apt: [String]) -> Target {
    .systemLibrary(name: name, path: "Sources/\(name)", pkgConfig: pkgConfig, providers: [.apt(apt)])
}

let package = Package(
    name: "rastOS",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rast-build", targets: ["rast-build"]),
        .executable(name: "rast", targets: ["rast"]),
        .executable(name: "rast-install", targets: ["rast-install"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // FileDescriptor: owned descriptors, writeAll, EINTR retries.
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // C libraries.
        system("CBtrfsUtil", pkgConfig: "libbtrfsutil", apt: ["libbtrfsutil-dev"]),
        system("CAlpm", pkgConfig: "libalpm", apt: ["libalpm-dev", "libgpgme-dev"]),
        system("CFdisk", pkgConfig: "fdisk", apt: ["libfdisk-dev"]),
        system("CBlkid", pkgConfig: "blkid", apt: ["libblkid-dev"]),
        system("CArchive", pkgConfig: "libarchive", apt: ["libarchive-dev"]),
        system("CCurl", pkgConfig: "libcurl", apt: ["libcurl4-openssl-dev"]),
        system("CGit2", pkgConfig: "libgit2", apt: ["libgit2-dev"]),
        system("CZlib", pkgConfig: "zlib", apt: ["zlib1g-dev"]),
        system("CZstd", pkgConfig: "libzstd", apt: ["libzstd-dev"]),
        system("CLinux", pkgConfig: nil, apt: []),
        system("CCrypto", pkgConfig: "libcrypto", apt: ["libssl-dev"]),

        // Swift wrappers, one per C library.
        .target(name: "Btrfs", dependencies: ["CBtrfsUtil"]),
        .target(name: "Alpm", dependencies: ["CAlpm", "SystemSupport"]),
        .target(name: "Fdisk", dependencies: ["CFdisk", systemPackage]),
        .target(name: "Blkid", dependencies: ["CBlkid", systemPackage]),
        .target(name: "Archive", dependencies: ["CArchive", systemPackage]),
        .target(name: "Curl", dependencies: ["CCurl"]),
        .target(name: "Git", dependencies: ["CGit2"]),
        .target(name: "Zlib", dependencies: ["CZlib"]),

        // Shared support and formats.
        .target(name: "SystemSupport", dependencies: ["CLinux", "CCrypto", logging, systemPackage]),
        .target(name: "TOML"),
        .target(name: "Recipe", dependencies: ["TOML", "Services", "SystemSupport", systemPackage]),
        .target(name: "QCOW2", dependencies: ["Zlib", "CZstd", "SystemSupport", systemPackage]),
        .target(name: "BootEntries", dependencies: ["SystemSupport"]),
        .target(name: "VirtualMachine", dependencies: ["SystemSupport"]),
        .target(name: "SnapshotTree", dependencies: ["Btrfs", "BootEntries", "SystemSupport"]),
        // Service definitions, their dependency order and s6 service directories (rast service).
        .target(name: "Services", dependencies: ["TOML", "SystemSupport"]),
        // Backups: object stores (S3 Signature V4, file://) and encrypted btrfs send streams.
        .target(name: "ObjectStore", dependencies: ["Curl", "SystemSupport", systemPackage]),
        .target(name: "Backup", dependencies: ["ObjectStore", "SnapshotTree", "Btrfs", "CZstd", "CCrypto", "SystemSupport"]),

        // Stages and host operations.
        .target(name: "Kernel", dependencies: ["Curl", "Git", "Packages", "SystemSupport"]),
        .target(name: "Packages", dependencies: ["Alpm", "Archive", "Git", "SystemSupport", systemPackage]),
        // What building an image (Pipeline), installing it (DiskImage) and the host share: the
        // attached disk and its partition names, the boot loader installer, the account files,
        // host tool checks. Nothing here links libalpm, libgit2, libcurl or libarchive.
        .target(name: "ImageSupport", dependencies: ["Recipe", "SnapshotTree", "BootEntries", "Fdisk", "SystemSupport"]),
        .target(name: "Pipeline", dependencies: [
            "Recipe", "Kernel", "Packages", "Alpm", "SnapshotTree", "BootEntries", "QCOW2", "ImageSupport",
            "VirtualMachine", "Blkid", "Services", "SystemSupport", "OCI", "Containers",
        ]),
        // rast search and rast "...": the embedding table and its generator live in Sources/Search/Embeddings.
        .target(name: "Search", dependencies: ["SystemSupport"], exclude: ["Embeddings"]),
        // Containers: OCI images (registry client, layer store) and crun-run containers.
        .target(name: "OCI", dependencies: ["Curl", "Archive", "Btrfs", "SystemSupport"]),
        .target(name: "Containers", dependencies: ["OCI", "SystemSupport", "CLinux"]),
        .target(name: "HostCommands", dependencies: ["SnapshotTree", "BootEntries", "Btrfs", "Blkid", "Alpm", "Packages", "Search", "Services", "SystemSupport", "OCI", "Containers"]),
        // rast vm: a snapshot booted in QEMU from a throw-away disk (the builder's disk layout and
        // boot loader installer, from ImageSupport).
        .target(name: "SnapshotMachine", dependencies: [
            "ImageSupport", "Recipe", "SnapshotTree", "BootEntries", "Btrfs", "Blkid", "VirtualMachine", "SystemSupport",
        ]),
        // rast-install: writes a built image to a disk and personalises it (shares ImageSupport with the pipeline).
        .target(name: "DiskImage", dependencies: [
            "ImageSupport", "SnapshotTree", "BootEntries", "Recipe", "QCOW2", "Fdisk", "Blkid", "Btrfs", "SystemSupport", "CLinux",
            systemPackage,
        ]),

        // Command trees and the thin executables.
        .target(name: "CommandLineSupport", dependencies: ["SystemSupport", "CLinux", "VirtualMachine", argumentParser, systemPackage]),
        .target(name: "RastBuildCLI", dependencies: ["CommandLineSupport", "Pipeline", "Recipe", "QCOW2", "VirtualMachine", "SystemSupport", argumentParser]),
        .target(name: "RastCLI", dependencies: [
            "CommandLineSupport", "HostCommands", "Search", "Backup", "ObjectStore", "Containers", "OCI", "Services", "SnapshotMachine",
            "VirtualMachine", "SnapshotTree", "SystemSupport", argumentParser,
        ]),
        .target(name: "RastInstallCLI", dependencies: ["CommandLineSupport", "DiskImage", "SystemSupport", argumentParser]),
        .executableTarget(name: "rast-build", dependencies: ["RastBuildCLI"]),
        .executableTarget(name: "rast", dependencies: ["RastCLI"]),
        .executableTarget(name: "rast-install", dependencies: ["RastInstallCLI"]),

        // Tests: real btrfs on loop files, real libalpm, real servers on 127.0.0.1.
        .target(name: "TestSupport", dependencies: ["SystemSupport", "SnapshotTree", "BootEntries"], path: "Tests/TestSupport"),
        .testTarget(name: "SystemSupportTests", dependencies: ["SystemSupport", "TestSupport", systemPackage]),
        .testTarget(name: "BtrfsTests", dependencies: ["Btrfs", "TestSupport"]),
        .testTarget(name: "AlpmTests", dependencies: ["Alpm", "Packages", "TestSupport"]),
        .testTarget(name: "FdiskTests", dependencies: ["Fdisk", "TestSupport"]),
        .testTarget(name: "BlkidTests", dependencies: ["Blkid", "Fdisk", "TestSupport"]),
        .testTarget(name: "ArchiveTests", dependencies: ["Archive", "Packages", "TestSupport"]),
        .testTarget(name: "CurlTests", dependencies: ["Curl", "TestSupport"]),
        .testTarget(name: "GitTests", dependencies: ["Git", "TestSupport"]),
        .testTarget(name: "ZlibTests", dependencies: ["Zlib", "TestSupport"]),
        .testTarget(name: "TOMLTests", dependencies: ["TOML", "TestSupport"]),
        .testTarget(name: "ServicesTests", dependencies: ["Services", "HostCommands", "TOML", "TestSupport"]),
        .testTarget(name: "RecipeTests", dependencies: ["Recipe", "Services", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "QCOW2Tests", dependencies: ["QCOW2", "TestSupport"]),
        .testTarget(name: "BootEntriesTests", dependencies: ["BootEntries", "TestSupport"]),
        .testTarget(name: "SnapshotTreeTests", dependencies: ["SnapshotTree", "Btrfs", "BootEntries", "TestSupport"]),
        .testTarget(name: "KernelTests", dependencies: ["Kernel", "VirtualMachine", "Archive", "TestSupport"]),
        .testTarget(name: "PackagesTests", dependencies: ["Packages", "Alpm", "SystemSupport", "TestSupport"]),
        .testTarget(name: "DiskImageTests", dependencies: [
            "DiskImage", "ImageSupport", "RastInstallCLI", "CommandLineSupport", "Pipeline", "Recipe", "SnapshotTree", "BootEntries", "QCOW2", "Fdisk", "Blkid",
            "VirtualMachine", "TestSupport",
        ]),
        .testTarget(name: "PipelineTests", dependencies: ["Pipeline", "ImageSupport", "Alpm", "Recipe", "Blkid", "Packages", "Services", "BootEntries", "SnapshotTree", "Btrfs", "VirtualMachine", "TestSupport"]),
        .testTarget(name: "HostCommandsTests", dependencies: [
            "HostCommands", "RastCLI", "Packages", "Alpm", "SnapshotTree", "Btrfs", "BootEntries", "SystemSupport", "TestSupport",
        ]),
        .testTarget(name: "ContainersTests", dependencies: ["Containers", "OCI", "SystemSupport", "TestSupport"]),
        .testTarget(name: "OCITests", dependencies: ["OCI", "Archive", "Curl", "SystemSupport", "TestSupport"]),
        .testTarget(name: "SearchTests", dependencies: ["Search", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore", "Curl", "SystemSupport", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "BackupTests", dependencies: [
            "Backup", "ObjectStore", "RastCLI", "SnapshotTree", "Btrfs", "SystemSupport", "TestSupport",
        ]),
        .testTarget(name: "VirtualMachineTests", dependencies: ["VirtualMachine", "SystemSupport", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["RastBuildCLI", "RastCLI", "RastInstallCLI", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
