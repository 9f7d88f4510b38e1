import CAlpm
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Transaction flags (`alpm_transflag_t`).
package struct TransactionFlags: OptionSet, Sendable, Hashable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }

    /// Skip dependency checks (`-d`).
    package static let noDeps = flag(ALPM_TRANS_FLAG_NODEPS)
    /// Delete files even if they are marked as backup (`-n`).
    package static let noSave = flag(ALPM_TRANS_FLAG_NOSAVE)
    /// Ignore versions when checking dependencies.
    package static let noDepVersion = flag(ALPM_TRANS_FLAG_NODEPVERSION)
    /// Remove the packages that depend on the removed ones too (`-c`).
    package static let cascade = flag(ALPM_TRANS_FLAG_CASCADE)
    /// Remove dependencies nothing else needs (`-s`).
    package static let recurse = flag(ALPM_TRANS_FLAG_RECURSE)
    /// Change the database only, not the files (`--dbonly`).
    package static let dbOnly = flag(ALPM_TRANS_FLAG_DBONLY)
    /// Mark every installed package as a dependency (`--asdeps`).
    package static let allDependencies = flag(ALPM_TRANS_FLAG_ALLDEPS)
    /// Download packages without installing them (`-w`).
    package static let downloadOnly = flag(ALPM_TRANS_FLAG_DOWNLOADONLY)
    /// Do not run install scriptlets (`--noscriptlet`).
    package static let noScriptlet = flag(ALPM_TRANS_FLAG_NOSCRIPTLET)
    /// Ignore conflicts.
    package static let noConflicts = flag(ALPM_TRANS_FLAG_NOCONFLICTS)
    /// Skip targets that are already up to date (`--needed`).
    package static let needed = flag(ALPM_TRANS_FLAG_NEEDED)
    /// Mark every installed package as explicitly installed (`--asexplicit`).
    package static let allExplicit = flag(ALPM_TRANS_FLAG_ALLEXPLICIT)
    /// Do not remove packages that others still need (`-u`).
    package static let unneeded = flag(ALPM_TRANS_FLAG_UNNEEDED)
    /// With `.recurse`, also remove explicitly installed dependencies (`-ss`).
    package static let recurseAll = flag(ALPM_TRANS_FLAG_RECURSEALL)
    /// Do not take the database lock.
    package static let noLock = flag(ALPM_TRANS_FLAG_NOLOCK)

    private static func flag(_ value: alpm_transflag_t) -> TransactionFlags {
        TransactionFlags(rawValue: Int32(bitPattern: value.rawValue))
    }
}

/// An installed package removed because a new one names it in replaces= (a rename).
package struct PackageReplacement: Sendable, Equatable, CustomStringConvertible {
    package var old: String
    package var oldVersion: String?
    package var new: String
    package var newVersion: String?

    package init(old: String, oldVersion: String?, new: String, newVersion: String?) {
        self.old = old
        self.oldVersion = oldVersion
        self.new = new
        self.newVersion = newVersion
    }

    package var description: String {
        "replace \(old)\(oldVersion.map { " \($0)" } ?? "") with \(new)\(newVersion.map { " \($0)" } ?? "")"
    }
}

/// What a prepared transaction will do (and, after commit, did).
package struct TransactionSummary: Sendable, Equatable, CustomStringConvertible {
    /// Packages installed, upgraded, downgraded or reinstalled (replacing packages included).
    package var added: [PackageOperation]
    /// Packages removed (replaced packages included).
    package var removed: [PackageOperation]
    /// Which removals are replacements, and by what.
    package var replacements: [PackageReplacement]

    package init(added: [PackageOperation], removed: [PackageOperation], replacements: [PackageReplacement] = []) {
        self.added = added
        self.removed = removed
        self.replacements = replacements
    }

    package var isEmpty: Bool { added.isEmpty && removed.isEmpty }

    /// One line per change, a replacement as one "replace OLD with NEW" line in place of the
    /// new package's install and the old one's removal.
    package var lines: [String] {
        let replacing = Set(replacements.map(\.new))
        let replaced = Set(replacements.map(\.old))
        return added.filter { !($0.kind == .install && replacing.contains($0.name)) }.map(\.description)
            + replacements.map(\.description)
            + removed.filter { !replaced.contains($0.name) }.map(\.description)
    }

    package var description: String {
        if isEmpty { return "nothing to do" }
        return lines.joined(separator: ", ")
    }
}

