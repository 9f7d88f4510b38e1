import CAlpm
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Severity of a libalpm log line.
package enum AlpmLogLevel: Sendable, Equatable, Comparable {
    case function, debug, warning, error
}

/// A package being installed, upgraded, downgraded, reinstalled or removed.
package struct PackageOperation: Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable { case install, upgrade, reinstall, downgrade, remove }
    package var kind: Kind
    package var name: String
    package var oldVersion: String?
    package var newVersion: String?

    package init(kind: Kind, name: String, oldVersion: String?, newVersion: String?) {
        self.kind = kind
        self.name = name
        self.oldVersion = oldVersion
        self.newVersion = newVersion
    }

    package var description: String {
        switch kind {
        case .install: return "install \(name) \(newVersion ?? "")"
        case .remove: return "remove \(name) \(oldVersion ?? "")"
        default: return "\(kind.rawValue) \(name) \(oldVersion ?? "") -> \(newVersion ?? "")"
        }
    }
}

/// What libalpm reports while it works (`alpm_event_t`, decoded).
package enum AlpmEvent: Sendable, Equatable {
    case checkingDependencies(done: Bool)
    case checkingFileConflicts(done: Bool)
    case resolvingDependencies(done: Bool)
    case checkingInterConflicts(done: Bool)
    case transaction(done: Bool)
    case packageOperation(PackageOperation, done: Bool)
    case checkingIntegrity(done: Bool)
    case loadingPackages(done: Bool)
    /// A line an install scriptlet printed.
    case scriptletOutput(String)
    case retrievingDatabases(done: Bool, failed: Bool)
    case retrievingPackages(count: Int, totalBytes: Int64, done: Bool, failed: Bool)
    case checkingDiskSpace(done: Bool)
    case optionalDependencyRemoved(package: String, dependency: String)
    case databaseMissing(String)
    case checkingKeyring(done: Bool)
    case downloadingKeys(done: Bool)
    case pacnewCreated(path: String)
    case pacsaveCreated(path: String)
    case hooks(preTransaction: Bool, done: Bool)
    case hookRun(name: String, description: String?, position: Int, total: Int, done: Bool)
    case other(UInt32)
}

/// Progress of one step of a transaction (`alpm_cb_progress`).
package struct AlpmProgress: Sendable, Equatable {
    package enum Step: Sendable, Equatable {
        case install, upgrade, downgrade, reinstall, remove, conflicts, diskSpace, integrity, load, keyring
    }
    package var step: Step
    /// The package concerned, when the step is per package.
    package var package: String?
    package var percent: Int
    /// This is target `current` of `total`.
    package var current: Int
    package var total: Int
}

/// Download progress (`alpm_cb_download`).
package struct AlpmDownloadEvent: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        case started(optional: Bool)
        case progress(downloaded: Int64, total: Int64)
        case retry(resume: Bool)
        /// `result`: 0 downloaded, 1 already up to date, -1 failed.
        case completed(total: Int64, result: Int)
    }
    package var file: String
    package var kind: Kind
}

/// A question libalpm asks during a transaction, as the policy saw it.
package enum AlpmQuestion: Sendable, Equatable, CustomStringConvertible {
    case installIgnoredPackage(String)
    case replacePackage(old: String, new: String, repository: String?)
    case removeConflictingPackage(installing: String, conflicting: String)
    case deleteCorruptedPackage(path: String, reason: String)
    case skipUnresolvablePackages([String])
    case selectProvider(dependency: String, providers: [String])
    case importKey(fingerprint: String, owner: String?)
    case other(UInt32)

    package var description: String {
        switch self {
        case .installIgnoredPackage(let name): return "install \(name) although it is ignored?"
        case .replacePackage(let old, let new, let repository):
            return "replace \(old) with \(repository.map { "\($0)/" } ?? "")\(new)?"
        case .removeConflictingPackage(let installing, let conflicting):
            return "\(installing) and \(conflicting) are in conflict; remove \(conflicting)?"
        case .deleteCorruptedPackage(let path, let reason): return "\(path) is corrupted (\(reason)); delete it?"
        case .skipUnresolvablePackages(let names): return "skip \(names.joined(separator: ", ")), whose dependencies cannot be resolved?"
        case .selectProvider(let dependency, let providers):
            return "which provider for \(dependency): \(providers.joined(separator: ", "))?"
        case .importKey(let fingerprint, let owner): return "import PGP key \(fingerprint) (\(owner ?? "unknown"))?"
        case .other(let type): return "libalpm question \(type)"
        }
    }
}

