import Foundation
@testable import Recipe
import SystemSupport
import Testing
import TOML

@Suite struct DefaultsAndPathsTests {
    @Test func theSmallestRecipeGetsDocumentedDefaults() throws {
        let recipe = try decode(minimalText)
        #expect(recipe.name == "t")
        #expect(recipe.kernel == nil)
        #expect(recipe.packages == PackageSpec(local: [], aur: [], install: ["busybox"]))
        #expect(recipe.system == SystemSpec(hostname: "t", timezone: "UTC", locale: "C.UTF-8", kernelCommandLine: "", rootPasswordHash: nil))
        #expect(recipe.users.isEmpty)
        #expect(recipe.snapshots == SnapshotSpec(tree: [], deploy: 0))
        #expect(recipe.disk.size == 2 << 30)
        #expect(recipe.disk.biosBootSize == 1 << 20)
        #expect(recipe.disk.espSize == 64 << 20)
        #expect(recipe.disk.filesystemLabel == "rastos")
        #expect(recipe.disk.compression.mountOption == "compress=zstd")
        #expect(recipe.disk.bootloader == .grub)
        #expect(recipe.disk.firmware == [.bios, .uefi])
        #expect(recipe.disk.rootSize == (2 << 30) - (67 << 20))
        #expect(recipe.output == OutputSpec(directory: "/home/builder/output", formats: [.raw, .qcow2], qcow2Compression: .zstd, qcow2ClusterSize: 65536))
        #expect(recipe.bootTest == BootTestSpec(enabled: true, firmware: [.bios, .uefi], timeout: 300, memory: 512 << 20))
        #expect(recipe.baseDirectory == "/srv/recipes")
        #expect(recipe.recipeHash == SHA256.hash(Array(minimalText.utf8)))
    }

    @Test func pathsAreResolvedAgainstTheRecipeAndOutputAgainstTheWorkingDirectory() throws {
        let recipe = try decode("""
            name = "paths"
            [kernel]
            source = "../src/linux.tar.xz"
            fragments = ["frag/a.config", "/etc/b.config", "./c.config"]
            [packages]
            local = ["pkgbuilds/busybox", "/opt/pkg/./x/../rast"]
            install = ["busybox"]
            [[files]]
            source = "overlay/etc/motd"
            destination = "/etc//motd"
            [output]
            directory = "../images"
            """, base: "/srv/recipes", cwd: "/home/builder/work")
        #expect(recipe.kernel?.source == .local(path: "/srv/src/linux.tar.xz"))
        #expect(recipe.kernel?.fragments == ["/srv/recipes/frag/a.config", "/etc/b.config", "/srv/recipes/c.config"])
        #expect(recipe.packages.local == ["/srv/recipes/pkgbuilds/busybox", "/opt/pkg/rast"])
        #expect(recipe.files == [FileOverlay(source: "/srv/recipes/overlay/etc/motd", destination: "/etc/motd", mode: nil)])
        #expect(recipe.output.directory == "/home/builder/images")
        #expect(recipe.outputPath(for: .raw) == "/home/builder/images/paths.raw")
    }

    @Test func positionsOfKeysAreKeptForLaterStages() throws {
        let recipe = try decode(minimalText + """
            [[users]]
            name = "admin"
            ssh_keys = ["\(demoKey)"]
            """)
        #expect(recipe.position(of: "packages.install") == at(3, 11))
        #expect(recipe.position(of: "packages.install[0]") == at(3, 12))
        #expect(recipe.position(of: "users[0]") == at(4, 1))
        #expect(recipe.position(of: "users[0].ssh_keys[0]") == at(6, 13))
        #expect(recipe.position(of: "disk.size") == nil)
    }
}

@Suite struct TopLevelProblemTests {
    @Test func missingNameIsReportedAtTheDocument() {
        expectProblem("[packages]\ninstall = [\"busybox\"]", "name", at: at(1, 1),
                      "missing required key 'name'")
    }

