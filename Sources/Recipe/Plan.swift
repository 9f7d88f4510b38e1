import SystemSupport

/// One stage of a build as `rast-build plan` shows it: what it will do with this recipe,
/// or why it is skipped.
package struct PlannedStage: Sendable, Equatable {
    /// The stages in the order they run.
    package enum Kind: String, Sendable, CaseIterable {
        case kernel
        case packages
        case disk
        case rootfs
        case configure
        case bootLoader = "boot loader"
        case outputs
        case bootTest = "boot test"
    }

    package let kind: Kind
    /// False when the stage has nothing to do; `summary` then says why.
    package let runs: Bool
    /// One sentence.
    package let summary: String
    /// Further lines: the values the stage uses.
    package let details: [String]
}

extension Recipe {
    /// The stages of a build of this recipe, in order, each with what it will do.
    package func plan() -> [PlannedStage] {
        [kernelStage(), packagesStage(), diskStage(), rootfsStage(), configureStage(), bootLoaderStage(),
         outputsStage(), bootTestStage()]
    }

    private func kernelStage() -> PlannedStage {
        guard let kernel else {
            return PlannedStage(kind: .kernel, runs: false,
                                summary: "skipped: the recipe has no [kernel] table, so the kernel must come from packages.install",
                                details: [])
        }
        let origin: String
        switch kernel.source {
        case .packaged(let name):
            let from = repositories.isEmpty ? "the build's local repository" : "the repositories (\(repositories.map(\.name).joined(separator: ", ")))"
            return PlannedStage(kind: .kernel, runs: false,
                                summary: "skipped: no kernel is built; package '\(name)' is installed from \(from)",
                                details: [])
        case .local(let path):
            origin = path
        case .https(let url, let sha256):
            origin = "\(url) (download checked against sha256 \(sha256.prefix(12))…)"
        case .git(let url, let ref):
            origin = "\(url) at \(ref)"
        }
        var details: [String] = []
        if !kernel.fragments.isEmpty {
            details.append("config fragments, merged after the profiles: " + kernel.fragments.joined(separator: ", "))
        }
        if !kernel.options.isEmpty {
            details.append("options applied last: " + kernel.options.map(\.configLine).joined(separator: ", "))
        }
        details.append(kernel.strict
            ? "strict: a requested option the kernel's config drops or changes fails the build"
            : "not strict: requested options the kernel's config drops or changes are reported as warnings")
        details.append("installed as package \(kernel.package) from the build's local repository")
        let profiles = kernel.profiles.count == 1 ? "profile \(kernel.profiles[0])" : "profiles \(kernel.profiles.joined(separator: " + "))"
        return PlannedStage(kind: .kernel, runs: true,
                            summary: "build \(kernel.package) from \(origin) with \(profiles) (cached by source + config + compiler)",
                            details: details)
    }

    private func packagesStage() -> PlannedStage {
        if packages.local.isEmpty, packages.aur.isEmpty {
            return PlannedStage(kind: .packages, runs: false,
                                summary: "skipped: no local PKGBUILDs or AUR packages to build", details: [])
        }
        var parts: [String] = []
        if !packages.local.isEmpty { parts.append(count(packages.local.count, "local package")) }
        if !packages.aur.isEmpty { parts.append(count(packages.aur.count, "AUR package")) }
        var details = packages.local.map { "PKGBUILD \($0)" }
        details += packages.aur.map { "AUR \($0) (cloned from the AUR's git repository)" }
        return PlannedStage(kind: .packages, runs: true,
                            summary: "build \(parts.joined(separator: " and ")) with makepkg as an unprivileged user into the build's local repository",
                            details: details)
    }

    private func rootfsStage() -> PlannedStage {
        let sources = ["the build's local repository"] + repositories.map { "\($0.name) (\($0.servers.first ?? ""))" }
        let install = packagesToInstall
        return PlannedStage(kind: .rootfs, runs: true,
                            summary: "create a btrfs root with the snapshot layout and install \(count(install.count, "package")) into snapshot 0 with libalpm",
                            details: ["packages: " + install.joined(separator: ", "),
                                      "from: " + sources.joined(separator: ", ")])
    }

