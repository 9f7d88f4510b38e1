import Alpm
import Foundation
import Packages
import SnapshotTree
import SystemSupport

/// astOS's package commands (install, remove, upgrade, sync, ...) and pacman-style operations
/// on a `HostSession`, in process through libalpm.
///
/// Every change runs in a working copy: of the snapshot itself (astOS's commands, which name
/// the snapshot), or of a new snapshot branched from the booted one (pacman-style operations,
/// which then deploy it). A failure at any point discards the copy, so the snapshot stays as it
/// was; the commit is the snapshot tree's journal step. Repositories, signature levels and
/// paths come from each snapshot's own /etc/pacman.conf; AUR builds are enabled per snapshot
/// by `aur::True` in its /etc/rast.conf.
package final class PackageCommands {
    package let host: HostSession
    package let progress: ProgressReporter
    /// Where RAST_AUR_URL is read.
    package var environment: [String: String]
    /// The unprivileged user AUR packages are built as.
    package var buildUser = "rast-build"

    var store: SnapshotStore { host.store }
    var layout: Layout { store.layout }
    var output: (String) -> Void { host.output }

    package init(host: HostSession, progress: ProgressReporter = TerminalProgress(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.host = host
        self.progress = progress
        self.environment = environment
    }

    // MARK: Working copies

    /// Changes snapshot `id` through its working copy. `body` returns whether anything changed;
    /// the copy is committed when it did and discarded when it did not or when `body` throws.
    @discardableResult
    func changeInPlace(_ id: Int, command: String, allowBase: Bool = false,
                       _ body: (PackageWorkspace) throws -> Bool) throws -> Bool {
        let root = try store.prepareWorkingCopy(id, allowBase: allowBase, command: command)
        let changed = try inWorkingCopy(id, root: root, changing: id, newSnapshot: false, body)
        if changed {
            try store.commitWorkingCopy(id)
        } else {
            try store.discardWorkingCopy(id)
        }
        return changed
    }

    /// Makes a new snapshot, a child of `source`, whose contents are `source` changed by `body`.
    /// Returns its id, or nil when nothing changed (then no snapshot is made).
    func changeAsNewSnapshot(from source: Int, description: String,
                             _ body: (PackageWorkspace) throws -> Bool) throws -> Int? {
        let (id, root) = try store.prepareNewSnapshot(from: source)
        let changed = try inWorkingCopy(id, root: root, changing: source, newSnapshot: true, body)
        guard changed else {
            try store.discardWorkingCopy(id)
            return nil
        }
        try store.commitWorkingCopy(id, adding: SnapshotRecord(id: id, parent: source, description: description))
        return id
    }

    /// Runs `body` in working copy `id` (at `root`). When it fails, the copy is discarded and the
    /// error says which change of which snapshot failed (`PackageCommandError`).
    private func inWorkingCopy(_ id: Int, root: String, changing snapshot: Int, newSnapshot: Bool,
                               _ body: (PackageWorkspace) throws -> Bool) throws -> Bool {
        do {
            let workspace = try PackageWorkspace(packageRoot: PackageRoot(root: root, layout: layout),
                                                 binds: [(layout.variable, "/var"), (layout.home, "/home")], progress: progress)
            defer { workspace.close() }
            return try body(workspace)
        } catch {
            try? store.discardWorkingCopy(id)
            if error is InterruptedError || error is PackageCommandError { throw error }
            throw PackageCommandError(snapshot: snapshot, newSnapshot: newSnapshot, reason: "\(error)", cause: error)
        }
    }

    /// Applies `body` to the running deployment too when `id` is the booted snapshot (astOS's
    /// live install). The snapshot already has the change; a failure here says so.
    func applyLive(_ id: Int, _ body: (PackageWorkspace) throws -> Void) throws {
        guard let slot = try liveSlot(for: id) else { return }
        progress.begin("live: applying the change to the running deployment (slot \(slot))")
        do {
            let workspace = try PackageWorkspace(
                packageRoot: PackageRoot(root: layout.root(slot), layout: layout),
                binds: [(layout.variable, "/var"), (layout.home, "/home"), (layout.etc(slot), "/etc"), (layout.boot(slot), "/boot")],
                progress: progress)
            defer { workspace.close() }
            try body(workspace)
        } catch let error as InterruptedError {
            throw error
        } catch {
            throw UserError("snapshot \(id) has the change, but applying it to the running system (slot \(slot)) failed; it takes effect at the next boot: \(error)", cause: error)
        }
    }

    /// The running deployment's slot when `id` is the booted snapshot of a live system.
    func liveSlot(for id: Int) throws -> String? {
        guard host.live, let slot = store.bootedSlot, try store.currentSnapshot() == id else { return nil }
        return slot
    }

    /// A reader on snapshot `id` (its /etc from etc-N, which is authoritative).
    func reader(_ id: Int) throws -> PackageReader {
        let state = try store.state()
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        return try PackageReader(packageRoot: PackageRoot(root: layout.root(id), etc: layout.etc(id), layout: layout))
    }

    func currentSnapshot() throws -> Int {
        guard let id = try store.currentSnapshot() else {
            throw UserError("no snapshot is deployed yet, so there is no current snapshot to act on; use `rast deploy N` or name a snapshot")
        }
        return id
    }

    // MARK: Targets, AUR

    /// Turns package names into a request: names the repositories have stay names; the others
    /// are built from the AUR when the snapshot enables it (`aur::True`).
    func resolve(_ targets: [String], in workspace: PackageWorkspace, flags: TransactionFlags = []) throws -> (request: PackageRequest, aurDependencies: [String]) {
        var request = PackageRequest(flags: flags)
        let index = try workspace.session.repositoryIndex()
        var missing: [String] = []
        for target in targets {
            let name = AlpmDependency(parsing: target)?.name ?? target
            if target.contains("/") || index.names.contains(name) || index.groups.contains(name) {
                request.install.append(target)
            } else {
                missing.append(target)
            }
        }
        guard !missing.isEmpty else { return (request, []) }
        let settings = workspace.packageRoot.snapshotConfig
        guard settings.flag("aur") else {
            throw PackageTransactionError.notFound(
                request: "install " + targets.joined(separator: " "), targets: missing,
                hint: "not in the repositories of the snapshot's /etc/pacman.conf; `aur::True` in its /etc/rast.conf builds such packages from the AUR")
        }
        let installed = workspace.session.installedIndex()
        let builds = try buildFromAUR(missing.map { AlpmDependency(parsing: $0)?.name ?? $0 }, in: workspace) { dependency in
            let name = AlpmDependency(parsing: dependency)?.name ?? dependency
            return index.names.contains(name) || installed.contains(name)
        }
        request.files = builds.map(\.file)
        let requested = Set(missing.map { AlpmDependency(parsing: $0)?.name ?? $0 })
        return (request, builds.filter { !requested.contains($0.name) }.map(\.file))
    }

    /// The AUR base URL: RAST_AUR_URL, else `aur_url::` in the snapshot's rast.conf, else the AUR.
    func aurBaseURL(_ settings: SnapshotConfig) -> String {
        if let url = environment["RAST_AUR_URL"], !url.isEmpty { return url }
        if let url = settings["aur_url"], !url.isEmpty { return url }
        return AURClient.defaultBaseURL
    }

    /// Clones and builds `names` and the AUR packages they need; the packages land in the
    /// shared package cache (so `sync` finds them for other snapshots).
    func buildFromAUR(_ names: [String], in workspace: PackageWorkspace, isProvided: (String) -> Bool) throws -> [AURBuild] {
        let settings = workspace.packageRoot.snapshotConfig
        let logDirectory = workspace.packageRoot.hostPath("/var/log/rast/aur")
        let client = AURClient(baseURL: aurBaseURL(settings),
                               makepkg: Makepkg(buildUser: buildUser, logDirectory: logDirectory),
                               architecture: workspace.config.effectiveArchitectures.first ?? AlpmConfiguration.machineArchitecture)
        let work = try TemporaryDirectory(prefix: "rast-aur")
        defer { try? work.remove() }
        let built = try client.build(names, workDirectory: work.appending("sources"), destination: work.appending("packages"),
                                     isProvided: isProvided, progress: progress)
        guard let cache = workspace.cacheDirectories.first else { return built }
        return try built.map { AURBuild(name: $0.name, version: $0.version, file: try PackageCache.store($0.file, in: cache)) }
    }

    /// Newer AUR versions of installed packages no repository has (what an AUR helper's -Syu
    /// adds); built, ready to install. Empty unless the snapshot enables the AUR.
    func aurUpgrades(in workspace: PackageWorkspace) throws -> [AURBuild] {
        let settings = workspace.packageRoot.snapshotConfig
        guard settings.flag("aur") else { return [] }
        let index = try workspace.session.repositoryIndex()
        let foreign = workspace.session.installedPackages().filter { !index.names.contains($0.name) }
        guard !foreign.isEmpty else { return [] }
        let client = AURClient(baseURL: aurBaseURL(settings))
        let work = try TemporaryDirectory(prefix: "rast-aur-check")
        defer { try? work.remove() }
        var outdated: [String] = []
        for package in foreign {
            guard let fetched = try? client.fetch(package.name, into: work.path) else { continue }
            if AlpmHandle.vercmp(fetched.info.version, package.version) > 0 { outdated.append(package.name) }
        }
        guard !outdated.isEmpty else { return [] }
        let installed = workspace.session.installedIndex()
        return try buildFromAUR(outdated, in: workspace) { dependency in
            let name = AlpmDependency(parsing: dependency)?.name ?? dependency
            return index.names.contains(name) || installed.contains(name)
        }
    }

    /// Installs `targets` (repository names and AUR builds) in the workspace; AUR packages
    /// pulled in as dependencies are recorded as dependencies.
    func install(_ targets: [String], in workspace: PackageWorkspace, upgradeAll: Bool = false,
                 flags: TransactionFlags = []) throws -> TransactionSummary {
        var (request, aurDependencies) = try resolve(targets, in: workspace, flags: flags)
        request.upgradeAll = upgradeAll
        if upgradeAll {
            let upgrades = try aurUpgrades(in: workspace)
            request.files += upgrades.map(\.file).filter { !request.files.contains($0) }
        }
        let summary = try workspace.session.run(request)
        try workspace.session.markAsDependencies(install: [], files: aurDependencies)
        return summary
    }

    func report(_ summary: TransactionSummary?, in what: String) {
        guard let summary, !summary.isEmpty else {
            output("\(what): nothing to do")
            return
        }
        for line in summary.lines { output("\(what): \(line)") }
    }

    // MARK: astOS's commands

    /// `install N PKG...` (`in`): into snapshot `id`, and into the running system too when
    /// `id` is the booted snapshot (unless `live` is false).
    package func install(_ id: Int, _ packages: [String], live: Bool = true) throws {
        var applied = PackageRequest()
        var summary: TransactionSummary?
        try changeInPlace(id, command: "install") { workspace in
            let (request, aurDependencies) = try resolve(packages, in: workspace)
            let result = try workspace.session.run(request)
            try workspace.session.markAsDependencies(install: [], files: aurDependencies)
            applied = request
            summary = result
            return !result.isEmpty
        }
        report(summary, in: "snapshot \(id)")
        if live, summary?.isEmpty == false {
            try applyLive(id) { workspace in
                report(try workspace.session.run(applied), in: "running system")
            }
        }
    }

    /// `remove N PKG...`: `pacman -Rns` in snapshot `id` (refused while other packages need them).
    package func remove(_ id: Int, _ packages: [String]) throws {
        var summary: TransactionSummary?
        try changeInPlace(id, command: "remove") { workspace in
            let result = try workspace.session.run(PackageRequest(remove: packages, flags: [.recurse, .noSave]))
            summary = result
            return !result.isEmpty
        }
        report(summary, in: "snapshot \(id)")
    }

    /// `upgrade N` (`up`): `pacman -Syyu` in snapshot `id` (plus AUR packages with `aur::True`).
    package func upgrade(_ id: Int) throws {
        var summary: TransactionSummary?
        try changeInPlace(id, command: "upgrade") { workspace in
            try workspace.session.refresh(force: true)
            summary = try install([], in: workspace, upgradeAll: true)
            return true  // the refreshed databases are kept even when nothing was upgraded
        }
        report(summary, in: "snapshot \(id)")
    }

    /// `base-update` (`bu`): upgrades snapshot 0, the only command that changes it.
    package func baseUpdate() throws {
        var summary: TransactionSummary?
        try changeInPlace(0, command: "base-update", allowBase: true) { workspace in
            try workspace.session.refresh(force: true)
            summary = try workspace.session.run(PackageRequest(upgradeAll: true))
            return true
        }
        report(summary, in: "snapshot 0")
    }

    /// `refresh N` (`ref`): downloads snapshot `id`'s repository databases anew (`pacman -Syy`).
    package func refresh(_ id: Int) throws {
        try changeInPlace(id, command: "refresh") { workspace in
            try workspace.session.refresh(force: true)
            return true
        }
        output("snapshot \(id): repository databases refreshed")
    }

    /// `tree-upgrade T`: upgrades `id` and every descendant (snapshot 0 is left to base-update).
    /// Each is committed on its own; a failure leaves that snapshot unchanged and the others go on.
    package func treeUpgrade(_ id: Int) throws {
        try Self.requireNoFailures(try forEachInTree(id, what: "upgrade") { try upgrade($0) }, what: "upgrade")
    }

    /// `tree-rmpkg T PKG...` (`tremove`): removes the packages from `id` and its descendants,
    /// wherever they are installed.
    package func treeRemove(_ id: Int, _ packages: [String]) throws {
        try Self.requireNoFailures(try forEachInTree(id, what: "remove") { member in
            let installed = Set(try reader(member).installedPackages().map(\.name))
            let present = packages.filter(installed.contains)
            if present.isEmpty {
                output("snapshot \(member): none of \(packages.joined(separator: ", ")) is installed")
            } else {
                try remove(member, present)
            }
        }, what: "remove")
    }

    private static func requireNoFailures(_ failed: [Int], what: String) throws {
        guard failed.isEmpty else {
            throw UserError("\(what) failed in snapshot\(failed.count == 1 ? "" : "s") \(failed.map(String.init).joined(separator: ", ")) (left unchanged); the others are done")
        }
    }

    /// Runs `body` for `id` and its descendants (parents first, snapshot 0 skipped); returns
    /// the snapshots where it failed, after reporting each.
    private func forEachInTree(_ id: Int, what: String, _ body: (Int) throws -> Void) throws -> [Int] {
        let state = try store.state()
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        var failed: [Int] = []
        for member in state.subtree(id) where member != 0 {
            do {
                try body(member)
            } catch let error as InterruptedError {
                throw error
            } catch {
                output("snapshot \(member): \(what) failed: \(error)")
                failed.append(member)
            }
        }
        return failed
    }

    /// `sync T` (`tree-sync`, with `upgrade`) and `force-sync T` (without): every parent's
    /// packages are pushed to its children, parents first, at the package level: each child
    /// gets, through libalpm, the packages its parent has and it lacks, at the parent's
    /// version (from the repositories, else from the shared package cache) and with the
    /// parent's install reason. Nothing is overwritten or removed. A booted child gets them live
    /// too unless `live` is false.
    package func sync(_ id: Int, upgrade: Bool, live: Bool = true) throws {
        var failed = upgrade ? try forEachInTree(id, what: "upgrade") { try self.upgrade($0) } : []
        let state = try store.state()
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        for parent in state.subtree(id) {
            for child in state.children(of: parent).map(\.id) {
                do {
                    try push(from: parent, to: child, live: live)
                } catch let error as InterruptedError {
                    throw error
                } catch {
                    output("snapshot \(child): sync from \(parent) failed: \(error)")
                    if !failed.contains(child) { failed.append(child) }
                }
            }
        }
        try Self.requireNoFailures(failed.sorted(), what: "sync")
    }

    private func push(from parent: Int, to child: Int, live: Bool) throws {
        let parentPackages = try reader(parent).installedPackages()
        var summary: TransactionSummary?
        try changeInPlace(child, command: "sync") { workspace in
            summary = try installInherited(parentPackages, from: parent, in: workspace)
            return summary != nil
        }
        if summary == nil {
            output("snapshot \(child): has every package of snapshot \(parent)")
            return
        }
        report(summary, in: "snapshot \(child) (from \(parent))")
        if live {
            try applyLive(child) { workspace in
                report(try installInherited(parentPackages, from: parent, in: workspace), in: "running system")
            }
        }
    }

    /// Installs the packages of `parentPackages` the workspace lacks, pinned to the parent's
    /// versions, then records the parent's dependencies as dependencies.
    private func installInherited(_ parentPackages: [AlpmPackage], from parent: Int, in workspace: PackageWorkspace) throws -> TransactionSummary? {
        let installed = Set(workspace.session.installedPackages().map(\.name))
        let missing = parentPackages.filter { !installed.contains($0.name) }
        guard !missing.isEmpty else { return nil }
        let available = (try? workspace.session.handle.syncPackages()) ?? []
        var targets: [String: (install: String?, file: String?)] = [:]
        var unavailable: [String] = []
        for package in missing {
            if let match = available.first(where: { $0.name == package.name && $0.version == package.version }),
               let repository = match.repository {
                targets[package.name] = (repository + "/" + package.name, nil)
            } else if let file = PackageCache.find(name: package.name, version: package.version, in: workspace.cacheDirectories) {
                targets[package.name] = (nil, file)
            } else {
                unavailable.append("\(package.name) \(package.version)")
            }
        }
        guard unavailable.isEmpty else {
            throw UserError("snapshot \(parent) has \(unavailable.joined(separator: ", ")), which no repository has at that version and the package cache (\(workspace.cacheDirectories.joined(separator: ", "))) does not hold; `rast sync` upgrades the tree first")
        }
        let all = missing.compactMap { targets[$0.name] }
        let summary = try workspace.session.run(PackageRequest(install: all.compactMap(\.install), files: all.compactMap(\.file)))
        let dependencies = missing.filter { $0.reason == .dependency }.compactMap { targets[$0.name] }
        try workspace.session.markAsDependencies(install: dependencies.compactMap(\.install), files: dependencies.compactMap(\.file))
        return summary
    }

    /// `diff A B`: the packages only in A (`-`), only in B (`+`) and in both at different
    /// versions (`~`). Returns whether they differ.
    @discardableResult
    package func diff(_ a: Int, _ b: Int) throws -> Bool {
        let first = Dictionary(try reader(a).installedPackages().map { ($0.name, $0.version) }, uniquingKeysWith: { x, _ in x })
        let second = Dictionary(try reader(b).installedPackages().map { ($0.name, $0.version) }, uniquingKeysWith: { x, _ in x })
        var lines: [String] = []
        for name in Set(first.keys).union(second.keys).sorted() {
            switch (first[name], second[name]) {
            case (let old?, nil): lines.append("- \(name) \(old)")
            case (nil, let new?): lines.append("+ \(name) \(new)")
            case (let old?, let new?) where old != new: lines.append("~ \(name) \(old) -> \(new)")
            default: break
            }
        }
        if lines.isEmpty {
            output("snapshots \(a) and \(b) have the same packages")
        } else {
            output("packages of snapshot \(a) (-) and snapshot \(b) (+):")
            lines.forEach(output)
        }
        return !lines.isEmpty
    }
}