    @Test func missingPackagesTable() {
        let error = problem("name = \"x\"\n")
        #expect(error?.keyPath == "packages")
        #expect(error?.message == "missing required table [packages] (at least 'install', the packages of snapshot 0)")
    }

    @Test func emptyInstallList() {
        let error = problem("name = \"x\"\n[packages]\ninstall = []")
        #expect(error?.position == at(3, 11))
        #expect(error?.message == "install must list at least one package")
    }

    @Test func unknownTopLevelKeySuggestsTheClosestKey() {
        expectProblem(minimalText + "[sytem]\nhostname = \"x\"", "sytem", at: at(4, 2),
                      "unknown key 'sytem'; did you mean 'system'?")
        #expect(problem("bootTest = 1\n" + minimalText)?.message == "unknown key 'bootTest'; did you mean 'boot_test'?")
    }

    @Test func unknownKeyWithoutALikelyMatchListsTheKeys() {
        let error = problem(minimalText + "[output]\ncolour = \"blue\"")
        #expect(error?.keyPath == "output.colour")
        #expect(error?.message == "unknown key 'colour'; the keys here are 'directory', 'formats', 'qcow2_compression', 'qcow2_cluster_size'")
    }

    @Test func wrongTypesNameBothTypes() {
        #expect(problem("name = 7\n[packages]\ninstall = [\"a\"]")?.message == "expected a string, found an integer")
        #expect(problem("system = \"rastos\"\n" + minimalText)?.message == "expected a table ([system]), found a string")
        #expect(problem(minimalText + "[users]\nname = \"a\"")?.message == "expected an array of tables ([[users]]), found a table")
        #expect(problem(minimalText + "[boot_test]\nenabled = \"yes\"")?.message == "expected a boolean (true or false), found a string")
        expectProblem("name = \"x\"\n[packages]\ninstall = [\"a\", 2.5]", "packages.install[1]", at: at(3, 17),
                      "expected a string, found a float")
    }

    @Test func badNames() {
        #expect(problem("name = \"-x\"\n[packages]\ninstall = [\"a\"]")?.keyPath == "name")
        #expect(problem("name = \"x\"\n[packages]\ninstall = [\"Busybox\"]")?.message
                == "'Busybox' is not a valid package name: use lower-case letters, digits and @ . _ + -, not starting with a hyphen or a dot")
        #expect(problem(minimalText + "[system]\nhostname = \"a_b\"")?.message
                == "'a_b' is not a valid host name: use 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen (RFC 1123)")
        #expect(problem(minimalText + "[system]\nhostname = \"\(String(repeating: "a", count: 64))\"") != nil)
        #expect(problem(minimalText + "[system]\ntimezone = \"Europe/../etc\"")?.message == "'Europe/../etc' is not a time zone name such as UTC or Europe/Berlin")
        #expect(problem(minimalText + "[system]\nlocale = \"en US\"")?.message == "'en US' is not a locale name such as C.UTF-8 or en_US.UTF-8")
    }
}

