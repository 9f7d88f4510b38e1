import Blkid
import Foundation
import Synchronization
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

/// Shared setup for tests that build images from the repository's recipes.
enum ImageTestSupport {
    /// The release rast binary (static Swift runtime) that images carry; `make test` builds it.
    static let rastBinary = ProjectPaths.root + "/.build/release/rast"

    static func requirements() throws {
        try Require.root()
        try Require.loopDevices()
        try Require.programs("mkfs.btrfs", "mkfs.fat", "mmd", "mcopy", "makepkg", "repo-add", "grub-install", "grub-mkimage",
                             "qemu-system-x86_64", "qemu-img", "sgdisk", "btrfs")
        try Require.file(rastBinary, hint: "`make test` builds it with swift build -c release --static-swift-stdlib --product rast")
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
    }

    /// A repository recipe with its outputs redirected into `directory`.
    static func recipe(_ name: String, output directory: String, edit: ((inout Recipe) -> Void)? = nil) throws -> Recipe {
        var recipe = try Recipe.load(path: ProjectPaths.recipes + "/\(name).toml")
        recipe.output.directory = directory
        edit?(&recipe)
        return recipe
    }

    static func options(bootTest: Bool) -> BuildOptions {
        BuildOptions(dataDirectory: ProjectPaths.root, rastBinary: rastBinary, bootTest: bootTest,
                     progress: TerminalProgress(interactive: false))
    }

    /// Boot `number` of a test that boots the same raw image again and again (persistent,
    /// ending with `reboot -f`): `script` runs in the guest, which must report snapshot
    /// `current` as booted. Its console log goes to boot-`number`.log in `logDirectory`; the
    /// snapshot it reported and the time are printed after `label`.
    static func reboot(_ image: String, _ number: Int, firmware: MachineConfiguration.Firmware, expect current: Int,
                       then script: String, logDirectory: String, label: String,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> BootTestResult {
        let test = BootTest(image: image, format: "raw", firmware: firmware, timeout: 300,
                            expectation: BootExpectation(current: current, tree: nil), extraChecks: script,
                            persistent: true, finish: "reboot -f", consoleLog: logDirectory + "/boot-\(number).log")
        let result = try test.run(progress: TerminalProgress(interactive: false))
        #expect(result.passed, "boot \(number): \(result.outcome)\n\((try? Files.readString(result.consoleLog))?.suffix(3000) ?? "")",
                sourceLocation: sourceLocation)
        print("\(label): boot \(number) (\(result.firmware)) reported snapshot \(result.reportedCurrent ?? "?") in \(String(format: "%.1f", result.seconds)) s")
        return result
    }

    /// Mounts the image's root filesystem (top level, read-only) in a temporary directory.
    static func withMountedRoot<T>(_ image: String, manifest: Manifest, _ body: (String) throws -> T) throws -> T {
        let root = try #require(manifest.disk.partitions.first { $0.filesystem == "btrfs" })
        let scratch = try Scratch("rast-inspect")
        let loop = try LoopDevice(file: image, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
        defer { loop.detach() }
        let top = scratch.appending("top")
        try Files.createDirectory(top)
        try Mounts.mount(loop.path, on: top, type: "btrfs", options: ["ro", "subvolid=5"])
        defer { try? Mounts.unmount(top) }
        return try body(top)
    }

    /// Nothing of a build may stay attached or mounted.
    static func expectNoLeftovers(under directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let mounts = try Leftovers.mounts(under: directory)
        #expect(mounts.isEmpty, "no mount left under \(directory): \(mounts)", sourceLocation: sourceLocation)
        let loops = try Leftovers.loopDevices(under: directory)
        #expect(loops.isEmpty, "no loop device left for files under \(directory): \(loops)", sourceLocation: sourceLocation)
    }
}

extension ImageBuilds {
    @Suite(.serialized) struct ImageBuildTests {
        /// The default recipe, end to end: built, checked offline, booted under BIOS and UEFI from
        /// the raw image and from the QCOW2 image.
        @Test func defaultRecipeBuildsAndBootsUnderBIOSAndUEFI() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-image")
            let out = scratch.appending("out")
            let recipe = try ImageTestSupport.recipe("minimal", output: out)
            var options = ImageTestSupport.options(bootTest: true)
            let progress = RecordingProgress(forwardingTo: options.progress)
            options.progress = progress
            let result = try ImageBuilder(recipe: recipe, options: options).build()
            try ImageTestSupport.expectNoLeftovers(under: out)

