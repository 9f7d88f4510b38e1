import Foundation
import SystemSupport
import TOML

extension Recipe {
    /// Reads and validates the recipe at `path`. Relative paths in the recipe are resolved
    /// against its directory; `output.directory` against `workingDirectory` (default: the
    /// current directory). Throws `RecipeErrors` with every problem, or the error of reading.
    public static func load(path: String, workingDirectory: String? = nil) throws -> Recipe {
        let bytes = try Files.read(path)
        let cwd = workingDirectory ?? currentDirectory()
        let absolute = Paths.resolve(path, relativeTo: cwd)
        return try parse(bytes: bytes, file: path, baseDirectory: Paths.directory(of: absolute), workingDirectory: cwd)
    }

    /// Parses and validates recipe text; `file` names it in errors.
    public static func parse(text: String, file: String, baseDirectory: String,
                             workingDirectory: String? = nil) throws(RecipeErrors) -> Recipe {
        try parse(bytes: Array(text.utf8), file: file, baseDirectory: baseDirectory, workingDirectory: workingDirectory)
    }

    /// Parses and validates the bytes of a recipe file (which must be UTF-8).
    public static func parse(bytes: [UInt8], file: String, baseDirectory: String,
                             workingDirectory: String? = nil) throws(RecipeErrors) -> Recipe {
        let document: TOMLTable
        do {
            document = try TOMLDocument.parse(bytes: bytes, file: file)
        } catch {
            throw RecipeErrors([RecipeError(position: error.position, keyPath: error.key ?? "", message: error.message)])
        }
        let cwd = workingDirectory ?? currentDirectory()
        let base = Paths.resolve(baseDirectory, relativeTo: cwd)
        let decoder = RecipeDecoder(baseDirectory: base, workingDirectory: cwd)
        let recipe = decoder.decode(document, file: file, hash: SHA256.hash(bytes))
        guard let recipe, decoder.diagnostics.errors.isEmpty else {
            throw RecipeErrors(decoder.diagnostics.errors)
        }
        return recipe
    }

    static func currentDirectory() -> String {
        FileManager.default.currentDirectoryPath
    }
}

/// Turns a TOML document into a `Recipe`, collecting every problem on the way.
struct RecipeDecoder {
    let baseDirectory: String
    let workingDirectory: String
    let diagnostics = Diagnostics()

    static let topLevelKeys = [
        "name", "description", "kernel", "packages", "repositories", "system", "users", "files",
        "snapshots", "disk", "output", "boot_test", "containers",
    ]

    init(baseDirectory: String, workingDirectory: String) {
        self.baseDirectory = baseDirectory
        self.workingDirectory = workingDirectory
    }

    /// The recipe, or nil when a required part could not be read (the errors say why).
    func decode(_ document: TOMLTable, file: String, hash: String) -> Recipe? {
        let top = TableReader(document, path: "", known: RecipeDecoder.topLevelKeys, diagnostics: diagnostics)
        var name = "recipe"
        if let located = top.requiredString("name") {
            check(located, Checks.recipeName)
            name = located.value
        }
        let description = top.string("description")?.value

        let kernel = top.table("kernel", known: KernelKeys.all).flatMap(decodeKernel)
        let packages = decodePackages(top)
        let repositories = decodeRepositories(top)
        let system = decodeSystem(top, recipeName: name)
        let users = decodeUsers(top)
        let files = decodeFiles(top)
        let snapshots = decodeSnapshots(top)
        let disk = decodeDisk(top)
        let output = decodeOutput(top)
        let bootTest = decodeBootTest(top, disk: disk)
        let containers = decodeContainers(top)

        guard let packages else { return nil }
        var recipe = Recipe(name: name, description: description, file: file, baseDirectory: baseDirectory,
                            recipeHash: hash, kernel: kernel, packages: packages, repositories: repositories,
                            system: system, users: users, files: files, snapshots: snapshots, disk: disk,
                            output: output, bootTest: bootTest, positions: diagnostics.positions)
        recipe.containers = containers
        return recipe
    }

