import DiskImage
import Fdisk
import Foundation
import ImageSupport
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

/// The default image (recipes/minimal.toml, raw and QCOW2, no boot test), built once per test
/// process the way Tests/PipelineTests' ImageTestSupport builds it, and removed when the
/// process exits.
struct TestImage: Sendable {
    let directory: String
    let raw: String
    let qcow2: String
    let manifest: Manifest

    static let rastBinary = ProjectPaths.root + "/.build/release/rast"

    static func requirements() throws {
        try Require.root()
        try Require.loopDevices()
        try Require.programs("mkfs.btrfs", "mkfs.fat", "mmd", "mcopy", "mdir", "makepkg", "repo-add", "grub-install",
                             "grub-mkimage", "qemu-system-x86_64", "sgdisk", "btrfs", "btrfstune")
        try Require.file(rastBinary, hint: "`make test` builds it with swift build -c release --static-swift-stdlib --product rast")
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
    }

    private static let built: Result<TestImage, any Error> = Result { try build() }
    private static let builtLimine: Result<TestImage, any Error> = Result { try build(recipe: "limine") }

    /// The image, built on first use; a build failure fails every test that needs it.
    static func shared() throws -> TestImage {
        try requirements()
        return try built.get()
    }

    /// recipes/limine.toml's image (Limine for BIOS and UEFI), built on first use.
    static func sharedLimine() throws -> TestImage {
        try requirements()
        return try builtLimine.get()
    }

    private static func build(recipe name: String = "minimal") throws -> TestImage {
        try requirements()
        let directory = try TemporaryDirectory.forTestProcess(prefix: "rast-install-image")
        var recipe = try Recipe.load(path: ProjectPaths.recipes + "/\(name).toml")
        recipe.output.directory = directory.appending("out")
        let options = BuildOptions(dataDirectory: ProjectPaths.root, rastBinary: rastBinary, bootTest: false,
                                   progress: TerminalProgress(interactive: false))
        let result = try ImageBuilder(recipe: recipe, options: options).build()
        return TestImage(directory: recipe.output.directory, raw: recipe.outputPath(for: .raw),
                         qcow2: recipe.outputPath(for: .qcow2), manifest: result.manifest)
    }

    /// The SHA-256 rast-build recorded for the raw image (also the hash of its virtual disk).
    var rawSHA256: String { manifest.outputs.first { $0.file.hasSuffix(".raw") }?.sha256 ?? "" }
    var rawSize: Int64 { manifest.disk.sizeBytes }
    var root: AttachedDisk.PartitionRecord? { manifest.disk.partitions.first { $0.name == DiskStage.rootName } }
}

enum InstallTest {
    static func install(_ image: String, to target: String, size: Int64? = nil, confirmed: Bool = false,
                        _ personalisation: Personalisation = Personalisation()) throws -> InstallResult {
        let request = InstallRequest(image: image, target: target, size: size, confirmed: confirmed, personalisation: personalisation)
        return try Installer(request: request, progress: TerminalProgress(interactive: false)).install()
    }

    /// Nothing of an installation may stay attached or mounted, and no temporary file beside the target.
    static func expectNoLeftovers(under directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let mounts = try Leftovers.mounts(under: directory)
        #expect(mounts.isEmpty, "no mount left under \(directory): \(mounts)", sourceLocation: sourceLocation)
        let loops = try Leftovers.loopDevices(under: directory)
        #expect(loops.isEmpty, "no loop device left for files under \(directory): \(loops)", sourceLocation: sourceLocation)
        let temporaries = try FileManagerShim.contents(of: directory).filter { $0.contains(".rast-install-") }
        #expect(temporaries.isEmpty, "no temporary file left in \(directory): \(temporaries)", sourceLocation: sourceLocation)
    }

    /// A file of `size` bytes in `directory` whose every MiB starts with a marker, so that
    /// stale bytes that an installation failed to overwrite or zero show up.
    static func garbageFile(_ path: String, size: Int64) throws {
        try Command("truncate", ["-s", String(size), path]).run()
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        let marker = [UInt8](repeating: 0xA5, count: 4096)
        var offset: Int64 = 0
        while offset < size {
            _ = marker.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            offset += 1 << 20
        }
        fsync(fd)
    }

    /// The root filesystem of an installed disk (file or device), mounted read-only at its top level.
    final class MountedRoot {
        let scratch: Scratch
        let loop: LoopDevice
        var path: String { scratch.appending("mnt") }

        init(disk: String) throws {
            scratch = try Scratch("rast-install-inspect")
            let layout = try DiskLayout.read(disk: disk)
            let root = try #require(layout.root)
            loop = try LoopDevice(file: disk, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
            try Files.createDirectory(scratch.appending("mnt"))
            do {
                try Mounts.mount(loop.path, on: path, type: "btrfs", options: ["ro", "subvolid=5"])
            } catch {
                loop.detach()
                throw error
            }
        }

        func read(_ relative: String) -> String? { try? Files.readString(path + "/" + relative) }

        func close() {
            try? Mounts.unmountAll(under: scratch.path)
            loop.detach()
        }

        deinit { close() }
    }

    /// Boots `disk` (raw) in QEMU with Pipeline's boot test and `extraChecks` run in the guest.
    static func boot(_ disk: String, firmware: MachineConfiguration.Firmware, expectation: BootExpectation, extraChecks: String = "",
                     logDirectory: String) throws -> BootTestResult {
        let test = BootTest(image: disk, format: "raw", firmware: firmware, timeout: 300,
                            expectation: expectation, extraChecks: extraChecks,
                            consoleLog: logDirectory + "/boot-\(firmware.rawValue).log")
        return try test.run(progress: TerminalProgress(interactive: false))
    }
}
