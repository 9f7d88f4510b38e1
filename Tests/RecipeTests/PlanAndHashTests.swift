@testable import Recipe
import Testing

@Suite struct PlanTests {
    @Test func stagesInOrderWithTheRecipesValues() throws {
        let recipe = try decode(minimalText + """
            [kernel]
            source = "/usr/src/linux-source-6.1.tar.xz"
            profile = "container"
            options = { CONFIG_EXAMPLE = "y" }
            [system]
            hostname = "box"
            kernel_cmdline = "console=ttyS0"
            [[users]]
            name = "admin"
            ssh_keys = ["\(demoKey)"]
            [snapshots]
            tree = [{ id = 1, parent = 0, description = "base system" }]
            deploy = 1
            [disk]
            size = "1G"
            bootloader = "limine"
            firmware = ["uefi"]
            [output]
            formats = ["qcow2"]
            [boot_test]
            enabled = false
            """)
        let plan = recipe.plan()
        #expect(plan.map(\.kind) == PlannedStage.Kind.allCases)
        #expect(plan.map(\.kind.rawValue) == ["kernel", "packages", "disk", "rootfs", "configure", "boot loader", "outputs", "boot test"])
        #expect(plan.map(\.runs) == [true, false, true, true, true, true, true, false])
        #expect(plan[0].summary == "build linux-rast-container from /usr/src/linux-source-6.1.tar.xz with profiles base + container (cached by source + config + compiler)")
        #expect(plan[0].details.contains("options applied last: CONFIG_EXAMPLE=y"))
        #expect(plan[1].summary == "skipped: no local PKGBUILDs or AUR packages to build")
        #expect(plan[2].summary == "partition a 1 GiB GPT image: ESP 64 MiB (FAT32), root 958 MiB (btrfs 'rastos', compress=zstd)")
        #expect(plan[3].details.first == "packages: busybox, linux-rast-container")
        #expect(plan[4].details.contains("host name box, time zone UTC, locale C.UTF-8"))
        #expect(plan[4].details.contains("user admin: shell /bin/sh, 1 SSH key, no password"))
        #expect(plan[4].details.contains("snapshot 1 from 0: base system"))
        #expect(plan[5].summary == "install Limine for UEFI, with entries for the deployed snapshot 1 and the previous deployment")
        #expect(plan[5].details == [
            "extra kernel arguments: console=ttyS0",
            "Limine from this machine's `limine`: EFI/BOOT/BOOTX64.EFI on the ESP for UEFI",
            "Limine reads FAT only: the ESP (64 MiB) holds limine.conf and the kernel and initramfs of both deployments; every deploy copies the slot's kernel there",
        ])
        #expect(plan[6].summary == "write /home/builder/output/t.qcow2 (zstd-compressed, 64 KiB clusters), a manifest and checksums")
        #expect(plan[7].summary == "skipped: boot_test.enabled is false")
    }

    @Test func skippedKernelStagesSayWhy() throws {
        #expect(try decode(minimalText).plan()[0].summary == "skipped: the recipe has no [kernel] table, so the kernel must come from packages.install")
        let packaged = try decode(minimalText + "[kernel]\npackaged = \"linux\"\n[[repositories]]\nname = \"core\"\nservers = [\"https://m/$repo\"]")
        #expect(packaged.plan()[0].runs == false)
        #expect(packaged.plan()[0].summary == "skipped: no kernel is built; package 'linux' is installed from the repositories (core)")
    }

    @Test func buildStagesForLocalAndAURPackages() throws {
        let recipe = try decode("name = \"p\"\n[packages]\nlocal = [\"pkgbuilds/a\"]\naur = [\"yay\", \"paru\"]\ninstall = [\"a\"]\n[boot_test]\nmemory = \"1G\"")
        let plan = recipe.plan()
        #expect(plan[1].summary == "build 1 local package and 2 AUR packages with makepkg as an unprivileged user into the build's local repository")
        #expect(plan[1].details == ["PKGBUILD /srv/recipes/pkgbuilds/a", "AUR yay (cloned from the AUR's git repository)", "AUR paru (cloned from the AUR's git repository)"])
        #expect(plan[7].summary == "boot /home/builder/output/p.raw in QEMU with BIOS and UEFI (1 GiB memory, 300 s timeout each); passes when the guest reports that rast works")
    }
}


