import CAlpm
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Signature checking levels (`alpm_siglevel_t`), as pacman.conf's SigLevel.
package struct SigLevel: OptionSet, Sendable, Hashable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }

    package static let package = SigLevel(rawValue: Int32(ALPM_SIG_PACKAGE.rawValue))
    package static let packageOptional = SigLevel(rawValue: Int32(ALPM_SIG_PACKAGE_OPTIONAL.rawValue))
    package static let packageMarginalOK = SigLevel(rawValue: Int32(ALPM_SIG_PACKAGE_MARGINAL_OK.rawValue))
    package static let packageUnknownOK = SigLevel(rawValue: Int32(ALPM_SIG_PACKAGE_UNKNOWN_OK.rawValue))
    package static let database = SigLevel(rawValue: Int32(ALPM_SIG_DATABASE.rawValue))
    package static let databaseOptional = SigLevel(rawValue: Int32(ALPM_SIG_DATABASE_OPTIONAL.rawValue))
    package static let databaseMarginalOK = SigLevel(rawValue: Int32(ALPM_SIG_DATABASE_MARGINAL_OK.rawValue))
    package static let databaseUnknownOK = SigLevel(rawValue: Int32(ALPM_SIG_DATABASE_UNKNOWN_OK.rawValue))
    /// Use the handle's default level (for databases).
    package static let useDefault = SigLevel(rawValue: Int32(ALPM_SIG_USE_DEFAULT.rawValue))

    /// `SigLevel = Never`: no signature is checked.
    package static let never: SigLevel = []
    /// `SigLevel = Required DatabaseOptional`, pacman's default.
    package static let required: SigLevel = [.package, .databaseOptional]
    /// `SigLevel = Optional`: check signatures that exist.
    package static let optional: SigLevel = [.package, .packageOptional, .database, .databaseOptional]
}

/// Where a handle keeps everything. Every path is explicit so that a handle for a target
/// root never reads or writes the host's pacman files by accident.
package struct AlpmConfiguration: Sendable {
    /// The root packages are installed into.
    package var root: String
    /// The package database (its `local/` and `sync/` directories); anywhere, e.g. inside a snapshot.
    package var databasePath: String
    package var cacheDirectories: [String]
    package var hookDirectories: [String]
    package var gpgDirectory: String
    package var logFile: String
    package var architectures: [String]
    /// Default SigLevel for databases registered with `.useDefault`.
    package var defaultSigLevel: SigLevel
    /// SigLevel for package files installed with `installFiles` (pacman's LocalFileSigLevel).
    package var localFileSigLevel: SigLevel
    /// SigLevel for package files fetched by URL (pacman's RemoteFileSigLevel).
    package var remoteFileSigLevel: SigLevel
    package var checkSpace: Bool
    package var parallelDownloads: Int
    package var disableDownloadTimeout: Bool
    package var ignorePackages: [String]
    package var noUpgrade: [String]
    package var noExtract: [String]

    package init(root: String, databasePath: String, cacheDirectories: [String], hookDirectories: [String],
                gpgDirectory: String, logFile: String, architectures: [String] = [AlpmConfiguration.machineArchitecture],
                defaultSigLevel: SigLevel = .required, localFileSigLevel: SigLevel = [.package, .packageOptional],
                remoteFileSigLevel: SigLevel = .required, checkSpace: Bool = false, parallelDownloads: Int = 1,
                disableDownloadTimeout: Bool = false, ignorePackages: [String] = [], noUpgrade: [String] = [],
                noExtract: [String] = []) {
        self.root = root
        self.databasePath = databasePath
        self.cacheDirectories = cacheDirectories
        self.hookDirectories = hookDirectories
        self.gpgDirectory = gpgDirectory
        self.logFile = logFile
        self.architectures = architectures
        self.defaultSigLevel = defaultSigLevel
        self.localFileSigLevel = localFileSigLevel
        self.remoteFileSigLevel = remoteFileSigLevel
        self.checkSpace = checkSpace
        self.parallelDownloads = parallelDownloads
        self.disableDownloadTimeout = disableDownloadTimeout
        self.ignorePackages = ignorePackages
        self.noUpgrade = noUpgrade
        self.noExtract = noExtract
    }

    /// pacman's layout inside `root`: database R/var/lib/pacman (or `databasePath`), cache
    /// R/var/cache/pacman/pkg, hooks R/etc/pacman.d/hooks, keyring R/etc/pacman.d/gnupg,
    /// log R/var/log/pacman.log.
    package static func rooted(at root: String, databasePath: String? = nil, sigLevel: SigLevel = .required) -> AlpmConfiguration {
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        return AlpmConfiguration(root: root, databasePath: databasePath ?? base + "/var/lib/pacman",
                                 cacheDirectories: [base + "/var/cache/pacman/pkg"],
                                 hookDirectories: [base + "/usr/share/libalpm/hooks", base + "/etc/pacman.d/hooks"],
                                 gpgDirectory: base + "/etc/pacman.d/gnupg", logFile: base + "/var/log/pacman.log",
                                 defaultSigLevel: sigLevel)
    }

    /// `uname -m` ("x86_64"), what pacman's `Architecture = auto` means.
    package static var machineArchitecture: String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: names.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// How a sync database may be used (`alpm_db_usage_t`).
package struct DatabaseUsage: OptionSet, Sendable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }
    package static let sync = DatabaseUsage(rawValue: Int32(ALPM_DB_USAGE_SYNC.rawValue))
    package static let search = DatabaseUsage(rawValue: Int32(ALPM_DB_USAGE_SEARCH.rawValue))
    package static let install = DatabaseUsage(rawValue: Int32(ALPM_DB_USAGE_INSTALL.rawValue))
    package static let upgrade = DatabaseUsage(rawValue: Int32(ALPM_DB_USAGE_UPGRADE.rawValue))
    package static let all: DatabaseUsage = [.sync, .search, .install, .upgrade]
}

