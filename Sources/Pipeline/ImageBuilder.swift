import BootEntries
import Dispatch
import Foundation
import ImageSupport
import Synchronization
import Kernel
import Packages
import QCOW2
import Recipe
import SnapshotTree
import SystemSupport
import VirtualMachine

/// How to run a build (the recipe says what to build).
package struct BuildOptions: Sendable {
    /// Kernel builds, makepkg results and downloaded packages (`~/.cache/rast`).
    package var cacheDirectory: String
    /// Where kernel-profiles/ and bootloader/ are.
    package var dataDirectory: String
    /// The rast executable the `rast` package carries.
    package var rastBinary: String?
    /// Run the boot test (nil: as the recipe says).
    package var bootTest: Bool?
    /// Boots run at the same time in the boot test (nil: one per core).
    package var bootTestJobs: Int?
    package var jobs: Int
    package var progress: ProgressReporter

    package init(cacheDirectory: String = Files.cacheDirectory, dataDirectory: String = DataDirectory.locate(),
                rastBinary: String? = RastBinary.locate(), bootTest: Bool? = nil,
                jobs: Int = ProcessInfo.processInfo.activeProcessorCount, progress: ProgressReporter = TerminalProgress()) {
        self.cacheDirectory = cacheDirectory
        self.dataDirectory = dataDirectory
        self.rastBinary = rastBinary
        self.bootTest = bootTest
        self.jobs = jobs
        self.progress = progress
    }
}

/// Finds the rast executable to put into images: `$RAST_BINARY`, else a `rast` next to the
/// running program (both are built into the same directory).
package enum RastBinary {
    package static func locate() -> String? {
        if let path = ProcessInfo.processInfo.environment["RAST_BINARY"], !path.isEmpty { return path }
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let sibling = (executable as NSString).deletingLastPathComponent + "/rast"
        return Files.exists(sibling) ? sibling : nil
    }
}

/// What a finished build produced.
package struct BuildResult: Sendable {
    package let outputs: [String]
    package let manifest: Manifest
    package let manifestPath: String
}

