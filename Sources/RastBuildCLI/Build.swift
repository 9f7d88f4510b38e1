import ArgumentParser
import CommandLineSupport
import Foundation
import Pipeline
import Recipe
import SystemSupport
import VirtualMachine

/// Options shared by the commands that run stages.
struct StageOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Cache for kernel builds, makepkg results and downloads (default: $RAST_CACHE_DIR, else ~/.cache/rast).", valueName: "DIR"))
    var cache: String?

    @Option(name: .long, help: ArgumentHelp("Where kernel-profiles/ and bootloader/ are (default: the source checkout rast-build was built in, or /usr/share/rast).", valueName: "DIR"))
    var data: String?

    @Option(name: [.short, .long], help: "Parallel jobs for make and makepkg (default: the number of cores).")
    var jobs: Int?

    @OptionGroup var global: GlobalOptions

    func buildOptions(bootTest: Bool?) -> BuildOptions {
        var options = BuildOptions(bootTest: bootTest)
        if let cache { options.cacheDirectory = cache }
        if let data { options.dataDirectory = data }
        if let jobs { options.jobs = max(1, jobs) }
        return options
    }
}

/// `rast-build build RECIPE` (also `rast-build RECIPE`): every stage.
struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the images a recipe describes and boot-test them (the default command).",
        discussion: """
            Stages: kernel, packages, disk, rootfs, configure, boot loader, outputs, boot test \
            (`rast-build plan RECIPE` shows what each will do). Outputs land in the recipe's \
            output directory as NAME.raw, NAME.qcow2, NAME.manifest.json and SHA256SUMS, \
            written under temporary names and renamed only when every stage, the boot test \
            included, succeeded. Needs root (loop devices and mounts).
            """)

    @Argument(help: ArgumentHelp("The recipe.", valueName: "recipe")) var recipe: String
    @Flag(name: .customLong("no-boot-test"), help: "Skip the QEMU boot test even if the recipe enables it.") var noBootTest = false
    @Option(name: .customLong("boot-test-jobs"), help: "Boots the boot test runs at the same time (default: the number of cores).")
    var bootTestJobs: Int?
    @Option(name: .long, help: ArgumentHelp("Write the outputs here instead of the recipe's output.directory.", valueName: "DIR"))
    var output: String?
    @OptionGroup var options: StageOptions

    func run() throws {
        var loaded = try RecipeLoading.load(recipe)
        if let output { loaded.output.directory = URL(fileURLWithPath: output).standardizedFileURL.path }
        var buildOptions = options.buildOptions(bootTest: noBootTest ? false : nil)
        if let bootTestJobs { buildOptions.bootTestJobs = max(1, bootTestJobs) }
        let builder = ImageBuilder(recipe: loaded, options: buildOptions)
        let result = try builder.build()
        for timing in result.manifest.stageTimings {
            print("  " + timing.stage.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: "%8.1f s", timing.seconds))
        }
        for output in result.outputs { print(output) }
    }
}

/// `rast-build kernel RECIPE`: the kernel stage alone.
struct KernelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel",
        abstract: "Build (or find in the cache) the recipe's kernel package.",
        discussion: """
            Merges the profile fragments like the kernel's merge_config.sh, runs olddefconfig, \
            reports every requested option the final .config dropped or changed (--strict or \
            kernel.strict makes that an error), builds out of tree with make -j and packages the \
            kernel, modules, config and System.map as an Arch package. The same inputs again are \
            a cache hit.
            """)

    @Argument(help: ArgumentHelp("The recipe.", valueName: "recipe")) var recipe: String
    @Flag(help: "Fail when a requested option was dropped or changed.") var strict = false
    @OptionGroup var options: StageOptions

    func run() throws {
        var loaded = try RecipeLoading.load(recipe)
        if strict { loaded.kernel?.strict = true }
        let builder = ImageBuilder(recipe: loaded, options: options.buildOptions(bootTest: false))
        let stopwatch = Stopwatch()
        guard let result = try builder.buildKernel() else {
            print("the recipe takes a packaged kernel; nothing to build")
            return
        }
        print("\(result.packageName) \(result.packageVersion) (\(result.kernelRelease)): \(result.cacheHit ? "cache hit" : "built") in \(stopwatch.formatted)")
        print(result.packagePath)
    }
}