/// A libalpm handle (`alpm_handle_t`) for one root and database path. Not thread-safe:
/// use one handle from one thread at a time. `deinit` releases it; `close()` reports errors.
package final class AlpmHandle {
    private let rawHandle: OpaquePointer
    package let configuration: AlpmConfiguration
    let callbacks = CallbackContext()
    private var closed = false
    /// Set while an `AlpmTransaction` is open (libalpm allows one per handle).
    var transactionOpen = false

    /// The C handle; using a closed handle is a programming error.
    var handle: OpaquePointer {
        precondition(!closed, "AlpmHandle for \(configuration.root) used after close()")
        return rawHandle
    }

    /// Creates the root, database, cache and log directories when missing, then
    /// initialises libalpm with every option set from `configuration`.
    package init(_ configuration: AlpmConfiguration) throws {
        self.configuration = configuration
        for directory in [configuration.root, configuration.databasePath] + configuration.cacheDirectories
            + [(configuration.logFile as NSString).deletingLastPathComponent] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw AlpmError(function: "mkdir", subject: directory, code: .system,
                                details: ["cannot create \(directory): \(error.localizedDescription)"])
            }
        }
        var code = ALPM_ERR_OK
        guard let handle = alpm_initialize(configuration.root, configuration.databasePath, &code) else {
            throw AlpmError(function: "alpm_initialize", subject: "root \(configuration.root), dbpath \(configuration.databasePath)",
                            code: AlpmErrorCode(code))
        }
        self.rawHandle = handle
        do {
            try applyOptions()
        } catch {
            alpm_release(handle)
            closed = true
            throw error
        }
    }

    deinit {
        if !closed { alpm_release(rawHandle) }
    }

    /// Releases the handle. Release open transactions first (they keep the handle alive
    /// and need it to drop the database lock).
    package func close() throws {
        guard !closed else { return }
        if transactionOpen {
            throw AlpmError(function: "alpm_release", subject: "\(configuration.databasePath) (a transaction is still open)",
                            code: .transactionNotNull)
        }
        closed = true
        if alpm_release(rawHandle) != 0 {
            throw AlpmError(function: "alpm_release", subject: configuration.databasePath, code: .system)
        }
    }

    private func applyOptions() throws {
        let config = configuration
        try check(AlpmList.withStrings(config.cacheDirectories) { alpm_option_set_cachedirs(handle, $0) },
                  "alpm_option_set_cachedirs", subject: config.cacheDirectories.joined(separator: ", "))
        try check(AlpmList.withStrings(config.hookDirectories) { alpm_option_set_hookdirs(handle, $0) },
                  "alpm_option_set_hookdirs", subject: config.hookDirectories.joined(separator: ", "))
        try check(alpm_option_set_gpgdir(handle, config.gpgDirectory), "alpm_option_set_gpgdir", subject: config.gpgDirectory)
        try check(alpm_option_set_logfile(handle, config.logFile), "alpm_option_set_logfile", subject: config.logFile)
        try check(alpm_option_set_usesyslog(handle, 0), "alpm_option_set_usesyslog")
        try check(AlpmList.withStrings(config.architectures) { alpm_option_set_architectures(handle, $0) },
                  "alpm_option_set_architectures", subject: config.architectures.joined(separator: " "))
        try check(alpm_option_set_default_siglevel(handle, config.defaultSigLevel.rawValue), "alpm_option_set_default_siglevel")
        try check(alpm_option_set_local_file_siglevel(handle, config.localFileSigLevel.rawValue),
                  "alpm_option_set_local_file_siglevel")
        try check(alpm_option_set_remote_file_siglevel(handle, config.remoteFileSigLevel.rawValue),
                  "alpm_option_set_remote_file_siglevel")
        try check(alpm_option_set_checkspace(handle, config.checkSpace ? 1 : 0), "alpm_option_set_checkspace")
        try check(alpm_option_set_parallel_downloads(handle, UInt32(max(1, config.parallelDownloads))),
                  "alpm_option_set_parallel_downloads")
        try check(alpm_option_set_disable_dl_timeout(handle, config.disableDownloadTimeout ? 1 : 0),
                  "alpm_option_set_disable_dl_timeout")
        try check(AlpmList.withStrings(config.ignorePackages) { alpm_option_set_ignorepkgs(handle, $0) }, "alpm_option_set_ignorepkgs")
        try check(AlpmList.withStrings(config.noUpgrade) { alpm_option_set_noupgrades(handle, $0) }, "alpm_option_set_noupgrades")
        try check(AlpmList.withStrings(config.noExtract) { alpm_option_set_noextracts(handle, $0) }, "alpm_option_set_noextracts")

        let context = Unmanaged.passUnretained(callbacks).toOpaque()
        alpm_option_set_logcb(handle, alpmLogCallback, context)
        alpm_option_set_eventcb(handle, alpmEventCallback, context)
        alpm_option_set_progresscb(handle, alpmProgressCallback, context)
        alpm_option_set_dlcb(handle, alpmDownloadCallback, context)
        alpm_option_set_questioncb(handle, alpmQuestionCallback, context)
    }

    // MARK: Callbacks

    /// Receives every libalpm log line (debug and function levels included).
    package var logHandler: ((AlpmLogLevel, String) -> Void)? {
        get { callbacks.logHandler }
        set { callbacks.logHandler = newValue }
    }

    package var eventHandler: ((AlpmEvent) -> Void)? {
        get { callbacks.eventHandler }
        set { callbacks.eventHandler = newValue }
    }

    package var progressHandler: ((AlpmProgress) -> Void)? {
        get { callbacks.progressHandler }
        set { callbacks.progressHandler = newValue }
    }

    package var downloadHandler: ((AlpmDownloadEvent) -> Void)? {
        get { callbacks.downloadHandler }
        set { callbacks.downloadHandler = newValue }
    }

    /// How libalpm's questions are answered.
    package var questionPolicy: AlpmQuestionPolicy {
        get { callbacks.questionPolicy }
        set { callbacks.questionPolicy = newValue }
    }

    /// Every question asked so far, with the answer given.
    package var answeredQuestions: [AnsweredQuestion] { callbacks.answeredQuestions }

    // MARK: Options read back

    package var root: String { string(alpm_option_get_root(handle)) ?? configuration.root }
    package var databasePath: String { string(alpm_option_get_dbpath(handle)) ?? configuration.databasePath }
    package var lockFile: String { string(alpm_option_get_lockfile(handle)) ?? "" }
    package var cacheDirectories: [String] { AlpmList.strings(alpm_option_get_cachedirs(handle)) }
    package var hookDirectories: [String] { AlpmList.strings(alpm_option_get_hookdirs(handle)) }
    package var gpgDirectory: String? { string(alpm_option_get_gpgdir(handle)) }
    package var logFile: String? { string(alpm_option_get_logfile(handle)) }
    package var architectures: [String] { AlpmList.strings(alpm_option_get_architectures(handle)) }
    package var defaultSigLevel: SigLevel { SigLevel(rawValue: alpm_option_get_default_siglevel(handle)) }

    /// libalpm's version ("13.0.2").
    package static var libraryVersion: String { string(alpm_version()) ?? "?" }

    /// Compares two versions as pacman does: negative, zero or positive.
    package static func vercmp(_ a: String, _ b: String) -> Int {
        Int(alpm_pkg_vercmp(a, b))
    }

    // MARK: Databases

    /// Registers the sync database `name` (downloaded as `SERVER/NAME.db`). In server URLs
    /// `$repo` and `$arch` are replaced as pacman.conf does.
    package func registerSyncDatabase(_ name: String, servers: [String], sigLevel: SigLevel = .useDefault,
                                     usage: DatabaseUsage = .all) throws {
        guard let db = alpm_register_syncdb(handle, name, sigLevel.rawValue) else {
            throw error("alpm_register_syncdb", subject: name)
        }
        let arch = configuration.architectures.first ?? AlpmConfiguration.machineArchitecture
        for server in servers {
            let url = server.replacingOccurrences(of: "$repo", with: name).replacingOccurrences(of: "$arch", with: arch)
            try check(alpm_db_add_server(db, url), "alpm_db_add_server", subject: "\(name): \(url)")
        }
        try check(alpm_db_set_usage(db, usage.rawValue), "alpm_db_set_usage", subject: name)
    }

    /// The registered sync databases, in order.
    package var syncDatabases: [String] {
        AlpmList.packages(alpm_get_syncdbs(handle)).compactMap { string(alpm_db_get_name($0)) }
    }

    /// The servers of a sync database.
    package func servers(of database: String) throws -> [String] {
        AlpmList.strings(alpm_db_get_servers(try syncDatabase(database)))
    }

    /// Downloads the sync databases (`pacman -Sy`, or `-Syy` with `force`); returns whether
    /// any of them changed.
    @discardableResult
    package func updateDatabases(force: Bool = false) throws -> Bool {
        let dbs = AlpmList.packages(alpm_get_syncdbs(handle))
        callbacks.startCapturing()
        let result = AlpmList.withPointers(dbs) { alpm_db_update(handle, $0, force ? 1 : 0) }
        let details = callbacks.stopCapturing()
        if result < 0 {
            throw error("alpm_db_update", subject: syncDatabases.joined(separator: ", "), details: details)
        }
        return result == 0
    }

    func syncDatabase(_ name: String) throws -> OpaquePointer {
        for db in AlpmList.packages(alpm_get_syncdbs(handle)) where string(alpm_db_get_name(db)) == name {
            return db
        }
        throw AlpmError(function: "alpm_get_syncdbs", subject: name, code: .databaseNotFound)
    }

    var localDatabase: OpaquePointer? { alpm_get_localdb(handle) }

    // MARK: Queries

    /// Installed packages (`pacman -Q`), sorted by name. `details` adds required-by,
    /// optional-for and file lists.
    package func installedPackages(details: Bool = false) -> [AlpmPackage] {
        guard let local = localDatabase else { return [] }
        return AlpmList.packages(alpm_db_get_pkgcache(local)).map { AlpmPackage($0, details: details) }
            .sorted { $0.name < $1.name }
    }

    /// One installed package with all details (`pacman -Qi` and `-Ql`), or nil.
    package func installedPackage(named name: String) -> AlpmPackage? {
        guard let local = localDatabase, let pkg = alpm_db_get_pkg(local, name) else { return nil }
        return AlpmPackage(pkg, details: true)
    }

    /// The installed package named `target`, else the first installed package that satisfies
    /// it as a dependency (`sh` → the package that provides sh; `name>=1.2` works too), as
    /// `pacman -Q` and `-Qi` look a target up. With all details, or nil.
    package func installedPackage(satisfying target: String) -> AlpmPackage? {
        if let named = installedPackage(named: target) { return named }
        guard let local = localDatabase, let pkg = alpm_find_satisfier(alpm_db_get_pkgcache(local), target) else { return nil }
        return AlpmPackage(pkg, details: true)
    }

    /// A package in the sync databases (`pacman -Si`): the first database that has it, or
    /// the one named by `repository`.
    package func syncPackage(named name: String, repository: String? = nil) throws -> AlpmPackage? {
        let dbs = try repository.map { [try syncDatabase($0)] } ?? AlpmList.packages(alpm_get_syncdbs(handle))
        for db in dbs {
            if let pkg = alpm_db_get_pkg(db, name) { return AlpmPackage(pkg, details: false) }
        }
        return nil
    }

    /// All packages of the sync databases, in database order.
    package func syncPackages(repository: String? = nil) throws -> [AlpmPackage] {
        let dbs = try repository.map { [try syncDatabase($0)] } ?? AlpmList.packages(alpm_get_syncdbs(handle))
        return dbs.flatMap { AlpmList.packages(alpm_db_get_pkgcache($0)).map { AlpmPackage($0, details: false) } }
    }

    /// Searches names and descriptions of sync packages with regular expressions, all of
    /// which must match (`pacman -Ss`).
    package func search(_ patterns: [String]) throws -> [AlpmPackage] {
        try AlpmList.packages(alpm_get_syncdbs(handle)).flatMap { try search(database: $0, patterns) }
    }

    /// Searches installed packages (`pacman -Qs`).
    package func searchInstalled(_ patterns: [String]) throws -> [AlpmPackage] {
        guard let local = localDatabase else { return [] }
        return try search(database: local, patterns)
    }

    private func search(database: OpaquePointer, _ patterns: [String]) throws -> [AlpmPackage] {
        var found: UnsafeMutablePointer<alpm_list_t>?
        let result = AlpmList.withStrings(patterns) { alpm_db_search(database, $0, &found) }
        defer { alpm_list_free(found) }
        if result != 0 {
            throw error("alpm_db_search", subject: patterns.joined(separator: " "))
        }
        return AlpmList.packages(found).map { AlpmPackage($0, details: false) }
    }

    /// Packages installed as dependencies that nothing requires or optionally requires any
    /// more (`pacman -Qdt`).
    package func orphans() -> [AlpmPackage] {
        guard let local = localDatabase else { return [] }
        return AlpmList.packages(alpm_db_get_pkgcache(local)).filter { pkg in
            guard alpm_pkg_get_reason(pkg) == ALPM_PKG_REASON_DEPEND else { return false }
            let required = alpm_pkg_compute_requiredby(pkg)
            let optional = alpm_pkg_compute_optionalfor(pkg)
            defer {
                AlpmList.freeStrings(required)
                AlpmList.freeStrings(optional)
            }
            return required == nil && optional == nil
        }.map { AlpmPackage($0, details: false) }.sorted { $0.name < $1.name }
    }

    /// Which installed package owns `path` (absolute in the root, or relative), or nil.
    package func owner(of path: String) -> String? {
        guard let local = localDatabase else { return nil }
        var relative = Substring(path)
        let root = configuration.root.hasSuffix("/") ? configuration.root : configuration.root + "/"
        if relative.hasPrefix(root) { relative = relative.dropFirst(root.count) }
        while relative.hasPrefix("/") { relative = relative.dropFirst() }
        for pkg in AlpmList.packages(alpm_db_get_pkgcache(local)) {
            if let files = alpm_pkg_get_files(pkg), alpm_filelist_contains(files, String(relative)) != nil {
                return string(alpm_pkg_get_name(pkg))
            }
        }
        return nil
    }

    /// Loads a package file without installing it (`pacman -Qip FILE`).
    package func loadPackageFile(_ path: String) throws -> AlpmPackage {
        var pkg: OpaquePointer?
        callbacks.startCapturing()
        let result = alpm_pkg_load(handle, path, 1, configuration.localFileSigLevel.rawValue, &pkg)
        let details = callbacks.stopCapturing()
        guard result == 0, let pkg else {
            throw error("alpm_pkg_load", subject: path, details: details)
        }
        defer { alpm_pkg_free(pkg) }
        return AlpmPackage(pkg, details: true)
    }

    // MARK: Transactions

    /// Starts a transaction (one at a time per handle).
    package func transaction(flags: TransactionFlags = []) throws -> AlpmTransaction {
        try AlpmTransaction(handle: self, flags: flags)
    }

    /// Installs packages by name from the sync databases with their dependencies
    /// (`pacman -S`). Names may be `repo/name`, a version constraint ("hello>=1.1"), a
    /// provision or a group.
    @discardableResult
    package func install(_ targets: [String], flags: TransactionFlags = []) throws -> TransactionSummary {
        try run(flags: flags) { transaction in
            for target in targets { try transaction.addSyncTarget(target) }
        }
    }

    /// Installs package files (`pacman -U`).
    @discardableResult
    package func installFiles(_ paths: [String], flags: TransactionFlags = []) throws -> TransactionSummary {
        try run(flags: flags) { transaction in
            for path in paths { try transaction.addPackageFile(path) }
        }
    }

    /// Removes installed packages (`pacman -R`, with `.cascade`, `.recurse`, `.noSave`, ...).
    @discardableResult
    package func remove(_ names: [String], flags: TransactionFlags = []) throws -> TransactionSummary {
        try run(flags: flags) { transaction in
            for name in names { try transaction.removePackage(named: name) }
        }
    }

    /// Upgrades every installed package that has a newer version in the sync databases
    /// (`pacman -Su`; `allowDowngrade` is `-Suu`).
    @discardableResult
    package func sysupgrade(flags: TransactionFlags = [], allowDowngrade: Bool = false) throws -> TransactionSummary {
        try run(flags: flags) { transaction in
            try transaction.sysupgrade(allowDowngrade: allowDowngrade)
        }
    }

    /// init, add targets, prepare, commit (unless there is nothing to do), release.
    private func run(flags: TransactionFlags, _ addTargets: (AlpmTransaction) throws -> Void) throws -> TransactionSummary {
        let transaction = try self.transaction(flags: flags)
        do {
            try addTargets(transaction)
            try transaction.prepare()
            let summary = transaction.summary
            if !summary.isEmpty { try transaction.commit() }
            try transaction.release()
            return summary
        } catch {
            try? transaction.release()
            throw error
        }
    }

    // MARK: Errors

    /// The error libalpm recorded for the call that just failed. Every libalpm call resets
    /// the error code, so it is read before `subject` is evaluated.
    func error(_ function: String, subject: @autoclosure () -> String? = nil, problems: [AlpmError.Problem] = [],
               details: [String] = []) -> AlpmError {
        let code = AlpmErrorCode(alpm_errno(handle))
        var subject = subject()
        if code == .handleLock { subject = lockFile + " (another process holds the database lock, or it is stale)" }
        return AlpmError(function: function, subject: subject, code: code, problems: problems, details: details)
    }

    func check(_ result: Int32, _ function: String, subject: String? = nil) throws {
        if result != 0 { throw error(function, subject: subject) }
    }
}
