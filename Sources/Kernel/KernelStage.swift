import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What the kernel stage is asked to build.
package struct KernelBuildRequest: Sendable {
    package var source: KernelSource
    /// Profile fragments (kernel-profiles/NAME.config), base first.
    package var profiles: [String]
    /// Further fragments named by the recipe.
    package var fragments: [String]
    /// Inline options from the recipe, applied last (file/line say where they were written).
    package var options: [ConfigOption]
    /// A requested option that olddefconfig dropped or changed fails the build.
    package var strict: Bool
    /// The Arch package name, e.g. `linux-rast-base`.
    package var packageName: String
    /// Parallel jobs for make; defaults to the number of online cores.
    package var jobs: Int

    package init(source: KernelSource, profiles: [String], fragments: [String] = [], options: [ConfigOption] = [],
                strict: Bool = false, packageName: String, jobs: Int? = nil) {
        self.source = source
        self.profiles = profiles
        self.fragments = fragments
        self.options = options
        self.strict = strict
        self.packageName = packageName
        self.jobs = jobs ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

/// The outcome: an Arch package holding the kernel, its modules, config and System.map.
package struct KernelBuildResult: Sendable, Codable {
    package let packagePath: String
    package let packageName: String
    package let packageVersion: String
    /// `uname -r` of the built kernel, e.g. `6.1.192-rast`.
    package let kernelRelease: String
    package let cacheKey: String
    package var cacheHit: Bool
    /// Requested options that did not make it into the final .config.
    package let droppedOptions: [String]
    package let overrides: [String]
    package let buildSeconds: Double
    package let logPath: String?
}

/// The kernel stage: merge the profile fragments, check the result, build out of tree with
/// `make -j`, and package the kernel for the local repository, all behind a cache keyed by the
/// source's identity, the merged configuration, the toolchain and the profile files.
///
/// Cache layout (under `cacheDirectory`, default `~/.cache/rast/kernel`):
/// ```
/// source-ids/HASH          remembered tarball checksums (path, size, mtime, inode -> sha256)
/// sources/ID/              unpacked source trees, one per source identity
/// trees/ID/                kept out-of-tree build directories (incremental rebuilds)
/// packages/KEY/            result.json + the package, one per cache key
/// lock                     serialises concurrent builds
/// ```
package final class KernelStage {
    package let cacheDirectory: String
    package let logDirectory: String
    package let progress: ProgressReporter
    package let fetcher: SourceFetcher?

    package init(cacheDirectory: String = Files.cacheDirectory + "/kernel", logDirectory: String,
                fetcher: SourceFetcher?, progress: ProgressReporter) {
        self.cacheDirectory = cacheDirectory
        self.logDirectory = logDirectory
        self.fetcher = fetcher
        self.progress = progress
    }

    var preparer: SourcePreparer {
        SourcePreparer(cacheDirectory: cacheDirectory, fetcher: fetcher, progress: progress)
    }

    // MARK: Configuration

    /// Unpacks (once) and identifies the request's source.
    package func preparedSource(_ request: KernelBuildRequest) throws -> PreparedSource {
        try preparer.prepare(request.source)
    }

    /// Merges the request's fragments in order (profiles, fragments, inline options).
    package func mergedFragments(_ request: KernelBuildRequest) throws -> ConfigFragmentSet {
        var set = ConfigFragmentSet()
        for path in request.profiles + request.fragments { try set.add(fragmentAt: path) }
        for option in request.options { set.add(option) }
        return set
    }

    /// The cache key: the inputs that decide the build's output, hashed.
    package func cacheKey(_ request: KernelBuildRequest, merged: ConfigFragmentSet, sourceIdentity: String) throws -> String {
        var text = "rast kernel cache v1\n"
        text += "source \(sourceIdentity)\n"
        text += "package \(request.packageName)\n"
        text += "toolchain \(try Toolchain.fingerprint())\n"
        for path in request.profiles + request.fragments {
            text += "fragment \((path as NSString).lastPathComponent) \(try SHA256.hash(file: path))\n"
        }
        text += "merged\n" + merged.mergedText
        return SHA256.hash(text)
    }

    /// Configures a build directory for the request: allnoconfig with the merged fragments
    /// as KCONFIG_ALLCONFIG, then olddefconfig. Returns the report of requested options.
    package func configure(_ request: KernelBuildRequest, source: PreparedSource, merged: ConfigFragmentSet,
                          buildDirectory: String, log: LogFile?) throws -> ConfigReport {
        try checkSymbols(merged, source: source)
        try Files.createDirectory(buildDirectory)
        let mergedPath = buildDirectory + "/rast-merged.config"
        try Files.writeAtomically(mergedPath, string: merged.mergedText)
        for target in ["allnoconfig", "olddefconfig"] {
            try make(source: source, buildDirectory: buildDirectory, arguments: ["KCONFIG_ALLCONFIG=\(mergedPath)", target],
                     log: log, quiet: true)
        }
        let final = try Files.readString(buildDirectory + "/.config")
        return try ConfigReport(requested: merged, finalConfig: final)
    }

    /// Rejects options whose symbol the source's Kconfig does not define.
    func checkSymbols(_ merged: ConfigFragmentSet, source: PreparedSource) throws {
        let symbols = try knownSymbols(source)
        let unknown = merged.options.filter { !symbols.contains($0.symbol) }
        if !unknown.isEmpty { throw KernelConfigError.unknownSymbols(unknown) }
    }

    func knownSymbols(_ source: PreparedSource) throws -> Set<String> {
        let memo = cacheDirectory + "/symbols/" + SHA256.hash(source.identity)
        if let text = try? Files.readString(memo), !text.isEmpty {
            return Set(text.split(separator: "\n").map(String.init))
        }
        let symbols = try KconfigSymbols.scan(sourceTree: source.tree)
        try Files.createDirectory(cacheDirectory + "/symbols")
        try Files.writeAtomically(memo, string: symbols.sorted().joined(separator: "\n"))
        return symbols
    }

    // MARK: Build

    /// Builds (or finds in the cache) the kernel package.
    package func build(_ request: KernelBuildRequest) throws -> KernelBuildResult {
        let stopwatch = Stopwatch()
        let merged = try mergedFragments(request)
        for override in merged.overrides { progress.note("kernel: \(override)") }
        let identity = try preparer.identity(of: request.source)
        let key = try cacheKey(request, merged: merged, sourceIdentity: identity)
        if var cached = cachedResult(key: key) {
            cached.cacheHit = true
            for dropped in cached.droppedOptions { progress.note("kernel: warning: \(dropped)") }
            return cached
        }

        try Files.createDirectory(cacheDirectory)
        let lock = try FileLock(path: cacheDirectory + "/lock", wait: true) {
            self.progress.note("kernel: waiting for another kernel build to finish")
        }
        defer { lock.unlock() }
        // Another process may have built it while we waited.
        if var cached = cachedResult(key: key) {
            cached.cacheHit = true
            return cached
        }

        let source = try preparer.prepare(request.source)
        try Files.createDirectory(logDirectory)
        let logPath = logDirectory + "/kernel-\(request.packageName).log"
        let log = try LogFile(path: logPath)
        let buildDirectory = cacheDirectory + "/trees/" + String(SHA256.hash(source.identity + request.packageName).prefix(24))

        progress.begin("kernel: configuring \(request.packageName) \(source.version) (\(request.profiles.map { ($0 as NSString).lastPathComponent }.joined(separator: " + ")))")
        let report = try configure(request, source: source, merged: merged, buildDirectory: buildDirectory, log: log)
        for change in report.changes { progress.note("kernel: warning: \(change)") }
        if request.strict, !report.isClean { throw KernelConfigError.optionsChanged(report.changes) }
        progress.end("kernel: configuration", summary: "\(report.requested) requested options, \(report.changes.count) dropped or changed")

        try compile(source: source, buildDirectory: buildDirectory, jobs: request.jobs, log: log)
        let release = try Command("make", ["-s", "-C", source.tree, "O=\(buildDirectory)", "kernelrelease"]).output()

        let result = try package(request: request, source: source, buildDirectory: buildDirectory, release: release,
                                 key: key, report: report, merged: merged, log: log, logPath: logPath,
                                 seconds: stopwatch.elapsed)
        return result
    }

    func cachedResult(key: String) -> KernelBuildResult? {
        let directory = cacheDirectory + "/packages/" + key
        guard let data = FileManager.default.contents(atPath: directory + "/result.json"),
              let result = try? JSONDecoder().decode(KernelBuildResult.self, from: data),
              Files.exists(result.packagePath) else { return nil }
        return result
    }

    /// `make -j bzImage modules` with a progress bar fed by kbuild's own lines.
    func compile(source: PreparedSource, buildDirectory: String, jobs: Int, log: LogFile) throws {
        let stopwatch = Stopwatch()
        let task = "kernel: building"
        progress.begin("\(task) with make -j\(jobs) (log: \(log.path))")
        let countFile = buildDirectory + "/.rast-step-count"
        let ratioFile = cacheDirectory + "/step-ratio"
        let known = (try? Files.readString(countFile)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        let coldBuild = known == nil
        let expected = known ?? (try? KbuildEstimate.steps(buildDirectory: buildDirectory, sourceTree: source.tree, ratioFile: ratioFile))
        var steps: Int64 = 0
        do {
            try make(source: source, buildDirectory: buildDirectory, arguments: ["-j\(jobs)", "bzImage", "modules"], log: log, quiet: false) { line in
                guard KbuildEstimate.isStep(line) else { return }
                steps += 1
                let total = expected.map { max($0, steps) }
                self.progress.update(ProgressUpdate(task: task, completed: steps, total: total, unit: .items,
                                                    detail: line.split(separator: " ", omittingEmptySubsequences: true).last.map(String.init)))
            }
        } catch let error as InterruptedError {
            throw error
        } catch {
            throw UserError("the kernel build failed; the last lines of \(log.path):\n\(log.tail(lines: 30))")
        }
        // A full build's step count is the exact total of the next full build of this tree, and
        // refines the estimate for trees never built.
        if coldBuild {
            try? Files.writeAtomically(countFile, string: "\(steps)")
            KbuildEstimate.learn(steps: steps, buildDirectory: buildDirectory, ratioFile: ratioFile)
        }
        progress.end(task, summary: "\(steps) steps in \(stopwatch.formatted)")
    }

    func make(source: PreparedSource, buildDirectory: String, arguments: [String], log: LogFile?, quiet: Bool,
              onLine: ((String) -> Void)? = nil) throws {
        let command = Command("make", ["-C", source.tree, "O=\(buildDirectory)"] + arguments)
        log?.write("$ \(command)\n")
        try command.run(output: .lines { line in
            log?.write(line + "\n")
            onLine?(line)
        })
    }

    // MARK: Packaging

    func package(request: KernelBuildRequest, source: PreparedSource, buildDirectory: String, release: String,
                 key: String, report: ConfigReport, merged: ConfigFragmentSet, log: LogFile, logPath: String,
                 seconds: Double) throws -> KernelBuildResult {
        let packages = cacheDirectory + "/packages"
        try Files.createDirectory(packages)
        let work = try TemporaryDirectory(prefix: "pkg-\(String(key.prefix(12)))", in: packages)
        defer { try? work.remove() }
        let staging = work.appending("root")
        let modules = "\(staging)/usr/lib/modules/\(release)"
        try Files.createDirectory(staging + "/boot")
        progress.begin("kernel: packaging \(request.packageName) (\(release))")
        let bzImage = buildDirectory + "/arch/x86/boot/bzImage"
        try Command("cp", [bzImage, "\(staging)/boot/vmlinuz-\(request.packageName)"]).run()
        try make(source: source, buildDirectory: buildDirectory,
                 arguments: ["INSTALL_MOD_PATH=\(staging)/usr", "INSTALL_MOD_STRIP=1", "modules_install"], log: log, quiet: true)
        // modules_install links build/source back into the build tree; they mean nothing in the image.
        for link in ["build", "source"] { unlink("\(modules)/\(link)") }
        try Command("cp", [buildDirectory + "/.config", modules + "/config"]).run()
        try Command("cp", [buildDirectory + "/System.map", modules + "/System.map"]).run()
        try Files.write(modules + "/pkgbase", string: request.packageName + "\n")

        let version = source.version
        let archive = try KernelPackageWriter.write(
            staging: staging, name: request.packageName, version: version, release: release,
            into: work.path)
        let finalDirectory = packages + "/" + key
        try? Files.removeTree(finalDirectory)
        try Files.createDirectory(finalDirectory)
        let packagePath = finalDirectory + "/" + (archive as NSString).lastPathComponent
        try SystemError.check("rename", path: archive) { rename(archive, packagePath) }
        let result = KernelBuildResult(
            packagePath: packagePath, packageName: request.packageName, packageVersion: "\(version)-1",
            kernelRelease: release, cacheKey: key, cacheHit: false,
            droppedOptions: report.changes.map(\.description), overrides: merged.overrides.map(\.description),
            buildSeconds: seconds, logPath: logPath)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.writeAtomically(finalDirectory + "/result.json", bytes: Array(try encoder.encode(result)))
        progress.end("kernel: packaging", summary: (packagePath as NSString).lastPathComponent)
        return result
    }
}

/// The compiler and linker versions that decide what the build produces.
package enum Toolchain {
    package static func fingerprint() throws -> String {
        let gcc = try Command("gcc", ["--version"]).output().split(separator: "\n").first.map(String.init) ?? "?"
        let ld = try Command("ld", ["--version"]).output().split(separator: "\n").first.map(String.init) ?? "?"
        return "\(gcc) | \(ld)"
    }
}

