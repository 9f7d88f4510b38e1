import Alpm
import BootEntries
import Foundation
import ImageSupport
import Packages
import Recipe
import SnapshotTree
import SystemSupport

/// The root filesystem stage: the btrfs root partition mounted at its top level, the astOS
/// layout created, and the recipe's packages installed by libalpm, in process, into the
/// working copy of snapshot 0, with the package database inside the snapshot.
package struct RootfsStage {
    package struct Output {
        package let store: SnapshotStore
        package let base: String
        package let installed: [(name: String, version: String)]
    }

    /// Where each snapshot keeps its package database (pacman.conf's DBPath in the image).
    package static let databasePath = "/usr/share/rast/db"

    package let recipe: Recipe
    package let disk: AttachedDisk
    package let mountPoint: String
    package let localRepository: LocalRepository
    package let workDirectory: String
    package let templates: BootTemplates
    /// Remote repositories' package files kept across builds (nil: download everything).
    package let remotePackageCache: RemotePackageCache?
    package let progress: ProgressReporter

    package func run(teardown: Teardown) throws -> Output {
        let root = try disk.root
        try Files.createDirectory(mountPoint)
        var options = ["subvolid=5", "noatime"]
        if let compression = recipe.disk.compression.mountOption { options.append(compression) }
        try Mounts.mount(disk.device(of: root), on: mountPoint, type: "btrfs", options: options)
        teardown.push("mount \(mountPoint)") { try Mounts.unmountAll(under: self.mountPoint) }

        let store = SnapshotStore(layout: Layout(top: mountPoint), templates: templates)
        teardown.push("the snapshot tree lock") { store.unlock() }
        let base = try store.beginBase()
        // /.snapshots is where fstab mounts @.snapshots (makepkg refuses dot directories in packages).
        for directory in ["var", "home", "proc", "sys", "dev", "run", "tmp", "etc", "boot", "usr/share/rast", ".snapshots"] {
            try Files.createDirectory(base + "/" + directory)
        }
        // Packages write /var and /home into the shared @var and @home, as on the running system.
        let mounts = try ChrootMounts(root: base, binds: [(store.layout.variable, "/var"), (store.layout.home, "/home")])
        defer { mounts.release() }

        var repositories = [RepositoryConfig(name: localRepository.name, servers: [localRepository.fileURL], sigLevel: ["Never"])]
        repositories += recipe.repositories.map {
            RepositoryConfig(name: $0.name, servers: $0.serverURLs(), sigLevel: $0.sigLevel)
        }
        let gpgDirectory = try keyring(for: repositories)
        // A cache of the build's own: locally built packages keep their name and version when
        // rebuilt, and libalpm would take a stale file of the same name for a corrupted one.
        // Remote repositories' files that an earlier build downloaded are linked into it.
        let packageCache = workDirectory + "/pkgcache"
        let session = try PackageSession(
            root: base, databasePath: base + Self.databasePath, cacheDirectory: packageCache,
            gpgDirectory: gpgDirectory, logFile: workDirectory + "/logs/pacman.log", repositories: repositories,
            progress: progress)
        try session.refresh(force: true)
        let remotePackages = remotePackageCache == nil ? [] : try recipe.repositories.flatMap {
            try session.handle.syncPackages(repository: $0.name)
        }
        if let cache = remotePackageCache, !remotePackages.isEmpty {
            let seeded = try cache.seed(packageCache, packages: remotePackages)
            if !seeded.reused.isEmpty {
                let count = seeded.reused.count
                progress.note("packages: \(count) package file\(count == 1 ? "" : "s") (\(ByteCount.format(seeded.reusedBytes))) from \(cache.directory), not downloaded again")
            }
            if !seeded.dropped.isEmpty {
                progress.note("packages: dropped \(seeded.dropped.joined(separator: ", ")) from \(cache.directory): the repository now lists other contents under that name")
            }
        }
        do {
            try session.install(recipe.packagesToInstall)
        } catch let error as AlpmError {
            throw UserError("installing \(recipe.packagesToInstall.joined(separator: ", ")) into snapshot 0 failed: \(error)", cause: error)
        }
        if let cache = remotePackageCache, !remotePackages.isEmpty {
            do {
                try cache.keep(from: packageCache, packages: remotePackages)
            } catch {
                // The image is fine; the next build downloads them again.
                progress.note("warning: could not keep the downloaded packages in \(cache.directory): \(error)")
            }
        }
        return Output(store: store, base: base, installed: session.installed())
    }

    /// A keyring when some repository checks signatures: pacman-key initialised in the work
    /// directory and populated with Arch's keys (Debian's archlinux-keyring).
    func keyring(for repositories: [RepositoryConfig]) throws -> String {
        let directory = workDirectory + "/gnupg"
        try Files.createDirectory(directory)
        let checks = try repositories.contains { try SigLevelParser.requiresSignatures(SigLevelParser.parse($0.sigLevel ?? [])) }
        guard checks else { return directory }
        try HostTools.require(["pacman-key"], for: "repositories with signature checking")
        progress.note("packages: initialising a keyring with Arch Linux's keys for signature checks")
        try Command("pacman-key", ["--gpgdir", directory, "--init"]).run()
        try Command("pacman-key", ["--gpgdir", directory, "--populate", "archlinux"]).run()
        return directory
    }
}