/// How libalpm's questions are answered without a person. The default is what `pacman
/// --noconfirm` answers, which is each prompt's default: yes to installing an ignored package
/// that was asked for, to replacing a package named in a new package's replaces= (how Arch
/// renames packages), to deleting a corrupted package file and to importing a key; no to
/// removing a conflicting package and to skipping packages whose dependencies cannot be
/// resolved; the first provider offered.
package struct AlpmQuestionPolicy: Sendable, Equatable {
    package var installIgnoredPackages: Bool
    /// Replace installed packages named in a new package's replaces=.
    package var replacePackages: Bool
    /// Remove installed packages that conflict with ones being installed.
    package var removeConflictingPackages: Bool
    /// Delete corrupted package files from the cache (so a retry downloads them again).
    package var deleteCorruptedPackages: Bool
    /// Drop targets whose dependencies cannot be resolved instead of failing.
    package var skipUnresolvablePackages: Bool
    /// Import a missing PGP key that libalpm found (on a key server) into the keyring. An
    /// imported key still needs trust before its signatures count.
    package var importKeys: Bool

    package init(installIgnoredPackages: Bool = true, replacePackages: Bool = true,
                removeConflictingPackages: Bool = false, deleteCorruptedPackages: Bool = true,
                skipUnresolvablePackages: Bool = false, importKeys: Bool = true) {
        self.installIgnoredPackages = installIgnoredPackages
        self.replacePackages = replacePackages
        self.removeConflictingPackages = removeConflictingPackages
        self.deleteCorruptedPackages = deleteCorruptedPackages
        self.skipUnresolvablePackages = skipUnresolvablePackages
        self.importKeys = importKeys
    }

    /// pacman --noconfirm's answers (the default).
    package static let pacmanNoConfirm = AlpmQuestionPolicy()

    /// Answers no to everything that changes more than was asked for.
    package static let conservative = AlpmQuestionPolicy(installIgnoredPackages: false, replacePackages: false,
                                                        removeConflictingPackages: false, deleteCorruptedPackages: true,
                                                        skipUnresolvablePackages: false, importKeys: false)
}

/// One question and the answer given.
package struct AnsweredQuestion: Sendable, Equatable {
    package var question: AlpmQuestion
    /// Yes/no, or for provider selection whether a provider was chosen.
    package var answer: Bool
}

/// The closures and policy the C callbacks reach through their context pointer.
final class CallbackContext {
    var logHandler: ((AlpmLogLevel, String) -> Void)?
    var eventHandler: ((AlpmEvent) -> Void)?
    var progressHandler: ((AlpmProgress) -> Void)?
    var downloadHandler: ((AlpmDownloadEvent) -> Void)?
    var questionPolicy = AlpmQuestionPolicy()
    var answeredQuestions: [AnsweredQuestion] = []
    /// Error lines logged since `startCapturing()`, for error reports.
    var capturedErrors: [String]?

    func startCapturing() { capturedErrors = [] }

    func stopCapturing() -> [String] {
        defer { capturedErrors = nil }
        return capturedErrors ?? []
    }

    func log(_ level: AlpmLogLevel, _ message: String) {
        if level == .error, capturedErrors != nil {
            let line = message.trimmingCharacters(in: .newlines)
            if !line.isEmpty { capturedErrors?.append(line) }
        }
        logHandler?(level, message)
    }