    /// Runs a value check and reports its sentence at the value.
    @discardableResult
    func check<Value>(_ located: Located<Value>, _ rule: (Value) -> String?) -> Bool {
        guard let problem = rule(located.value) else { return true }
        diagnostics.error(problem, at: located.position, key: located.keyPath)
        return false
    }

    /// Reports the second and later occurrences of equal values.
    func reportDuplicates<Key: Hashable>(_ items: [Located<Key>], what: (Key) -> String) {
        var seen: [Key: Located<Key>] = [:]
        for item in items {
            if let first = seen[item.value] {
                diagnostics.duplicate(what(item.value), second: item, first: first)
            } else {
                seen[item.value] = item
            }
        }
    }

    func resolve(_ path: String) -> String {
        Paths.resolve(path, relativeTo: baseDirectory)
    }

    // MARK: [kernel]

    enum KernelKeys {
        static let origins = ["source", "git", "packaged"]
        static let buildOnly = ["profile", "fragments", "options", "strict", "package"]
        static let all = ["source", "sha256", "git", "ref", "packaged"] + buildOnly
    }

    func decodeKernel(_ table: TableReader) -> KernelSpec? {
        let origins = KernelKeys.origins.compactMap { key in table.string(key).map { (key, $0) } }
        let sha256 = table.string("sha256")
        let ref = table.string("ref")
        if origins.isEmpty {
            // A wrongly typed origin was reported already; only a truly absent one is "missing".
            if !KernelKeys.origins.contains(where: table.has) {
                diagnostics.error("missing required key in [kernel]: give exactly one of 'source' (a local path or https:// URL), 'git' (with 'ref') or 'packaged' (a package name)",
                                  at: table.position, key: "kernel")
            }
            return nil
        }
        if origins.count > 1 {
            let first = origins[0]
            for (key, located) in origins.dropFirst() {
                diagnostics.error("'\(key)' cannot be combined with '\(first.0)' (\(first.1.position.lineAndColumn)): give exactly one of 'source', 'git' or 'packaged'",
                                  at: located.position, key: located.keyPath, related: first.1.position)
            }
            return nil
        }
        let (originKey, origin) = origins[0]

        if let sha256, !Checks.isSHA256(sha256.value) {
            diagnostics.error("'\(sha256.value)' is not a SHA-256: use its 64 hexadecimal digits", at: sha256.position, key: sha256.keyPath)
        }
        if let ref, originKey != "git" {
            diagnostics.error("'ref' applies only to a 'git' kernel source", at: ref.position, key: ref.keyPath)
        }

        var source: KernelSpec.Source?
        switch originKey {
        case "source":
            let text = origin.value
            if text.hasPrefix("https://") {
                if let sha256 {
                    source = .https(url: text, sha256: sha256.value.lowercased())
                } else {
                    table.missing("sha256", "an https:// source is checked against its SHA-256 (64 hexadecimal digits)")
                }
            } else if let scheme = text.range(of: "://").map({ String(text[..<$0.lowerBound]) }), scheme != "file" {
                diagnostics.error("the '\(scheme)://' scheme is not supported: use a local path or an https:// URL with sha256",
                                  at: origin.position, key: origin.keyPath)
            } else {
                let path = text.hasPrefix("file://") ? String(text.dropFirst("file://".count)) : text
                if path.isEmpty {
                    diagnostics.error("the kernel source path is empty", at: origin.position, key: origin.keyPath)
                } else {
                    source = .local(path: resolve(path))
                }
                if let sha256 {
                    diagnostics.error("'sha256' applies only to an https:// source", at: sha256.position, key: sha256.keyPath)
                }
            }
        case "git":
            let text = origin.value
            var url: String?
            if let scheme = text.range(of: "://").map({ String(text[..<$0.lowerBound]) }) {
                if ["file", "http", "https"].contains(scheme) {
                    url = text
                } else {
                    diagnostics.error("the '\(scheme)://' scheme is not supported for git: use file://, http://, https:// or a path",
                                      at: origin.position, key: origin.keyPath)
                }
            } else if text.isEmpty {
                diagnostics.error("the git repository path is empty", at: origin.position, key: origin.keyPath)
            } else {
                url = resolve(text)
            }
            if let sha256 {
                diagnostics.error("'sha256' applies only to an https:// source", at: sha256.position, key: sha256.keyPath)
            }
            if let ref {
                if ref.value.isEmpty || ref.value.contains(where: { $0.isWhitespace }) {
                    diagnostics.error("'\(ref.value)' is not a git ref: give a branch, tag or commit", at: ref.position, key: ref.keyPath)
                } else if let url {
                    source = .git(url: url, ref: ref.value)
                }
            } else if !table.has("ref") {
                table.missing("ref", "a git source needs the branch, tag or commit to build")
            }
        default:
            if check(origin, Checks.packageName) { source = .packaged(name: origin.value) }
            if let sha256 {
                diagnostics.error("'sha256' applies only to an https:// source", at: sha256.position, key: sha256.keyPath)
            }
            for key in KernelKeys.buildOnly {
                if let located = table.value(key) {
                    diagnostics.error("'\(key)' does not apply to a packaged kernel, which is installed as it is",
                                      at: located.position, key: located.keyPath)
                }
            }
            guard let source else { return nil }
            return KernelSpec(source: source, profile: "", profiles: [], fragments: [], options: [], strict: false,
                              package: origin.value)
        }

        var profile = "base"
        if let located = table.string("profile") {
            let valid = located.value.first.map(Checks.isLowerAlphanumeric) == true
                && located.value.allSatisfy { Checks.isLowerAlphanumeric($0) || $0 == "-" || $0 == "_" }
            if valid {
                profile = located.value
            } else {
                diagnostics.error("'\(located.value)' is not a profile name: use the name of a file NAME.config in kernel-profiles/ (base, container, development, production)",
                                  at: located.position, key: located.keyPath)
            }
        }
        let fragments = (table.stringArray("fragments")?.value ?? []).map { resolve($0.value) }
        let options = decodeKernelOptions(table)
        let strict = table.boolean("strict")?.value ?? false
        var package = "linux-rast-\(profile)"
        if let located = table.string("package"), check(located, Checks.packageName) {
            package = located.value
        }
        guard let source else { return nil }
        return KernelSpec(source: source, profile: profile, profiles: profile == "base" ? ["base"] : ["base", profile],
                          fragments: fragments, options: options, strict: strict, package: package)
    }