    private func configureStage() -> PlannedStage {
        var details = ["host name \(system.hostname), time zone \(system.timezone), locale \(system.locale)"]
        details.append(system.rootPasswordHash == nil ? "root: locked (no system.root_password_hash)" : "root: password from system.root_password_hash")
        for user in users {
            var text = "user \(user.name)"
            if let uid = user.uid { text += " (uid \(uid))" }
            text += ": shell \(user.shell)"
            if !user.groups.isEmpty { text += ", groups " + user.groups.joined(separator: ", ") }
            text += ", " + count(user.sshKeys.count, "SSH key")
            text += user.passwordHash == nil ? ", no password" : ", password set"
            details.append(text)
        }
        switch network.mode {
        case .dhcp: details.append("network: DHCP on \(network.interface) (the service network)")
        case .static: details.append("network: \(network.interface) \(network.address ?? "?")" + (network.gateway.map { " via \($0)" } ?? ""))
        case .none: details.append("network: loopback only")
        }
        if network.sshd { details.append("SSH server on port \(network.sshPort) (the service sshd): key logins only, no root login") }
        for service in services {
            details.append("service \(service.name): \(service.commandLine)" + (service.depends.isEmpty ? "" : " (after \(service.depends.joined(separator: ", ")))"))
        }
        for overlay in files {
            let mode = overlay.mode.map { ", mode " + String($0, radix: 8) } ?? ""
            details.append("file \(overlay.destination) from \(overlay.source)\(mode)")
        }
        for container in containers {
            let boot = container.name.map { ", container \($0) started at boot" } ?? ""
            details.append("container image \(container.image) stored in /var/lib/rast/oci\(boot)")
        }
        for node in snapshots.creationOrder {
            let description = node.description.isEmpty ? "" : ": \(node.description)"
            details.append("snapshot \(node.id) from \(node.parent)\(description)")
        }
        details.append("deploy snapshot \(snapshots.deploy)")
        let tree = snapshots.tree.isEmpty ? "no snapshots besides 0" : count(snapshots.tree.count, "snapshot") + " besides 0"
        return PlannedStage(kind: .configure, runs: true,
                            summary: "configure snapshot 0 (\(count(users.count, "user")), \(count(files.count, "file overlay"))), create the snapshot tree (\(tree)) and deploy snapshot \(snapshots.deploy)",
                            details: details)
    }

    private func diskStage() -> PlannedStage {
        var partitions: [String] = []
        if disk.hasBIOSBootPartition { partitions.append("BIOS boot \(sizeText(disk.biosBootSize))") }
        partitions.append("ESP \(sizeText(disk.espSize)) (FAT32)")
        let compression = disk.compression.mountOption ?? "no compression"
        partitions.append("root \(sizeText(disk.rootSize)) (btrfs '\(disk.filesystemLabel)', \(compression))")
        return PlannedStage(kind: .disk, runs: true,
                            summary: "partition a \(sizeText(disk.size)) GPT image: \(partitions.joined(separator: ", "))",
                            details: ["format the ESP and the root partition; the root filesystem is built in place"])
    }

    private func bootLoaderStage() -> PlannedStage {
        let loader = disk.bootloader == .grub ? "GRUB" : "Limine"
        let firmware = disk.firmware.map { $0 == .bios ? "BIOS" : "UEFI" }.joined(separator: " and ")
        var details: [String] = []
        if !system.kernelCommandLine.isEmpty {
            details.append("extra kernel arguments: \(system.kernelCommandLine)")
        }
        if disk.bootloader == .limine {
            let origin = packagesToInstall.contains("limine") ? "the image's `limine` package" : "this machine's `limine`"
            var parts: [String] = []
            if disk.firmware.contains(.uefi) { parts.append("EFI/BOOT/BOOTX64.EFI on the ESP for UEFI") }
            if disk.firmware.contains(.bios) { parts.append("`limine bios-install` into the BIOS boot partition for BIOS") }
            details.append("Limine from \(origin): " + parts.joined(separator: ", "))
            details.append("Limine reads FAT only: the ESP (\(sizeText(disk.espSize))) holds limine.conf and the kernel and initramfs of both deployments; every deploy copies the slot's kernel there")
        }
        return PlannedStage(kind: .bootLoader, runs: true,
                            summary: "install \(loader) for \(firmware), with entries for the deployed snapshot \(snapshots.deploy) and the previous deployment",
                            details: details)
    }

    private func outputsStage() -> PlannedStage {
        let files = output.formats.map { format -> String in
            let path = outputPath(for: format)
            guard format == .qcow2 else { return path }
            let compression = output.qcow2Compression == .none ? "uncompressed" : "\(output.qcow2Compression.rawValue)-compressed"
            return "\(path) (\(compression), \(sizeText(output.qcow2ClusterSize)) clusters)"
        }
        return PlannedStage(kind: .outputs, runs: true,
                            summary: "write \(files.joined(separator: " and ")), a manifest and checksums",
                            details: [])
    }

    private func bootTestStage() -> PlannedStage {
        guard bootTest.enabled else {
            return PlannedStage(kind: .bootTest, runs: false, summary: "skipped: boot_test.enabled is false", details: [])
        }
        let image = output.formats.contains(.raw) ? outputPath(for: .raw) : outputPath(for: .qcow2)
        let firmware = bootTest.firmware.map { $0 == .bios ? "BIOS" : "UEFI" }.joined(separator: " and ")
        return PlannedStage(kind: .bootTest, runs: true,
                            summary: "boot \(image) in QEMU with \(firmware) (\(sizeText(bootTest.memory)) memory, \(bootTest.timeout) s timeout each); passes when the guest reports that rast works",
                            details: [])
    }

    private func count(_ n: Int, _ noun: String) -> String {
        n == 1 ? "1 \(noun)" : "\(n) \(noun)s"
    }

    private func sizeText(_ bytes: Int64) -> String {
        Recipe.describeSize(bytes)
    }
}

extension Recipe {
    /// A size for people: "2 GiB", "64 MiB", "512 KiB" for whole units, otherwise rounded ("1.5 GiB").
    package static func describeSize(_ bytes: Int64) -> String {
        for (unit, factor) in [("TiB", Int64(1) << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
            where bytes >= factor && bytes % factor == 0 {
            return "\(bytes / factor) \(unit)"
        }
        return bytes < 1024 ? "\(bytes) B" : ByteCount.format(bytes)
    }
}
