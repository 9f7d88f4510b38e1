import Foundation
import SystemSupport

/// The small state file `rast-build vm IMAGE` keeps beside the image while its machine runs
/// (`IMAGE.vm.json`), so that `rast-build ssh IMAGE` finds the machine: QEMU's process id
/// (with its start time, so that a reused id is not taken for the machine), the SSH port
/// forwarded from 127.0.0.1, and the user and key to log in with. The `vm` command removes it
/// when QEMU ends; one left behind (the `vm` command itself was killed) is recognised as stale
/// because its process is gone.
package struct MachineRecord: Codable, Sendable, Equatable {
    package var image: String
    /// QEMU's process id and its start time (field 22 of /proc/PID/stat).
    package var pid: Int32
    package var processStart: UInt64?
    /// The guest's SSH port, forwarded from 127.0.0.1:sshPort.
    package var sshPort: Int
    /// Who `rast-build ssh` logs in as, and with which private key (nil: none known).
    package var user: String?
    package var identity: String?
    /// Writes go to the image itself (else to a throw-away overlay).
    package var persistent: Bool
    package var firmware: String
    package var accelerator: String
    /// When QEMU started (UTC, ISO 8601).
    package var started: String

    package init(image: String, pid: Int32, sshPort: Int, user: String?, identity: String?, persistent: Bool,
                firmware: String, accelerator: String) {
        self.image = image
        self.pid = pid
        self.processStart = Self.startTime(of: pid)
        self.sshPort = sshPort
        self.user = user
        self.identity = identity
        self.persistent = persistent
        self.firmware = firmware
        self.accelerator = accelerator
        self.started = ISO8601DateFormatter().string(from: Date())
    }

    /// Where the record of `image`'s machine lives: `IMAGE.vm.json` beside it.
    package static func path(forImage image: String) -> String {
        URL(fileURLWithPath: image).standardizedFileURL.path + ".vm.json"
    }

    /// QEMU still runs (the same process, not a later one with the same id).
    package var isRunning: Bool {
        guard pid > 0, let start = Self.startTime(of: pid) else { return false }
        return processStart == nil || processStart == start
    }

    /// What is recorded for `image`.
    package enum Lookup: Sendable, Equatable {
        case none
        case running(MachineRecord)
        /// The file is there but its QEMU is gone.
        case stale(MachineRecord)
    }

    /// Reads `image`'s record and tells whether its machine runs.
    package static func lookup(image: String) throws -> Lookup {
        let path = path(forImage: image)
        guard Files.exists(path) else { return .none }
        let record: MachineRecord
        do {
            record = try JSONDecoder().decode(MachineRecord.self, from: Data(try Files.read(path)))
        } catch {
            throw UserError("\(path) is not a virtual machine record of rast-build vm (\(error)); remove it if no machine runs for \(image)",
                            cause: error)
        }
        return record.isRunning ? .running(record) : .stale(record)
    }

    /// Writes the record beside its image (temporary file, fsync, rename).
    package func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.writeAtomically(Self.path(forImage: image), bytes: Array(try encoder.encode(self)) + [10])
    }

    /// Removes the record, if it is still this one (another machine may have replaced a stale
    /// record meanwhile).
    package func remove() {
        let path = Self.path(forImage: image)
        guard let data = try? Files.read(path),
              let current = try? JSONDecoder().decode(MachineRecord.self, from: Data(data)),
              current.pid == pid, current.processStart == processStart else { return }
        unlink(path)
    }

    /// The start time of process `pid` in clock ticks since boot; nil when it does not exist
    /// or is a zombie (it ended and waits for its parent).
    package static func startTime(of pid: Int32) -> UInt64? {
        guard let stat = try? Files.readString("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "pid (comm)" come the fields from 3 on: the state first, field 22 is the 20th.
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }
}