    func decodeKernelOptions(_ table: TableReader) -> [KernelOption] {
        guard let options = table.value("options") else { return [] }
        guard let entries = options.value.table?.entries else {
            table.typeError(options, expected: "a table of CONFIG_NAME = value")
            return []
        }
        var result: [KernelOption] = []
        for entry in entries {
            let path = options.keyPath + "." + entry.key
            diagnostics.positions[path] = entry.value.position
            let nameIsValid = entry.key.hasPrefix("CONFIG_") && entry.key.count > 7
                && entry.key.allSatisfy { $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }
            if !nameIsValid {
                diagnostics.error("'\(entry.key)' is not a kernel option name: write it as in .config, for example CONFIG_BTRFS_FS",
                                  at: entry.keyPosition, key: path)
                continue
            }
            let value: KernelOption.Value
            switch entry.value {
            case .string(let text, _):
                switch text {
                case "y": value = .yes
                case "m": value = .module
                case "n": value = .no
                default:
                    let isHex = text.hasPrefix("0x") && text.count > 2 && text.dropFirst(2).allSatisfy(\.isHexDigit)
                    value = isHex ? .hex(text) : .string(text)
                }
            case .boolean(let flag, _):
                value = flag ? .yes : .no
            case .integer(let number, _):
                value = .number(number)
            default:
                diagnostics.error("expected \"y\", \"m\", \"n\", a boolean, a number or a string, found \(entry.value.typeDescription)",
                                  at: entry.value.position, key: path)
                continue
            }
            result.append(KernelOption(name: entry.key, value: value))
        }
        return result
    }

    // MARK: [packages] and [[repositories]]