/// `rast-build boot IMAGE`: the boot test on its own.
struct BootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "boot",
        abstract: "Boot an image in QEMU and succeed only when the guest reports that rast works.",
        discussion: """
            Uses KVM when it really works here, TCG otherwise. The guest runs `rast current`, \
            `rast tree` and `rast status` and reports them on the serial console; when the \
            image's manifest (NAME.manifest.json beside it) is there, the reports must match \
            its snapshot tree and deployed snapshot. The image itself is not changed. Prints \
            the time to success and keeps the console log.
            """)

    @Argument(help: ArgumentHelp("A raw or QCOW2 image.", valueName: "image")) var image: String
    @Option(help: "bios or uefi.") var firmware: String = "bios"
    @Option(help: "Seconds before the boot counts as failed.") var timeout: Double = 300
    @Option(help: "Guest memory.") var memory: String = "512M"
    @Option(help: ArgumentHelp("Where to keep the serial console log (default: IMAGE.boot-FIRMWARE.log).", valueName: "FILE"))
    var log: String?
    @Option(help: ArgumentHelp("Also log in over SSH as this user (QEMU user networking, the guest's port 22 forwarded from 127.0.0.1), run `rast tree` and `rast service list`, and check that password and root logins are refused.", valueName: "user"))
    var login: String?
    @Option(help: ArgumentHelp("The private key for --login (its public half is in the user's authorized_keys in the image).", valueName: "file"))
    var identity: String?
    @OptionGroup var global: GlobalOptions

    /// The firmware asked for; validate() rejects any other word.
    private func firmwareChoice() throws -> MachineConfiguration.Firmware {
        guard let choice = MachineConfiguration.Firmware(rawValue: firmware) else {
            throw ValidationError("--firmware must be bios or uefi, not '\(firmware)'.")
        }
        return choice
    }

    func validate() throws {
        _ = try firmwareChoice()
        if (login == nil) != (identity == nil) {
            throw ValidationError("--login and --identity go together: the user to log in as and the private key to do it with.")
        }
    }

    func run() throws {
        guard Files.exists(image) else { throw UserError("image \(image) does not exist") }
        let format = try ImageFormat.detect(image)
        let manifestPath = ImageFormat.manifestPath(for: image)
        var expectation = BootExpectation(current: nil, tree: nil)
        if let manifestPath, let manifest = try? Manifest.load(manifestPath) {
            expectation = BootExpectation(current: manifest.deployed, tree: manifest.tree)
            print("expecting snapshot \(manifest.deployed) and the tree from \(manifestPath)")
        }
        var test = BootTest(image: image, format: format, firmware: try firmwareChoice(),
                            timeout: timeout, memory: memory, expectation: expectation,
                            consoleLog: log ?? image + ".boot-\(firmware).log")
        if let login, let identity {
            guard Files.exists(identity) else { throw UserError("--identity \(identity) does not exist") }
            test.login = LoginCheck(user: login, identity: identity)
        }
        let result = try test.run(progress: TerminalProgress())
        if let login = result.login {
            for command in login.commands {
                print("ssh \(test.login?.user ?? "?")@guest \(command.command)  (exit status \(command.status))")
                print(command.output.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
            }
            print("SSH: logged in \(login.secondsToLogin.map { String(format: "%.1f s", $0) } ?? "never") after QEMU started; server offers \(login.offeredAuthentications.joined(separator: ",")); password login \(login.passwordLoginRefused ? "refused" : "ACCEPTED"); root login \(login.rootLoginRefused ? "refused" : "ACCEPTED")")
        }
        guard result.passed else {
            throw UserError("boot test failed: \(result.outcome); console log: \(result.consoleLog)")
        }
        print("boot test passed in \(String(format: "%.1f", result.seconds)) s (\(result.accelerator), \(format), \(firmware)); console log: \(result.consoleLog)")
    }
}

enum ImageFormat {
    static func detect(_ path: String) throws -> String {
        let bytes = try Files.readPrefix(path, count: 4)
        return bytes == [0x51, 0x46, 0x49, 0xFB] ? "qcow2" : "raw"
    }

    /// output/NAME.manifest.json beside output/NAME.raw or .qcow2.
    static func manifestPath(for image: String) -> String? {
        let url = URL(fileURLWithPath: image)
        let candidate = url.deletingPathExtension().path + ".manifest.json"
        return Files.exists(candidate) ? candidate : nil
    }
}
