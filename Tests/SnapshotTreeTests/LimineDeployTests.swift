import BootEntries
import Btrfs
import Foundation
@testable import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// Deploy, rollback and `rast boot` on a Limine tree keep the ESP (a FAT image, through
/// mtools) in step: the menu names the next deployment first and the previous one second,
/// every kernel it names is on the ESP under its content name, and no other kernel is.
@Suite(.serialized) final class LimineDeployTests {
    /// Each test's own tree with a Limine ESP (Swift Testing makes an instance of the suite
    /// per test), its lock taken; unmounted and removed when the test ends.
    let fixture: TreeFixture
    let store: SnapshotStore
    let esp: ESPVolume

    init() throws {
        fixture = try TreeFixture(loader: .limine)
        store = fixture.store
        esp = try #require(fixture.esp)
        try store.acquire(wait: false)
    }

    deinit { fixture.close() }

    /// The menu on the ESP, parsed, with the ESP paths of what each entry loads.
    static func menu(_ esp: ESPVolume) throws -> LimineConfig {
        let bytes = try #require(try esp.read(LimineLayout.configPath), "the ESP has \(LimineLayout.configPath)")
        return try LimineConfig(parsing: String(decoding: bytes, as: UTF8.self))
    }

    static func loaded(_ menu: LimineConfig) -> [String] {
        menu.entries.flatMap { $0.loadedPaths.compactMap(LimineConfig.bootPartitionPath) }
    }

    /// Gives snapshot `id` a kernel of its own (a working copy, committed).
    static func setKernel(_ fixture: TreeFixture, _ id: Int, _ text: String) throws {
        let root = try fixture.store.prepareWorkingCopy(id, command: "test")
        try Files.write(root + "/boot/vmlinuz-linux-test", string: text)
        try Files.write(root + "/boot/initramfs-linux-test.img", string: "initramfs of \(text)")
        try fixture.store.commitWorkingCopy(id)
    }

    @Test func deployCopiesKernelsToTheESPRollbackReordersAndUnusedKernelsGo() throws {
        #expect(try store.check().isConsistent, "nothing deployed yet: no menu to check")

        let one = try store.copy(0, parent: 0, description: "first")
        try Self.setKernel(fixture, one, "kernel one")
        try store.deploy(one)
        var menu = try Self.menu(esp)
        #expect(menu.entries.map(\.title) == ["rastOS snapshot 1"])
        let oneKernel = LimineLayout.kernelPath(name: "vmlinuz-linux-test", sha256: SHA256.hash("kernel one"))
        let oneInitrd = LimineLayout.kernelPath(name: "initramfs-linux-test.img", sha256: SHA256.hash("initramfs of kernel one"))
        #expect(Self.loaded(menu) == [oneKernel, oneInitrd])
        #expect(try esp.read(oneKernel) == Array("kernel one".utf8))
        #expect(menu.entries[0].value("cmdline") == "root=PARTUUID=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee rootflags=subvol=@.snapshots/rootfs/snapshot-tmp ro rootwait rast.slot=tmp console=ttyS0")
        #expect(!Files.exists(fixture.layout.grubConfig), "a Limine tree has no grub.cfg")

        let two = try store.copy(one, parent: one, description: "second")
        try Self.setKernel(fixture, two, "kernel two")
        try store.deploy(two)
        menu = try Self.menu(esp)
        #expect(menu.entries.map(\.title) == ["rastOS snapshot 2", "rastOS previous deployment (snapshot 1)"])
        #expect(menu.entries[0].value("cmdline")?.contains("rast.slot=tmp0") == true)
        let twoKernel = LimineLayout.kernelPath(name: "vmlinuz-linux-test", sha256: SHA256.hash("kernel two"))
        #expect(Set(try esp.files(in: LimineLayout.kernelDirectory).map { "rastos/" + $0 }) == Set(Self.loaded(menu)))
        #expect(Self.loaded(menu).first == twoKernel)

        #expect(try store.rollback() == one)
        menu = try Self.menu(esp)
        #expect(menu.entries.map(\.title) == ["rastOS snapshot 1", "rastOS previous deployment (snapshot 2)"])
        #expect(menu.entries[0].value("cmdline")?.contains("rast.slot=tmp ") == true)

        // Snapshot 3 has snapshot 1's kernel: deployed over slot tmp0 (snapshot 2), it shares
        // the ESP copy with the other entry, and snapshot 2's kernel is no longer needed.
        let three = try store.copy(one, parent: one, description: "third")
        try store.deploy(three)
        menu = try Self.menu(esp)
        #expect(menu.entries.map(\.title) == ["rastOS snapshot 3", "rastOS previous deployment (snapshot 1)"])
        #expect(Self.loaded(menu) == [oneKernel, oneInitrd, oneKernel, oneInitrd])
        #expect(try esp.files(in: LimineLayout.kernelDirectory).sorted() == [oneInitrd, oneKernel].map { String($0.dropFirst("rastos/".count)) }.sorted())

        try store.updateBootEntries()
        #expect(try Self.menu(esp) == menu, "rast boot writes the same menu again")
        #expect(try store.check().isConsistent)
        #expect(try Command("fsck.fat", ["-n", try #require(fixture.espImage)]).run(check: false).status == 0)
    }