    func decodePackages(_ top: TableReader) -> PackageSpec? {
        guard top.has("packages") else {
            diagnostics.error("missing required table [packages] (at least 'install', the packages of snapshot 0)",
                              at: top.position, key: "packages")
            return nil
        }
        guard let table = top.table("packages", known: ["local", "aur", "install"]) else { return nil }
        let local = table.stringArray("local")?.value ?? []
        for path in local where path.value.isEmpty {
            diagnostics.error("a PKGBUILD directory path is empty", at: path.position, key: path.keyPath)
        }
        reportDuplicates(local.map { Located(value: resolve($0.value), position: $0.position, keyPath: $0.keyPath) }) {
            "PKGBUILD directory \($0)"
        }
        let aur = table.stringArray("aur")?.value ?? []
        for name in aur { check(name, Checks.packageName) }
        reportDuplicates(aur) { "AUR package '\($0)'" }

        var install: [Located<String>] = []
        if let located = table.stringArray("install") {
            install = located.value
            if located.value.isEmpty, (table.value("install")?.value.array ?? []).isEmpty {
                diagnostics.error("install must list at least one package", at: located.position, key: located.keyPath)
            }
            for name in install { check(name, Checks.packageName) }
            reportDuplicates(install) { "package '\($0)'" }
        } else if !table.has("install") {
            table.missing("install", "the packages to install into snapshot 0")
        }
        return PackageSpec(local: local.map { resolve($0.value) }, aur: aur.map(\.value), install: install.map(\.value))
    }

    func decodeRepositories(_ top: TableReader) -> [RepositorySpec] {
        guard let tables = top.arrayOfTables("repositories", known: ["name", "servers", "siglevel"]) else { return [] }
        var names: [Located<String>] = []
        var repositories: [RepositorySpec] = []
        for table in tables {
            let name = table.requiredString("name")
            if let name, check(name, Checks.repositoryName) { names.append(name) }
            var servers: [String] = []
            if let located = table.stringArray("servers") {
                if located.value.isEmpty, table.value("servers")?.value.array?.isEmpty == true {
                    diagnostics.error("servers must list at least one URL", at: located.position, key: located.keyPath)
                }
                for server in located.value { check(server, Checks.serverURL) }
                servers = located.value.map(\.value)
            } else if !table.has("servers") {
                table.missing("servers", "at least one server URL such as \"https://geo.mirror.pkgbuild.com/$repo/os/$arch\"")
            }
            var sigLevel: [String]?
            if let located = table.string("siglevel") {
                let (tokens, problem) = Checks.sigLevelTokens(located.value)
                if let problem {
                    diagnostics.error(problem, at: located.position, key: located.keyPath)
                }
                sigLevel = tokens
            }
            repositories.append(RepositorySpec(name: name?.value ?? "", servers: servers, sigLevel: sigLevel))
        }
        reportDuplicates(names) { "repository name '\($0)'" }
        return repositories
    }

    // MARK: [system], [[users]], [[files]]

    func decodeSystem(_ top: TableReader, recipeName: String) -> SystemSpec {
        var system = SystemSpec(hostname: recipeName, timezone: "UTC", locale: "C.UTF-8", kernelCommandLine: "",
                                rootPasswordHash: nil)
        guard let table = top.table("system", known: ["hostname", "timezone", "locale", "kernel_cmdline", "root_password_hash"]) else {
            return system
        }
        if let located = table.string("hostname"), check(located, Checks.hostname) { system.hostname = located.value }
        if let located = table.string("timezone"), check(located, Checks.timezone) { system.timezone = located.value }
        if let located = table.string("locale"), check(located, Checks.locale) { system.locale = located.value }
        if let located = table.string("kernel_cmdline"), check(located, Checks.kernelCommandLine) {
            system.kernelCommandLine = located.value
        }
        if let located = table.string("root_password_hash"), check(located, Checks.cryptHash) {
            system.rootPasswordHash = located.value
        }
        return system
    }

