import Archive
import Foundation
import Kernel
import Synchronization
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

/// The accelerator choice on machines where /dev/kvm exists but a guest under KVM hangs
/// silently (FACTS.md): driven by stand-in QEMU programs around the real one, booting the
/// base kernel the kernel stage builds (a cache hit once KernelBuildTests or an image build ran).
@Suite(.serialized) struct AcceleratorTests {
    /// The base profile's kernel, extracted from its package.
    static func baseKernel(in scratch: Scratch) throws -> String {
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
        try Require.programs("make", "gcc", "flex", "bison", "bc", "qemu-system-x86_64")
        try Require.file("/dev/kvm", hint: "machines of this kind have /dev/kvm; the test drives what rast does with it")
        try Require.unset("RAST_ACCEL", because: "the test checks how the accelerator is chosen, which RAST_ACCEL overrides")
        let stage = KernelStage(cacheDirectory: Files.cacheDirectory + "/kernel", logDirectory: scratch.appending("logs"),
                                fetcher: nil, progress: SilentProgress())
        let request = KernelBuildRequest(source: .local(path: ProjectPaths.debianKernelSource),
                                         profiles: [ProjectPaths.kernelProfiles + "/base.config"],
                                         packageName: "linux-rast-base")
        let kernel = try stage.build(request)
        try Files.createDirectory(scratch.appending("pkg"))
        try ArchiveReader.extract(kernel.packagePath, to: scratch.appending("pkg"))
        return scratch.appending("pkg/boot/vmlinuz-linux-rast-base")
    }

    /// A QEMU that sleeps without a word when asked for `-accel kvm` (what a Linux guest does
    /// under KVM on the hosts FACTS.md describes) and runs the real QEMU otherwise.
    static func hangingUnderKVM(in scratch: Scratch) throws -> String {
        let path = scratch.appending("qemu-kvm-hangs")
        try Files.write(path, string: """
            #!/bin/sh
            previous=
            for argument in "$@"; do
                if [ "$previous" = -accel ] && [ "$argument" = kvm ]; then exec sleep 3600; fi
                previous=$argument
            done
            exec qemu-system-x86_64 "$@"

            """, mode: 0o755)
        return path
    }

    /// A QEMU on which "KVM works": asked for KVM with the host CPU, it runs the real QEMU
    /// with TCG and its own CPU model instead.
    static func workingKVM(in scratch: Scratch) throws -> String {
        let path = scratch.appending("qemu-kvm-works")
        try Files.write(path, string: """
            #!/bin/bash
            arguments=()
            previous=
            for argument in "$@"; do
                if [ "$previous" = -accel ] && [ "$argument" = kvm ]; then argument=tcg; fi
                if [ "$previous" = -cpu ] && [ "$argument" = host ]; then argument=max; fi
                arguments+=("$argument")
                previous=$argument
            done
            exec qemu-system-x86_64 "${arguments[@]}"

            """, mode: 0o755)
        return path
    }

    /// A boot under a QEMU whose KVM guests hang: no 300 s wait, one line saying what happened,
    /// the boot succeeds under TCG, and the next boot starts with TCG at once.
    @Test func silentKVMBootIsRetriedUnderTCGAndTheChoiceRemembered() throws {
        let scratch = try Scratch("rast-accel")
        let kernel = try Self.baseKernel(in: scratch)
        let initramfs = try Initramfs.make(in: scratch.path, script: "echo RAST-ACCEL-OK")
        var machine = MachineConfiguration()
        machine.kernel = kernel
        machine.initrd = initramfs
        machine.kernelArguments = "console=ttyS0 panic=-1"
        machine.memory = "256M"
        machine.qemu = try Self.hangingUnderKVM(in: scratch)
        #expect(QEMU.accelerator(for: machine) == "kvm", "with /dev/kvm and nothing decided yet, the boot starts with KVM")

        let notes = NoteRecorder()
        let watch = Stopwatch()
        let first = try QEMU.boot(machine, successMarker: "RAST-ACCEL-OK", failurePrefix: "RAST-ACCEL-FAIL", timeout: 300,
                                  consoleLog: scratch.appending("first.log"), progress: notes, kvmSilenceSeconds: 6)
        let seconds = watch.elapsed
        #expect(first.outcome.succeeded, "\(first.outcome); console: \((try? Files.readString(first.consoleLog)) ?? "")")
        #expect(first.accelerator == "tcg")
        #expect(first.fellBackFromKVM)
        #expect(seconds < 150, "the silent KVM boot was given up after 6 s, not after the 300 s timeout (took \(Int(seconds)) s)")
        #expect(notes.lines.count == 1, "one line says what happened: \(notes.lines)")
        #expect(notes.lines.first?.contains("KVM") == true && notes.lines.first?.contains("TCG") == true, "\(notes.lines)")
        let log = try Files.readString(first.consoleLog)
        #expect(log.contains("-accel kvm") && log.contains("-accel tcg"), "the console log shows both runs")
        #expect(log.contains("Linux version"))
        print("accelerator: silent KVM boot retried under TCG, \(String(format: "%.1f", seconds)) s in all")

        // Remembered for the rest of the process: the next boot goes straight to TCG.
        #expect(QEMU.accelerator(for: machine) == "tcg")
        let secondWatch = Stopwatch()
        let second = try QEMU.boot(machine, successMarker: "RAST-ACCEL-OK", failurePrefix: "RAST-ACCEL-FAIL", timeout: 300,
                                   consoleLog: scratch.appending("second.log"), progress: notes, kvmSilenceSeconds: 6)
        #expect(second.outcome.succeeded)
        #expect(second.accelerator == "tcg" && !second.fellBackFromKVM)
        #expect(notes.lines.count == 1, "no second fallback line")
        #expect(!(try Files.readString(second.consoleLog)).contains("-accel kvm"))
        print("accelerator: second boot straight under TCG in \(secondWatch.formatted)")
    }

