import Archive
import Foundation
import Kernel
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

/// The real thing: Debian's linux-source-6.1 built with the base profile, packaged, booted in
/// QEMU, and found in the cache the second time.
@Suite(.serialized) struct KernelBuildTests {
    @Test func baseProfileBuildsBootsInQEMUAndIsCachedAfterwards() throws {
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
        try Require.programs("make", "gcc", "flex", "bison", "bc", "qemu-system-x86_64")
        let scratch = try Scratch("rast-kernel")
        let stage = KernelStage(cacheDirectory: Files.cacheDirectory + "/kernel", logDirectory: scratch.appending("logs"),
                                fetcher: nil, progress: TerminalProgress(interactive: false))
        let request = KernelBuildRequest(source: .local(path: ProjectPaths.debianKernelSource),
                                         profiles: [ProjectPaths.kernelProfiles + "/base.config"],
                                         packageName: "linux-rast-base")
        let firstWatch = Stopwatch()
        let first = try stage.build(request)
        print("kernel: first build \(first.cacheHit ? "was a cache hit" : "built") \(first.kernelRelease) in \(firstWatch.formatted)")
        #expect(first.kernelRelease.hasPrefix("6.1."))
        #expect(first.droppedOptions.isEmpty, "the base profile survives olddefconfig: \(first.droppedOptions)")

        // The package: kernel under /boot, modules, config and System.map under /usr/lib/modules/VERSION.
        let names = Set(try ArchiveReader.list(first.packagePath).map(\.path))
        let modules = "usr/lib/modules/\(first.kernelRelease)"
        for expected in [".PKGINFO", ".MTREE", "boot/vmlinuz-linux-rast-base", "\(modules)/config", "\(modules)/System.map",
                         "\(modules)/modules.dep", "\(modules)/pkgbase"] {
            #expect(names.contains(expected), "package holds \(expected)")
        }
        let pkginfo = String(decoding: try ArchiveReader.contents(of: ".PKGINFO", inArchive: first.packagePath) ?? [], as: UTF8.self)
        #expect(pkginfo.contains("pkgname = linux-rast-base"))

        // Boot it: direct kernel boot with a tiny initramfs whose /init prints a marker.
        try Files.createDirectory(scratch.appending("pkg"))
        try ArchiveReader.extract(first.packagePath, to: scratch.appending("pkg"))
        let initramfs = try Initramfs.make(in: scratch.path, script: "echo \"RAST-KERNEL-BOOT-OK $(uname -r)\"")
        var machine = MachineConfiguration()
        machine.kernel = scratch.appending("pkg/boot/vmlinuz-linux-rast-base")
        machine.initrd = initramfs
        machine.kernelArguments = "console=ttyS0 panic=-1"
        machine.memory = "256M"
        let report = try QEMU.boot(machine, successMarker: "RAST-KERNEL-BOOT-OK \(first.kernelRelease)",
                                   failurePrefix: "RAST-KERNEL-BOOT-FAIL", timeout: 180,
                                   consoleLog: scratch.appending("console.log"))
        #expect(report.outcome.succeeded, "\(report.outcome); console: \((try? Files.readString(report.consoleLog)) ?? "")")
        print("kernel: \(first.kernelRelease) booted to its marker in \(String(format: "%.1f", report.seconds)) s (\(report.accelerator))")

        // The same request again is a cache hit.
        let secondWatch = Stopwatch()
        let second = try stage.build(request)
        #expect(second.cacheHit)
        #expect(second.packagePath == first.packagePath)
        print("kernel: second build was a cache hit in \(secondWatch.formatted)")

        // The command line: `rast-build kernel RECIPE` on the default recipe finds the same package.
        let cli = try Command(ProjectPaths.root + "/.build/debug/rast-build",
                              ["kernel", ProjectPaths.recipes + "/minimal.toml", "--data", ProjectPaths.root]).run(check: false)
        #expect(cli.status == 0, "\(cli.standardError)")
        #expect(cli.standardOutput.contains("linux-rast-base 6.1.192-1 (\(first.kernelRelease)): cache hit"))
        #expect(cli.standardOutput.contains(first.packagePath))
    }

    @Test func strictMakesADroppedOptionAnErrorNamingIt() throws {
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
        let scratch = try Scratch("rast-kernel")
        let stage = KernelStage(cacheDirectory: Files.cacheDirectory + "/kernel", logDirectory: scratch.appending("logs"),
                                fetcher: nil, progress: SilentProgress())
        let request = KernelBuildRequest(source: .local(path: ProjectPaths.debianKernelSource),
                                         profiles: [ProjectPaths.kernelProfiles + "/base.config"],
                                         options: [ConfigOption(symbol: "HIGHMEM4G", value: "y", file: "recipe.toml", line: 7)],
                                         strict: true, packageName: "linux-rast-strict")
        #expect {
            _ = try stage.build(request)
        } throws: { error in
            "\(error)".contains("CONFIG_HIGHMEM4G was dropped: requested y, not set in the final .config (recipe.toml:7)")
        }
    }
}