@Suite struct KernelTests {
    @Test func httpsSourceWithChecksum() throws {
        let sha = String(repeating: "Ab", count: 32)
        let recipe = try decode(minimalText + """
            [kernel]
            source = "https://example.org/linux-6.1.tar.xz"
            sha256 = "\(sha)"
            profile = "development"
            options = { CONFIG_EXAMPLE = "y", CONFIG_MOD = "m", CONFIG_OFF = "n", CONFIG_NR = 8, CONFIG_ADDR = "0x1000", CONFIG_CMDLINE = "quiet \\"x\\"", CONFIG_BOOL = false }
            strict = true
            """)
        let kernel = try #require(recipe.kernel)
        #expect(kernel.source == .https(url: "https://example.org/linux-6.1.tar.xz", sha256: sha.lowercased()))
        #expect(kernel.profiles == ["base", "development"])
        #expect(kernel.package == "linux-rast-development")
        #expect(kernel.strict)
        #expect(kernel.options.map(\.configLine) == [
            "CONFIG_EXAMPLE=y", "CONFIG_MOD=m", "# CONFIG_OFF is not set", "CONFIG_NR=8", "CONFIG_ADDR=0x1000",
            "CONFIG_CMDLINE=\"quiet \\\"x\\\"\"", "# CONFIG_BOOL is not set",
        ])
        #expect(recipe.packagesToInstall == ["busybox", "linux-rast-development"])
    }

    @Test func gitSourceWithRef() throws {
        let recipe = try decode(minimalText + "[kernel]\ngit = \"linux.git\"\nref = \"v6.1\"\npackage = \"linux-custom\"")
        #expect(recipe.kernel?.source == .git(url: "/srv/recipes/linux.git", ref: "v6.1"))
        #expect(recipe.kernel?.package == "linux-custom")
        let url = try decode(minimalText + "[kernel]\ngit = \"https://git.example.org/linux.git\"\nref = \"main\"")
        #expect(url.kernel?.source == .git(url: "https://git.example.org/linux.git", ref: "main"))
        expectProblem(minimalText + "[kernel]\ngit = \"https://git.example.org/linux.git\"", "kernel.ref", at: at(4, 1),
                      "missing required key 'ref' in [kernel]: a git source needs the branch, tag or commit to build")
    }

    @Test func packagedKernel() throws {
        let recipe = try decode(minimalText + "[kernel]\npackaged = \"linux-lts\"")
        #expect(recipe.kernel?.source == .packaged(name: "linux-lts"))
        #expect(recipe.kernel?.isBuilt == false)
        #expect(recipe.packagesToInstall == ["busybox", "linux-lts"])
        expectProblem(minimalText + "[kernel]\npackaged = \"linux\"\nprofile = \"base\"", "kernel.profile", at: at(6, 11),
                      "'profile' does not apply to a packaged kernel, which is installed as it is")
    }

    @Test func exactlyOneOrigin() {
        expectProblem(minimalText + "[kernel]\nprofile = \"base\"", "kernel", at: at(4, 1),
                      "missing required key in [kernel]: give exactly one of 'source' (a local path or https:// URL), 'git' (with 'ref') or 'packaged' (a package name)")
        let two = expectProblem(minimalText + "[kernel]\nsource = \"/usr/src/l.tar.xz\"\npackaged = \"linux\"", "kernel.packaged", at: at(6, 12),
                                "'packaged' cannot be combined with 'source' (5:10): give exactly one of 'source', 'git' or 'packaged'")
        #expect(two?.relatedPosition == at(5, 10))
    }

    @Test func sourceProblems() {
        #expect(problem(minimalText + "[kernel]\nsource = \"http://example.org/l.tar.xz\"")?.message
                == "the 'http://' scheme is not supported: use a local path or an https:// URL with sha256")
        #expect(problem(minimalText + "[kernel]\nsource = \"https://e.org/l.tar.xz\"\nsha256 = \"abc\"")?.message
                == "'abc' is not a SHA-256: use its 64 hexadecimal digits")
        #expect(problem(minimalText + "[kernel]\nsource = \"/usr/src/l.tar.xz\"\nsha256 = \"\(String(repeating: "0", count: 64))\"")?.message
                == "'sha256' applies only to an https:// source")
        #expect(problem(minimalText + "[kernel]\nsource = \"/usr/src/l.tar.xz\"\nref = \"v6.1\"")?.message
                == "'ref' applies only to a 'git' kernel source")
        #expect(problem(minimalText + "[kernel]\nsource = \"/l\"\nprofile = \"Base\"")?.message
                == "'Base' is not a profile name: use the name of a file NAME.config in kernel-profiles/ (base, container, development, production)")
        expectProblem(minimalText + "[kernel]\nsource = \"/l\"\n[kernel.options]\nBTRFS_FS = \"y\"", "kernel.options.BTRFS_FS", at: at(7, 1),
                      "'BTRFS_FS' is not a kernel option name: write it as in .config, for example CONFIG_BTRFS_FS")
        #expect(problem(minimalText + "[kernel]\nsource = \"/l\"\noptions = { CONFIG_X = [1] }")?.message
                == "expected \"y\", \"m\", \"n\", a boolean, a number or a string, found an array")
    }

    @Test func fileURLIsALocalPath() throws {
        #expect(try decode(minimalText + "[kernel]\nsource = \"file:///usr/src/l.tar.xz\"").kernel?.source == .local(path: "/usr/src/l.tar.xz"))
    }
}

