import TOML

extension RecipeDecoder {
    // MARK: [packages] and [[repositories]]

    func decodePackages(_ top: TableReader) -> PackageSpec? {
        guard top.has("packages") else {
            diagnostics.error("missing required table [packages] (at least 'install', the packages of snapshot 0)",
                              at: top.position, key: "packages")
            return nil
        }
        guard let table = top.table("packages", known: RecipeSchema.packages.keyNames) else { return nil }
        let local = table.stringArray("local")?.value ?? []
        for path in local where path.value.isEmpty {
            diagnostics.error("a PKGBUILD directory path is empty", at: path.position, key: path.keyPath)
        }
        reportDuplicates(local.map { $0.with(resolve($0.value)) }) {
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
        guard let tables = top.arrayOfTables("repositories", known: RecipeSchema.repositories.keyNames) else { return [] }
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
}