/// The configure stage: host name, os-release, time zone, locale, accounts with SSH keys,
/// network settings and service definitions, pacman.conf, file overlays; then snapshot 0 is committed, the recipe's snapshot tree is
/// made and the recipe's snapshot is deployed (which writes fstab and the boot entries).
package struct ConfigureStage {
    package let recipe: Recipe
    package let store: SnapshotStore
    package let base: String
    package let disk: AttachedDisk
    package let progress: ProgressReporter

    package func run() throws -> BootMenuSettings {
        progress.begin("configure: snapshot 0 and the snapshot tree")
        let etc = base + "/etc"
        try Files.write(etc + "/hostname", string: recipe.system.hostname + "\n")
        try Files.write(base + "/usr/lib/os-release", string: SystemFiles.osRelease(recipe: recipe))
        if !Files.exists(etc + "/os-release") { try symlink("../usr/lib/os-release", at: etc + "/os-release") }
        unlink(etc + "/localtime")
        try symlink("/usr/share/zoneinfo/" + recipe.system.timezone, at: etc + "/localtime")
        try Files.write(etc + "/locale.conf", string: "LANG=\(recipe.system.locale)\n")
        try Files.write(etc + "/pacman.conf", string: SystemFiles.pacmanConf(
            repositories: recipe.repositories, localRepository: nil))
        if !Files.exists(etc + "/rast.conf") {
            try Files.write(etc + "/rast.conf", string: "# Per-snapshot settings (astOS's key::value format).\naur::False\n")
        }

        var accounts = AccountDatabase.load(etc: etc)
        accounts.setRootPassword(hash: recipe.system.rootPasswordHash)
        for user in recipe.users {
            let (uid, gid) = try accounts.addUser(user)
            let home = store.layout.home + "/" + user.name
            try Files.createDirectory(home)
            if !user.sshKeys.isEmpty {
                try Files.write(home + "/.ssh/authorized_keys", string: user.sshKeys.joined(separator: "\n") + "\n", mode: 0o600)
                try SystemError.check("chmod", path: home + "/.ssh") { chmod(home + "/.ssh", 0o700) }
            }
            try Command("chown", ["-R", "\(uid):\(gid)", home]).run()
            try SystemError.check("chmod", path: home) { chmod(home, 0o700) }
        }
        try accounts.save(etc: etc)
        try ServiceConfiguration(recipe: recipe, root: base, progress: progress).write()

        for overlay in recipe.files {
            let destination = base + overlay.destination
            try Files.createDirectory((destination as NSString).deletingLastPathComponent)
            if Files.isDirectory(overlay.source) {
                try TreeCopy.copyContents(of: overlay.source, into: destination)
            } else {
                if Files.exists(destination) { unlink(destination) }
                try TreeCopy.copy(overlay.source, to: destination)
                if let mode = overlay.mode { try SystemError.check("chmod", path: destination) { chmod(destination, mode_t(mode)) } }
            }
        }

        let root = try disk.root
        var mountOptions = ["noatime"]
        if let compression = recipe.disk.compression.mountOption { mountOptions.insert(compression, at: 0) }
        let settings = BootMenuSettings(
            loader: recipe.disk.bootloader == .grub ? .grub : .limine, distributor: "rastOS",
            filesystemUUID: root.filesystemUUID ?? "", rootPartitionUUID: root.partitionUUID,
            kernelArguments: recipe.system.kernelCommandLine, mountOptions: mountOptions.joined(separator: ","))
        // Limine's menu and kernels go to the ESP, through mtools on its loop device (the loop
        // device the boot loader stage writes through too, so both see the same blocks).
        if let esp = disk.partition(named: DiskStage.espName) {
            let device = disk.device(of: esp)
            store.espProvider = { MtoolsESP(image: device) }
        }
        try store.commitBase(boot: settings)
        for node in recipe.snapshots.creationOrder {
            try store.copy(node.parent, as: node.id, parent: node.parent, description: node.description)
        }
        try store.deploy(recipe.snapshots.deploy)
        progress.end("configure", summary: "\(recipe.snapshots.tree.count + 1) snapshots; snapshot \(recipe.snapshots.deploy) deployed")
        return settings
    }

    private func symlink(_ target: String, at path: String) throws {
        try SystemError.check("symlink", path: path) { Glibc.symlink(target, path) }
    }
}
