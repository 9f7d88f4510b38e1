import Foundation
import Recipe
import Testing
import TOML

/// One broken recipe per kind of error: the exact position, key path and message.
@Suite struct BrokenFixtureTests {
    struct Expectation: Sendable, CustomTestStringConvertible {
        let fixture: String
        let line: Int
        let column: Int
        let keyPath: String
        let message: String
        var related: (line: Int, column: Int)?
        var testDescription: String { fixture }
    }

    static let expectations: [Expectation] = [
        Expectation(fixture: "not-toml", line: 2, column: 5, keyPath: "name",
                    message: "expected '=' after key 'name', found ':'"),
        Expectation(fixture: "unknown-key", line: 7, column: 1, keyPath: "system.hostnme",
                    message: "unknown key 'hostnme'; did you mean 'hostname'?"),
        Expectation(fixture: "wrong-type", line: 8, column: 7, keyPath: "users[0].uid",
                    message: "expected an integer, found a string"),
        Expectation(fixture: "bad-size", line: 7, column: 8, keyPath: "disk.size",
                    message: "'2X' is not a size: use bytes or a number with K, M, G or T"),
        Expectation(fixture: "duplicate-user", line: 14, column: 8, keyPath: "users[2].name",
                    message: "duplicate user name 'admin' (first defined at 7:8, users[0].name)", related: (7, 8)),
        Expectation(fixture: "duplicate-snapshot-id", line: 10, column: 10, keyPath: "snapshots.tree[2].id",
                    message: "duplicate snapshot id 1 (first defined at 8:10, snapshots.tree[0].id)", related: (8, 10)),
        Expectation(fixture: "duplicate-repository", line: 11, column: 8, keyPath: "repositories[1].name",
                    message: "duplicate repository name 'core' (first defined at 7:8, repositories[0].name)", related: (7, 8)),
        Expectation(fixture: "missing-parent", line: 9, column: 22, keyPath: "snapshots.tree[1].parent",
                    message: "parent snapshot 5 does not exist (defined are 0 and 1, 2)"),
        Expectation(fixture: "snapshot-cycle", line: 9, column: 22, keyPath: "snapshots.tree[1].parent",
                    message: "snapshots form a cycle (2 → 3 → 2); every chain of parents must reach snapshot 0"),
        Expectation(fixture: "disk-too-small", line: 7, column: 8, keyPath: "disk.size",
                    message: "a disk of 256 MiB is too small for its partitions: it needs 1 MiB (GPT and alignment) + 1 MiB (BIOS boot) + 64 MiB (ESP) + 256 MiB (smallest root) + 1 MiB (backup GPT) = 323 MiB"),
        Expectation(fixture: "missing-required-key", line: 3, column: 1, keyPath: "packages.install",
                    message: "missing required key 'install' in [packages]: the packages to install into snapshot 0"),
        Expectation(fixture: "https-without-sha256", line: 3, column: 1, keyPath: "kernel.sha256",
                    message: "missing required key 'sha256' in [kernel]: an https:// source is checked against its SHA-256 (64 hexadecimal digits)"),
        Expectation(fixture: "bad-ssh-key", line: 10, column: 3, keyPath: "users[0].ssh_keys[1]",
                    message: "the body of the ssh-ed25519 key is not valid base64"),
    ]

    @Test(arguments: expectations)
    func reportsTheExactProblem(_ expected: Expectation) throws {
        let path = "\(fixtures)/\(expected.fixture).toml"
        do {
            let recipe = try Recipe.load(path: path)
            Issue.record("\(expected.fixture) loaded as \(recipe.name)")
        } catch let errors as RecipeErrors {
            #expect(errors.errors.count == 1, "\(errors)")
            let error = try #require(errors.errors.first)
            #expect(error.position == TOMLPosition(file: path, line: expected.line, column: expected.column))
            #expect(error.keyPath == expected.keyPath)
            #expect(error.message == expected.message)
            #expect(error.description == "\(path):\(expected.line):\(expected.column): error: \(expected.keyPath): \(expected.message)")
            if let related = expected.related {
                #expect(error.relatedPosition == TOMLPosition(file: path, line: related.line, column: related.column))
            } else {
                #expect(error.relatedPosition == nil)
            }
        }
    }

    @Test func everyFixtureHasAnExpectationAndDistinctMessages() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtures)
            .filter { $0.hasSuffix(".toml") && $0 != "many-errors.toml" }
            .map { String($0.dropLast(5)) }
        #expect(Set(files) == Set(BrokenFixtureTests.expectations.map(\.fixture)))
        let messages = BrokenFixtureTests.expectations.map(\.message)
        #expect(Set(messages).count == messages.count)
    }

    @Test func allProblemsAreReportedSortedByPosition() throws {
        let path = "\(fixtures)/many-errors.toml"
        do {
            _ = try Recipe.load(path: path)
            Issue.record("many-errors.toml loaded")
        } catch let errors as RecipeErrors {
            let found = errors.errors.map { "\($0.position.line):\($0.position.column) \($0.keyPath): \($0.message)" }
            #expect(found == [
                "1:8 name: 'Many Errors' is not a valid recipe name: use up to 63 lower-case letters, digits and hyphens, starting with a letter or digit",
                "4:23 packages.install[1]: duplicate package 'busybox' (first defined at 4:12, packages.install[0])",
                "7:12 system.hostname: '-rastos' is not a valid host name: use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123)",
                "8:12 system.timezone: expected a string, found an integer",
                "12:12 disk.esp_size: an ESP of 16 MiB is too small: FAT32 needs at least 32 MiB",
                "13:14 disk.bootloader: 'grub2' is not a boot loader: use \"grub\" or \"limine\"",
                "17:10 boot_test.memory: 'lots' is not a size: use bytes or a number with K, M, G or T",
            ])
            #expect(errors.description.split(separator: "\n").count == 7)
        }
    }
}

