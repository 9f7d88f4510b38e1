import TOML

extension RecipeDecoder {
    // MARK: [kernel]

    func decodeKernel(_ table: TableReader) -> KernelSpec? {
        let origins = RecipeSchema.kernelOrigins.compactMap { key in table.string(key).map { (key, $0) } }
        let sha256 = table.string("sha256")
        let ref = table.string("ref")
        if origins.isEmpty {
            // A wrongly typed origin was reported already; only a truly absent one is "missing".
            if !RecipeSchema.kernelOrigins.contains(where: table.has) {
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
            for key in RecipeSchema.kernelBuildOnly {
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
}