    func decodeUsers(_ top: TableReader) -> [UserSpec] {
        let known = ["name", "uid", "groups", "shell", "password_hash", "ssh_keys"]
        guard let tables = top.arrayOfTables("users", known: known) else { return [] }
        var users: [UserSpec] = []
        var names: [Located<String>] = []
        var uids: [Located<Int64>] = []
        for table in tables {
            var user = UserSpec(name: "", uid: nil, groups: [], shell: "/bin/sh", passwordHash: nil, sshKeys: [])
            if let name = table.requiredString("name"), check(name, { Checks.accountName($0, what: "user") }) {
                if name.value == "root" {
                    diagnostics.error("root is not a [[users]] entry: set its password with system.root_password_hash",
                                      at: name.position, key: name.keyPath)
                } else {
                    names.append(name)
                    user.name = name.value
                }
            }
            if let uid = table.integer("uid") {
                if (1...65533).contains(uid.value) {
                    user.uid = Int(uid.value)
                    uids.append(uid)
                } else {
                    diagnostics.error("uid \(uid.value) is out of range: use 1 to 65533 (0 is root, 65534 is nobody)",
                                      at: uid.position, key: uid.keyPath)
                }
            }
            if let groups = table.stringArray("groups") {
                for group in groups.value { check(group, { Checks.accountName($0, what: "group") }) }
                user.groups = groups.value.map(\.value)
            }
            if let shell = table.string("shell") {
                if shell.value.hasPrefix("/") {
                    user.shell = shell.value
                } else {
                    diagnostics.error("'\(shell.value)' is not an absolute path: give the shell as /bin/sh or /usr/bin/bash",
                                      at: shell.position, key: shell.keyPath)
                }
            }
            if let hash = table.string("password_hash"), check(hash, Checks.cryptHash) {
                user.passwordHash = hash.value
            }
            if let keys = table.stringArray("ssh_keys") {
                for key in keys.value { check(key, Checks.sshKey) }
                user.sshKeys = keys.value.map(\.value)
            }
            users.append(user)
        }
        reportDuplicates(names) { "user name '\($0)'" }
        reportDuplicates(uids) { "uid \($0)" }
        return users
    }

    func decodeFiles(_ top: TableReader) -> [FileOverlay] {
        guard let tables = top.arrayOfTables("files", known: ["source", "destination", "mode"]) else { return [] }
        var overlays: [FileOverlay] = []
        var destinations: [Located<String>] = []
        for table in tables {
            var overlay = FileOverlay(source: "", destination: "", mode: nil)
            if let source = table.requiredString("source") {
                if source.value.isEmpty {
                    diagnostics.error("the source path is empty", at: source.position, key: source.keyPath)
                }
                overlay.source = resolve(source.value)
            }
            if let destination = table.requiredString("destination") {
                let components = destination.value.split(separator: "/")
                if !destination.value.hasPrefix("/") {
                    diagnostics.error("'\(destination.value)' is not an absolute path in the image, such as /etc/motd",
                                      at: destination.position, key: destination.keyPath)
                } else if components.isEmpty || components.contains("..") || components.contains(".") {
                    diagnostics.error("'\(destination.value)' must name a file or directory below / without '.' or '..'",
                                      at: destination.position, key: destination.keyPath)
                } else {
                    overlay.destination = "/" + components.joined(separator: "/")
                    destinations.append(Located(value: overlay.destination, position: destination.position, keyPath: destination.keyPath))
                }
            }
            if let mode = table.string("mode") {
                let (value, problem) = Checks.fileMode(mode.value)
                if let problem { diagnostics.error(problem, at: mode.position, key: mode.keyPath) }
                overlay.mode = value
            }
            overlays.append(overlay)
        }
        reportDuplicates(destinations) { "destination \($0)" }
        return overlays
    }

    // MARK: [snapshots]