    func answer(_ question: UnsafeMutablePointer<alpm_question_t>) {
        let type = question.pointee.type
        var asked: AlpmQuestion
        var yes = false
        switch type {
        case ALPM_QUESTION_INSTALL_IGNOREPKG:
            let name = question.pointee.install_ignorepkg.pkg.flatMap { string(alpm_pkg_get_name($0)) } ?? "?"
            asked = .installIgnoredPackage(name)
            yes = questionPolicy.installIgnoredPackages
            question.pointee.install_ignorepkg.install = yes ? 1 : 0
        case ALPM_QUESTION_REPLACE_PKG:
            let replace = question.pointee.replace
            asked = .replacePackage(old: replace.oldpkg.flatMap { string(alpm_pkg_get_name($0)) } ?? "?",
                                    new: replace.newpkg.flatMap { string(alpm_pkg_get_name($0)) } ?? "?",
                                    repository: replace.newdb.flatMap { string(alpm_db_get_name($0)) })
            yes = questionPolicy.replacePackages
            question.pointee.replace.replace = yes ? 1 : 0
        case ALPM_QUESTION_CONFLICT_PKG:
            let conflict = question.pointee.conflict.conflict
            asked = .removeConflictingPackage(installing: conflict.flatMap { string($0.pointee.package1) } ?? "?",
                                              conflicting: conflict.flatMap { string($0.pointee.package2) } ?? "?")
            yes = questionPolicy.removeConflictingPackages
            question.pointee.conflict.remove = yes ? 1 : 0
        case ALPM_QUESTION_CORRUPTED_PKG:
            let corrupted = question.pointee.corrupted
            asked = .deleteCorruptedPackage(path: string(corrupted.filepath) ?? "?",
                                            reason: AlpmErrorCode(corrupted.reason).message)
            yes = questionPolicy.deleteCorruptedPackages
            question.pointee.corrupted.remove = yes ? 1 : 0
        case ALPM_QUESTION_REMOVE_PKGS:
            let names = AlpmList.packages(question.pointee.remove_pkgs.packages).compactMap { string(alpm_pkg_get_name($0)) }
            asked = .skipUnresolvablePackages(names)
            yes = questionPolicy.skipUnresolvablePackages
            question.pointee.remove_pkgs.skip = yes ? 1 : 0
        case ALPM_QUESTION_SELECT_PROVIDER:
            let select = question.pointee.select_provider
            let providers = AlpmList.packages(select.providers).compactMap { string(alpm_pkg_get_name($0)) }
            let dependency = select.depend.map { AlpmDependency($0).description } ?? "?"
            asked = .selectProvider(dependency: dependency, providers: providers)
            yes = !providers.isEmpty
            question.pointee.select_provider.use_index = 0
        case ALPM_QUESTION_IMPORT_KEY:
            let key = question.pointee.import_key.key
            asked = .importKey(fingerprint: key.flatMap { string($0.pointee.fingerprint) } ?? "?",
                               owner: key.flatMap { string($0.pointee.uid) })
            yes = questionPolicy.importKeys
            question.pointee.import_key.import = yes ? 1 : 0
        default:
            asked = .other(type.rawValue)
            question.pointee.any.answer = 0
        }
        answeredQuestions.append(AnsweredQuestion(question: asked, answer: yes))
    }
}

private func context(_ pointer: UnsafeMutableRawPointer?) -> CallbackContext? {
    pointer.map { Unmanaged<CallbackContext>.fromOpaque($0).takeUnretainedValue() }
}

func alpmLogCallback(_ ctx: UnsafeMutableRawPointer?, _ level: alpm_loglevel_t, _ format: UnsafePointer<CChar>?,
                     _ arguments: CVaListPointer?) {
    guard let context = context(ctx), let format, let arguments else { return }
    let swiftLevel: AlpmLogLevel
    switch level {
    case ALPM_LOG_ERROR: swiftLevel = .error
    case ALPM_LOG_WARNING: swiftLevel = .warning
    case ALPM_LOG_DEBUG: swiftLevel = .debug
    default: swiftLevel = .function
    }
    // Skip formatting chatty levels nobody listens to.
    if swiftLevel < .warning, context.logHandler == nil { return }
    guard let text = rast_alpm_format_log(format, arguments) else { return }
    defer { free(text) }
    context.log(swiftLevel, String(cString: text))
}

func alpmEventCallback(_ ctx: UnsafeMutableRawPointer?, _ event: UnsafeMutablePointer<alpm_event_t>?) {
    guard let context = context(ctx), let handler = context.eventHandler, let event else { return }
    handler(decodeEvent(event))
}

