// `rast container`: containers from images in the store (or from a system snapshot) run by
// crun. The engine writes the bundle, then either runs the container in the foreground
// (`crun run`, with the terminal or the caller's streams) or hands it to a monitor process
// that creates and starts it with crun, waits for it as its subreaper, records the exit
// status and deletes crun's state (and, with --rm, the container).
import CLinux
import Foundation
import OCI
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Container resource use from its cgroup (v2).
package struct ContainerStats: Sendable, Equatable, Codable {
    package var memoryBytes: Int64?
    package var memoryLimit: Int64?
    package var oomKills: Int64?
    package var cpuMicroseconds: Int64?
    package var pids: Int64?
    package var pidsLimit: Int64?
}

package final class ContainerEngine {
    package let containers: ContainerStore
    package let images: ImageStore
    /// The command line of the monitor of a detached container, given its ID (rast itself:
    /// `/proc/self/exe container _monitor ID`).
    package var monitorCommand: @Sendable (String) -> [String] = { ["/proc/self/exe", "container", "_monitor", $0] }
    /// s6's scan directory for containers with a restart policy; nil where none can be
    /// supervised (stores below `--data`).
    package var supervision: RestartSupervision? = RestartSupervision()
    /// The rast program and data directory the service's run script calls.
    package var supervisedCommand: (rast: String, dataDirectory: String) = ("/usr/bin/rast", "/var/lib/rast")

    package init(containers: ContainerStore, images: ImageStore) {
        self.containers = containers
        self.images = images
        Trace.mark("stores open")
    }

    /// Where a container's root filesystem comes from.
    package enum RootSource {
        case image(StoredImage)
        /// A system snapshot's read-only root (its number and path); the container writes to
        /// a snapshot of it.
        case snapshot(Int, path: String)
    }

    // MARK: - Creating and running

    /// Creates the container: its root filesystem, bundle and record (status created).
    package func create(from source: RootSource, options: RunOptions) throws -> ContainerRecord {
        try options.checkRestart()
        if options.isSupervised { _ = try runningSupervision(options) }
        if let name = options.name, !RunOptions.isValidName(name) {
            throw ContainerError.invalidOption("--name \(name)", reason: "a name starts with a letter or digit and holds only letters, digits, '_', '.' and '-'")
        }
        for volume in options.volumes where !Files.exists(volume.host) {
            throw ContainerError.invalidOption("-v \(volume)", reason: "\(volume.host) does not exist")
        }
        Trace.mark("create")
        let lock = try containers.lock()
        defer { lock.unlock() }
        let existing = try containers.records()
        Trace.mark("records read")
        let id = Self.newID()
        let name = options.name ?? String(id.prefix(12))
        if let taken = existing.first(where: { $0.name == name }) { throw ContainerError.nameInUse(name, id: taken.id) }

        let directory = containers.directory(id)
        // Traversable, not listable: in a user namespace the container's root (a
        // subordinate ID on the host) must reach its rootfs/ through here.
        try Files.createDirectory(directory, mode: 0o711)
        try SystemError.check("chmod", path: directory) { chmod(directory, 0o711) }
        do {
            let rootfs = containers.rootfs(id)
            let imageName: String
            var imageID: String?
            var snapshot: Int?
            var runConfig: ImageConfiguration.RunConfig?
            switch source {
            case .image(let image):
                try images.copyRoot(of: image, to: rootfs)
                Trace.mark("root filesystem snapshot")
                imageName = image.name
                imageID = image.id.description
                runConfig = try images.configuration(of: image).config
            case .snapshot(let number, let path):
                try containers.volumes.copy(path, to: rootfs)
                imageName = "snapshot \(number)"
                snapshot = number
            }
            var mapping: RuntimeSpec.IDMapping?
            if options.userNamespace {
                let range = Bundle.subordinateRange()
                try Self.shiftOwnership(rootfs, by: range.hostID, limit: range.size)
                mapping = range
            }
            let spec = try Bundle.spec(id: id, name: name, options: options, image: runConfig, imageName: imageName,
                                       rootfs: rootfs, idMapping: mapping)
            try Bundle.write(spec, to: directory)
            Trace.mark("config.json written")
            let record = ContainerRecord(id: id, name: name, image: imageName, imageID: imageID, snapshot: snapshot,
                                         command: spec.process.args, options: options, status: .created, exitCode: nil,
                                         note: nil, pid: nil, monitorPID: nil, monitorStart: nil, created: Int64(time(nil)),
                                         started: nil, finished: nil, bootID: ContainerStore.bootID())
            try containers.save(record)
            Trace.mark("record written")
            return record
        } catch {
            try? containers.volumes.delete(containers.rootfs(id))
            try? Files.removeTree(directory)
            throw error
        }
    }

    /// Runs a created container. In the foreground it returns the container's exit status;
    /// detached it returns 0 once the container runs.
    package func start(_ record: ContainerRecord) throws -> Int32 {
        try Files.createDirectory(containers.crun.root, mode: 0o700)
        if record.options.isSupervised {
            try startSupervised(record)
            return 0
        }
        if record.options.detach {
            let (_, ready) = try DetachedProcess.spawn(monitorCommand(record.id), log: containers.logPath(record.id))
            let answer = DetachedProcess.readAll(ready).trimmingCharacters(in: .whitespacesAndNewlines)
            guard answer == "ok" else {
                let log = (try? Files.readString(containers.logPath(record.id)))?.split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
                throw ContainerError.runtime(command: "starting container \(record.name)", status: 1,
                                             output: answer.isEmpty ? log : answer)
            }
            return 0
        }
        let me = getpid()
        try containers.update(record.id) {
            $0.status = .running
            $0.started = Int64(time(nil))
            $0.monitorPID = me
            $0.monitorStart = ContainerStore.startTime(me)
        }
        Trace.mark("crun run")
        let status = try containers.crun.run(record.id, bundle: containers.directory(record.id),
                                             standardInput: record.options.interactive || record.options.tty)
        let finished = try containers.update(record.id) {
            $0.status = .exited
            $0.exitCode = status
            $0.finished = Int64(time(nil))
            $0.monitorPID = nil
        }
        Trace.mark("crun run returned, exit recorded")
        if finished.options.remove {
            try containers.delete(finished, runtimeKnows: false)
            Trace.mark("removed")
        }
        return status
    }

    /// The monitor of a detached container (`rast container _monitor ID`): creates and starts
    /// it, says "ok" on descriptor 3, waits for it, records how it ended.
    package func monitor(_ id: String) throws {
        let ready = Int32(3)
        _ = fcntl(ready, F_SETFD, FD_CLOEXEC)  // crun and the container must not hold it open
        func answer(_ text: String) {
            let bytes = Array((text + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(ready, $0.baseAddress, $0.count) }
            close(ready)
        }
        let pid: Int32
        do {
            guard rast_set_child_subreaper() == 0 else { throw SystemError("prctl(PR_SET_CHILD_SUBREAPER)") }
            let number = try createAndStart(containers.read(id))
            pid = number
            let me = getpid()
            try containers.update(id) {
                $0.status = .running
                $0.pid = number
                $0.started = Int64(time(nil))
                $0.monitorPID = me
                $0.monitorStart = ContainerStore.startTime(me)
            }
        } catch {
            noteFailedStart(id, error)
            answer("\(error)")
            throw error
        }
        answer("ok")
        let record = try recordExit(id, status: DetachedProcess.wait(for: pid))
        if record.options.remove { try containers.delete(record) }
    }

    /// Creates and starts container `id` with crun (the caller its subreaper) and returns the
    /// PID of its first process.
    private func createAndStart(_ record: ContainerRecord) throws -> Int32 {
        let pidFile = containers.directory(record.id) + "/pid"
        try containers.crun.create(record.id, bundle: containers.directory(record.id), pidFile: pidFile)
        guard let text = try? Files.readString(pidFile), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ContainerError.runtime(command: "crun create \(record.name)", status: 1, output: "no PID in \(pidFile)")
        }
        try containers.crun.start(record.id)
        return pid
    }

    /// After a failed start: what crun has of the container goes, its record says why.
    private func noteFailedStart(_ id: String, _ error: any Error) {
        try? containers.crun.delete(id, force: true)
        _ = try? containers.update(id) {
            $0.status = .exited
            $0.note = "it did not start: \(error)"
        }
    }

    /// After the container's first process ended with `status` (negative: no exit status):
    /// what crun has of it goes, its record says it exited.
    @discardableResult
    private func recordExit(_ id: String, status: Int32) throws -> ContainerRecord {
        try? containers.crun.delete(id, force: true)
        return try containers.update(id) {
            $0.status = .exited
            $0.exitCode = status >= 0 ? status : nil
            $0.finished = Int64(time(nil))
            $0.monitorPID = nil
            $0.pid = nil
        }
    }

    // MARK: - Supervised by s6

    /// The supervision a restart policy needs, or why there is none.
    package func runningSupervision(_ options: RunOptions) throws -> RestartSupervision {
        let policy = options.restart?.description ?? "no"
        guard let supervision else {
            throw ContainerError.invalidOption("--restart \(policy)", reason: "containers below --data cannot be restarted: s6 supervises only the system's containers in /var/lib/rast")
        }
        guard supervision.waitUntilRunning(seconds: 5) else {
            throw ContainerError.invalidOption("--restart \(policy)", reason: "no s6-svscan supervises \(supervision.scanDirectory) (install s6; rast's services start it at boot, see docs/services.md)")
        }
        return supervision
    }

    /// Hands the container to s6 and waits until it ran (or did not start).
    func startSupervised(_ record: ContainerRecord) throws {
        let supervision = try runningSupervision(record.options)
        try supervision.install(id: record.id, name: record.name, policy: record.options.restart ?? .no,
                                rast: supervisedCommand.rast, dataDirectory: supervisedCommand.dataDirectory,
                                log: containers.logPath(record.id))
        let deadline = Stopwatch.now() + 60
        while Stopwatch.now() < deadline {
            let current = try containers.read(record.id)
            if current.started != nil { return }
            if let note = current.note {
                try? supervision.down(record.id)
                try? supervision.remove(record.id)
                throw ContainerError.runtime(command: "starting container \(record.name)", status: 1, output: note)
            }
            usleep(50_000)
        }
        try? supervision.down(record.id)
        throw ContainerError.runtime(command: "starting container \(record.name)", status: 1, output: "s6 did not start it within 60 s (see \(supervision.directory(record.id)))")
    }

    /// `rast container _supervised ID`, the run program of the container's s6 service: creates
    /// and starts the container, waits for it as its subreaper, records how it ended and
    /// returns its exit status (for the finish script's policy).
    package func superviseRun(_ id: String) throws -> Int32 {
        // s6-svc -d signals this process; `rast container stop` stops the container itself
        // (with the image's stop signal and the timeout), so the signal is noted and waited out.
        signal(SIGTERM) { _ in }
        signal(SIGHUP) { _ in }
        let pid: Int32
        do {
            guard rast_set_child_subreaper() == 0 else { throw SystemError("prctl(PR_SET_CHILD_SUBREAPER)") }
            let record = try containers.read(id)
            try? containers.crun.delete(id, force: true)  // a run before this one that was cut short
            try Files.createDirectory(containers.crun.root, mode: 0o700)
            let number = try createAndStart(record)
            pid = number
            let me = getpid()
            let restarts = supervision?.restarts(id) ?? 0
            try containers.update(id) {
                $0.status = .running
                $0.pid = number
                $0.started = Int64(time(nil))
                $0.finished = nil
                $0.exitCode = nil
                $0.note = nil
                $0.monitorPID = me
                $0.monitorStart = ContainerStore.startTime(me)
                $0.restarts = restarts
                $0.bootID = ContainerStore.bootID()
            }
        } catch {
            noteFailedStart(id, error)
            throw error
        }
        let status = DetachedProcess.wait(for: pid)
        try recordExit(id, status: status)
        return status
    }

    // MARK: - Stopping and removing

    /// Sends the stop signal (the image's, else SIGTERM), waits up to `timeout` seconds,
    /// then SIGKILL. Returns false when the container was not running.
    @discardableResult
    package func stop(_ name: String, timeout: Double = 10) throws -> Bool {
        var record = try containers.find(name)
        if record.options.isSupervised, let supervision, supervision.exists(record.id) {
            // s6 must not start it again; a restart under way may just have started it: its
            // run program is up, the container about to say running.
            try supervision.down(record.id)
            let deadline = Stopwatch.now() + 10
            record = try containers.reconcile(try containers.read(record.id))
            while record.status != .running, supervision.isUp(record.id) == true, Stopwatch.now() < deadline {
                usleep(50_000)
                record = try containers.reconcile(try containers.read(record.id))
            }
        }
        guard record.status == .running else { return false }
        let signal = stopSignal(record)
        try? containers.crun.kill(record.id, signal: signal)
        if try waitUntilStopped(record, seconds: timeout) { return true }
        try? containers.crun.kill(record.id, signal: "KILL", all: true)
        if try waitUntilStopped(record, seconds: 10) { return true }
        throw ContainerError.runtime(command: "stopping \(record.name)", status: 1, output: "it still runs 10 s after SIGKILL")
    }

    /// Sends a signal to the container's init.
    package func kill(_ name: String, signal: String) throws {
        let record = try containers.find(name)
        guard record.status == .running else { throw ContainerError.notRunning(record.name) }
        try containers.crun.kill(record.id, signal: signal)
    }

    /// Removes containers; a running one only with `force` (it is killed first).
    package func remove(_ names: [String], force: Bool) throws -> [String] {
        var removed: [String] = []
        for name in names {
            var record = try containers.find(name)
            if record.status == .running, !force { throw ContainerError.running(record.name, action: "remove") }
            let supervised = record.options.isSupervised && supervision?.exists(record.id) == true
            if supervised, let supervision {
                try supervision.down(record.id)
                record = try containers.reconcile(try containers.read(record.id))
            }
            if record.status == .running {
                try? containers.crun.kill(record.id, signal: "KILL", all: true)
                _ = try waitUntilStopped(record, seconds: 10)
                record = try containers.reconcile(try containers.read(record.id))
            }
            // A monitor that is still recording the exit finishes first.
            let deadline = Stopwatch.now() + 5
            while ContainerStore.isAlive(record.monitorPID, start: record.monitorStart), Stopwatch.now() < deadline {
                usleep(20_000)
                guard let fresh = try? containers.read(record.id) else { break }
                record = fresh
            }
            if supervised, let supervision { try supervision.remove(record.id) }
            let lock = try containers.lock()
            defer { lock.unlock() }
            if Files.exists(containers.directory(record.id)) { try containers.delete(record) }
            removed.append(record.name)
        }
        return removed
    }

    /// Runs a command in a running container; returns its exit status.
    package func exec(_ name: String, arguments: [String], tty: Bool, environment: [String], workingDirectory: String?, user: String?) throws -> Int32 {
        let record = try containers.find(name)
        guard record.status == .running else { throw ContainerError.notRunning(record.name) }
        var userSpec: String?
        if let user {
            let resolved = try Bundle.resolveUser(user, rootfs: containers.rootfs(record.id))
            userSpec = "\(resolved.uid):\(resolved.gid)"
        }
        return try containers.crun.exec(record.id, arguments: arguments, tty: tty, environment: environment,
                                        workingDirectory: workingDirectory, user: userSpec)
    }

    /// Writes the container's log to `output`; with `follow`, goes on until it exits.
    package func logs(_ name: String, follow: Bool, output: (ArraySlice<UInt8>) -> Void) throws {
        let record = try containers.find(name)
        let path = containers.logPath(record.id)
        var offset = 0
        while true {
            if let bytes = try? Files.read(path), bytes.count > offset {
                output(bytes[offset...])
                offset = bytes.count
            }
            guard follow, (try? containers.reconcile(try containers.read(record.id)))?.status == .running else { break }
            try checkCancelled()
            usleep(100_000)
        }
        if follow, let bytes = try? Files.read(path), bytes.count > offset { output(bytes[offset...]) }
    }

    /// The container's cgroup figures.
    package func stats(_ name: String) throws -> ContainerStats {
        let record = try containers.find(name)
        guard record.status == .running else { throw ContainerError.notRunning(record.name) }
        let cgroup = Self.cgroupDirectory(pid: record.pid) ?? "/sys/fs/cgroup" + Bundle.cgroupPath(id: record.id)
        func value(_ file: String) -> Int64? {
            guard let text = try? Files.readString(cgroup + "/" + file) else { return nil }
            return Int64(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        func field(_ file: String, _ key: String) -> Int64? {
            guard let text = try? Files.readString(cgroup + "/" + file) else { return nil }
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ")
                if parts.count == 2, parts[0] == key { return Int64(parts[1]) }
            }
            return nil
        }
        return ContainerStats(memoryBytes: value("memory.current"), memoryLimit: value("memory.max"),
                              oomKills: field("memory.events", "oom_kill"), cpuMicroseconds: field("cpu.stat", "usage_usec"),
                              pids: value("pids.current"), pidsLimit: value("pids.max"))
    }

    /// The cgroup directory of a process (cgroup v2: the "0::PATH" line).
    static func cgroupDirectory(pid: Int32?) -> String? {
        guard let pid, let text = try? Files.readString("/proc/\(pid)/cgroup") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("0::") {
            return "/sys/fs/cgroup" + line.dropFirst(3)
        }
        return nil
    }

    // MARK: - Helpers

    private func stopSignal(_ record: ContainerRecord) -> String {
        guard let id = record.imageID, let digest = try? Digest(parsing: id),
              let image = try? images.images().first(where: { $0.id == digest }),
              let signal = try? images.configuration(of: image).config?.stopSignal, !signal.isEmpty else { return "TERM" }
        return signal.hasPrefix("SIG") ? String(signal.dropFirst(3)) : signal
    }

    /// Waits until the record says exited or crun says stopped; true when it did in time.
    private func waitUntilStopped(_ record: ContainerRecord, seconds: Double) throws -> Bool {
        let deadline = Stopwatch.now() + seconds
        while Stopwatch.now() < deadline {
            let current = try containers.reconcile(try containers.read(record.id))
            if current.status == .exited { return true }
            if !ContainerStore.isAlive(current.monitorPID, start: current.monitorStart) {
                let state = try containers.crun.state(record.id)
                if state == nil || state?.status == "stopped" {
                    _ = try containers.reconcile(current)
                    return true
                }
            }
            usleep(50_000)
        }
        return false
    }

    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()  // getrandom(2)
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// Moves every file's owner and group up by `offset` (those below `limit`), so that a
    /// user namespace mapping 0 to `offset` sees them as before.
    static func shiftOwnership(_ root: String, by offset: UInt32, limit: UInt32) throws {
        var info = stat()
        guard lstat(root, &info) == 0 else { throw SystemError("stat", path: root) }
        if info.st_uid < limit, info.st_gid < limit {
            try SystemError.check("lchown", path: root) { lchown(root, info.st_uid + offset, info.st_gid + offset) }
            // chown clears setuid/setgid bits; put them back.
            if (info.st_mode & S_IFMT) != S_IFLNK, info.st_mode & 0o6000 != 0 { chmod(root, info.st_mode & 0o7777) }
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in try FileManagerShim.contents(of: root) {
                try shiftOwnership(root + "/" + name, by: offset, limit: limit)
            }
        }
    }
}
