import Foundation
import Synchronization
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Builds PKGBUILD directories with makepkg as an unprivileged build user.
///
/// makepkg refuses to run as root, so when we are root the build runs through
/// `runuser -u USER -- env -i ... makepkg` in a private build area the user owns (the
/// PKGBUILD directory is copied there; SRCDEST, BUILDDIR and PKGDEST live there too), and
/// the finished packages are moved into the destination by us. Not as root, makepkg runs
/// as the calling user in the same kind of build area.
///
/// Dependencies are not checked (`--nodeps`): on a build host the packages a PKGBUILD
/// depends on live in no pacman database makepkg could consult (Debian has none, and the
/// target's database is only filled later by libalpm). libalpm resolves `depends=` when the
/// packages are installed; makepkg only has to record them in .PKGINFO, which it still does.
/// Build tools (`makedepends`) come from the host.
package struct Makepkg: Sendable {
    /// The system user builds run as when we are root; created when missing.
    package var buildUser: String
    /// Parallel jobs for `make` (MAKEFLAGS=-jN).
    package var jobs: Int
    /// Where each build's log is kept (`NAME.makepkg.log`); nil keeps it in the destination.
    package var logDirectory: String?
    /// The directory that holds the temporary build areas (default: $TMPDIR or /tmp).
    package var buildRoot: String?
    /// PACKAGER recorded in .PKGINFO.
    package var packager: String
    /// SOURCE_DATE_EPOCH for reproducible timestamps; nil lets makepkg use the PKGBUILD's mtime.
    package var sourceDateEpoch: Int64?
    /// Keep the build area after a failure (its path is in the error) for inspection.
    package var keepFailedBuilds: Bool

    package init(buildUser: String = "rast-build", jobs: Int = ProcessInfo.processInfo.activeProcessorCount,
                logDirectory: String? = nil, buildRoot: String? = nil,
                packager: String = "rastOS build <rast-build@localhost>", sourceDateEpoch: Int64? = nil,
                keepFailedBuilds: Bool = false) {
        self.buildUser = buildUser
        self.jobs = max(1, jobs)
        self.logDirectory = logDirectory
        self.buildRoot = buildRoot
        self.packager = packager
        self.sourceDateEpoch = sourceDateEpoch
        self.keepFailedBuilds = keepFailedBuilds
    }

    /// What a successful build produced.
    package struct Result: Sendable {
        /// The package files, now in the destination directory, sorted.
        package let packages: [String]
        /// makepkg's complete output.
        package let logFile: String
    }

    /// Builds the PKGBUILD in `pkgbuildDirectory` and moves the packages into `destination`.
    /// `output` receives makepkg's lines as they come (they also go to the log file).
    package func build(_ pkgbuildDirectory: String, into destination: String,
                      output: ((String) -> Void)? = nil) throws -> Result {
        let source = (pkgbuildDirectory as NSString).standardizingPath
        guard Files.exists(source + "/PKGBUILD") else {
            throw MakepkgError.missingPKGBUILD(directory: source)
        }
        let name = (source as NSString).lastPathComponent
        try Files.createDirectory(destination)
        let logDirectory = self.logDirectory ?? destination
        try Files.createDirectory(logDirectory)
        let logFile = logDirectory + "/" + name + ".makepkg.log"

        let user: BuildUser? = Privileges.isRoot ? try BuildUser.ensure(buildUser) : nil
        let area = try TemporaryDirectory(prefix: "rast-makepkg-\(name)", in: buildRoot)
        var keepArea = false
        defer { if !keepArea { try? area.remove() } }
        let startDirectory = area.appending("pkgbuild")
        let packageDestination = area.appending("packages")
        for directory in ["packages", "sources", "build", "home"] {
            try Files.createDirectory(area.appending(directory))
        }
        // The trailing "/." copies the directory's contents, dotfiles included.
        try Command("cp", ["-a", "--no-preserve=ownership", source + "/.", startDirectory]).run()
        if let user {
            try Command("chown", ["-R", "\(user.uid):\(user.gid)", area.path]).run()
        }

        var environment = [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=" + area.appending("home"),
            "LANG=C.UTF-8",
            "PKGEXT=.pkg.tar.zst",
            "PKGDEST=" + packageDestination,
            "SRCDEST=" + area.appending("sources"),
            "BUILDDIR=" + area.appending("build"),
            "MAKEFLAGS=-j\(jobs)",
            "PACKAGER=" + packager,
        ]
        if let sourceDateEpoch { environment.append("SOURCE_DATE_EPOCH=\(sourceDateEpoch)") }
        let makepkg = ["makepkg", "--nodeps", "--noconfirm", "--cleanbuild", "--nocolor", "--noprogressbar"]
        let invocation = ["env", "-i"] + environment + makepkg
        let command: Command
        if let user {
            command = Command("runuser", ["-u", user.name, "--"] + invocation, workingDirectory: startDirectory)
        } else {
            command = Command(invocation[0], Array(invocation.dropFirst()), workingDirectory: startDirectory)
        }

        let log = try LogFile(path: logFile)
        log.write("# \(command)\n")
        var tail: [String] = []
        let result = try command.run(output: .lines { line in
            log.write(line + "\n")
            tail.append(line)
            if tail.count > 40 { tail.removeFirst(tail.count - 40) }
            output?(line)
        }, check: false)
        log.write("# exit status \(result.status)\n")
        log.close()

        guard result.status == 0 else {
            keepArea = keepFailedBuilds
            throw MakepkgError.failed(pkgbuildDirectory: source, status: result.status, logFile: logFile,
                                      tail: tail.joined(separator: "\n"),
                                      buildArea: keepFailedBuilds ? area.path : nil)
        }
        let built = try FileManager.default.contentsOfDirectory(atPath: packageDestination)
            .filter { $0.contains(".pkg.tar") && !$0.hasSuffix(".sig") }
            .sorted()
        guard !built.isEmpty else {
            throw MakepkgError.noPackages(pkgbuildDirectory: source, logFile: logFile)
        }
        var packages: [String] = []
        for file in built {
            let target = destination + "/" + file
            try moveIntoPlace(packageDestination + "/" + file, to: target)
            packages.append(target)
        }
        return Result(packages: packages, logFile: logFile)
    }

    /// Moves a finished package into the destination so it appears complete or not at all.
    private func moveIntoPlace(_ source: String, to target: String) throws {
        if rename(source, target) == 0 {
            if Privileges.isRoot { chown(target, 0, 0) }
            return
        }
        guard errno == EXDEV else { throw SystemError("rename", path: target) }
        try copyFileAtomically(source, to: target)
    }
}