/// A libalpm transaction: add targets, `prepare()`, `commit()`, `release()`. Holds the
/// database lock while it exists; `deinit` releases it when `release()` was not called.
package final class AlpmTransaction {
    package let handle: AlpmHandle
    package let flags: TransactionFlags
    private var released = false
    private var added = Set<String>()

    init(handle: AlpmHandle, flags: TransactionFlags) throws {
        self.handle = handle
        self.flags = flags
        handle.callbacks.startCapturing()
        let result = alpm_trans_init(handle.handle, flags.rawValue)
        let details = handle.callbacks.stopCapturing()
        if result != 0 {
            released = true
            throw handle.error("alpm_trans_init", subject: handle.databasePath, details: details)
        }
        handle.transactionOpen = true
    }

    deinit {
        if !released {
            alpm_trans_release(handle.handle)
            handle.transactionOpen = false
        }
    }

    /// Adds a package from the sync databases: a name, `repo/name`, a constraint such as
    /// "hello>=1.1" or a provision; failing those, every package of a group.
    package func addSyncTarget(_ target: String) throws {
        try checkOpen("alpm_add_pkg")
        var dbs = AlpmList.packages(alpm_get_syncdbs(handle.handle))
        var name = target
        if let slash = target.firstIndex(of: "/") {
            let repository = String(target[..<slash])
            dbs = [try handle.syncDatabase(repository)]
            name = String(target[target.index(after: slash)...])
        }
        let found = AlpmList.withPointers(dbs) { alpm_find_dbs_satisfier(handle.handle, $0, name) }
        if let pkg = found {
            try add(pkg, label: target)
            return
        }
        let group = AlpmList.withPointers(dbs) { alpm_find_group_pkgs($0, name) }
        defer { alpm_list_free(group) }
        let members = AlpmList.packages(group)
        guard !members.isEmpty else {
            throw AlpmError(function: "alpm_find_dbs_satisfier", subject: target, code: .packageNotFound,
                            problems: [.targetNotFound(target)])
        }
        for pkg in members { try add(pkg, label: target) }
    }

    /// Adds a package file (`pacman -U`), checked with the handle's LocalFileSigLevel.
    package func addPackageFile(_ path: String) throws {
        try checkOpen("alpm_pkg_load")
        var pkg: OpaquePointer?
        handle.callbacks.startCapturing()
        let result = alpm_pkg_load(handle.handle, path, 1, handle.configuration.localFileSigLevel.rawValue, &pkg)
        let details = handle.callbacks.stopCapturing()
        guard result == 0, let pkg else {
            throw handle.error("alpm_pkg_load", subject: path, problems: [.invalidPackage(path)], details: details)
        }
        if alpm_add_pkg(handle.handle, pkg) != 0 {
            let failure = handle.error("alpm_add_pkg", subject: path)
            alpm_pkg_free(pkg)
            throw failure
        }
        // The transaction owns a loaded package from here on and frees it on release.
    }

    /// Marks an installed package for removal.
    package func removePackage(named name: String) throws {
        try checkOpen("alpm_remove_pkg")
        guard let local = handle.localDatabase, let pkg = alpm_db_get_pkg(local, name) else {
            throw AlpmError(function: "alpm_db_get_pkg", subject: "\(name) (not installed in \(handle.root))",
                            code: .packageNotFound, problems: [.targetNotFound(name)])
        }
        if alpm_remove_pkg(handle.handle, pkg) != 0 {
            throw handle.error("alpm_remove_pkg", subject: name)
        }
    }

    /// Adds every available upgrade (`pacman -Su`).
    package func sysupgrade(allowDowngrade: Bool = false) throws {
        try checkOpen("alpm_sync_sysupgrade")
        handle.callbacks.startCapturing()
        let result = alpm_sync_sysupgrade(handle.handle, allowDowngrade ? 1 : 0)
        let details = handle.callbacks.stopCapturing()
        if result != 0 { throw handle.error("alpm_sync_sysupgrade", details: details) }
    }

    private func add(_ pkg: OpaquePointer, label: String) throws {
        let name = string(alpm_pkg_get_name(pkg)) ?? label
        guard added.insert(name).inserted else { return }
        handle.callbacks.startCapturing()
        let result = alpm_add_pkg(handle.handle, pkg)
        let details = handle.callbacks.stopCapturing()
        if result != 0 { throw handle.error("alpm_add_pkg", subject: name, details: details) }
    }

    /// Resolves dependencies and checks conflicts. Failures list the missing
    /// dependencies, conflicts or invalid architectures by package name.
    package func prepare() throws {
        guard let failure = try run("alpm_trans_prepare", alpm_trans_prepare, problem: { code, item in
            switch code {
            case .packageInvalidArchitecture:
                return .invalidArchitecture(takeString(item))
            case .unsatisfiedDependencies:
                let missing = item.assumingMemoryBound(to: alpm_depmissing_t.self)
                defer { alpm_depmissing_free(missing) }
                return .missingDependency(MissingDependency(
                    package: string(missing.pointee.target) ?? "?",
                    dependency: missing.pointee.depend.map(AlpmDependency.init) ?? AlpmDependency(name: "?"),
                    causingPackage: string(missing.pointee.causingpkg)))
            case .conflictingDependencies:
                let conflict = item.assumingMemoryBound(to: alpm_conflict_t.self)
                defer { alpm_conflict_free(conflict) }
                return .conflict(PackageConflict(
                    package: string(conflict.pointee.package1) ?? "?",
                    otherPackage: string(conflict.pointee.package2) ?? "?",
                    reason: conflict.pointee.reason.map(AlpmDependency.init)))
            default:
                return nil  // no other code comes with a list
            }
        }) else { return }
        throw AlpmError(function: "alpm_trans_prepare", subject: targetsLabel, code: failure.code,
                        problems: failure.problems, details: failure.details)
    }

    /// The packages a prepared transaction adds and removes.
    package var summary: TransactionSummary {
        let local = handle.localDatabase
        let added = AlpmList.packages(alpm_trans_get_add(handle.handle)).map { pkg -> PackageOperation in
            let name = string(alpm_pkg_get_name(pkg)) ?? "?"
            let newVersion = string(alpm_pkg_get_version(pkg))
            let old = local.flatMap { alpm_db_get_pkg($0, name) }.flatMap { string(alpm_pkg_get_version($0)) }
            let kind: PackageOperation.Kind
            if let old, let newVersion {
                let order = alpm_pkg_vercmp(newVersion, old)
                kind = order > 0 ? .upgrade : order < 0 ? .downgrade : .reinstall
            } else {
                kind = .install
            }
            return PackageOperation(kind: kind, name: name, oldVersion: old, newVersion: newVersion)
        }
        let removedPackages = alpm_trans_get_remove(handle.handle)
        let removed = AlpmList.packages(removedPackages).map { pkg in
            PackageOperation(kind: .remove, name: string(alpm_pkg_get_name(pkg)) ?? "?",
                             oldVersion: string(alpm_pkg_get_version(pkg)), newVersion: nil)
        }
        // A removal is a replacement when an added package's replaces= matches the package.
        var replacements: [PackageReplacement] = []
        for pkg in AlpmList.packages(alpm_trans_get_add(handle.handle)) {
            for dependency in AlpmList.pointers(alpm_pkg_get_replaces(pkg)) {
                guard let text = alpm_dep_compute_string(dependency.assumingMemoryBound(to: alpm_depend_t.self)) else { continue }
                defer { free(text) }
                guard let old = alpm_find_satisfier(removedPackages, text) else { continue }
                replacements.append(PackageReplacement(
                    old: string(alpm_pkg_get_name(old)) ?? "?", oldVersion: string(alpm_pkg_get_version(old)),
                    new: string(alpm_pkg_get_name(pkg)) ?? "?", newVersion: string(alpm_pkg_get_version(pkg))))
            }
        }
        return TransactionSummary(added: added, removed: removed, replacements: replacements)
    }

    /// Downloads, checks and applies the transaction. Failures list file conflicts and
    /// invalid (corrupted, bad checksum, bad signature) packages by name.
    package func commit() throws {
        let questionsBefore = handle.callbacks.answeredQuestions.count
        // libalpm chdir()s the whole process into the root while it extracts packages: the
        // directory our children start in must be known before that.
        InitialWorkingDirectory.capture()
        guard var failure = try run("alpm_trans_commit", alpm_trans_commit, problem: { code, item in
            switch code {
            case .fileConflicts:
                let conflict = item.assumingMemoryBound(to: alpm_fileconflict_t.self)
                defer { alpm_fileconflict_free(conflict) }
                let other = string(conflict.pointee.ctarget)
                return .fileConflict(FileConflict(
                    package: string(conflict.pointee.target) ?? "?", path: string(conflict.pointee.file) ?? "?",
                    otherPackage: other.flatMap { $0.isEmpty ? nil : $0 },
                    inFilesystem: conflict.pointee.type == ALPM_FILECONFLICT_FILESYSTEM))
            case .packageInvalid, .packageInvalidChecksum, .packageInvalidSignature, .packageMissingSignature:
                return .invalidPackage(takeString(item))
            default:
                return nil
            }
        }) else { return }
        // libalpm 13 reports packages that fail validation (checksum, signature) only through
        // the "delete corrupted file?" question and its log, not in the returned list.
        for answered in handle.callbacks.answeredQuestions.dropFirst(questionsBefore) {
            if case .deleteCorruptedPackage(let path, _) = answered.question {
                let file = String(path.split(separator: "/").last ?? Substring(path))
                if !failure.problems.contains(.invalidPackage(file)) { failure.problems.append(.invalidPackage(file)) }
            }
        }
        for line in failure.details {
            for suffix in [": missing required signature", ": signature from"] {
                if let range = line.range(of: suffix) {
                    let package = String(line[..<range.lowerBound])
                    if !failure.problems.contains(.invalidPackage(package)) { failure.problems.append(.invalidPackage(package)) }
                }
            }
        }
        throw AlpmError(function: "alpm_trans_commit", subject: targetsLabel, code: failure.code,
                        problems: failure.problems, details: failure.details)
    }

    /// Ends the transaction and drops the database lock.
    package func release() throws {
        guard !released else { return }
        released = true
        handle.transactionOpen = false
        if alpm_trans_release(handle.handle) != 0 {
            throw handle.error("alpm_trans_release", subject: handle.lockFile)
        }
    }

    private var targetsLabel: String {
        let summary = self.summary
        let names = summary.added.map(\.name) + summary.removed.map(\.name)
        return names.isEmpty ? handle.root : names.joined(separator: ", ")
    }

    /// How `alpm_trans_prepare` or `alpm_trans_commit` failed: libalpm's code, the problems
    /// it listed and the error lines it logged.
    private struct Failure {
        let code: AlpmErrorCode
        var problems: [AlpmError.Problem]
        let details: [String]
    }

    /// Runs `alpm_trans_prepare` or `alpm_trans_commit`; nil when it succeeds. On failure,
    /// `problem` reads (and frees) each item of the list libalpm returns for the error code.
    private func run(_ function: String,
                     _ call: (OpaquePointer?, UnsafeMutablePointer<UnsafeMutablePointer<alpm_list_t>?>) -> Int32,
                     problem: (AlpmErrorCode, UnsafeMutableRawPointer) -> AlpmError.Problem?) throws -> Failure? {
        try checkOpen(function)
        var data: UnsafeMutablePointer<alpm_list_t>?
        handle.callbacks.startCapturing()
        let result = call(handle.handle, &data)
        let details = handle.callbacks.stopCapturing()
        guard result != 0 else { return nil }
        let code = AlpmErrorCode(alpm_errno(handle.handle))
        let problems = AlpmList.pointers(data).compactMap { problem(code, $0) }
        alpm_list_free(data)
        return Failure(code: code, problems: problems, details: details)
    }

    /// A C string from libalpm's list, freed.
    private func takeString(_ item: UnsafeMutableRawPointer) -> String {
        let text = item.assumingMemoryBound(to: CChar.self)
        defer { free(text) }
        return String(cString: text)
    }

    private func checkOpen(_ function: String) throws {
        if released {
            throw AlpmError(function: function, subject: "a released transaction", code: .wrongArguments)
        }
    }
}