@Suite struct RepositoryTests {
    @Test func repositoriesInOrder() throws {
        let recipe = try decode(minimalText + """
            [[repositories]]
            name = "core"
            servers = ["https://a.example/$repo/os/$arch", "file:///srv/repo/$repo"]
            [[repositories]]
            name = "extra"
            servers = ["http://127.0.0.1:8080/$repo"]
            siglevel = "PackageRequired DatabaseNever TrustAll"
            """)
        #expect(recipe.repositories.map(\.name) == ["core", "extra"])
        #expect(recipe.repositories[0].sigLevel == nil)
        #expect(recipe.repositories[0].serverURLs() == ["https://a.example/core/os/x86_64", "file:///srv/repo/core"])
        #expect(recipe.repositories[1].sigLevel == ["PackageRequired", "DatabaseNever", "TrustAll"])
    }

    @Test func repositoryProblems() {
        let siglevel = problem(minimalText + "[[repositories]]\nname = \"core\"\nservers = [\"https://a/\"]\nsiglevel = \"Required DatabaseOptinal\"")
        #expect(siglevel?.keyPath == "repositories[0].siglevel")
        #expect(siglevel?.message == "'DatabaseOptinal' is not a SigLevel option; did you mean 'DatabaseOptional'?")
        #expect(problem(minimalText + "[[repositories]]\nname = \"core\"\nservers = [\"https://a/\"]\nsiglevel = \"Sometimes\"")?.message
                == "'Sometimes' is not a SigLevel option: use Never, Optional, Required, TrustedOnly or TrustAll, optionally prefixed with Package or Database")
        let server = problem(minimalText + "[[repositories]]\nname = \"core\"\nservers = [\"mirror.example/$repo\"]")
        #expect(server?.keyPath == "repositories[0].servers[0]")
        #expect(server?.message == "'mirror.example/$repo' is not a server URL: use https://, http://, ftp:// or file://")
        let missing = problem(minimalText + "\n[[repositories]]\nname = \"core\"")
        #expect(missing?.position == at(5, 1))
        #expect(missing?.message == "missing required key 'servers' in this repositories entry: at least one server URL such as \"https://geo.mirror.pkgbuild.com/$repo/os/$arch\"")
        #expect(problem(minimalText + "[[repositories]]\nname = \"core\"\nservers = []")?.message == "servers must list at least one URL")
    }
}

@Suite struct UserAndFileTests {
    @Test func usersWithAllKeys() throws {
        let recipe = try decode(minimalText + """
            [system]
            root_password_hash = "$6$rounds=5000$saltsalt$Q3bDdSHK5.9jBVC7fL6fjJXFhMOUzqTbNEz2C0Ev7nwF7AAbAL/s2X8eaJVDOX3fzAHLd3c46uf1dMCZMy0Ab1"
            [[users]]
            name = "admin"
            uid = 1000
            groups = ["wheel", "video"]
            shell = "/bin/bash"
            password_hash = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
            ssh_keys = ["\(demoKey)", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"]
            """)
        #expect(recipe.system.rootPasswordHash?.hasPrefix("$6$") == true)
        let user = try #require(recipe.users.first)
        #expect(user.name == "admin")
        #expect(user.uid == 1000)
        #expect(user.groups == ["wheel", "video"])
        #expect(user.shell == "/bin/bash")
        #expect(user.passwordHash?.hasPrefix("$y$") == true)
        #expect(user.sshKeys.count == 2)
    }