/// A makepkg build that did not produce packages.
package enum MakepkgError: CausedError, CustomStringConvertible, Sendable {
    case missingPKGBUILD(directory: String)
    case failed(pkgbuildDirectory: String, status: Int32, logFile: String, tail: String, buildArea: String?)
    case noPackages(pkgbuildDirectory: String, logFile: String)
    /// `cause` is the error behind the reason, when there is one.
    case buildUser(name: String, reason: String, cause: (any Error)? = nil)

    package var description: String {
        switch self {
        case .missingPKGBUILD(let directory):
            return "\(directory) has no PKGBUILD"
        case .failed(let directory, let status, let logFile, let tail, let buildArea):
            let kept = buildArea.map { "; the build area is kept at \($0)" } ?? ""
            return "makepkg failed (status \(status)) building \(directory); full log: \(logFile)\(kept)\n\(tail)"
        case .noPackages(let directory, let logFile):
            return "makepkg finished building \(directory) but left no package file; see \(logFile)"
        case .buildUser(let name, let reason, _):
            return "cannot use the build user \(name): \(reason)"
        }
    }

    package var cause: (any Error)? {
        if case .buildUser(_, _, let cause) = self { return cause }
        return nil
    }
}

/// The unprivileged account makepkg runs as.
struct BuildUser: Sendable {
    let name: String
    let uid: uid_t
    let gid: gid_t

    /// Serialises creation within this process; `useradd` itself locks /etc/passwd.
    private static let creation = Mutex(())

    /// Looks the user up, creating it as a system user (`useradd --system --create-home`)
    /// when it does not exist.
    static func ensure(_ name: String) throws -> BuildUser {
        guard !name.isEmpty, name != "root", name.allSatisfy({ $0.isLetter || $0.isNumber || "-_".contains($0) }) else {
            throw MakepkgError.buildUser(name: name, reason: "not a valid unprivileged user name")
        }
        return try creation.withLock { _ in
            if let existing = lookup(name) { return try checked(existing) }
            do {
                try Command("useradd", ["--system", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin",
                                        "--comment", "rastOS package builds", name]).run()
            } catch {
                // Another process may have created it in the meantime.
                if let existing = lookup(name) { return try checked(existing) }
                throw MakepkgError.buildUser(name: name, reason: "useradd failed: \(error)", cause: error)
            }
            guard let created = lookup(name) else {
                throw MakepkgError.buildUser(name: name, reason: "useradd succeeded but the user cannot be looked up")
            }
            RastLog.logger.notice("created the build user \(name) (uid \(created.uid))")
            return try checked(created)
        }
    }

    private static func checked(_ user: BuildUser) throws -> BuildUser {
        guard user.uid != 0 else {
            throw MakepkgError.buildUser(name: user.name, reason: "it has uid 0, and makepkg refuses to run as root")
        }
        return user
    }

    private static func lookup(_ name: String) -> BuildUser? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else { return nil }
        return BuildUser(name: name, uid: entry.pw_uid, gid: entry.pw_gid)
    }
}
