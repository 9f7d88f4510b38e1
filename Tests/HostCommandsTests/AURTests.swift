import Foundation
import Packages
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// AUR package bases as the AUR serves them: bare git repositories holding a PKGBUILD and its
/// .SRCINFO, served over git's smart HTTP protocol on 127.0.0.1.
final class FakeAUR {
    let root: String
    let server: GitHTTPServer
    private let work: String

    init(in directory: String) throws {
        root = directory + "/aur"
        work = directory + "/aur-work"
        try Files.createDirectory(root)
        server = try GitHTTPServer(projectRoot: root)
    }

    var baseURL: String { server.baseURL }

    /// Commits `spec` (PKGBUILD and .SRCINFO) to the package base's repository, creating it on first use.
    func publish(_ spec: PKGBUILDSpec) throws {
        let checkout = work + "/" + spec.name
        let bare = root + "/" + spec.name + ".git"
        let repository: GitRepositoryFixture
        if Files.exists(checkout) {
            repository = GitRepositoryFixture(existing: checkout)
        } else {
            repository = try GitRepositoryFixture(at: checkout)
        }
        if let installScript = spec.installScript {
            try Files.write(checkout + "/" + spec.name + ".install", string: installScript)
            try repository.git("add", spec.name + ".install")
        }
        try Files.write(checkout + "/.SRCINFO", string: Self.sourceInfo(spec))
        try repository.git("add", ".SRCINFO")
        try repository.commit("PKGBUILD", spec.pkgbuild, message: "\(spec.name) \(spec.version)-\(spec.release)")
        if Files.exists(bare) { try Files.removeTree(bare) }
        try repository.git("clone", "-q", "--bare", checkout, bare)
    }

    /// What `makepkg --printsrcinfo` writes for a test PKGBUILD.
    static func sourceInfo(_ spec: PKGBUILDSpec) -> String {
        var lines = ["pkgbase = \(spec.name)", "\tpkgdesc = \(spec.description)", "\tpkgver = \(spec.version)",
                     "\tpkgrel = \(spec.release)", "\turl = https://rastos.invalid/\(spec.name)", "\tarch = \(spec.architecture)",
                     "\tlicense = MIT"]
        lines += spec.depends.map { "\tdepends = \($0)" }
        lines += ["", "pkgname = \(spec.name)", ""]
        return lines.joined(separator: "\n")
    }

    func close() { server.stop() }
}

@Suite(.serialized) struct AURTests {
    static let aurlib = PKGBUILDSpec(name: "aurlib", architecture: "x86_64", description: "a library only the AUR has",
                                     files: ["usr/lib/aurlib.txt": "aurlib 1.0\n"])
    static func aurhello(_ version: String) -> PKGBUILDSpec {
        PKGBUILDSpec(name: "aurhello", version: version, architecture: "x86_64", description: "hello from the AUR",
                     depends: ["aurlib", "libhello>=1.0"], files: ["usr/bin/aurhello": "#!/bin/sh\necho 'aurhello \(version)'\n"])
    }