    @Test func userProblems() {
        #expect(problem(minimalText + "[[users]]\nname = \"Admin\"")?.message
                == "'Admin' is not a valid user name: use up to 32 lower-case letters, digits, '_' and '-', starting with a letter or '_'")
        #expect(problem(minimalText + "[[users]]\nname = \"root\"")?.message
                == "root is not a [[users]] entry: set its password with system.root_password_hash")
        #expect(problem(minimalText + "[[users]]\nname = \"a\"\nuid = 0")?.message
                == "uid 0 is out of range: use 1 to 65533 (0 is root, 65534 is nobody)")
        let uid = problem(minimalText + "[[users]]\nname = \"a\"\nuid = 1000\n[[users]]\nname = \"b\"\nuid = 1000")
        #expect(uid?.keyPath == "users[1].uid")
        #expect(uid?.message == "duplicate uid 1000 (first defined at 6:7, users[0].uid)")
        #expect(problem(minimalText + "[[users]]\nname = \"a\"\nshell = \"bash\"")?.message
                == "'bash' is not an absolute path: give the shell as /bin/sh or /usr/bin/bash")
        #expect(problem(minimalText + "[[users]]\nname = \"a\"\npassword_hash = \"hunter2\"")?.message
                == "the value does not look like a crypt(3) hash ($ID$SALT$HASH with ID 1, 2b, 5, 6, y or gy); make one with `openssl passwd -6`")
        expectProblem(minimalText + "[[users]]\nuid = 1000", "users[0].name", at: at(4, 1),
                      "missing required key 'name' in this users entry")
    }

    /// Each crypt scheme's hash has a fixed length: a hash cut short is refused (no password
    /// could ever match it), whole ones of every scheme pass.
    @Test func cryptHashesMustHaveTheirSchemesLength() {
        let whole = [
            "$1$RItbtqvT$gngOvXGSWRQ8ozEskH1HN.",
            "$5$VivrGxbKJQlKkDM5$Bjc8xViwY/RI41lavZcXpNG28oK/WBaZd3DqntPmPZ/",
            "$5$rounds=10000$saltsalt$RUsnTSO2Cw.gkRW/RZSmG6BCeuh1a6eDbZfnX4oz1c5",
            "$6$M40lWD0Q0DhBFLG5$THtjX1zkvIvZa2cSRGaicA5aRjJtCPLRha.O3HqB8GREn2xpFhIdDVGK95i1DvUqq7nT7ohKrC3Mt86h80EpP.",
            "$y$j9T$F5Jx5fExrKuJdvNa8tLB/0$.lzbqpogEzykyF09iGJVwxK1TQmhIVAZpfGj7cwW/Z8",
            "$2b$12$3QMlya8yvuch2xlH/EN2JelVeNtsnzxE0OL/BPGrHCsIEXEZouOre",
        ]
        for hash in whole {
            #expect(Checks.cryptHash(hash) == nil, "\(hash) is a whole hash")
            let short = String(hash.dropLast(hash.hasPrefix("$6$") ? 56 : 10))
            #expect(Checks.cryptHash(short)?.contains("cut short") == true, "\(short) is cut short")
        }
        #expect(Checks.cryptHash("$6$M40lWD0Q0DhBFLG5$THtjX1zkvIvZa2cSRGaicA5aRjJtCP")
                == "the value is a $6$ (SHA-512) hash whose hash part has 30 characters instead of 86 (cut short or padded?); make one with `openssl passwd -6`")
        #expect(Checks.cryptHash("$2b$99$3QMlya8yvuch2xlH/EN2JelVeNtsnzxE0OL/BPGrHCsIEXEZouOre") != nil, "bcrypt cost 99")
        let located = problem(minimalText + "[[users]]\nname = \"a\"\npassword_hash = \"$6$M40lWD0Q0DhBFLG5$THtjX1zkvIvZa2cSRGaicA5aRjJtCP\"")
        #expect(located?.keyPath == "users[0].password_hash")
        #expect(located?.message.contains("30 characters instead of 86") == true)
    }

    /// An invalid UTF-8 byte inside a value is reported at its position and with the key.
    @Test func invalidUTF8InAValueNamesTheKey() throws {
        let bytes = Array((minimalText + "[system]\nhostname = \"lab").utf8) + [0xFF] + Array("1\"\n".utf8)
        do {
            _ = try Recipe.parse(bytes: bytes, file: "r.toml", baseDirectory: "/srv/recipes", workingDirectory: "/home/builder")
            Issue.record("parsed invalid UTF-8")
        } catch {
            let first = try #require(error.errors.first)
            #expect(first.keyPath == "system.hostname")
            #expect("\(first)".contains("r.toml:5:16: error: system.hostname: invalid UTF-8 (byte 0xFF)"), "\(first)")
        }
    }

    @Test func sshKeyProblemsAreSpecific() {
        func sshProblem(_ key: String) -> String? {
            problem(minimalText + "[[users]]\nname = \"a\"\nssh_keys = [\"\(key)\"]")?.message
        }
        #expect(sshProblem("AAAAC3NzaC1lZDI1NTE5") == "an SSH public key has the form 'TYPE BASE64 [COMMENT]', as in ~/.ssh/id_ed25519.pub")
        #expect(sshProblem("ssh-foo AAAA") == "unknown SSH key type 'ssh-foo': use one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-dss")
        #expect(sshProblem("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAINydRzvC4WcnJQptV2yOfxGjN4msUhY0xeebqTFwlKZH") == "the key says 'ssh-rsa' but its body holds a 'ssh-ed25519' key")
        #expect(sshProblem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQ=") == "the body of the ssh-ed25519 key does not hold a 32-byte public key")
        #expect(sshProblem("ssh-ed25519 AAAA/w==") == "the body of the ssh-ed25519 key is truncated")
    }

    @Test func fileOverlayProblems() throws {
        let recipe = try decode(minimalText + "[[files]]\nsource = \"motd\"\ndestination = \"/etc/motd\"\nmode = \"0644\"")
        #expect(recipe.files.first?.mode == 0o644)
        #expect(problem(minimalText + "[[files]]\nsource = \"motd\"\ndestination = \"etc/motd\"")?.message
                == "'etc/motd' is not an absolute path in the image, such as /etc/motd")
        #expect(problem(minimalText + "[[files]]\nsource = \"motd\"\ndestination = \"/etc/../motd\"")?.message
                == "'/etc/../motd' must name a file or directory below / without '.' or '..'")
        #expect(problem(minimalText + "[[files]]\nsource = \"motd\"\ndestination = \"/etc/motd\"\nmode = \"0844\"")?.message
                == "'0844' is not a file mode: use three or four octal digits such as \"0644\"")
        #expect(problem(minimalText + "[[files]]\nsource = \"motd\"\ndestination = \"/etc/motd\"\nmode = 644")?.message
                == "expected a string, found an integer")
        let duplicate = problem(minimalText + "[[files]]\nsource = \"a\"\ndestination = \"/etc/motd\"\n[[files]]\nsource = \"b\"\ndestination = \"/etc//motd\"")
        #expect(duplicate?.keyPath == "files[1].destination")
        #expect(duplicate?.message == "duplicate destination /etc/motd (first defined at 6:15, files[0].destination)")
    }
}

