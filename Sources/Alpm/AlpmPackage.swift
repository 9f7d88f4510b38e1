import CAlpm
#if canImport(Glibc)
import Glibc
#endif

/// A dependency, conflict, provision or replacement: `name[op version][: reason]`.
package struct AlpmDependency: Sendable, Equatable, Hashable, CustomStringConvertible {
    package enum Constraint: String, Sendable {
        case any = "", equal = "=", atLeast = ">=", atMost = "<=", greater = ">", less = "<"
    }

    package var name: String
    package var constraint: Constraint
    package var version: String?
    /// The reason given with an optional dependency ("name: reason").
    package var reason: String?

    package init(name: String, constraint: Constraint = .any, version: String? = nil, reason: String? = nil) {
        self.name = name
        self.constraint = constraint
        self.version = version
        self.reason = reason
    }

    /// Parses "libfoo>=2" the way libalpm does.
    package init?(parsing text: String) {
        guard let raw = alpm_dep_from_string(text) else { return nil }
        defer { alpm_dep_free(raw) }
        self.init(raw)
    }

    init(_ raw: UnsafeMutablePointer<alpm_depend_t>) {
        name = string(raw.pointee.name) ?? ""
        version = string(raw.pointee.version)
        reason = string(raw.pointee.desc)
        switch raw.pointee.mod {
        case ALPM_DEP_MOD_EQ: constraint = .equal
        case ALPM_DEP_MOD_GE: constraint = .atLeast
        case ALPM_DEP_MOD_LE: constraint = .atMost
        case ALPM_DEP_MOD_GT: constraint = .greater
        case ALPM_DEP_MOD_LT: constraint = .less
        default: constraint = .any
        }
    }

    /// "libfoo>=2" (with ": reason" for optional dependencies).
    package var description: String {
        var text = name
        if constraint != .any, let version { text += constraint.rawValue + version }
        if let reason, !reason.isEmpty { text += ": " + reason }
        return text
    }

    static func list(_ list: UnsafeMutablePointer<alpm_list_t>?) -> [AlpmDependency] {
        AlpmList.pointers(list).map { AlpmDependency($0.assumingMemoryBound(to: alpm_depend_t.self)) }
    }
}

/// Why a package is installed.
package enum InstallReason: Sendable, Equatable {
    case explicit, dependency
}

/// A file a package owns. Directories end in "/".
package struct AlpmFile: Sendable, Equatable {
    /// Relative to the root ("usr/bin/hello").
    package var path: String
    package var size: Int64
    package var mode: UInt32
}

/// Where a package record came from.
package enum PackageOrigin: Sendable, Equatable {
    case file, localDatabase, syncDatabase
}

/// A snapshot of what libalpm knows about one package (installed, in a sync database, or a
/// package file), copied out so it stays valid after the handle changes.
package struct AlpmPackage: Sendable, Equatable {
    package var name: String
    package var base: String?
    /// `[epoch:]pkgver-pkgrel`.
    package var version: String
    /// pkgdesc.
    package var description: String
    package var url: String?
    package var architecture: String?
    package var packager: String?
    package var origin: PackageOrigin
    /// The database it belongs to ("local" for installed packages).
    package var repository: String?
    /// The package file name (sync and file packages).
    package var fileName: String?
    /// The SHA-256 of the package file, as the sync database lists it (sync packages).
    package var sha256: String?
    package var buildDate: Int64
    package var installDate: Int64?
    /// Compressed size (sync and file packages).
    package var downloadSize: Int64
    package var installedSize: Int64
    /// Installed packages only.
    package var reason: InstallReason?
    package var licenses: [String]
    package var groups: [String]
    package var depends: [AlpmDependency]
    package var optionalDepends: [AlpmDependency]
    package var provides: [AlpmDependency]
    package var conflicts: [AlpmDependency]
    package var replaces: [AlpmDependency]
    package var backup: [String]
    package var hasInstallScript: Bool
    /// Packages that depend on this one (filled in for detailed queries).
    package var requiredBy: [String]?
    /// Packages that optionally depend on this one (filled in for detailed queries).
    package var optionalFor: [String]?
    /// The files it owns (filled in for detailed queries).
    package var files: [AlpmFile]?

    /// "name version", as `pacman -Q` prints it.
    package var nameAndVersion: String { "\(name) \(version)" }

    /// Copies a package's fields; `details` adds required-by, optional-for and files.
    init(_ pkg: OpaquePointer, details: Bool) {
        name = string(alpm_pkg_get_name(pkg)) ?? ""
        base = string(alpm_pkg_get_base(pkg))
        version = string(alpm_pkg_get_version(pkg)) ?? ""
        description = string(alpm_pkg_get_desc(pkg)) ?? ""
        url = string(alpm_pkg_get_url(pkg))
        architecture = string(alpm_pkg_get_arch(pkg))
        packager = string(alpm_pkg_get_packager(pkg))
        switch alpm_pkg_get_origin(pkg) {
        case ALPM_PKG_FROM_FILE: origin = .file
        case ALPM_PKG_FROM_LOCALDB: origin = .localDatabase
        default: origin = .syncDatabase
        }
        repository = alpm_pkg_get_db(pkg).flatMap { string(alpm_db_get_name($0)) }
        fileName = origin == .localDatabase ? nil : string(alpm_pkg_get_filename(pkg))
        sha256 = origin == .syncDatabase ? string(alpm_pkg_get_sha256sum(pkg)) : nil
        buildDate = alpm_pkg_get_builddate(pkg)
        let installed = alpm_pkg_get_installdate(pkg)
        installDate = installed > 0 ? installed : nil
        downloadSize = Int64(alpm_pkg_get_size(pkg))
        installedSize = Int64(alpm_pkg_get_isize(pkg))
        reason = origin == .localDatabase ? (alpm_pkg_get_reason(pkg) == ALPM_PKG_REASON_DEPEND ? .dependency : .explicit) : nil
        licenses = AlpmList.strings(alpm_pkg_get_licenses(pkg))
        groups = AlpmList.strings(alpm_pkg_get_groups(pkg))
        depends = AlpmDependency.list(alpm_pkg_get_depends(pkg))
        optionalDepends = AlpmDependency.list(alpm_pkg_get_optdepends(pkg))
        provides = AlpmDependency.list(alpm_pkg_get_provides(pkg))
        conflicts = AlpmDependency.list(alpm_pkg_get_conflicts(pkg))
        replaces = AlpmDependency.list(alpm_pkg_get_replaces(pkg))
        backup = AlpmList.pointers(alpm_pkg_get_backup(pkg)).compactMap {
            string($0.assumingMemoryBound(to: alpm_backup_t.self).pointee.name)
        }
        hasInstallScript = alpm_pkg_has_scriptlet(pkg) != 0
        if details {
            let required = alpm_pkg_compute_requiredby(pkg)
            requiredBy = AlpmList.strings(required)
            AlpmList.freeStrings(required)
            let optional = alpm_pkg_compute_optionalfor(pkg)
            optionalFor = AlpmList.strings(optional)
            AlpmList.freeStrings(optional)
            var files: [AlpmFile] = []
            if let list = alpm_pkg_get_files(pkg), let entries = list.pointee.files {
                for index in 0..<list.pointee.count {
                    let file = entries[index]
                    files.append(AlpmFile(path: string(file.name) ?? "", size: Int64(file.size), mode: UInt32(file.mode)))
                }
            }
            self.files = files
        }
    }
}
