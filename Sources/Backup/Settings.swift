// Where a machine backs up to: written by `rast backup init` next to the tree state
// (@.snapshots/rast/backup.json, so it belongs to the tree, not to one snapshot), read by
// every later backup command; command-line options override each field. The key itself is
// never in it: the path of the key file, or of a file holding the passphrase (or the
// passphrase comes from RAST_BACKUP_PASSPHRASE or the terminal).
//
// The schedule lives in /etc/rast.conf (key::value, per snapshot, as astOS had it):
//   backup_schedule::0 3 * * *                       a crontab time (minute hour day month weekday)
//   backup_keep::--keep-last 7 --keep-daily 14 --keep-weekly 8
// `rast backup schedule` prints the crontab line that runs `rast backup run-scheduled`.
import Foundation
import ObjectStore
import SnapshotTree
import SystemSupport

package struct BackupSettings: Codable, Sendable, Equatable {
    package var target: String
    package var endpoint: String?
    package var region: String?
    package var keyFile: String?
    package var passphraseFile: String?

    package init(target: String, endpoint: String? = nil, region: String? = nil, keyFile: String? = nil, passphraseFile: String? = nil) {
        self.target = target
        self.endpoint = endpoint
        self.region = region
        self.keyFile = keyFile
        self.passphraseFile = passphraseFile
    }

    package static func path(_ layout: Layout) -> String { layout.stateDirectory + "/backup.json" }

    package static func read(_ layout: Layout) throws -> BackupSettings? {
        let path = path(layout)
        guard Files.exists(path) else { return nil }
        do {
            return try JSONDecoder().decode(BackupSettings.self, from: Data(try Files.read(path)))
        } catch {
            throw UserError("\(path) cannot be read: \(error)", cause: error)
        }
    }

    package func write(_ layout: Layout) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.writeAtomically(BackupSettings.path(layout), bytes: Array(try encoder.encode(self)) + [10], mode: 0o600)
    }

    /// Opens the object store these settings name.
    package func openStore(s3 base: S3Options = S3Options()) throws -> ObjectStore {
        var options = base
        options.endpoint = endpoint ?? options.endpoint
        options.region = region ?? options.region
        return try ObjectStores.open(target, s3: options)
    }

    /// The key source: the key file, else the passphrase file, else RAST_BACKUP_PASSPHRASE,
    /// else `prompt` (the terminal).
    package func keySource(environment: [String: String] = ProcessInfo.processInfo.environment,
                          prompt: (() throws -> String)? = nil) throws -> KeySource {
        if let keyFile { return .keyFile(keyFile) }
        if let passphraseFile {
            let text = try Files.readString(passphraseFile)
            let passphrase = text.hasSuffix("\n") ? String(text.dropLast()) : text
            guard !passphrase.isEmpty else { throw UserError("the passphrase file \(passphraseFile) is empty") }
            return .passphrase(passphrase)
        }
        if let passphrase = environment["RAST_BACKUP_PASSPHRASE"], !passphrase.isEmpty { return .passphrase(passphrase) }
        if let prompt { return .passphrase(try prompt()) }
        throw UserError("no backup key: give --key-file FILE or --passphrase-file FILE (or set RAST_BACKUP_PASSPHRASE)")
    }
}

/// The backup lines of /etc/rast.conf.
package struct BackupSchedule: Sendable, Equatable {
    package var schedule: String?
    package var keep: RetentionPolicy?

    /// Reads `backup_schedule::` and `backup_keep::` from rast.conf settings.
    package init(settings: [String: String]) throws {
        if let text = settings["backup_schedule"]?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            let allowed = Set("0123456789*/,-")
            guard fields.count == 5, fields.allSatisfy({ $0.allSatisfy { allowed.contains($0) } }) else {
                throw UserError("/etc/rast.conf: backup_schedule::\(text) is no crontab time (five fields: minute hour day month weekday, e.g. `0 3 * * *`)")
            }
            schedule = fields.joined(separator: " ")
        }
        if let text = settings["backup_keep"], !text.trimmingCharacters(in: .whitespaces).isEmpty {
            keep = try RetentionPolicy.parse(text)
        }
    }

    /// The line for /etc/crontabs/root (busybox crond).
    package func crontabLine(rast: String = "/usr/bin/rast") -> String? {
        schedule.map { "\($0) \(rast) backup run-scheduled" }
    }
}