@Suite struct SnapshotTests {
    @Test func treeInAnyOrderWithCreationOrder() throws {
        let recipe = try decode(minimalText + """
            [snapshots]
            tree = [{ id = 3, parent = 2 }, { id = 2, parent = 1, description = "b" }, { id = 1, parent = 0 }]
            deploy = 3
            """)
        #expect(recipe.snapshots.tree.map(\.id) == [3, 2, 1])
        #expect(recipe.snapshots.creationOrder.map(\.id) == [1, 2, 3])
        #expect(recipe.snapshots.deploy == 3)
    }

    @Test func arrayOfTablesFormWorksToo() throws {
        let recipe = try decode(minimalText + "[[snapshots.tree]]\nid = 1\nparent = 0\ndescription = \"base\"")
        #expect(recipe.snapshots.tree == [.init(id: 1, parent: 0, description: "base")])
    }

    @Test func snapshotProblems() {
        #expect(problem(minimalText + "[snapshots]\ntree = [{ id = 1, parent = 1 }]")?.message == "snapshot 1 cannot be its own parent")
        #expect(problem(minimalText + "[snapshots]\ntree = [{ id = 0, parent = 0 }]")?.message
                == "snapshot ids start at 1 (snapshot 0 is the base and always exists)")
        expectProblem(minimalText + "[snapshots]\ntree = [{ id = 1, parent = 0 }]\ndeploy = 4", "snapshots.deploy", at: at(6, 10),
                      "snapshot 4 does not exist and cannot be deployed (defined are 0 and 1)")
        expectProblem(minimalText + "[snapshots]\ntree = [{ id = 1 }]", "snapshots.tree[0].parent", at: at(5, 9),
                      "missing required key 'parent' in this snapshots.tree entry: use 0 for a child of the base snapshot")
        // A longer cycle is reported once.
        let cycle = problems(minimalText + "[snapshots]\ntree = [{ id = 1, parent = 3 }, { id = 2, parent = 1 }, { id = 3, parent = 2 }]")
        #expect(cycle.map(\.message) == ["snapshots form a cycle (1 → 3 → 2 → 1); every chain of parents must reach snapshot 0"])
    }
}