    /// Where QEMU's KVM code asserts at once (this machine with `-cpu host`), the boot moves to
    /// TCG without waiting; a QEMU that ends early for another reason is reported as it is.
    @Test func kvmThatAssertsAtOnceFallsBackAndOtherEarlyExitsAreReported() throws {
        let scratch = try Scratch("rast-accel")
        let kernel = try Self.baseKernel(in: scratch)
        let initramfs = try Initramfs.make(in: scratch.path, script: "echo RAST-ACCEL-OK")
        let asserting = scratch.appending("qemu-kvm-asserts")
        try Files.write(asserting, string: """
            #!/bin/sh
            previous=
            for argument in "$@"; do
                if [ "$previous" = -accel ] && [ "$argument" = kvm ]; then
                    echo "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed." >&2
                    kill -ABRT $$
                fi
                previous=$argument
            done
            exec qemu-system-x86_64 "$@"

            """, mode: 0o755)
        var machine = MachineConfiguration()
        machine.kernel = kernel
        machine.initrd = initramfs
        machine.kernelArguments = "console=ttyS0 panic=-1"
        machine.memory = "256M"
        machine.qemu = asserting
        let report = try QEMU.boot(machine, successMarker: "RAST-ACCEL-OK", failurePrefix: "RAST-ACCEL-FAIL", timeout: 300,
                                   consoleLog: scratch.appending("assert.log"))
        #expect(report.outcome.succeeded && report.accelerator == "tcg" && report.fellBackFromKVM, "\(report.outcome)")
        #expect(report.seconds < 150, "no waiting for the 300 s timeout for a QEMU that is gone (\(Int(report.seconds)) s)")

        // A QEMU that cannot open its disk is not a KVM problem: no second run, the exit is reported.
        let broken = scratch.appending("qemu-no-disk")
        try Files.write(broken, string: "#!/bin/sh\necho \"qemu-system-x86_64: -drive file=/missing: Could not open '/missing'\" >&2\nexit 1\n", mode: 0o755)
        machine.qemu = broken
        let failed = try QEMU.boot(machine, successMarker: "RAST-ACCEL-OK", failurePrefix: "RAST-ACCEL-FAIL", timeout: 300,
                                   consoleLog: scratch.appending("broken.log"))
        #expect(failed.outcome == .exitedEarly(status: 1), "\(failed.outcome)")
        #expect(!failed.fellBackFromKVM)
        #expect(QEMU.accelerator(for: machine) == "kvm", "nothing was decided from a QEMU that could not start its guest")
    }

    /// The probe boots a real kernel and needs its first console line: a QEMU whose KVM guests
    /// hang fails it within the probe's limit; one that runs the kernel passes it.
    @Test func probeBootsAKernelToItsFirstConsoleLine() throws {
        let scratch = try Scratch("rast-accel")
        let kernel = try Self.baseKernel(in: scratch)
        let hanging = try Self.hangingUnderKVM(in: scratch)
        let watch = Stopwatch()
        #expect(QEMU.accelerator(probeKernel: kernel, qemu: hanging) == "tcg")
        #expect(watch.elapsed < 90, "the probe gives up after \(QEMU.probeSeconds) s (took \(watch.formatted))")
        #expect(QEMU.accelerator(probeKernel: kernel, qemu: hanging) == "tcg", "decided once")

        let working = try Self.workingKVM(in: scratch)
        #expect(QEMU.accelerator(probeKernel: kernel, qemu: working) == "kvm")
        // Starting QEMU is not enough: without a kernel that prints, the probe fails.
        let otherWorking = scratch.appending("qemu-kvm-works-2")
        try TreeCopy.copy(working, to: otherWorking)
        let notAKernel = scratch.appending("not-a-kernel")
        try Files.write(notAKernel, string: "not a kernel")
        #expect(QEMU.accelerator(probeKernel: notAKernel, qemu: otherWorking) == "tcg")

        // What KVM does on this machine, for the record.
        let here = QEMU.accelerator(probeKernel: kernel)
        print("accelerator: on this machine a kernel under KVM \(here == "kvm" ? "prints its first line: KVM is used" : "does not print its first line: TCG is used")")
    }
}

/// Collects progress notes.
final class NoteRecorder: ProgressReporter {
    private let notes = Mutex<[String]>([])
    var lines: [String] { notes.withLock { $0 } }
    func begin(_ task: String) {}
    func update(_ update: ProgressUpdate) {}
    func end(_ task: String, summary: String) {}
    func note(_ message: String) { notes.withLock { $0.append(message) } }
}