    func decodeSnapshots(_ top: TableReader) -> SnapshotSpec {
        var spec = SnapshotSpec(tree: [], deploy: 0)
        guard let table = top.table("snapshots", known: ["tree", "deploy"]) else { return spec }
        var ids: [Located<Int64>] = []
        var parents: [(node: Int, parent: Located<Int64>)] = []
        for entry in table.arrayOfTables("tree", known: ["id", "parent", "description"]) ?? [] {
            let id = entry.has("id") ? entry.integer("id") : nil
            if !entry.has("id") { entry.missing("id") }
            let parent = entry.has("parent") ? entry.integer("parent") : nil
            if !entry.has("parent") { entry.missing("parent", "use 0 for a child of the base snapshot") }
            let description = entry.string("description")?.value ?? ""
            if let id, id.value <= 0 {
                diagnostics.error("snapshot ids start at 1 (snapshot 0 is the base and always exists)", at: id.position, key: id.keyPath)
                continue
            }
            if let parent, parent.value < 0 {
                diagnostics.error("parent \(parent.value) is not a snapshot id: use 0 or the id of another snapshot",
                                  at: parent.position, key: parent.keyPath)
                continue
            }
            guard let id, let parent else { continue }
            ids.append(id)
            // A repeated id is reported below; its node takes no further part in the checks.
            if ids.dropLast().contains(where: { $0.value == id.value }) { continue }
            parents.append((Int(id.value), parent))
            spec.tree.append(.init(id: Int(id.value), parent: Int(parent.value), description: description))
        }
        reportDuplicates(ids) { "snapshot id \($0)" }

        let existing = Set(spec.tree.map(\.id)).union([0])
        let defined = "defined are 0" + (spec.tree.isEmpty ? "" : " and " + spec.tree.map { String($0.id) }.joined(separator: ", "))
        var parentOf: [Int: Int] = [:]
        for (node, parent) in parents { parentOf[node] = Int(parent.value) }
        var reportedCycles: Set<Int> = []
        for (node, parent) in parents {
            let parentID = Int(parent.value)
            if parentID == node {
                diagnostics.error("snapshot \(node) cannot be its own parent", at: parent.position, key: parent.keyPath)
            } else if !existing.contains(parentID) {
                diagnostics.error("parent snapshot \(parentID) does not exist (\(defined))", at: parent.position, key: parent.keyPath)
            } else if !reportedCycles.contains(node) {
                // Follow the parents; a chain that does not reach 0 is a cycle.
                var chain = [node]
                var current = parentID
                while current != 0, !chain.contains(current), let next = parentOf[current] {
                    chain.append(current)
                    current = next
                }
                if current != 0, current == node {
                    reportedCycles.formUnion(chain)
                    let loop = (chain + [node]).map(String.init).joined(separator: " → ")
                    diagnostics.error("snapshots form a cycle (\(loop)); every chain of parents must reach snapshot 0",
                                      at: parent.position, key: parent.keyPath)
                }
            }
        }
        if let deploy = table.integer("deploy") {
            if existing.contains(Int(deploy.value)) {
                spec.deploy = Int(deploy.value)
            } else {
                diagnostics.error("snapshot \(deploy.value) does not exist and cannot be deployed (\(defined))",
                                  at: deploy.position, key: deploy.keyPath)
            }
        }
        return spec
    }

    // MARK: [disk], [output], [boot_test]

    static let defaultDisk = DiskSpec(size: 2 << 30, biosBootSize: 1 << 20, espSize: 64 << 20, filesystemLabel: "rastos",
                                      compression: BtrfsCompression(algorithm: .zstd, level: nil), bootloader: .grub,
                                      firmware: [.bios, .uefi])

