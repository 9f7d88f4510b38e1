import Foundation
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The astOS command set on a `HostSession`. Each method is one `rast` command; output goes through
/// `host.output`, errors are thrown.
extension HostSession {
    func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    package func tree(json: Bool) throws {
        let view = try store.treeView()
        output(json ? try self.json(view) : view.render())
    }

    package func current(json: Bool) throws {
        guard let id = try store.currentSnapshot() else { throw UserError("no snapshot is deployed yet") }
        if json {
            struct Current: Encodable { let snapshot: Int; let slot: String? }
            output(try self.json(Current(snapshot: id, slot: store.runningSlot(try store.state()))))
        } else {
            output(String(id))
        }
    }

    package func status(json: Bool) throws {
        let report = try store.status()
        output(json ? try self.json(report) : report.lines.joined(separator: "\n"))
    }

    package func describe(_ id: Int, _ text: String) throws {
        try store.setDescription(id, text)
    }

    /// clone (parent nil), branch, cbranch and ubranch; prints the new snapshot's number.
    package func copy(_ source: Int, parent: Int?, description: String?) throws {
        let state = try store.state()
        guard let record = state.record(source) else { throw SnapshotError.noSuchSnapshot(source) }
        let text = description ?? record.description
        let id = try store.copy(source, parent: parent, description: text)
        output("created snapshot \(id) from \(source)")
    }

    package func cloneBranch(_ source: Int, description: String?) throws {
        guard let record = try store.state().record(source) else { throw SnapshotError.noSuchSnapshot(source) }
        try copy(source, parent: record.parent, description: description)
    }

    package func cloneTree(_ source: Int) throws {
        guard let record = try store.state().record(source) else { throw SnapshotError.noSuchSnapshot(source) }
        let mapping = try store.copyTree(source, parent: record.parent)
        for (old, new) in mapping.sorted(by: { $0.value < $1.value }) { output("created snapshot \(new) from \(old)") }
    }

    package func newTree(description: String?) throws {
        let id = try store.copy(0, parent: nil, description: description ?? "")
        output("created snapshot \(id), a new tree from the base snapshot")
    }

    /// Deletes `id` and its descendants, asking first unless `assumeYes`.
    package func delete(_ ids: [Int], assumeYes: Bool, confirm: (String) -> Bool) throws {
        for id in ids {
            if let reason = try store.deletionRefusal(id) { throw SnapshotError.refusingToDelete(id: id, reason: reason) }
            let subtree = try store.state().subtree(id)
            if !assumeYes {
                let what = subtree.count == 1 ? "snapshot \(id)" : "snapshot \(id) and its descendants \(subtree.dropFirst().map(String.init).joined(separator: ", "))"
                guard confirm("delete \(what)?") else { throw SnapshotError.cancelled }
            }
            let deleted = try store.delete(id)
            SearchCommands.removeIndexes(of: deleted, layout: store.layout)
            output("deleted snapshot\(deleted.count == 1 ? "" : "s") \(deleted.map(String.init).joined(separator: ", "))")
        }
    }

    /// A shell (or `command`) in a working copy of `id`: exit status 0 commits, anything
    /// else discards.
    package func runInSnapshot(_ id: Int, command: [String]?, commandName: String) throws -> Int32 {
        let interactive = command == nil
        let arguments = command.map { ["/bin/sh", "-c", $0.joined(separator: " ")] } ?? [store.shell(in: id)]
        if interactive {
            output("snapshot \(id): `exit 0` keeps your changes, any other exit status discards them")
        }
        let status = try store.run(in: id, arguments, output: .inherit, interactive: interactive, command: commandName)
        output(status == 0 ? "committed snapshot \(id)" : "discarded the changes to snapshot \(id) (exit status \(status))")
        return status
    }

    package func treeRun(_ id: Int, command: [String]) throws -> [Int] {
        let failed = try store.treeRun(id, ["/bin/sh", "-c", command.joined(separator: " ")], output: .inherit) { [output] member, status in
            output(status == 0 ? "snapshot \(member): committed" : "snapshot \(member): failed (exit status \(status)), left unchanged")
        }
        return failed
    }

    package func deploy(_ id: Int) throws {
        try store.deploy(id)
        let next = try store.state().next ?? "?"
        output("snapshot \(id) is deployed to slot \(next) and boots next")
    }

    package func rollback() throws {
        let id = try store.rollback()
        output("the previous deployment (snapshot \(id)) boots next")
    }

    package func updateBootEntries() throws {
        try store.updateBootEntries()
        output("regenerated the boot entries from the deployments")
    }

    package func clearWorkingCopies() throws {
        let removed = try store.removeWorkingCopies()
        output(removed.isEmpty ? "no working copies" : removed.map { "removed \($0)" }.joined(separator: "\n"))
    }

    package func unlock(_ id: Int) throws {
        try store.discardWorkingCopy(id)
        output("removed the working copy of snapshot \(id)")
    }

    /// Exit status 0 when consistent (after repairs when asked).
    package func check(repair: Bool, json: Bool) throws -> Bool {
        if repair {
            for action in try store.repair() { output(action) }
        }
        let report = try store.check()
        if json {
            output(try self.json(report))
        } else if report.lines.isEmpty {
            output("the snapshot tree is consistent")
        } else {
            output(report.lines.joined(separator: "\n"))
            if report.isConsistent { output("the snapshot tree is consistent") }
        }
        return report.isConsistent
    }

    /// Saves the running /etc into the booted snapshot (astOS's etc-update).
    package func etcUpdate() throws {
        guard live else { throw SnapshotError.liveOnly(command: "etc-update") }
        guard let id = try store.currentSnapshot() else { throw UserError("no snapshot is deployed") }
        let root = try store.prepareWorkingCopy(id, command: "etc-update")
        do {
            try SnapshotStore.replaceContents(of: root + "/etc", with: "/etc")
            try store.commitWorkingCopy(id)
        } catch {
            try? store.discardWorkingCopy(id)
            throw error
        }
        output("saved the running /etc into snapshot \(id)")
    }

    /// Edits /etc/rast.conf of `id` with $EDITOR; saving and quitting with status 0 commits.
    package func editConfig(_ id: Int, editor: String) throws -> Int32 {
        let root = try store.prepareWorkingCopy(id, command: "edit-conf")
        let status: Int32
        do {
            status = try Command(editor, [root + "/etc/rast.conf"], input: .inherit).run(output: .inherit, check: false).status
        } catch {
            try? store.discardWorkingCopy(id)
            throw error
        }
        if status == 0 {
            try store.commitWorkingCopy(id)
            output("committed snapshot \(id)")
        } else {
            try store.discardWorkingCopy(id)
            output("discarded the changes to snapshot \(id) (the editor exited with status \(status))")
        }
        return status
    }

    /// A shell in the running deployment, writable; changes are lost at the next deploy.
    package func liveChroot() throws -> Int32 {
        guard live, let slot = store.bootedSlot else { throw SnapshotError.liveOnly(command: "live-chroot") }
        let root = store.layout.root(slot)
        output("live shell in slot \(slot): changes apply at once and are lost at the next deploy")
        let mounts = try ChrootMounts(root: root, binds: [(store.layout.variable, "/var"), (store.layout.home, "/home"),
                                                          (store.layout.etc(slot), "/etc")])
        defer { mounts.release() }
        return try Command("chroot", [root, Files.exists(root + "/bin/bash") ? "/bin/bash" : "/bin/sh"], input: .inherit)
            .run(output: .inherit, check: false).status
    }
}

