import Foundation
import SystemSupport

extension SnapshotStore {
    /// Runs `arguments` chrooted into a working copy of snapshot `id`, with /proc, /sys, /dev,
    /// the shared /var and /home mounted. Exit status 0 commits the copy as the new `id`;
    /// anything else discards it (astOS's rule, which `chroot` and `run` share). The mounts
    /// are released in every case. Returns the command's exit status.
    @discardableResult
    package func run(in id: Int, _ arguments: [String], output: Command.Output = .inherit, interactive: Bool = false,
                    allowBase: Bool = false, command: String = "run") throws -> Int32 {
        let root = try prepareWorkingCopy(id, allowBase: allowBase, command: command)
        let status: Int32
        do {
            let mounts = try ChrootMounts(root: root, binds: [(layout.variable, "/var"), (layout.home, "/home")])
            defer { mounts.release() }
            let chroot = Command("chroot", [root] + arguments, environment: ["RAST_SNAPSHOT": String(id)],
                                 input: interactive ? .inherit : .null)
            status = try chroot.run(output: output, check: false).status
        } catch {
            try? discardWorkingCopy(id)
            throw error
        }
        if status == 0 {
            try commitWorkingCopy(id)
        } else {
            try discardWorkingCopy(id)
        }
        return status
    }

    /// The shell to start in a snapshot: bash when it has one, else sh.
    package func shell(in id: Int) -> String {
        Files.exists(layout.root(id) + "/bin/bash") ? "/bin/bash" : "/bin/sh"
    }

    /// Runs `arguments` in `id` and each of its descendants (parents first); each snapshot is
    /// committed only where the command succeeded. Returns the snapshots where it failed.
    package func treeRun(_ id: Int, _ arguments: [String], output: Command.Output = .inherit,
                        onEach: ((Int, Int32) -> Void)? = nil) throws -> [Int] {
        let state = try state()
        guard state.contains(id) else { throw SnapshotError.noSuchSnapshot(id) }
        var failed: [Int] = []
        for member in state.subtree(id) where member != 0 {
            let status = try run(in: member, arguments, output: output, command: "tree-run")
            onEach?(member, status)
            if status != 0 { failed.append(member) }
        }
        return failed
    }
}
