import Foundation
import SystemSupport
import TOML

/// Turns a TOML document into a `Recipe`, collecting every problem on the way.
struct RecipeDecoder {
    let baseDirectory: String
    let workingDirectory: String
    let diagnostics = Diagnostics()

    init(baseDirectory: String, workingDirectory: String) {
        self.baseDirectory = baseDirectory
        self.workingDirectory = workingDirectory
    }

    /// The recipe, or nil when a required part could not be read (the errors say why).
    func decode(_ document: TOMLTable, file: String, hash: String) -> Recipe? {
        let top = TableReader(document, path: "", known: RecipeSchema.topLevel.keyNames, diagnostics: diagnostics)
        var name = "recipe"
        if let located = top.requiredString("name") {
            check(located, Checks.recipeName)
            name = located.value
        }
        let description = top.string("description")?.value

        let kernel = top.table("kernel", known: RecipeSchema.kernel.keyNames).flatMap(decodeKernel)
        let packages = decodePackages(top)
        let repositories = decodeRepositories(top)
        let system = decodeSystem(top, recipeName: name)
        let users = decodeUsers(top)
        let files = decodeFiles(top)
        let snapshots = decodeSnapshots(top)
        let disk = decodeDisk(top)
        let output = decodeOutput(top)
        let bootTest = decodeBootTest(top, disk: disk)
        let network = decodeNetwork(top)
        let services = decodeServices(top, network: network, file: file)
        let containers = decodeContainers(top)

        guard let packages else { return nil }
        var recipe = Recipe(name: name, description: description, file: file, baseDirectory: baseDirectory,
                            recipeHash: hash, kernel: kernel, packages: packages, repositories: repositories,
                            system: system, users: users, files: files, snapshots: snapshots, disk: disk,
                            output: output, bootTest: bootTest, network: network, services: services, positions: diagnostics.positions)
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
}