/// Runs the stages of DESIGN.md for one recipe:
/// kernel → packages → disk → rootfs → configure → boot loader → outputs → boot test.
///
/// Everything is made in a work directory inside the output directory and only renamed to
/// its final name (output/NAME.raw, .qcow2, .manifest.json, SHA256SUMS) after every stage,
/// the boot test included, succeeded. Mounts and loop devices are released on every path
/// out (errors and SIGINT too; rast-build also runs in its own mount namespace), and the
/// work directory is removed.
package final class ImageBuilder {
    package let recipe: Recipe
    package let options: BuildOptions
    private var timings: [Manifest.StageTiming] = []

    package init(recipe: Recipe, options: BuildOptions) {
        self.recipe = recipe
        self.options = options
    }

    var progress: ProgressReporter { options.progress }
    var templates: BootTemplates { BootTemplates(directory: options.dataDirectory + "/bootloader") }

    /// Checks what can be checked before hours of work: root, tools, files the recipe names.
    package func preflight() throws {
        try Privileges.requireRoot(for: "rast-build (it mounts filesystems and attaches loop devices)")
        try HostTools.require(["mkfs.btrfs", "mkfs.fat", "makepkg", "repo-add", "ldd"], for: "building an image")
        try BootLoaderInstaller.preflight(recipe)
        try recipe.validateEnvironment(profilesDirectory: options.dataDirectory + "/kernel-profiles")
        if recipe.packages.local.contains(where: { Files.exists($0 + "/rast.inputs") }), options.rastBinary == nil {
            throw UserError("the recipe builds the rast package, but no rast binary was found; run `make build` first or set RAST_BINARY")
        }
    }

    /// Runs `body` as a named stage, recording its time.
    func stage<T>(_ name: String, _ body: () throws -> T) throws -> T {
        try checkCancelled()
        let stopwatch = Stopwatch()
        let result = try body()
        timings.append(Manifest.StageTiming(stage: name, seconds: (stopwatch.elapsed * 100).rounded() / 100))
        return result
    }

    // MARK: Kernel

    /// The kernel stage alone (`rast-build kernel`); nil when the recipe takes a packaged kernel.
    package func buildKernel() throws -> KernelBuildResult? {
        guard let spec = recipe.kernel, spec.isBuilt else { return nil }
        let source: KernelSource
        switch spec.source {
        case .local(let path): source = .local(path: path)
        case .https(let url, let sha256): source = .https(url: url, sha256: sha256)
        case .git(let url, let ref): source = .git(url: url, ref: ref)
        case .packaged: return nil
        }
        let options = spec.options.map { option -> ConfigOption in
            let symbol = option.name.hasPrefix("CONFIG_") ? String(option.name.dropFirst(7)) : option.name
            let line = String(option.configLine.drop { $0 != "=" }.dropFirst())
            let value = line.isEmpty ? "n" : line
            return ConfigOption(symbol: symbol, value: value, file: recipe.file,
                                line: recipe.position(of: "kernel.options.\(option.name)")?.line ?? 0)
        }
        let request = KernelBuildRequest(
            source: source, profiles: spec.profiles.map { self.options.dataDirectory + "/kernel-profiles/\($0).config" },
            fragments: spec.fragments, options: options, strict: spec.strict, packageName: spec.package, jobs: self.options.jobs)
        let stage = KernelStage(cacheDirectory: self.options.cacheDirectory + "/kernel",
                                logDirectory: recipe.output.directory + "/logs", fetcher: NetworkSourceFetcher(), progress: progress)
        return try stage.build(request)
    }

    // MARK: The whole build

    package func build() throws -> BuildResult {
        try preflight()
        try Files.createDirectory(recipe.output.directory)
        let work = try TemporaryDirectory(prefix: Mounts.workDirectoryPrefix + recipe.name, in: recipe.output.directory)
        let teardown = Teardown()
        defer {
            teardown.run()
            try? work.remove()
        }
        do {
            return try runStages(work: work, teardown: teardown)
        } catch let error as InterruptedError {
            throw error
        } catch {
            // A full output disk shows up as EIO from the image's btrfs (its backing file could
            // not grow) or as ENOSPC from wherever the write happened; say what is going on
            // (checked before the work directory is removed and frees the space again).
            if let free = try? freeBytes(of: recipe.output.directory), free < 64 << 20 {
                throw UserError("\(error)\nthe filesystem holding \(recipe.output.directory) is full (\(ByteCount.format(free)) free): No space left on device", cause: error)
            }
            throw error
        }
    }

    func runStages(work: TemporaryDirectory, teardown: Teardown) throws -> BuildResult {
        let total = Stopwatch()
        try Files.createDirectory(work.appending("logs"))

        let kernel = try stage("kernel") { try buildKernel() }
        if let kernel { progress.note("kernel: \(kernel.packageName) \(kernel.kernelRelease)\(kernel.cacheHit ? " (cached)" : "")") }

        let packages = try stage("packages") {
            try LocalPackagesStage(pkgbuilds: recipe.packages.local, extraPackages: kernel.map { [$0.packagePath] } ?? [],
                                   workDirectory: work.path, logDirectory: recipe.output.directory + "/logs",
                                   cacheDirectory: options.cacheDirectory, dataDirectory: options.dataDirectory,
                                   rastBinary: options.rastBinary, jobs: options.jobs, progress: progress).run()
        }

        let rawPath = work.appending("\(recipe.name).raw")
        let disk = try stage("disk") {
            try DiskStage(disk: recipe.disk, imagePath: rawPath, progress: progress).run(teardown: teardown)
        }

        let mountPoint = work.appending("mnt")
        let rootfs = try stage("rootfs") {
            try RootfsStage(recipe: recipe, disk: disk, mountPoint: mountPoint, localRepository: packages.repository,
                            workDirectory: work.path, templates: templates,
                            remotePackageCache: RemotePackageCache(directory: options.cacheDirectory + "/remote-packages"),
                            progress: progress).run(teardown: teardown)
        }

        if !recipe.containers.isEmpty {
            _ = try stage("containers") {
                try ContainerStage(recipe: recipe, variable: rootfs.store.layout.variable, base: rootfs.base, progress: progress).run()
            }
        }

        let settings = try stage("configure") {
            try ConfigureStage(recipe: recipe, store: rootfs.store, base: rootfs.base, disk: disk, progress: progress).run()
        }
        let tree = try rootfs.store.treeView().render().split(separator: "\n").map(String.init)
        let state = try rootfs.store.state()

        try stage("bootloader") {
            try BootLoaderInstaller(recipe: recipe, disk: disk, layout: rootfs.store.layout, templates: templates,
                                workDirectory: work.path, progress: progress).run()
        }

        // A copy of the image's kernel: the boot test proves with it that KVM runs a kernel here.
        let probeKernel = try copyKernelForProbe(layout: rootfs.store.layout, to: work.appending("probe-vmlinuz"))

        // The filesystem is complete: release it before the image file is read.
        let used = try usedBytes(of: mountPoint)
        rootfs.store.unlock()
        try Mounts.unmountAll(under: mountPoint)
        disk.detach()

        var files: [(final: String, temporary: String)] = []
        let outputs = try stage("outputs") { () -> [Manifest.Output] in
            var outputs: [Manifest.Output] = []
            if recipe.output.formats.contains(.raw) {
                files.append((recipe.outputPath(for: .raw), rawPath))
            }
            if recipe.output.formats.contains(.qcow2) {
                let qcow2 = work.appending("\(recipe.name).qcow2")
                let compression: QCOW2.QCOW2Compression = switch recipe.output.qcow2Compression {
                case .none: .none
                case .zlib: .zlib
                case .zstd: .zstd
                }
                let final = recipe.outputPath(for: .qcow2)
                let summary = try QCOW2Writer.convert(raw: rawPath, to: qcow2,
                                                      options: QCOW2Options(compression: compression, clusterSize: Int(recipe.output.qcow2ClusterSize)),
                                                      progress: progress, displayPath: final)
                progress.note("outputs: \(final): \(ByteCount.format(summary.fileSize)) for a \(ByteCount.format(summary.virtualSize)) disk")
                files.append((recipe.outputPath(for: .qcow2), qcow2))
            }
            for file in files {
                outputs.append(Manifest.Output(file: (file.final as NSString).lastPathComponent, bytes: try Files.size(file.temporary),
                                               allocatedBytes: try allocatedBytes(file.temporary), sha256: try SHA256.hash(file: file.temporary)))
            }
            return outputs
        }

        var bootResults: [BootTestResult] = []
        if options.bootTest ?? recipe.bootTest.enabled {
            bootResults = try stage("boot test") {
                try runBootTests(files: files, expectation: BootExpectation(current: recipe.snapshots.deploy, tree: tree),
                                 probeKernel: probeKernel)
            }
            if let failed = bootResults.first(where: { !$0.passed }) {
                let logs = recipe.output.directory + "/logs"
                throw UserError("the boot test failed (\(failed.format), \(failed.firmware)): \(failed.outcome); console log: \(logs)/\((failed.consoleLog as NSString).lastPathComponent)")
            }
        }

        let manifest = Manifest(
            name: recipe.name, recipeFile: recipe.file, recipeHash: recipe.recipeHash, rastVersion: RastVersion.string,
            created: TreeState.timestamp(), kernel: kernel.map { Manifest.Kernel(package: $0.packageName, version: $0.packageVersion, release: $0.kernelRelease, cacheHit: $0.cacheHit) },
            packages: rootfs.installed.map { Manifest.Package(name: $0.name, version: $0.version) },
            disk: Manifest.Disk(sizeBytes: recipe.disk.size, usedBytes: used, diskGUID: disk.diskGUID, partitions: disk.partitions,
                                bootloader: recipe.disk.bootloader.rawValue, firmware: recipe.disk.firmware.map(\.rawValue)),
            filesystemUUID: settings.filesystemUUID, rootPartitionUUID: settings.rootPartitionUUID,
            snapshots: state.snapshots, deployed: recipe.snapshots.deploy, tree: tree,
            stageTimings: timings + [Manifest.StageTiming(stage: "total", seconds: (total.elapsed * 100).rounded() / 100)],
            outputs: outputs, bootTests: bootResults, users: recipe.users.map { Manifest.User(name: $0.name, sshKeys: $0.sshKeys) })
        let manifestTemporary = work.appending("\(recipe.name).manifest.json")
        try Files.writeAtomically(manifestTemporary, bytes: try manifest.encoded())
        files.append((recipe.output.directory + "/\(recipe.name).manifest.json", manifestTemporary))
        let known = Dictionary(outputs.map { ($0.file, $0.sha256) }, uniquingKeysWith: { first, _ in first })
        let sums = try checksums(files: files, known: known)
        files.append((recipe.output.directory + "/SHA256SUMS", sums))

        // Publish: rename every file to its final name (same filesystem), checksums last.
        for file in files {
            try SystemError.check("rename", path: file.final) { rename(file.temporary, file.final) }
        }
        try Files.syncDirectory(recipe.output.directory)
        progress.note("done in \(total.formatted): " + files.map(\.final).joined(separator: ", "))
        return BuildResult(outputs: files.map(\.final), manifest: manifest, manifestPath: recipe.output.directory + "/\(recipe.name).manifest.json")
    }

    /// Copies the kernel the image boots (from the next deployment slot, else snapshot 0) to
    /// `destination`; nil when there is none.
    func copyKernelForProbe(layout: Layout, to destination: String) throws -> String? {
        for directory in Layout.slots.map({ layout.boot($0) }) + [layout.boot(0), layout.root(0) + "/boot"] {
            guard let names = try? FileManagerShim.contents(of: directory),
                  let kernel = names.sorted().first(where: { $0.hasPrefix("vmlinuz") }) else { continue }
            try TreeCopy.copy(directory + "/" + kernel, to: destination)
            return destination
        }
        return nil
    }

    /// Boots every output under every firmware the recipe names, as many at a time as there
    /// are cores (`bootTestJobs`), each with its own console log. The accelerator is decided
    /// once before (with the image's kernel), so the boots do not each find out on their own.
    func runBootTests(files: [(final: String, temporary: String)], expectation: BootExpectation,
                      probeKernel: String? = nil) throws -> [BootTestResult] {
        let logs = recipe.output.directory + "/logs"
        try Files.createDirectory(logs)
        var tests: [BootTest] = []
        for firmware in recipe.bootTest.firmware {
            for file in files {
                let format = file.final.hasSuffix(".qcow2") ? "qcow2" : "raw"
                var test = BootTest(image: file.temporary, format: format, firmware: firmware == .bios ? .bios : .uefi,
                                    timeout: Double(recipe.bootTest.timeout), memory: "\(recipe.bootTest.memory >> 20)M",
                                    expectation: expectation,
                                    consoleLog: logs + "/boot-\(recipe.name)-\(format)-\(firmware.rawValue).log")
                test.probeKernel = probeKernel
                test.imageName = file.final
                tests.append(test)
            }
        }
        let parallel = max(1, min(tests.count, options.bootTestJobs ?? ProcessInfo.processInfo.activeProcessorCount))
        let accelerator = QEMU.accelerator(probeKernel: probeKernel)
        let wall = Stopwatch()
        let results = try Self.runConcurrently(tests, parallel: parallel, progress: progress)
        let serial = results.reduce(0) { $0 + $1.seconds }
        progress.note("boot test: \(tests.count) boot\(tests.count == 1 ? "" : "s") (\(accelerator)), \(parallel) at a time: "
                      + "\(String(format: "%.1f", wall.elapsed)) s wall, \(String(format: "%.1f", serial)) s of boots")
        return results
    }

    /// Runs `tests` on `parallel` threads; results in the order of `tests`. The first error
    /// (after every started boot ended) is thrown.
    static func runConcurrently(_ tests: [BootTest], parallel: Int, progress: ProgressReporter) throws -> [BootTestResult] {
        let work = BootTestQueue(count: tests.count)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(parallel, tests.count)) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while let index = work.take() {
                    work.record(index, Result { try tests[index].run(progress: progress) })
                }
            }
        }
        group.wait()
        return try work.results()
    }

    /// SHA256SUMS over the outputs, in `sha256sum` format with the final names. `known` holds
    /// the hashes the manifest already has (the images are booted with snapshot=on, so they
    /// have not changed since): a 2 GiB image is read once, not twice.
    func checksums(files: [(final: String, temporary: String)], known: [String: String]) throws -> String {
        var text = ""
        for file in files {
            let name = (file.final as NSString).lastPathComponent
            text += "\(try known[name] ?? SHA256.hash(file: file.temporary))  \(name)\n"
        }
        let path = (files.first?.temporary as NSString?)?.deletingLastPathComponent ?? recipe.output.directory
        let sums = path + "/SHA256SUMS"
        try Files.writeAtomically(sums, string: text)
        return sums
    }

    func freeBytes(of path: String) throws -> Int64 {
        var info = statvfs()
        try SystemError.check("statvfs", path: path) { statvfs(path, &info) }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    func usedBytes(of path: String) throws -> Int64 {
        var info = statvfs()
        try SystemError.check("statvfs", path: path) { statvfs(path, &info) }
        return Int64(info.f_blocks - info.f_bfree) * Int64(info.f_frsize)
    }

    func allocatedBytes(_ path: String) throws -> Int64 {
        var st = stat()
        try SystemError.check("stat", path: path) { stat(path, &st) }
        return Int64(st.st_blocks) * 512
    }
}

/// The boot tests still to run and what the finished ones gave, shared by the threads that
/// run them.
final class BootTestQueue: Sendable {
    private let next = Mutex(0)
    private let outcomes = Mutex<[Int: Result<BootTestResult, any Error>]>([:])
    let count: Int

    init(count: Int) { self.count = count }

    /// The next test to run, or nil when all have been taken.
    func take() -> Int? {
        next.withLock { next in
            guard next < count else { return nil }
            defer { next += 1 }
            return next
        }
    }

    func record(_ index: Int, _ outcome: Result<BootTestResult, any Error>) {
        outcomes.withLock { $0[index] = outcome }
    }

    func results() throws -> [BootTestResult] {
        let collected = outcomes.withLock { $0 }
        return try (0..<count).map { index in
            guard let outcome = collected[index] else { throw UserError("boot test \(index + 1) did not run") }
            return try outcome.get()
        }
    }
}