    @Test func packagesNoRepositoryHasAreBuiltFromTheAURAndInstalledWithLibalpm() throws {
        let tree = try PackageTree()
        defer { tree.close() }
        let aur = try FakeAUR(in: tree.scratch.path)
        defer { aur.close() }
        try aur.publish(Self.aurlib)
        try aur.publish(Self.aurhello("1.0"))

        // Without aur::True the AUR is not asked.
        do {
            try tree.commands().install(1, ["aurhello"])
            Issue.record("aurhello is in no repository and the AUR is off")
        } catch {
            #expect("\(error)".contains("no repository has aurhello"), "\(error)")
            #expect("\(error)".contains("aur::True"), "\(error)")
        }
        #expect(aur.server.requests.isEmpty)

        // Turn it on in snapshot 1, with the AUR's address in the same file.
        let child = try tree.withStore { store in
            try store.run(in: 1, ["/bin/sh", "-c", "printf 'aur::True\\naur_url::\(aur.baseURL)\\n' > /etc/rast.conf"], output: .capture)
            return try store.copy(1, parent: 1, description: "child")
        }

        try tree.commands().install(1, ["aurhello"])
        #expect(try tree.installed(1) == ["aurhello 1.0-1", "aurlib 1.0-1", "base 1.0-1", "libhello 1.0-1"])
        #expect(try tree.info(1, "aurhello").contains("Explicitly installed"))
        #expect(try tree.info(1, "aurlib").contains("Installed as a dependency"), "AUR dependencies are dependencies")
        #expect(try tree.info(1, "libhello").contains("Installed as a dependency"))
        #expect(try Files.readString(tree.layout.root(1) + "/usr/bin/aurhello").contains("aurhello 1.0"))
        #expect(Set(aur.server.requests.map(\.path)).isSuperset(of: ["/aurhello.git/info/refs", "/aurlib.git/info/refs"]))
        let cache = tree.layout.variable + "/cache/pacman/pkg/"
        #expect(Files.exists(cache + Self.aurhello("1.0").packageFileName), "built packages go to the shared cache")
        #expect(Files.exists(tree.layout.variable + "/log/rast/aur/aurhello.makepkg.log"))

        // Not in the AUR either.
        do {
            try tree.commands().install(1, ["nowhere"])
            Issue.record("nowhere exists nowhere")
        } catch {
            #expect("\(error)".contains("nowhere is in no repository and not in the AUR"), "\(error)")
        }

        // The child gets the AUR packages from the cache: no repository has them.
        try tree.commands().sync(1, upgrade: false)
        #expect(try tree.installed(child) == ["aurhello 1.0-1", "aurlib 1.0-1", "base 1.0-1", "libhello 1.0-1"])
        #expect(try tree.info(child, "aurlib").contains("Installed as a dependency"))

        // An upgrade rebuilds what the AUR has newer (RAST_AUR_URL works as well as aur_url::).
        try aur.publish(Self.aurhello("1.1"))
        let commands = try tree.commands()
        commands.environment = ["RAST_AUR_URL": aur.baseURL]
        try commands.upgrade(1)
        #expect(try tree.installed(1).contains("aurhello 1.1-1"))
        #expect(try Files.readString(tree.layout.root(1) + "/usr/bin/aurhello").contains("aurhello 1.1"))
        #expect(try tree.installed(child).contains("aurhello 1.0-1"))
    }

    @Test func sourceInfoIsParsedWithArchitectureSpecificAndPerPackageFields() throws {
        let text = """
            pkgbase = split
            \tpkgver = 2.0
            \tpkgrel = 3
            \tepoch = 1
            \tarch = x86_64
            \tmakedepends = git
            \tdepends = glibc
            \tdepends_x86_64 = lib32-nothing
            \tdepends_aarch64 = armonly

            pkgname = split-a

            pkgname = split-b
            \tdepends = other>=1
            """
        let info = try SourceInfo.parse(text, file: ".SRCINFO")
        #expect(info.base == "split")
        #expect(info.version == "1:2.0-3")
        #expect(info.makeDepends == ["git"])
        #expect(info.package(named: "split-a")?.depends == ["glibc", "lib32-nothing"])
        #expect(info.package(named: "split-b")?.depends == ["other>=1"])
        #expect {
            try SourceInfo.parse("pkgbase = x\n\tpkgver 1\n", file: "broken/.SRCINFO")
        } throws: { "\($0)" == "broken/.SRCINFO:2: malformed .SRCINFO: expected 'key = value', found 'pkgver 1'" }
        #expect {
            try SourceInfo.parse("pkgbase = x\n\tpkgrel = 1\npkgname = x\n", file: "s")
        } throws: { "\($0)".contains("no pkgver") }
    }
}
