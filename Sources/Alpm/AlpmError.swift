import CAlpm
#if canImport(Glibc)
import Glibc
#endif

/// libalpm's error number (`alpm_errno_t`), with its name.
package struct AlpmErrorCode: Sendable, Equatable, Hashable, CustomStringConvertible {
    package let rawValue: UInt32

    init(_ code: alpm_errno_t) { rawValue = code.rawValue }

    /// libalpm's text for the code ("could not satisfy dependencies").
    package var message: String {
        string(alpm_strerror(alpm_errno_t(rawValue: rawValue))) ?? "unknown libalpm error \(rawValue)"
    }

    package var description: String { message }

    package static let ok = AlpmErrorCode(ALPM_ERR_OK)
    package static let system = AlpmErrorCode(ALPM_ERR_SYSTEM)
    package static let wrongArguments = AlpmErrorCode(ALPM_ERR_WRONG_ARGS)
    package static let diskSpace = AlpmErrorCode(ALPM_ERR_DISK_SPACE)
    package static let handleLock = AlpmErrorCode(ALPM_ERR_HANDLE_LOCK)
    package static let databaseOpen = AlpmErrorCode(ALPM_ERR_DB_OPEN)
    package static let databaseNotFound = AlpmErrorCode(ALPM_ERR_DB_NOT_FOUND)
    package static let databaseInvalid = AlpmErrorCode(ALPM_ERR_DB_INVALID)
    package static let databaseInvalidSignature = AlpmErrorCode(ALPM_ERR_DB_INVALID_SIG)
    package static let databaseVersion = AlpmErrorCode(ALPM_ERR_DB_VERSION)
    package static let serverBadURL = AlpmErrorCode(ALPM_ERR_SERVER_BAD_URL)
    package static let serverNone = AlpmErrorCode(ALPM_ERR_SERVER_NONE)
    package static let transactionNotNull = AlpmErrorCode(ALPM_ERR_TRANS_NOT_NULL)
    package static let duplicateTarget = AlpmErrorCode(ALPM_ERR_TRANS_DUP_TARGET)
    package static let transactionAborted = AlpmErrorCode(ALPM_ERR_TRANS_ABORT)
    package static let hookFailed = AlpmErrorCode(ALPM_ERR_TRANS_HOOK_FAILED)
    package static let packageNotFound = AlpmErrorCode(ALPM_ERR_PKG_NOT_FOUND)
    package static let packageIgnored = AlpmErrorCode(ALPM_ERR_PKG_IGNORED)
    package static let packageInvalid = AlpmErrorCode(ALPM_ERR_PKG_INVALID)
    package static let packageInvalidChecksum = AlpmErrorCode(ALPM_ERR_PKG_INVALID_CHECKSUM)
    package static let packageInvalidSignature = AlpmErrorCode(ALPM_ERR_PKG_INVALID_SIG)
    package static let packageMissingSignature = AlpmErrorCode(ALPM_ERR_PKG_MISSING_SIG)
    package static let packageOpen = AlpmErrorCode(ALPM_ERR_PKG_OPEN)
    package static let packageCannotRemove = AlpmErrorCode(ALPM_ERR_PKG_CANT_REMOVE)
    package static let packageInvalidName = AlpmErrorCode(ALPM_ERR_PKG_INVALID_NAME)
    package static let packageInvalidArchitecture = AlpmErrorCode(ALPM_ERR_PKG_INVALID_ARCH)
    package static let signatureMissing = AlpmErrorCode(ALPM_ERR_SIG_MISSING)
    package static let signatureInvalid = AlpmErrorCode(ALPM_ERR_SIG_INVALID)
    package static let unsatisfiedDependencies = AlpmErrorCode(ALPM_ERR_UNSATISFIED_DEPS)
    package static let conflictingDependencies = AlpmErrorCode(ALPM_ERR_CONFLICTING_DEPS)
    package static let fileConflicts = AlpmErrorCode(ALPM_ERR_FILE_CONFLICTS)
    package static let retrieve = AlpmErrorCode(ALPM_ERR_RETRIEVE)
    package static let invalidRegex = AlpmErrorCode(ALPM_ERR_INVALID_REGEX)
    package static let libarchive = AlpmErrorCode(ALPM_ERR_LIBARCHIVE)
    package static let libcurl = AlpmErrorCode(ALPM_ERR_LIBCURL)
    package static let gpgme = AlpmErrorCode(ALPM_ERR_GPGME)
}