/// The example recipes in recipes/ are valid; the files they name are checked where they exist.
@Suite struct ExampleRecipeTests {
    static let examples: [String] = {
        let directory = packageRoot + "/recipes"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".toml") }.sorted().map { directory + "/" + $0 }
    }()

    @Test func theThreeExamplesExist() {
        let names = ExampleRecipeTests.examples.map { ($0 as NSString).lastPathComponent }
        #expect(Set(["minimal.toml", "container.toml", "arch.toml"]).isSubset(of: Set(names)))
    }

    @Test(arguments: examples)
    func exampleRecipeIsValid(_ path: String) throws {
        let recipe = try Recipe.load(path: path)
        #expect(recipe.name == ((path as NSString).lastPathComponent as NSString).deletingPathExtension)
        #expect(recipe.baseDirectory == packageRoot + "/recipes")
        // The environment check may only complain about things that really are missing.
        for problem in recipe.environmentProblems(profilesDirectory: packageRoot + "/kernel-profiles") {
            switch problem.keyPath {
            case let key where key.hasPrefix("packages.local["):
                let index = Int(key.dropFirst("packages.local[".count).dropLast()) ?? -1
                let directory = recipe.packages.local[index]
                #expect(!FileManager.default.fileExists(atPath: directory + "/PKGBUILD"), "\(problem)")
            case "kernel.source":
                if case .local(let source) = recipe.kernel?.source {
                    #expect(!FileManager.default.fileExists(atPath: source), "\(problem)")
                }
            case "kernel.profile", "kernel":
                let profile = recipe.kernel?.profile ?? "?"
                #expect(!FileManager.default.fileExists(atPath: "\(packageRoot)/kernel-profiles/\(profile).config")
                        || !FileManager.default.fileExists(atPath: "\(packageRoot)/kernel-profiles/base.config"), "\(problem)")
            default:
                Issue.record("unexpected environment problem: \(problem)")
            }
        }
    }

    @Test func minimalIsTheLocalDemo() throws {
        let recipe = try Recipe.load(path: packageRoot + "/recipes/minimal.toml", workingDirectory: "/tmp/build")
        let kernel = try #require(recipe.kernel)
        #expect(kernel.source == .local(path: "/usr/src/linux-source-6.1.tar.xz"))
        #expect(kernel.profiles == ["base"])
        #expect(kernel.package == "linux-rast-base")
        #expect(recipe.packages.local == ["filesystem", "busybox", "rast", "s6", "dropbear"].map { "\(packageRoot)/recipes/pkgbuilds/\($0)" })
        #expect(recipe.packages.install == ["filesystem", "busybox", "rast", "linux-rast-base", "s6", "dropbear"])
        #expect(recipe.packagesToInstall == recipe.packages.install)
        #expect(recipe.repositories.isEmpty)
        #expect(recipe.system.hostname == "rastos")
        #expect(recipe.users.map(\.name) == ["admin"])
        #expect(recipe.users.first?.sshKeys.count == 1)
        #expect(recipe.network == NetworkSpec(mode: .dhcp, interface: "eth0", sshd: true))
        #expect(recipe.services.isEmpty)
        #expect(recipe.snapshots.tree == [.init(id: 1, parent: 0, description: "base system"),
                                          .init(id: 2, parent: 1, description: "workstation")])
        #expect(recipe.snapshots.deploy == 1)
        #expect(recipe.disk.size == 2 << 30)
        #expect(recipe.disk.bootloader == .grub)
        #expect(recipe.disk.firmware == [.bios, .uefi])
        #expect(recipe.output.directory == "/tmp/build/output")
        #expect(recipe.outputPath(for: .qcow2) == "/tmp/build/output/minimal.qcow2")
        #expect(recipe.output.formats == [.raw, .qcow2])
        #expect(recipe.output.qcow2Compression == .zstd)
        #expect(recipe.bootTest.enabled)
        #expect(recipe.bootTest.firmware == [.bios, .uefi])
        #expect(recipe.position(of: "disk.size") == TOMLPosition(file: packageRoot + "/recipes/minimal.toml", line: 55, column: 8))
    }

    @Test func archNamesTheRealMirrors() throws {
        let recipe = try Recipe.load(path: packageRoot + "/recipes/arch.toml")
        #expect(recipe.kernel?.source == .packaged(name: "linux"))
        #expect(recipe.repositories.map(\.name) == ["core", "extra"])
        #expect(recipe.repositories[0].serverURLs().first == "https://geo.mirror.pkgbuild.com/core/os/x86_64")
        #expect(recipe.repositories[1].sigLevel == ["Required", "DatabaseOptional"])
        #expect(recipe.packagesToInstall.last == "linux")
    }

    @Test func containerUsesTheContainerProfile() throws {
        let recipe = try Recipe.load(path: packageRoot + "/recipes/container.toml")
        #expect(recipe.kernel?.profiles == ["base", "container"])
        #expect(recipe.kernel?.package == "linux-rast-container")
    }
}
