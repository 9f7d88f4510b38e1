import Foundation
import Packages
import SnapshotTree
import SystemSupport
import TestSupport
import Testing

/// A GnuPG signing key in its own GNUPGHOME, and a repository signed with it the way Arch
/// signs its repositories: a detached .sig per package, `repo-add --sign` for the database.
final class RepositorySigner {
    let home: TemporaryDirectory
    let fingerprint: String
    let name: String

    init(name: String) throws {
        try Require.programs("gpg", "gpgconf", "repo-add")
        self.name = name
        let home = try TemporaryDirectory(prefix: "rast-gnupg")
        self.home = home
        try Self.gpg(home.path, ["--passphrase", "", "--quick-gen-key", "\(name) <\(name.replacingOccurrences(of: " ", with: "-"))@rastos.invalid>", "ed25519", "sign", "never"])
        let listing = try Self.gpg(home.path, ["--list-keys", "--with-colons"])
        guard let line = listing.split(separator: "\n").first(where: { $0.hasPrefix("fpr:") }),
              let fingerprint = line.split(separator: ":", omittingEmptySubsequences: false).dropFirst(9).first else {
            throw UserError("gpg made no key: \(listing)")
        }
        self.fingerprint = String(fingerprint)
    }

    @discardableResult
    static func gpg(_ home: String, _ arguments: [String]) throws -> String {
        try Command("gpg", ["--homedir", home, "--batch", "--no-tty"] + arguments, environment: ["LANG": "C"]).output()
    }

    @discardableResult
    func gpg(_ arguments: [String]) throws -> String { try Self.gpg(home.path, arguments) }

    /// The public key, for a snapshot's /usr/share/pacman/keyrings.
    func exportPublicKey(to path: String) throws {
        try gpg(["--yes", "--output", path, "--export", fingerprint])
    }

    /// Copies the package files into the repository, signs each, and adds them with
    /// `repo-add --sign` (replacing older versions).
    func publish(_ files: [String], in repository: LocalRepository) throws {
        var copies: [String] = []
        for file in files {
            let copy = repository.directory + "/" + (file as NSString).lastPathComponent
            try Command("cp", [file, copy]).run()
            try gpg(["--yes", "--local-user", fingerprint, "--detach-sign", "--no-armor", "--output", copy + ".sig", copy])
            copies.append(copy)
        }
        try Command("repo-add", ["--quiet", "--nocolor", "--sign", "--key", fingerprint, "--remove", repository.databasePath] + copies,
                    environment: ["GNUPGHOME": home.path, "LANG": "C"], workingDirectory: repository.directory).run()
    }

    func close() {
        _ = try? Command("gpgconf", ["--homedir", home.path, "--kill", "all"]).run(check: false)
        try? home.remove()
    }

    deinit { close() }
}