/// A package that needs something no package in the transaction or the root provides.
package struct MissingDependency: Sendable, Equatable, CustomStringConvertible {
    /// The package that has the dependency.
    package var package: String
    package var dependency: AlpmDependency
    /// For removals and conflicts: the package whose removal breaks the dependency.
    package var causingPackage: String?

    package var description: String {
        if let causingPackage {
            return "removing \(causingPackage) breaks dependency '\(dependency)' required by \(package)"
        }
        return "\(package) requires \(dependency)"
    }
}

/// Two packages that cannot be installed together.
package struct PackageConflict: Sendable, Equatable, CustomStringConvertible {
    package var package: String
    package var otherPackage: String
    /// The conflicts= entry behind it.
    package var reason: AlpmDependency?

    package var description: String {
        var text = "\(package) conflicts with \(otherPackage)"
        if let reason, reason.name != otherPackage || reason.constraint != .any { text += " (\(reason))" }
        return text
    }
}

/// A file two packages (or a package and the filesystem) both claim.
package struct FileConflict: Sendable, Equatable, CustomStringConvertible {
    /// The package being installed.
    package var package: String
    /// The absolute path in the root.
    package var path: String
    /// The other package in the transaction (`.packages`), or the installed owner of a file
    /// already on disk (`.filesystem`; nil when no package owns it).
    package var otherPackage: String?
    package var inFilesystem: Bool

    package init(package: String, path: String, otherPackage: String?, inFilesystem: Bool) {
        self.package = package
        self.path = path
        self.otherPackage = otherPackage
        self.inFilesystem = inFilesystem
    }

    package var description: String {
        if !inFilesystem {
            return "\(path) exists in both \(package) and \(otherPackage ?? "?")"
        }
        if let otherPackage, !otherPackage.isEmpty {
            return "\(package): \(path) exists in filesystem (owned by \(otherPackage))"
        }
        return "\(package): \(path) exists in filesystem"
    }
}

/// A failed libalpm call: the function, what it worked on, libalpm's error code and text,
/// the problems libalpm listed (missing dependencies, conflicts, file conflicts, invalid
/// packages) and the error lines it logged while failing.
package struct AlpmError: Error, CustomStringConvertible, Sendable {
    package enum Problem: Sendable, Equatable, CustomStringConvertible {
        case missingDependency(MissingDependency)
        case conflict(PackageConflict)
        case fileConflict(FileConflict)
        /// A corrupted package, a bad checksum or a bad or missing signature: the package
        /// file (or, where libalpm names only the package, its name).
        case invalidPackage(String)
        /// A package built for an architecture the handle does not accept.
        case invalidArchitecture(String)
        /// A target name no database knows (or, for removals, that is not installed).
        case targetNotFound(String)

        package var description: String {
            switch self {
            case .missingDependency(let missing): return missing.description
            case .conflict(let conflict): return conflict.description
            case .fileConflict(let conflict): return conflict.description
            case .invalidPackage(let file): return "\(file) is invalid or corrupted"
            case .invalidArchitecture(let package): return "\(package) has an invalid architecture"
            case .targetNotFound(let target): return "target not found: \(target)"
            }
        }
    }

    package let function: String
    /// The package, file, database or directory the call was about.
    package let subject: String?
    package let code: AlpmErrorCode
    package let problems: [Problem]
    /// Error lines libalpm logged during the call ("hello: missing required signature").
    package let details: [String]

    package init(function: String, subject: String? = nil, code: AlpmErrorCode, problems: [Problem] = [],
                details: [String] = []) {
        self.function = function
        self.subject = subject
        self.code = code
        self.problems = problems
        self.details = details
    }

    /// libalpm's text for the error code.
    package var message: String {
        code == .ok ? "failed without an error code (see the details)" : code.message
    }

    package var missingDependencies: [MissingDependency] {
        problems.compactMap { if case .missingDependency(let value) = $0 { return value } else { return nil } }
    }

    package var conflicts: [PackageConflict] {
        problems.compactMap { if case .conflict(let value) = $0 { return value } else { return nil } }
    }

    package var fileConflicts: [FileConflict] {
        problems.compactMap { if case .fileConflict(let value) = $0 { return value } else { return nil } }
    }

    package var invalidPackages: [String] {
        problems.compactMap { if case .invalidPackage(let value) = $0 { return value } else { return nil } }
    }

    package var description: String {
        var text = "\(function) failed"
        if let subject { text += " on \(subject)" }
        text += ": \(message)"
        for problem in problems { text += "\n  " + problem.description }
        let extra = details.filter { line in !problems.contains { line.contains($0.description) } }
        for line in extra { text += "\n  " + line }
        return text
    }
}