            // Every output under its final name, and nothing else left behind.
            let names = Set(try FileManagerShim.contents(of: out))
            #expect(names.isSuperset(of: ["minimal.raw", "minimal.qcow2", "minimal.manifest.json", "SHA256SUMS", "logs"]))
            #expect(!names.contains { $0.hasPrefix(".rast-work") })
            let sums = try Command("sha256sum", ["-c", "SHA256SUMS"], workingDirectory: out).run(check: false)
            #expect(sums.status == 0, "SHA256SUMS verifies: \(sums.standardOutput)\(sums.standardError)")

            // The manifest says what is in the image.
            let manifest = result.manifest
            #expect(manifest.recipeHash == recipe.recipeHash)
            #expect(Set(manifest.packages.map(\.name)).isSuperset(of: ["filesystem", "busybox", "rast", "linux-rast-base"]))
            #expect(manifest.kernel?.release.hasPrefix("6.1.") == true)
            #expect(manifest.deployed == 1)
            #expect(manifest.tree == ["root", "└── 0 - base snapshot", "    └── 1* - base system", "        └── 2 - workstation"])
            #expect(manifest.bootTests.count == 4)
            for test in manifest.bootTests {
                #expect(test.passed, "\(test.format) \(test.firmware): \(test.outcome)")
                #expect(test.reportedCurrent == "1")
                #expect(test.reportedTree == manifest.tree)
                print("image: \(test.format) booted with \(test.firmware) to `rast current` = \(test.reportedCurrent ?? "?") in \(String(format: "%.1f", test.seconds)) s (\(test.accelerator))")
            }
            for timing in manifest.stageTimings { print("image: stage \(timing.stage) \(timing.seconds) s") }

            // What the user reads names the final files, never the work directory that is gone.
            #expect(Set(manifest.bootTests.map(\.image)) == [out + "/minimal.raw", out + "/minimal.qcow2"], "\(manifest.bootTests.map(\.image))")
            let lines = progress.lines
            #expect(!lines.contains { $0.contains(".rast-work") }, "progress names the work directory: \(lines.filter { $0.contains(".rast-work") })")
            #expect(lines.contains { $0.hasPrefix("begin Writing \(out)/minimal.qcow2: qcow2") }, "\(lines.filter { $0.contains("Writing") })")
            // The boots ran side by side (up to one per core), each with its own console log.
            let concurrency = progress.mostAtOnce(beginning: "begin boot test: ", ending: "end boot test: ")
            let cores = ProcessInfo.processInfo.activeProcessorCount
            #expect(concurrency == min(4, cores), "\(concurrency) boots at once on \(cores) cores")
            #expect(Set(manifest.bootTests.map(\.consoleLog)).count == 4)
            for test in manifest.bootTests {
                let log = try Files.readString(test.consoleLog)
                let runs = log.split(separator: "\n").filter { $0.hasPrefix("# ") && $0.contains("-drive") }
                #expect(runs.count == 1 && runs.allSatisfy { $0.contains("/minimal.\(test.format),format=\(test.format)") },
                        "\(test.consoleLog) holds one boot of its own image: \(runs)")
            }
            let wall = manifest.stageTimings.first { $0.stage == "boot test" }?.seconds ?? 0
            let serial = manifest.bootTests.reduce(0) { $0 + $1.seconds }
            print("image: boot test wall \(wall) s for \(String(format: "%.1f", serial)) s of boots; \(lines.filter { $0.contains("at a time") })")

            // The GPT passes sgdisk's verification; the partition UUIDs are the manifest's.
            let raw = out + "/minimal.raw"
            let verify = try Command("sgdisk", ["-v", raw]).run(check: false)
            #expect(verify.standardOutput.contains("No problems found"), "sgdisk -v: \(verify.standardOutput)")
            let table = try #require(try Blkid.partitionTable(at: raw))
            #expect(table.partitions.map { $0.uuid?.lowercased() } == manifest.disk.partitions.map { $0.partitionUUID.lowercased() })