func alpmProgressCallback(_ ctx: UnsafeMutableRawPointer?, _ progress: alpm_progress_t, _ package: UnsafePointer<CChar>?,
                          _ percent: Int32, _ total: Int, _ current: Int) {
    guard let context = context(ctx), let handler = context.progressHandler else { return }
    let step: AlpmProgress.Step
    switch progress {
    case ALPM_PROGRESS_ADD_START: step = .install
    case ALPM_PROGRESS_UPGRADE_START: step = .upgrade
    case ALPM_PROGRESS_DOWNGRADE_START: step = .downgrade
    case ALPM_PROGRESS_REINSTALL_START: step = .reinstall
    case ALPM_PROGRESS_REMOVE_START: step = .remove
    case ALPM_PROGRESS_CONFLICTS_START: step = .conflicts
    case ALPM_PROGRESS_DISKSPACE_START: step = .diskSpace
    case ALPM_PROGRESS_INTEGRITY_START: step = .integrity
    case ALPM_PROGRESS_LOAD_START: step = .load
    default: step = .keyring
    }
    let name = string(package).flatMap { $0.isEmpty ? nil : $0 }
    handler(AlpmProgress(step: step, package: name, percent: Int(percent), current: current, total: total))
}

func alpmDownloadCallback(_ ctx: UnsafeMutableRawPointer?, _ file: UnsafePointer<CChar>?,
                          _ event: alpm_download_event_type_t, _ data: UnsafeMutableRawPointer?) {
    guard let context = context(ctx), let handler = context.downloadHandler else { return }
    let name = string(file) ?? ""
    let kind: AlpmDownloadEvent.Kind
    switch event {
    case ALPM_DOWNLOAD_INIT:
        let optional = data?.assumingMemoryBound(to: alpm_download_event_init_t.self).pointee.optional ?? 0
        kind = .started(optional: optional != 0)
    case ALPM_DOWNLOAD_PROGRESS:
        guard let info = data?.assumingMemoryBound(to: alpm_download_event_progress_t.self).pointee else { return }
        kind = .progress(downloaded: Int64(info.downloaded), total: Int64(info.total))
    case ALPM_DOWNLOAD_RETRY:
        let resume = data?.assumingMemoryBound(to: alpm_download_event_retry_t.self).pointee.resume ?? 0
        kind = .retry(resume: resume != 0)
    default:
        guard let info = data?.assumingMemoryBound(to: alpm_download_event_completed_t.self).pointee else { return }
        kind = .completed(total: Int64(info.total), result: Int(info.result))
    }
    handler(AlpmDownloadEvent(file: name, kind: kind))
}

func alpmQuestionCallback(_ ctx: UnsafeMutableRawPointer?, _ question: UnsafeMutablePointer<alpm_question_t>?) {
    guard let context = context(ctx), let question else { return }
    context.answer(question)
}

private func packageLabel(_ pkg: OpaquePointer?) -> (String?, String?) {
    guard let pkg else { return (nil, nil) }
    return (string(alpm_pkg_get_name(pkg)), string(alpm_pkg_get_version(pkg)))
}

