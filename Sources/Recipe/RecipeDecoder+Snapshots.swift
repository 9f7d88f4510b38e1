import TOML

extension RecipeDecoder {
    // MARK: [snapshots]

    func decodeSnapshots(_ top: TableReader) -> SnapshotSpec {
        var spec = SnapshotSpec(tree: [], deploy: 0)
        guard let table = top.table("snapshots", known: RecipeSchema.snapshots.keyNames) else { return spec }
        var ids: [Located<Int64>] = []
        var parents: [(node: Int, parent: Located<Int64>)] = []
        for entry in table.arrayOfTables("tree", known: RecipeSchema.snapshotTree.keyNames) ?? [] {
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
}
