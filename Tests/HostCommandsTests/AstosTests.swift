import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// rast on a filesystem as astOS's installer and `ast` commands leave it, run as a user would:
/// the rast program with `--root` on its mounted top level.
@Suite(.serialized) struct AstosTests {
    /// The menu entries of the grub.cfg on the disk: title, slot, kernel, initramfs, arguments.
    static func entries(_ fixture: AstosFixture) throws -> [InstalledBootConfig.Entry] {
        InstalledBootConfig.grub(try Files.readString(fixture.layout.grubConfig)).entries
    }

    /// The subvolume each mount point of a slot's fstab mounts.
    static func mounts(_ table: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in table.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 4 else { continue }
            let subvolume = fields[3].split(separator: ",").first { $0.hasPrefix("subvol=") }.map { String($0.dropFirst(7)) }
            result[String(fields[1])] = subvolume ?? String(fields[0])
        }
        return result
    }

    /// What a deployment in `slot` must boot and mount.
    static func expectBoots(_ fixture: AstosFixture, next: (slot: String, snapshot: Int), previous: (slot: String, snapshot: Int),
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let layout = fixture.layout
        let entries = try entries(fixture)
        #expect(entries.map(\.slot) == [next.slot, previous.slot], "grub.cfg boots \(next.slot) first, \(previous.slot) second",
                sourceLocation: sourceLocation)
        guard let first = entries.first else { return }
        #expect(first.argument("root") == "UUID=\(fixture.filesystemUUID)", "astOS's root= is kept: \(first.arguments)", sourceLocation: sourceLocation)
        #expect(first.arguments.contains("loglevel=3") && first.arguments.contains("quiet"), "\(first.arguments)", sourceLocation: sourceLocation)
        #expect(first.searchUUID == fixture.filesystemUUID, sourceLocation: sourceLocation)
        #expect(first.title.contains("snapshot \(next.snapshot)"), "\(first.title)", sourceLocation: sourceLocation)
        #expect(first.kernelPath?.hasSuffix("/vmlinuz-linux") == true, "astOS's kernel, not another vmlinuz: \(first.kernelPath ?? "-")",
                sourceLocation: sourceLocation)
        #expect(first.initrdPaths.last?.hasSuffix("/initramfs-linux.img") == true, "\(first.initrdPaths)", sourceLocation: sourceLocation)
        for entry in entries {
            for path in [entry.kernelPath].compactMap({ $0 }) + entry.initrdPaths {
                #expect(Files.exists(layout.top + path), "\(entry.title) loads \(path), which exists", sourceLocation: sourceLocation)
            }
        }
        #expect(!(try Files.readString(layout.grubConfig)).contains("serial"), "astOS's menu has no serial console, and rast's keeps it so",
                sourceLocation: sourceLocation)
        let check = try Command("grub-script-check", [layout.grubConfig]).run(check: false)
        #expect(check.status == 0, "grub-script-check: \(check.standardError)", sourceLocation: sourceLocation)

        // The slot's fstab mounts the slot's own /, /etc and /boot and keeps astOS's other lines.
        for table in [layout.root(next.slot) + "/etc/fstab", layout.etc(next.slot) + "/fstab"] {
            let mounts = mounts(try Files.readString(table))
            #expect(mounts["/"] == "@.snapshots/rootfs/snapshot-\(next.slot)", "\(table): \(mounts)", sourceLocation: sourceLocation)
            #expect(mounts["/etc"] == "@.snapshots/etc/etc-\(next.slot)", "\(table): \(mounts)", sourceLocation: sourceLocation)
            #expect(mounts["/boot"] == "@.snapshots/boot/boot-\(next.slot)", "\(table): \(mounts)", sourceLocation: sourceLocation)
            #expect(mounts["/boot/efi"] == "UUID=\(AstosFixture.efiUUID)" && mounts["/root"] == "/.snapshots/ast/root",
                    "the ESP and astOS's bind mounts stay: \(mounts)", sourceLocation: sourceLocation)
        }
        #expect(try Files.readString(layout.root(next.slot) + "/usr/share/ast/snap").trimmingCharacters(in: .whitespacesAndNewlines)
                == String(next.snapshot), "astOS's own record of the deployed snapshot", sourceLocation: sourceLocation)
    }

    /// deploy, rollback and boot on an adopted astOS system change what boots: grub.cfg in
    /// @boot, the new slot's fstab and the default subvolume, with astOS's kernel, initramfs,
    /// root= and kernel arguments; `rast check` agrees after each step.
    @Test func deployRollbackAndBootRewriteGrubAndFstab() throws {
        let fixture = try AstosFixture()
        defer { fixture.close() }
        let top = fixture.layout.top
        let adopted = try RastProgram.run(["current", "--root", top])
        #expect(adopted.lines == ["1"], "\(adopted.everything)")

        // snapshot 1 (booted from tmp0) deployed again goes into slot tmp; its etc-1 says tmp0.
        #expect(try Files.readString(fixture.layout.etc(1) + "/fstab").contains("snapshot-tmp0"))
        let deployed = try RastProgram.run(["deploy", "1", "--root", top])
        #expect(deployed.status == 0, "\(deployed.everything)")
        try Self.expectBoots(fixture, next: ("tmp", 1), previous: ("tmp0", 1))
        #expect(try RastProgram.run(["check", "--root", top]).lines == ["the snapshot tree is consistent"])

        let rolledBack = try RastProgram.run(["rollback", "--root", top])
        #expect(rolledBack.status == 0, "\(rolledBack.everything)")
        #expect(try Self.entries(fixture).map(\.slot) == ["tmp0", "tmp"], "rollback makes tmp0 the first entry again")
        #expect(try RastProgram.run(["check", "--root", top]).lines == ["the snapshot tree is consistent"])

        let zero = try RastProgram.run(["deploy", "0", "--root", top])
        #expect(zero.status == 0, "\(zero.everything)")
        try Self.expectBoots(fixture, next: ("tmp", 0), previous: ("tmp0", 1))

        // `boot` regenerates the menu from the tree: a hand-edited grub.cfg is replaced.
        try Files.write(fixture.layout.grubConfig, string: fixture.grubConfig(next: ("tmp0", 1), previous: nil))
        let boot = try RastProgram.run(["boot", "--root", top])
        #expect(boot.status == 0, "\(boot.everything)")
        #expect(try Self.entries(fixture).map(\.slot) == ["tmp", "tmp0"])
        let final = try RastProgram.run(["check", "--root", top])
        #expect(final.status == 0, "\(final.everything)")
    }

    /// `rast check` on an adopted system reports a first entry that does not boot the next
    /// slot, an entry whose kernel is missing, and a snapshot that became writable; `--repair`
    /// fixes all three.
    @Test func checkReportsWrongFirstEntryMissingKernelAndWritableSnapshot() throws {
        let fixture = try AstosFixture()
        defer { fixture.close() }
        let layout = fixture.layout
        let top = layout.top
        let clean = try RastProgram.run(["check", "--root", top])
        #expect(clean.status == 0 && clean.lines == ["the snapshot tree is consistent"], "\(clean.everything)")

        // The menu boots tmp first while tmp0 is the default; tmp's kernel is gone; snapshot 1 is writable.
        try Files.write(layout.grubConfig, string: fixture.grubConfig(next: ("tmp", 0), previous: ("tmp0", 1)))
        unlink(layout.root("tmp") + "/boot/vmlinuz-linux")
        try Command("btrfs", ["property", "set", "-ts", layout.root(1), "ro", "false"]).run()
        let broken = try RastProgram.run(["check", "--root", top])
        #expect(broken.status == 1)
        let text = broken.standardOutput
        #expect(text.contains("boot entry: the first (default) entry 'astOS Linux snapshot 0' boots slot tmp, but slot tmp0 boots next"), "\(text)")
        #expect(text.contains("loads the kernel /@.snapshots/rootfs/snapshot-tmp/boot/vmlinuz-linux, which does not exist"), "\(text)")
        #expect(text.contains("writable: snapshot 1 should be read-only, but \(layout.root(1)) is writable"), "\(text)")
        print("rast check on a broken astOS system:\n\(text)")

        let repaired = try RastProgram.run(["check", "--repair", "--root", top])
        #expect(repaired.status == 0, "\(repaired.everything)")
        #expect(repaired.standardOutput.contains("made snapshot 1 read-only again"))
        #expect(try Self.entries(fixture).first?.slot == "tmp0")
        #expect(try RastProgram.run(["check", "--root", top]).status == 0)
    }

    /// tree, current and status write nothing on an astOS system rast has not adopted yet, and
    /// an unprivileged user gets the same answers as root.
    @Test func readOnlyCommandsWriteNothingAndAnswerUnprivilegedUsersToo() throws {
        let fixture = try AstosFixture()
        defer { fixture.close() }
        fixture.openToEveryone()
        let top = fixture.layout.top
        let before = try fixture.listing()
        var answers: [String: [String]] = [:]
        for user in [nil, "nobody"] {
            for command in ["tree", "current", "status"] {
                let result = try RastProgram.run([command, "--root", top], user: user)
                #expect(result.status == 0, "\(user ?? "root"): rast \(command): \(result.everything)")
                if let root = answers[command] {
                    #expect(result.lines == root, "rast \(command) as \(user ?? "root") answers as root does")
                } else {
                    answers[command] = result.lines
                }
            }
        }
        #expect(answers["current"] == ["1"])
        #expect(answers["status"]?.contains("locks:   none held") == true, "\(answers["status"] ?? [])")
        #expect(answers["status"]?.contains("next:    snapshot 1 (slot tmp0)") == true, "\(answers["status"] ?? [])")
        // A --root that is not a top level: one error line, once, ending in a newline.
        for user in [nil, "nobody"] {
            let wrong = try RastProgram.run(["tree", "--root", fixture.layout.snapshots], user: user)
            #expect(wrong.status == 1)
            #expect(wrong.standardOutput.isEmpty)
            #expect(wrong.standardError == "rast: error: \(fixture.layout.snapshots) is not the top level of a rastOS btrfs filesystem (no @.snapshots/rast/state.json and no astOS tree to adopt)\n",
                    "\(wrong.standardError)")
        }
        #expect(!Files.exists(fixture.layout.stateDirectory), "no @.snapshots/rast/ was created")
        #expect(try fixture.listing() == before, "nothing on the filesystem changed")
    }
}