@Suite struct DiskOutputBootTestTests {
    @Test func sizesInEveryForm() throws {
        let recipe = try decode(minimalText + """
            [disk]
            size = 4294967296
            esp_size = "0.25G"
            bios_boot_size = "2MiB"
            compression = "zstd:9"
            bootloader = "limine"
            firmware = ["uefi"]
            [output]
            qcow2_cluster_size = "2M"
            qcow2_compression = "none"
            formats = ["qcow2"]
            [boot_test]
            enabled = false
            memory = 1073741824
            timeout = 60
            """)
        #expect(recipe.disk.size == 4 << 30)
        #expect(recipe.disk.espSize == 256 << 20)
        #expect(recipe.disk.biosBootSize == 2 << 20)
        #expect(recipe.disk.hasBIOSBootPartition == false)
        #expect(recipe.disk.rootSize == (4 << 30) - (258 << 20))
        #expect(recipe.disk.compression == BtrfsCompression(algorithm: .zstd, level: 9))
        #expect(recipe.disk.bootloader == .limine)
        #expect(recipe.bootTest.firmware == [.uefi])
        #expect(recipe.output.qcow2ClusterSize == 2 << 20)
        #expect(recipe.output.formats == [.qcow2])
        #expect(recipe.bootTest.enabled == false)
        #expect(recipe.bootTest.memory == 1 << 30)
    }