    func decodeDisk(_ top: TableReader) -> DiskSpec {
        var disk = RecipeDecoder.defaultDisk
        let known = ["size", "bios_boot_size", "esp_size", "filesystem_label", "compression", "bootloader", "firmware"]
        guard let table = top.table("disk", known: known) else { return disk }
        var sizesValid = true
        func partitionSize(_ key: String) -> Int64? {
            guard table.has(key) else { return nil }
            guard let located = table.size(key) else {
                sizesValid = false
                return nil
            }
            if located.value == 0 || located.value % DiskSpec.mebibyte != 0 {
                diagnostics.error("\(Recipe.describeSize(located.value)) is not a whole, non-zero number of MiB (partitions are aligned to 1 MiB)",
                                  at: located.position, key: located.keyPath)
                sizesValid = false
                return nil
            }
            return located.value
        }
        if let size = partitionSize("size") { disk.size = size }
        if let size = partitionSize("bios_boot_size") { disk.biosBootSize = size }
        if let size = partitionSize("esp_size") {
            if size < DiskSpec.minimumESPSize {
                diagnostics.error("an ESP of \(Recipe.describeSize(size)) is too small: FAT32 needs at least 32 MiB",
                                  at: table.value("esp_size")?.position ?? table.position, key: "disk.esp_size")
                sizesValid = false
            } else {
                disk.espSize = size
            }
        }
        if let label = table.string("filesystem_label") {
            if label.value.isEmpty || label.value.utf8.count > 255 || label.value.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                diagnostics.error("a btrfs label must be 1 to 255 bytes without control characters", at: label.position, key: label.keyPath)
            } else {
                disk.filesystemLabel = label.value
            }
        }
        if let located = table.string("compression"), let compression = parseCompression(located) {
            disk.compression = compression
        }
        if let located = table.string("bootloader") {
            if let bootloader = Bootloader(rawValue: located.value) {
                disk.bootloader = bootloader
            } else {
                diagnostics.error("'\(located.value)' is not a boot loader: use \"grub\" or \"limine\"", at: located.position, key: located.keyPath)
            }
        }
        if let firmware = firmwareList(table, key: "firmware") { disk.firmware = firmware }