@Suite(.serialized) struct SignatureTests {
    @Test func signedRepositoryInstallsOnlyWithTrustedKeysAndATamperedPackageIsRefused() throws {
        let signer = try RepositorySigner(name: "rast test repository")
        defer { signer.close() }
        let tree = try PackageTree(sigLevel: "Required", publish: { repository, files in
            try signer.publish(files, in: repository)
        }, prepareRoot: { root in
            // The distribution's keyring package, as archlinux-keyring ships it.
            let keyrings = root + "/usr/share/pacman/keyrings"
            try Files.createDirectory(keyrings)
            try signer.exportPublicKey(to: keyrings + "/rasttest.gpg")
            try Files.write(keyrings + "/rasttest-trusted", string: "\(signer.fingerprint):4:\n")
            try Files.write(keyrings + "/rasttest-revoked", string: "")
        })
        defer { tree.close() }
        #expect(Files.exists(tree.repository.databasePath + ".sig"), "repo-add --sign signed the database")
        #expect(Files.exists(tree.repository.directory + "/" + TestPackages.hello.packageFileName + ".sig"))

        // Without a keyring nothing can be verified.
        let untrusted = try RastProgram.run(["--root", tree.top, "-Sy", "hello"])
        #expect(untrusted.status == 1, "\(untrusted.everything)")
        #expect(untrusted.standardError.contains("no snapshot was made"), "\(untrusted.standardError)")
        print("signatures: without a keyring: \(untrusted.standardError)")

        // rast pkg fix-keys: pacman-key --init and --populate from the snapshot's keyrings.
        let fixed = try RastProgram.run(["pkg", "fix-keys", "1", "--root", tree.top])
        #expect(fixed.status == 0, "\(fixed.everything)")
        #expect(fixed.standardOutput.contains("new keyring with the keys of rasttest"), "\(fixed.standardOutput)")
        let keyring = tree.layout.etc(1) + "/pacman.d/gnupg"
        let keys = try Command("gpg", ["--homedir", keyring, "--batch", "--with-colons", "--list-keys"]).run(check: false).standardOutput
        #expect(keys.contains(signer.fingerprint), "the repository key is in the keyring")
        #expect(keys.contains("Pacman Keyring Master Key"), "a local master key certifies it")
        _ = try? Command("gpgconf", ["--homedir", keyring, "--kill", "all"]).run(check: false)

        let installed = try RastProgram.run(["--root", tree.top, "-Sy", "hello"])
        #expect(installed.status == 0, "\(installed.everything)")
        #expect(try tree.installed(2) == ["base 1.0-1", "hello 1.0-1", "libhello 1.0-1"])

        // The maintainer publishes hello 1.1, signed; a mirror swaps the package for its own.
        try signer.publish([tree.built.file(TestPackages.hello11)], in: tree.repository)
        let evil = PKGBUILDSpec(name: "hello", version: "1.1", architecture: "x86_64", description: "says hello",
                                depends: ["libhello>=1.0"], files: ["usr/bin/hello": "#!/bin/sh\necho 'all your base'\n"])
        let evilBuild = try Makepkg().build(try evil.write(in: tree.scratch.appending("evil")), into: tree.scratch.appending("evil-pool"))
        try Command("cp", [evilBuild.packages[0], tree.repository.directory + "/" + TestPackages.hello11.packageFileName]).run()
        let slots = try tree.state().slots
        let tampered = try RastProgram.run(["--root", tree.top, "-Syu"])
        #expect(tampered.status == 1, "\(tampered.everything)")
        #expect(tampered.standardError.contains(TestPackages.hello11.packageFileName + " is invalid or corrupted"), "\(tampered.standardError)")
        #expect(tampered.standardError.contains("signature") && tampered.standardError.contains("is invalid"), "\(tampered.standardError)")
        #expect(tampered.standardError.contains("no snapshot was made; snapshot 2 and the deployment are unchanged"))
        print("signatures: tampered package: \(tampered.standardError)")
        #expect(try tree.state().snapshots.map(\.id) == [0, 1, 2])
        #expect(try tree.state().slots == slots)
        #expect(try tree.installed(2).contains("hello 1.0-1"))
        #expect(try tree.workingCopies().isEmpty)
        #expect(!Files.exists(tree.layout.variable + "/cache/pacman/pkg/" + TestPackages.hello11.packageFileName),
                "the corrupted download does not stay in the cache")

        // A database signed by a key nobody trusts is refused before any package is looked at.
        let intruder = try RepositorySigner(name: "intruder")
        defer { intruder.close() }
        try intruder.publish([evilBuild.packages[0]], in: tree.repository)
        let forged = try RastProgram.run(["--root", tree.top, "-Syu"])
        #expect(forged.status == 1, "\(forged.everything)")
        #expect(forged.standardError.contains("rasttest"), "\(forged.standardError)")
        print("signatures: database signed by an unknown key: \(forged.standardError)")
        #expect(try tree.state().snapshots.map(\.id) == [0, 1, 2])

        // The genuine package goes through.
        try signer.publish([tree.built.file(TestPackages.hello11)], in: tree.repository)
        let upgraded = try RastProgram.run(["--root", tree.top, "-Syu"])
        #expect(upgraded.status == 0, "\(upgraded.everything)")
        #expect(try tree.installed(3).contains("hello 1.1-1"))
        #expect(try Files.readString(tree.layout.root(3) + "/usr/bin/hello").contains("hello 1.1"))
    }
}