            // The root filesystem passes btrfs check and holds the astOS layout.
            let root = try #require(manifest.disk.partitions.first { $0.filesystem == "btrfs" })
            let loop = try LoopDevice(file: raw, offset: root.startBytes, sizeLimit: root.sizeBytes, readOnly: true)
            defer { loop.detach() }
            let check = try Command("btrfs", ["check", "--readonly", loop.path]).run(check: false)
            #expect(check.status == 0, "btrfs check: \(check.standardError)")
            let list = try Command("btrfs", ["inspect-internal", "dump-tree", "-t", "root", loop.path]).output()
            for name in ["@.snapshots", "snapshot-0", "etc-0", "boot-0", "snapshot-1", "snapshot-2", "snapshot-tmp", "@home", "@var", "@boot"] {
                #expect(list.contains("name: \(name)") || list.contains(name), "subvolume \(name) exists")
            }
            loop.detach()

            // The rast package carries the search table: the image's own table ranks the image's
            // packages (read-only, so the index stays in memory).
            try ImageTestSupport.withMountedRoot(raw, manifest: manifest) { top in
                let data = top + "/@.snapshots/rootfs/snapshot-1/usr/share/rast/search"
                #expect(Files.exists(data + "/embeddings.rtab") && Files.exists(data + "/NOTICE"))
                let search = try Command(ImageTestSupport.rastBinary, ["search", "--root", top, "--packages", "-n", "1", "snapshot manager"],
                                         environment: ["RAST_SEARCH_DATA": data]).run(check: false)
                let first = search.standardOutput.split(separator: "\n").first ?? ""
                #expect(first.hasSuffix("/rast 0.1.0-1 [installed]"), "\(search.standardOutput)\(search.standardError)")

                // ... and its shell completions, as the rast it carries prints them from its
                // definitions (CLITests check those list every subcommand), and its manual page.
                let usr = top + "/@.snapshots/rootfs/snapshot-1/usr/share"
                for (shell, file) in [("bash", "bash-completion/completions/rast"), ("zsh", "zsh/site-functions/_rast"),
                                      ("fish", "fish/vendor_completions.d/rast.fish")] {
                    let expected = try Command(ImageTestSupport.rastBinary, ["--generate-completion-script", shell]).run().standardOutput
                    #expect(try Files.readString(usr + "/" + file) == expected, "\(file) in the image")
                }
                // makepkg's zipman compresses manual pages.
                let page = try Command("zcat", [usr + "/man/man1/rast.1.gz"]).run(check: false).standardOutput
                #expect(page == (try Files.readString(ProjectPaths.root + "/docs/man/rast.1")), "/usr/share/man/man1/rast.1.gz in the image")
            }
        }
    }
}

/// Records what a build reports (as "begin TASK", "end TASK: SUMMARY", "note TEXT") and
/// passes it on.
final class RecordingProgress: ProgressReporter {
    private let recorded = Mutex<[String]>([])
    private let next: ProgressReporter

    init(forwardingTo next: ProgressReporter) { self.next = next }

    var lines: [String] { recorded.withLock { $0 } }

    func begin(_ task: String) {
        recorded.withLock { $0.append("begin \(task)") }
        next.begin(task)
    }

    func update(_ update: ProgressUpdate) { next.update(update) }

    func end(_ task: String, summary: String) {
        recorded.withLock { $0.append("end \(task): \(summary)") }
        next.end(task, summary: summary)
    }

    func note(_ message: String) {
        recorded.withLock { $0.append("note \(message)") }
        next.note(message)
    }

    /// The largest number of tasks begun (lines starting with `beginning`) and not yet ended.
    func mostAtOnce(beginning: String, ending: String) -> Int {
        var running = 0
        var most = 0
        for line in lines {
            if line.hasPrefix(beginning) { running += 1 }
            if line.hasPrefix(ending) { running -= 1 }
            most = max(most, running)
        }
        return most
    }
}