    @Test func sizeProblems() {
        #expect(problem(minimalText + "[disk]\nsize = -5")?.message == "a size cannot be negative")
        #expect(problem(minimalText + "[disk]\nsize = \" 2G\"")?.message == "' 2G' is not a size: use bytes or a number with K, M, G or T")
        #expect(problem(minimalText + "[disk]\nsize = true")?.message == "expected a size (bytes as an integer, or a string such as \"2G\"), found a boolean")
        #expect(problem(minimalText + "[disk]\nsize = \"1000K\"")?.message == "1000 KiB is not a whole, non-zero number of MiB (partitions are aligned to 1 MiB)")
        #expect(problem(minimalText + "[disk]\nesp_size = \"16M\"")?.message == "an ESP of 16 MiB is too small: FAT32 needs at least 32 MiB")
        // Without BIOS there is no BIOS boot partition in the sum.
        #expect(problem(minimalText + "[disk]\nsize = \"300M\"\nfirmware = [\"uefi\"]")?.message
                == "a disk of 300 MiB is too small for its partitions: it needs 1 MiB (GPT and alignment) + 64 MiB (ESP) + 256 MiB (smallest root) + 1 MiB (backup GPT) = 322 MiB")
        #expect((try? decode(minimalText + "[disk]\nsize = \"322M\"\nfirmware = [\"uefi\"]")) != nil)
    }

    @Test func choiceProblems() {
        #expect(problem(minimalText + "[disk]\ncompression = \"lz4\"")?.message
                == "'lz4' is not a btrfs compression: use none, zlib, lzo or zstd (zlib:N and zstd:N set a level)")
        #expect(problem(minimalText + "[disk]\ncompression = \"zstd:22\"")?.message == "'22' is not a zstd level: use 1 to 15")
        #expect(problem(minimalText + "[disk]\ncompression = \"lzo:3\"")?.message == "lzo has no compression levels: write \"lzo\"")
        #expect(problem(minimalText + "[disk]\nfirmware = []")?.message == "list at least one firmware: \"bios\", \"uefi\" or both")
        #expect(problem(minimalText + "[disk]\nfirmware = [\"bios\", \"efi\"]")?.message == "'efi' is not a firmware: use \"bios\" or \"uefi\"")
        #expect(problem(minimalText + "[disk]\nfirmware = [\"bios\", \"bios\"]")?.message == "duplicate firmware 'bios' (first defined at 5:13, disk.firmware[0])")
        #expect(problem(minimalText + "[output]\nformats = [\"vmdk\"]")?.message == "'vmdk' is not an output format: use \"raw\" or \"qcow2\"")
        #expect(problem(minimalText + "[output]\nqcow2_compression = \"xz\"")?.message == "'xz' is not a qcow2 compression: use none, zlib or zstd")
        #expect(problem(minimalText + "[output]\nqcow2_cluster_size = \"3K\"")?.message
                == "a qcow2 cluster size must be a power of two from 512 bytes to 2 MiB, not 3 KiB")
        #expect(problem(minimalText + "[output]\nqcow2_cluster_size = \"4M\"") != nil)
        expectProblem(minimalText + "[disk]\nfirmware = [\"bios\"]\n[boot_test]\nfirmware = [\"bios\", \"uefi\"]", "boot_test.firmware[1]", at: at(7, 21),
                      "'uefi' is not in disk.firmware (bios): the image cannot boot with it")
        #expect(problem(minimalText + "[boot_test]\ntimeout = 0")?.message == "a timeout of 0 seconds is out of range: use 1 to 86400")
        #expect(problem(minimalText + "[boot_test]\nmemory = \"32M\"")?.message == "guest memory must be a whole number of MiB, at least 64 MiB, not 32 MiB")
    }
}

@Suite struct HelperTests {
    @Test func pathNormalization() {
        #expect(Paths.resolve("a/./b/../c", relativeTo: "/x/y") == "/x/y/a/c")
        #expect(Paths.resolve("../../../..", relativeTo: "/x") == "/")
        #expect(Paths.resolve("/abs//path/", relativeTo: "/x") == "/abs/path")
        #expect(Paths.directory(of: "/a/b/c.toml") == "/a/b")
        #expect(Paths.directory(of: "/c.toml") == "/")
    }
}

/// Mutated recipes must give a recipe or positioned problems, never a crash.
@Suite struct RecipeRobustnessTests {
    @Test func mutatedExampleRecipesNeverCrash() throws {
        let original = Array(try String(contentsOfFile: packageRoot + "/recipes/minimal.toml", encoding: .utf8).utf8)
        var state: UInt64 = 7
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let alphabet = Array("[]{}=.,\"'#\n 0123456789-abxyzGMK".utf8)
        var accepted = 0
        var rejected = 0
        for _ in 0..<1500 {
            var bytes = original
            for _ in 0...next(3) {
                let position = next(bytes.count)
                switch next(3) {
                case 0: bytes[position] = alphabet[next(alphabet.count)]
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet[next(alphabet.count)], at: position)
                }
            }
            do {
                _ = try Recipe.parse(bytes: bytes, file: "r.toml", baseDirectory: "/srv/recipes", workingDirectory: "/w")
                accepted += 1
            } catch {
                #expect(!error.errors.isEmpty)
                #expect(error.errors.allSatisfy { $0.position.line >= 1 && $0.position.column >= 1 })
                rejected += 1
            }
        }
        #expect(accepted > 0)
        #expect(rejected > 0)
    }
}
