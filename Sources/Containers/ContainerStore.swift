// Containers on disk: their records, bundles and logs, on the shared @var subvolume so that
// they are no part of system snapshots and outlive rast itself.
//
//   ROOT/                    (rast: /var/lib/rast/containers)
//     ID/container.json      the record: name, image, options, status, exit code, pids,
//                            the boot it ran in (written atomically, under ID/lock)
//     ID/config.json         the OCI runtime configuration (ID/ is the bundle)
//     ID/rootfs/             the root filesystem: a writable btrfs snapshot of the image's
//                            top layer stack (or of a system snapshot)
//     ID/log                 standard output and error of a detached container
//     lock                   held while containers are created and removed (names stay unique)
//
// crun keeps its own state in /run/rast/crun (tmpfs). `records()` reconciles the two: a
// record that says running while crun no longer knows the container, or that was written in
// an earlier boot, is corrected to exited, with the reason.
import Foundation
import OCI
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// What rast knows about one container.
package struct ContainerRecord: Codable, Sendable, Equatable {
    package enum Status: String, Codable, Sendable {
        case created, running, exited
    }

    package var id: String
    package var name: String
    /// The image's name, or "snapshot N".
    package var image: String
    package var imageID: String?
    package var snapshot: Int?
    package var command: [String]
    package var options: RunOptions
    package var status: Status
    package var exitCode: Int32?
    /// Why the status is what it is, when rast had to work it out ("the system restarted").
    package var note: String?
    /// The container's init process (host PID namespace).
    package var pid: Int32?
    /// The rast process waiting for the container (the monitor of a detached container, or
    /// the `run` in the foreground) and its start time, to tell it from a reused PID.
    package var monitorPID: Int32?
    package var monitorStart: UInt64?
    package var created: Int64
    package var started: Int64?
    package var finished: Int64?
    package var bootID: String
    /// How often s6 restarted it (containers with a restart policy).
    package var restarts: Int?

    package var shortID: String { String(id.prefix(12)) }
}

/// The containers below one directory and the crun state directory they run in.
package final class ContainerStore {
    package static let defaultRoot = "/var/lib/rast/containers"

    package let root: String
    package let crun: Crun
    package let volumes: Volumes

    package init(root: String = ContainerStore.defaultRoot, crun: Crun = Crun()) throws {
        self.root = root
        self.crun = crun
        try Files.createDirectory(root, mode: 0o711)
        volumes = Volumes.detect(root)
    }

    package func directory(_ id: String) -> String { root + "/" + id }
    package func rootfs(_ id: String) -> String { root + "/" + id + "/rootfs" }
    package func logPath(_ id: String) -> String { root + "/" + id + "/log" }

    /// Held while containers are created or removed.
    package func lock() throws -> FileLock { try FileLock(path: root + "/lock", wait: true) }

    /// Every container, reconciled with crun, sorted by creation (newest first).
    package func records() throws -> [ContainerRecord] {
        var records: [ContainerRecord] = []
        for name in try FileManagerShim.contents(of: root) where Files.exists(root + "/" + name + "/container.json") {
            guard let record = try? read(name) else { continue }
            records.append(try reconcile(record))
        }
        return records.sorted { ($0.created, $0.id) > ($1.created, $1.id) }
    }

    /// The container named `text`: its name, its ID or an unambiguous ID prefix.
    package func find(_ text: String) throws -> ContainerRecord {
        let all = try records()
        if let named = all.first(where: { $0.name == text || $0.id == text }) { return named }
        let matches = text.count >= 3 ? all.filter { $0.id.hasPrefix(text) } : []
        if matches.count == 1, let match = matches.first { return match }
        if matches.count > 1 { throw ContainerError.ambiguous(text, matches: matches.map(\.shortID)) }
        throw ContainerError.notFound(text)
    }

    package func read(_ id: String) throws -> ContainerRecord {
        let path = directory(id) + "/container.json"
        do {
            return try JSONDecoder().decode(ContainerRecord.self, from: Data(try Files.read(path)))
        } catch {
            throw ContainerError.record(path: path, reason: "cannot be read: \(error)")
        }
    }

    package func save(_ record: ContainerRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Files.writeAtomically(directory(record.id) + "/container.json", bytes: Array(try encoder.encode(record)), mode: 0o600)
    }

    /// Reads, changes and writes a record under the container's own lock.
    @discardableResult
    package func update(_ id: String, _ change: (inout ContainerRecord) throws -> Void) throws -> ContainerRecord {
        let lock = try FileLock(path: directory(id) + "/lock", wait: true)
        defer { lock.unlock() }
        var record = try read(id)
        try change(&record)
        try save(record)
        return record
    }

    /// Corrects a record that says created or running when the container is gone.
    package func reconcile(_ record: ContainerRecord) throws -> ContainerRecord {
        guard record.status != .exited else { return record }
        if record.bootID != Self.bootID() {
            return try update(record.id) {
                $0.status = .exited
                $0.note = "the system restarted while it ran"
                $0.pid = nil
            }
        }
        if Self.isAlive(record.monitorPID, start: record.monitorStart) { return record }
        // Nobody waits for it any more (rast was killed): crun tells the truth.
        let state = try crun.state(record.id)
        if let state, state.status == "running" || state.status == "created" || state.status == "creating" {
            return record
        }
        if state != nil { try? crun.delete(record.id, force: true) }
        return try update(record.id) {
            $0.status = .exited
            $0.note = state == nil ? "crun no longer knows it (rast was stopped while it ran)" : "it stopped while no rast process waited for it"
            $0.finished = $0.finished ?? Int64(time(nil))
        }
    }

    /// Deletes a container that is not running: crun's state, its cgroup, its root
    /// filesystem and its directory.
    /// `runtimeKnows: false` skips asking crun (after `crun run`, which deletes its state).
    package func delete(_ record: ContainerRecord, runtimeKnows: Bool = true) throws {
        if runtimeKnows, (try? crun.state(record.id)) != nil { try crun.delete(record.id, force: true) }
        try volumes.delete(rootfs(record.id))
        try Files.removeTree(directory(record.id))
    }

    // MARK: - Process identity

    /// This boot's identity (/proc/sys/kernel/random/boot_id).
    package static func bootID() -> String {
        ((try? Files.readString("/proc/sys/kernel/random/boot_id")) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// When a process started (clock ticks since boot, /proc/PID/stat field 22), nil when gone.
    package static func startTime(_ pid: Int32) -> UInt64? {
        guard let stat = try? Files.readString("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "pid (comm)" come the fields from 3 on: field 22 is the 20th of them.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    static func isAlive(_ pid: Int32?, start: UInt64?) -> Bool {
        guard let pid, pid > 0, let started = startTime(pid) else { return false }
        return start == nil || started == start
    }
}