private func decodeEvent(_ event: UnsafeMutablePointer<alpm_event_t>) -> AlpmEvent {
    let type = event.pointee.type
    switch type {
    case ALPM_EVENT_CHECKDEPS_START, ALPM_EVENT_CHECKDEPS_DONE:
        return .checkingDependencies(done: type == ALPM_EVENT_CHECKDEPS_DONE)
    case ALPM_EVENT_FILECONFLICTS_START, ALPM_EVENT_FILECONFLICTS_DONE:
        return .checkingFileConflicts(done: type == ALPM_EVENT_FILECONFLICTS_DONE)
    case ALPM_EVENT_RESOLVEDEPS_START, ALPM_EVENT_RESOLVEDEPS_DONE:
        return .resolvingDependencies(done: type == ALPM_EVENT_RESOLVEDEPS_DONE)
    case ALPM_EVENT_INTERCONFLICTS_START, ALPM_EVENT_INTERCONFLICTS_DONE:
        return .checkingInterConflicts(done: type == ALPM_EVENT_INTERCONFLICTS_DONE)
    case ALPM_EVENT_TRANSACTION_START, ALPM_EVENT_TRANSACTION_DONE:
        return .transaction(done: type == ALPM_EVENT_TRANSACTION_DONE)
    case ALPM_EVENT_PACKAGE_OPERATION_START, ALPM_EVENT_PACKAGE_OPERATION_DONE:
        let operation = event.pointee.package_operation
        let kind: PackageOperation.Kind
        switch operation.operation {
        case ALPM_PACKAGE_INSTALL: kind = .install
        case ALPM_PACKAGE_UPGRADE: kind = .upgrade
        case ALPM_PACKAGE_REINSTALL: kind = .reinstall
        case ALPM_PACKAGE_DOWNGRADE: kind = .downgrade
        default: kind = .remove
        }
        let (oldName, oldVersion) = packageLabel(operation.oldpkg)
        let (newName, newVersion) = packageLabel(operation.newpkg)
        return .packageOperation(PackageOperation(kind: kind, name: newName ?? oldName ?? "?", oldVersion: oldVersion,
                                                  newVersion: newVersion),
                                 done: type == ALPM_EVENT_PACKAGE_OPERATION_DONE)
    case ALPM_EVENT_INTEGRITY_START, ALPM_EVENT_INTEGRITY_DONE:
        return .checkingIntegrity(done: type == ALPM_EVENT_INTEGRITY_DONE)
    case ALPM_EVENT_LOAD_START, ALPM_EVENT_LOAD_DONE:
        return .loadingPackages(done: type == ALPM_EVENT_LOAD_DONE)
    case ALPM_EVENT_SCRIPTLET_INFO:
        let line = string(event.pointee.scriptlet_info.line) ?? ""
        return .scriptletOutput(line.trimmingCharacters(in: .newlines))
    case ALPM_EVENT_DB_RETRIEVE_START, ALPM_EVENT_DB_RETRIEVE_DONE, ALPM_EVENT_DB_RETRIEVE_FAILED:
        return .retrievingDatabases(done: type != ALPM_EVENT_DB_RETRIEVE_START, failed: type == ALPM_EVENT_DB_RETRIEVE_FAILED)
    case ALPM_EVENT_PKG_RETRIEVE_START, ALPM_EVENT_PKG_RETRIEVE_DONE, ALPM_EVENT_PKG_RETRIEVE_FAILED:
        let retrieve = event.pointee.pkg_retrieve
        return .retrievingPackages(count: Int(retrieve.num), totalBytes: Int64(retrieve.total_size),
                                   done: type != ALPM_EVENT_PKG_RETRIEVE_START, failed: type == ALPM_EVENT_PKG_RETRIEVE_FAILED)
    case ALPM_EVENT_DISKSPACE_START, ALPM_EVENT_DISKSPACE_DONE:
        return .checkingDiskSpace(done: type == ALPM_EVENT_DISKSPACE_DONE)
    case ALPM_EVENT_OPTDEP_REMOVAL:
        let removal = event.pointee.optdep_removal
        return .optionalDependencyRemoved(package: removal.pkg.flatMap { string(alpm_pkg_get_name($0)) } ?? "?",
                                          dependency: removal.optdep.map { AlpmDependency($0).description } ?? "?")
    case ALPM_EVENT_DATABASE_MISSING:
        return .databaseMissing(string(event.pointee.database_missing.dbname) ?? "?")
    case ALPM_EVENT_KEYRING_START, ALPM_EVENT_KEYRING_DONE:
        return .checkingKeyring(done: type == ALPM_EVENT_KEYRING_DONE)
    case ALPM_EVENT_KEY_DOWNLOAD_START, ALPM_EVENT_KEY_DOWNLOAD_DONE:
        return .downloadingKeys(done: type == ALPM_EVENT_KEY_DOWNLOAD_DONE)
    case ALPM_EVENT_PACNEW_CREATED:
        return .pacnewCreated(path: string(event.pointee.pacnew_created.file) ?? "?")
    case ALPM_EVENT_PACSAVE_CREATED:
        return .pacsaveCreated(path: string(event.pointee.pacsave_created.file) ?? "?")
    case ALPM_EVENT_HOOK_START, ALPM_EVENT_HOOK_DONE:
        return .hooks(preTransaction: event.pointee.hook.when == ALPM_HOOK_PRE_TRANSACTION, done: type == ALPM_EVENT_HOOK_DONE)
    case ALPM_EVENT_HOOK_RUN_START, ALPM_EVENT_HOOK_RUN_DONE:
        let run = event.pointee.hook_run
        return .hookRun(name: string(run.name) ?? "?", description: string(run.desc), position: Int(run.position),
                        total: Int(run.total), done: type == ALPM_EVENT_HOOK_RUN_DONE)
    default:
        return .other(type.rawValue)
    }
}