        if sizesValid {
            let bios = disk.hasBIOSBootPartition ? disk.biosBootSize : 0
            let needed = DiskSpec.leadingSpace + bios + disk.espSize + DiskSpec.minimumRootSize + DiskSpec.trailingSpace
            if disk.size < needed {
                var parts = ["1 MiB (GPT and alignment)"]
                if disk.hasBIOSBootPartition { parts.append("\(mib(disk.biosBootSize)) (BIOS boot)") }
                parts += ["\(mib(disk.espSize)) (ESP)", "256 MiB (smallest root)", "1 MiB (backup GPT)"]
                diagnostics.error("a disk of \(mib(disk.size)) is too small for its partitions: it needs \(parts.joined(separator: " + ")) = \(mib(needed))",
                                  at: table.value("size")?.position ?? table.position, key: "disk.size")
            }
        }
        return disk
    }

    func mib(_ bytes: Int64) -> String {
        bytes % DiskSpec.mebibyte == 0 ? "\(bytes / DiskSpec.mebibyte) MiB" : Recipe.describeSize(bytes)
    }

    func parseCompression(_ located: Located<String>) -> BtrfsCompression? {
        let parts = located.value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let algorithm = BtrfsCompression.Algorithm(rawValue: String(parts[0])) else {
            diagnostics.error("'\(located.value)' is not a btrfs compression: use none, zlib, lzo or zstd (zlib:N and zstd:N set a level)",
                              at: located.position, key: located.keyPath)
            return nil
        }
        guard parts.count == 2 else { return BtrfsCompression(algorithm: algorithm, level: nil) }
        let levels: ClosedRange<Int>? = algorithm == .zlib ? 1...9 : algorithm == .zstd ? 1...15 : nil
        guard let levels else {
            diagnostics.error("\(algorithm.rawValue) has no compression levels: write \"\(algorithm.rawValue)\"", at: located.position, key: located.keyPath)
            return nil
        }
        guard let level = Int(parts[1]), levels.contains(level) else {
            diagnostics.error("'\(parts[1])' is not a \(algorithm.rawValue) level: use \(levels.lowerBound) to \(levels.upperBound)",
                              at: located.position, key: located.keyPath)
            return nil
        }
        return BtrfsCompression(algorithm: algorithm, level: level)
    }

    /// A non-empty list of distinct firmware names.
    func firmwareList(_ table: TableReader, key: String) -> [Firmware]? {
        guard let located = table.stringArray(key) else { return nil }
        if located.value.isEmpty {
            if table.value(key)?.value.array?.isEmpty == true {
                diagnostics.error("list at least one firmware: \"bios\", \"uefi\" or both", at: located.position, key: located.keyPath)
            }
            return nil
        }
        var result: [Firmware] = []
        var valid = true
        for name in located.value {
            guard let firmware = Firmware(rawValue: name.value) else {
                diagnostics.error("'\(name.value)' is not a firmware: use \"bios\" or \"uefi\"", at: name.position, key: name.keyPath)
                valid = false
                continue
            }
            result.append(firmware)
        }
        reportDuplicates(located.value) { "firmware '\($0)'" }
        return valid && Set(result).count == result.count && result.count == located.value.count ? result : nil
    }

    func decodeOutput(_ top: TableReader) -> OutputSpec {
        var output = OutputSpec(directory: Paths.resolve("output", relativeTo: workingDirectory), formats: [.raw, .qcow2],
                                qcow2Compression: .zstd, qcow2ClusterSize: 64 << 10)
        let known = ["directory", "formats", "qcow2_compression", "qcow2_cluster_size"]
        guard let table = top.table("output", known: known) else { return output }
        if let directory = table.string("directory") {
            if directory.value.isEmpty {
                diagnostics.error("the output directory is empty", at: directory.position, key: directory.keyPath)
            } else {
                output.directory = Paths.resolve(directory.value, relativeTo: workingDirectory)
            }
        }
        if let formats = table.stringArray("formats") {
            var result: [OutputFormat] = []
            for name in formats.value {
                if let format = OutputFormat(rawValue: name.value) {
                    result.append(format)
                } else {
                    diagnostics.error("'\(name.value)' is not an output format: use \"raw\" or \"qcow2\"", at: name.position, key: name.keyPath)
                }
            }
            reportDuplicates(formats.value) { "format '\($0)'" }
            if formats.value.isEmpty {
                diagnostics.error("list at least one output format: \"raw\", \"qcow2\" or both", at: formats.position, key: formats.keyPath)
            }
            if !result.isEmpty { output.formats = result.reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }
        }
        if let located = table.string("qcow2_compression") {
            if let compression = QCOW2Compression(rawValue: located.value) {
                output.qcow2Compression = compression
            } else {
                diagnostics.error("'\(located.value)' is not a qcow2 compression: use none, zlib or zstd", at: located.position, key: located.keyPath)
            }
        }
        if let located = table.size("qcow2_cluster_size") {
            if Checks.isPowerOfTwo(located.value), (512...(2 << 20)).contains(located.value) {
                output.qcow2ClusterSize = located.value
            } else {
                diagnostics.error("a qcow2 cluster size must be a power of two from 512 bytes to 2 MiB, not \(Recipe.describeSize(located.value))",
                                  at: located.position, key: located.keyPath)
            }
        }
        return output
    }

    func decodeBootTest(_ top: TableReader, disk: DiskSpec) -> BootTestSpec {
        var test = BootTestSpec(enabled: true, firmware: disk.firmware, timeout: 300, memory: 512 << 20)
        guard let table = top.table("boot_test", known: ["enabled", "firmware", "timeout", "memory"]) else { return test }
        if let enabled = table.boolean("enabled") { test.enabled = enabled.value }
        if let firmware = firmwareList(table, key: "firmware") {
            test.firmware = firmware
            for (index, item) in firmware.enumerated() where !disk.firmware.contains(item) {
                let path = "boot_test.firmware[\(index)]"
                diagnostics.error("'\(item.rawValue)' is not in disk.firmware (\(disk.firmware.map(\.rawValue).joined(separator: ", "))): the image cannot boot with it",
                                  at: diagnostics.positions[path] ?? table.position, key: path)
            }
        }
        if let timeout = table.integer("timeout") {
            if (1...86_400).contains(timeout.value) {
                test.timeout = Int(timeout.value)
            } else {
                diagnostics.error("a timeout of \(timeout.value) seconds is out of range: use 1 to 86400", at: timeout.position, key: timeout.keyPath)
            }
        }
        if let memory = table.size("memory") {
            if memory.value >= 64 << 20, memory.value % DiskSpec.mebibyte == 0 {
                test.memory = memory.value
            } else {
                diagnostics.error("guest memory must be a whole number of MiB, at least 64 MiB, not \(Recipe.describeSize(memory.value))",
                                  at: memory.position, key: memory.keyPath)
            }
        }
        return test
    }
}