    /// `rast check` reads the menu on the ESP: a kernel it names that is missing or damaged
    /// there makes the tree inconsistent; files an interrupted deploy left are reported, and
    /// `--repair` (or the next deploy) puts everything right.
    @Test func checkReportsMissingAndDamagedKernelsOnTheESPAndRepairCopiesThemAgain() throws {
        let one = try store.copy(0, parent: 0, description: "first")
        try store.deploy(one)
        let two = try store.copy(one, parent: one, description: "second")
        try Self.setKernel(fixture, two, "kernel two")
        try store.deploy(two)
        let menu = try Self.menu(esp)
        let kernels = Self.loaded(menu)
        #expect(try store.check().isConsistent)

        // A leftover from an interrupted copy and an interrupted menu write: harmless.
        try esp.write(Array("half a kernel".utf8), to: "rastos/0000000000000000-vmlinuz.tmp")
        try esp.write(Array("timeout: 0\n".utf8), to: LimineLayout.configPath + ".new")
        var report = try store.check()
        #expect(report.isConsistent)
        #expect(report.bootLeftovers == ["rastos/0000000000000000-vmlinuz.tmp", "boot/limine/limine.conf.new"])

        // The first entry's kernel gone, its initramfs damaged.
        #expect(kernels.count == 3, "snapshot 2's kernel and initramfs, snapshot 1's kernel: \(kernels)")
        try esp.remove(kernels[0])
        try esp.write(Array("not the kernel".utf8), to: kernels[1])
        report = try store.check()
        #expect(!report.isConsistent)
        #expect(report.bootMenuProblems.contains("boot entry 'rastOS snapshot 2' loads \(kernels[0]), which is missing on the ESP"), "\(report.lines)")
        #expect(report.bootMenuProblems.contains("boot entry 'rastOS snapshot 2' loads \(kernels[1]), which is damaged (its SHA-256 does not match its name)"), "\(report.lines)")
        #expect(report.lines.contains { $0.hasPrefix("boot menu: ") })

        let actions = try store.repair()
        #expect(actions.contains("regenerated the boot entries"))
        report = try store.check()
        #expect(report.isConsistent, "\(report.lines)")
        #expect(report.bootLeftovers.isEmpty)
        #expect(try esp.read(kernels[0]) == Array("kernel two".utf8))
        #expect(try Self.menu(esp) == menu)

        // Without a menu, Limine has nothing to boot: check says so.
        try esp.remove(LimineLayout.configPath)
        report = try store.check()
        #expect(report.bootMenuProblems.first?.contains("has no boot/limine/limine.conf: Limine finds no menu") == true, "\(report.lines)")
        try store.repair()
        #expect(try store.check().isConsistent)
    }

    /// A deploy killed after its journal was written is completed by the next command: the
    /// journal's ESP step is applied again (replaying it is harmless) and the menu is right.
    @Test func anInterruptedESPSyncIsCompletedByTheNextCommand() throws {
        let one = try fixture.store.copy(0, parent: 0, description: "first")
        try fixture.store.deploy(one)
        let two = try fixture.store.copy(one, parent: one, description: "second")
        try Self.setKernel(fixture, two, "kernel two")
        try fixture.store.deploy(two)
        let expected = try Self.menu(esp)
        let journal = fixture.layout.journalFile

        // The state after `deploy 2` is what a journal replay must reach again: take the
        // finished deploy's state, put an old menu and a stray kernel copy on the ESP, and
        // record a journal whose only step is the ESP sync of that deploy.
        fixture.store.unlock()
        try esp.replace(LimineLayout.configPath, with: Array("timeout: 0\n/old\n  protocol: linux\n  kernel_path: boot():/rastos/x\n".utf8))
        try esp.write(Array("stray".utf8), to: "rastos/1111111111111111-vmlinuz-old")
        let reader = SnapshotStore(layout: fixture.layout, templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
        let state = try reader.state()
        let steps = try reader.bootSteps(state: state, entries: [("tmp0", two), ("tmp", one)])
        #expect(steps.count == 2, "the ESP sync and the default subvolume")
        try Files.writeAtomically(journal, bytes: Array(try JSONEncoder().encode(Journal(operation: "deploy 2 to tmp0", steps: steps, state: state))))

        let next = SnapshotStore(layout: fixture.layout, templates: BootTemplates(directory: ProjectPaths.root + "/bootloader"))
        next.espProvider = { [fixture] in MtoolsESP(image: fixture.espImage ?? "") }
        try next.acquire(wait: false)
        defer { next.unlock() }
        #expect(!Files.exists(journal), "the journal was applied")
        #expect(try Self.menu(esp) == expected)
        #expect(try !esp.exists("rastos/1111111111111111-vmlinuz-old"))
        #expect(try next.check().isConsistent)
    }
}
