import ArgumentParser
import Backup
import CommandLineSupport
import Foundation
import HostCommands
import ObjectStore
import SnapshotTree
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Where backups go and the key, for every backup command; each option overrides what
/// `backup init` recorded.
struct BackupTargetOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The repository: s3://BUCKET/PREFIX or file:///DIRECTORY.", valueName: "URL"))
    var target: String?

    @Option(help: ArgumentHelp("The S3 server, for stores other than AWS (MinIO, Ceph RGW, GCS's XML API): http(s)://HOST[:PORT].", valueName: "URL"))
    var endpoint: String?

    @Option(help: ArgumentHelp("The S3 signing region (default: AWS_REGION, ~/.aws/config, else us-east-1).", valueName: "REGION"))
    var region: String?

    @Option(name: .customLong("key-file"), help: ArgumentHelp("The key: a file of 64 hexadecimal digits (`backup init` creates it when missing).", valueName: "FILE"))
    var keyFile: String?

    @Option(name: .customLong("passphrase-file"), help: ArgumentHelp("A file holding the passphrase the key is derived from (scrypt); or set RAST_BACKUP_PASSPHRASE, or type it.", valueName: "FILE"))
    var passphraseFile: String?

    @Option(name: .customLong("part-size"), help: ArgumentHelp("Size of the parts of S3 multipart uploads (at least 5M).", valueName: "SIZE"))
    var partSize: String = "16M"

    @Option(help: ArgumentHelp("Attempts per S3 request before giving up, with exponential backoff.", valueName: "N"))
    var attempts: Int = 5

    @Option(name: .customLong("stall-timeout"), help: ArgumentHelp("Seconds without progress after which an S3 transfer is retried.", valueName: "SECONDS"))
    var stallTimeout: Int = 30

    func validate() throws {
        if keyFile != nil, passphraseFile != nil { throw ValidationError("Give --key-file or --passphrase-file, not both.") }
        guard let size = ByteCount.parse(partSize), size >= 5 << 20, size <= 5 << 30 else {
            throw ValidationError("--part-size \(partSize): give a size from 5M to 5G (S3's limits for parts).")
        }
        if attempts < 1 { throw ValidationError("--attempts must be at least 1.") }
        if stallTimeout < 1 { throw ValidationError("--stall-timeout must be at least 1 second.") }
    }

    var s3Options: S3Options {
        var options = S3Options()
        options.partSize = Int(ByteCount.parse(partSize) ?? 16 << 20)
        options.attempts = attempts
        options.stallSeconds = stallTimeout
        return options
    }

    /// The recorded settings with these options laid over them.
    func settings(_ layout: Layout?) throws -> BackupSettings {
        let recorded = try layout.flatMap { try BackupSettings.read($0) }
        var settings: BackupSettings
        if let target {
            settings = BackupSettings(target: target)
            if recorded?.target == target, let recorded { settings = recorded }
        } else if let recorded {
            settings = recorded
        } else {
            throw BackupError.noSettings(path: layout.map(BackupSettings.path) ?? "@.snapshots/rast/backup.json")
        }
        if let endpoint { settings.endpoint = endpoint }
        if let region { settings.region = region }
        if let keyFile { settings.keyFile = absolute(keyFile); settings.passphraseFile = nil }
        if let passphraseFile { settings.passphraseFile = absolute(passphraseFile); settings.keyFile = nil }
        return settings
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// Opens the repository the settings name, checking the key.
    func repository(_ settings: BackupSettings) throws -> BackupRepository {
        let store = try settings.openStore(s3: s3Options)
        return try BackupRepository.open(store: store, key: try settings.keySource(prompt: { try Passphrase.ask(confirm: false) }))
    }
}

enum Passphrase {
    static func ask(confirm: Bool) throws -> String {
        guard isatty(0) == 1 else {
            throw UserError("no backup key: give --key-file FILE or --passphrase-file FILE, or set RAST_BACKUP_PASSPHRASE (there is no terminal to ask on)")
        }
        guard let first = getpass("Backup passphrase: ").map({ String(cString: $0) }), !first.isEmpty else {
            throw UserError("an empty passphrase is no key")
        }
        if confirm {
            let second = getpass("Again: ").map { String(cString: $0) }
            guard second == first else { throw UserError("the passphrases differ") }
        }
        return first
    }
}

/// `rast backup`: encrypted, incremental backups of snapshots to object storage.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Encrypted, incremental backups of snapshots to S3 or a directory.",
        discussion: """
            Each backup is the `btrfs send` stream of a snapshot's root, etc and boot subvolumes, \
            compressed with zstd and encrypted with AES-256-GCM before it leaves the machine; \
            increments are sent against the newest backup of the same line. `rast restore` brings \
            a backup back as a snapshot. See docs/backup.md.
            """,
        subcommands: [BackupInitCommand.self, BackupCreateCommand.self, BackupListCommand.self, BackupVerifyCommand.self,
                      BackupPruneCommand.self, BackupScheduleCommand.self, BackupRunScheduledCommand.self])
}

struct BackupInitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init", abstract: "Make TARGET a backup repository and record it as this machine's backup target.",
        discussion: "With --key-file FILE, a missing FILE gets a new random key (keep a copy elsewhere: without it no backup can be read).")
    @OptionGroup var options: TreeOptions
    @Argument(help: ArgumentHelp("s3://BUCKET/PREFIX or file:///DIRECTORY.", valueName: "TARGET")) var target: String
    @OptionGroup var backup: BackupTargetOptions

    func validate() throws {
        if backup.target != nil { throw ValidationError("Name the target once, as the argument of `backup init`.") }
    }

    func run() throws {
        try options.write("backup init") { host in
            var settings = try backup.settings(nil as Layout?, target: target)
            if settings.keyFile == nil, settings.passphraseFile == nil, ProcessInfo.processInfo.environment["RAST_BACKUP_PASSPHRASE"] == nil {
                let passphrase = try Passphrase.ask(confirm: true)
                settings.passphraseFile = nil
                let store = try settings.openStore(s3: backup.s3Options)
                let (_, created) = try BackupRepository.initialize(store: store, key: .passphrase(passphrase))
                try settings.write(host.store.layout)
                host.output(created ? "initialised \(target) (key from a passphrase; it is asked for by each backup command, or set RAST_BACKUP_PASSPHRASE)"
                                    : "\(target) is a backup repository already and the passphrase opens it")
                return
            }
            let keyFileExisted = settings.keyFile.map(Files.exists) ?? true
            let store = try settings.openStore(s3: backup.s3Options)
            let (_, created) = try BackupRepository.initialize(store: store, key: try settings.keySource())
            try settings.write(host.store.layout)
            if let keyFile = settings.keyFile, !keyFileExisted {
                host.output("wrote a new key to \(keyFile); keep a copy away from this machine: without it no backup can be restored")
            }
            host.output(created ? "initialised \(target); `rast backup create` backs up to it" : "\(target) is a backup repository already and the key opens it")
        }
    }
}

extension BackupTargetOptions {
    func settings(_ layout: Layout?, target: String) throws -> BackupSettings {
        var copy = self
        copy.target = target
        return try copy.settings(layout)
    }
}

struct BackupCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Back up snapshots (default: every snapshot whose current state has no backup, the booted one among them).")
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions
    @Flag(help: "Send full streams, no increments.") var full = false
    @Argument(help: "The snapshots to back up.") var snapshots: [Int] = []

    func run() throws {
        try options.write("backup create") { host in
            let repository = try backup.repository(try backup.settings(host.store.layout))
            let engine = BackupEngine(snapshots: host.store, repository: repository, progress: TerminalProgress(), output: host.output)
            let made = try engine.create(snapshots.isEmpty ? nil : snapshots, full: full)
            host.output(made.isEmpty ? "nothing to back up" : "\(made.count) backup\(made.count == 1 ? "" : "s") made: "
                        + made.map { "\($0.id) (snapshot \($0.snapshot))" }.joined(separator: ", "))
        }
    }
}

struct BackupListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the good backups of the repository.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions
    @OptionGroup var format: JSONFlag

    func run() throws {
        let layout = backup.target == nil ? try options.read { $0.store.layout } : nil
        let repository = try backup.repository(try backup.settings(layout))
        let catalog = try repository.catalog()
        if format.json {
            print(try BackupListing(catalog).json())
            return
        }
        guard !catalog.backups.isEmpty else {
            print("no backups in \(repository.store.location)")
            BackupListing.notes(catalog).forEach { print($0) }
            return
        }
        var rows = [["ID", "SNAPSHOT", "KIND", "STORED", "SENT", "DESCRIPTION"]]
        for backup in catalog.backups {
            rows.append([backup.id, String(backup.snapshot), backup.base.map { "on \($0)" } ?? "full",
                         ByteCount.format(backup.storedBytes), ByteCount.format(backup.streamBytes), backup.description])
        }
        let widths = (0..<5).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print((0..<5).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") + "  " + row[5])
        }
        BackupListing.notes(catalog).forEach { print($0) }
    }
}

/// `backup list --json`.
struct BackupListing: Encodable {
    struct Entry: Encodable {
        var id: String
        var created: String
        var snapshot: Int
        var description: String
        var base: String?
        var treeParent: Int?
        var storedBytes: Int64
        var streamBytes: Int64
    }
    struct Damage: Encodable {
        var id: String
        var reason: String
    }
    var backups: [Entry]
    var incomplete: [String]
    var damaged: [Damage]

    init(_ catalog: BackupCatalog) {
        backups = catalog.backups.map {
            Entry(id: $0.id, created: $0.created, snapshot: $0.snapshot, description: $0.description, base: $0.base,
                  treeParent: $0.treeParent, storedBytes: $0.storedBytes, streamBytes: $0.streamBytes)
        }
        incomplete = catalog.incomplete
        damaged = catalog.damaged.map { Damage(id: $0.id, reason: $0.reason) }
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func notes(_ catalog: BackupCatalog) -> [String] {
        catalog.incomplete.map { "incomplete: \($0) (an interrupted upload, not a backup; removed by the next `backup create` or `prune`)" }
            + catalog.damaged.map { "damaged: \($0.id): \($0.reason)" }
    }
}

struct BackupVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Download and authenticate every chunk of a backup and the backups it builds on (default: of all).")
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions
    @Argument(help: "A backup ID (or a unique prefix).") var id: String?

    func run() throws {
        let layout = backup.target == nil ? try options.read { $0.store.layout } : nil
        let repository = try backup.repository(try backup.settings(layout))
        try BackupEngine(snapshots: nil, repository: repository, progress: TerminalProgress()).verify(id)
    }
}

struct BackupPruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune", abstract: "Delete backups the retention policy does not keep (never one a kept backup builds on).",
        discussion: "The policy applies to each snapshot's backups on their own.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions
    @Option(name: .customLong("keep-last"), help: "Keep the newest N backups of each snapshot.") var keepLast = 0
    @Option(name: .customLong("keep-daily"), help: "Keep the newest backup of each of the last D days that have one.") var keepDaily = 0
    @Option(name: .customLong("keep-weekly"), help: "Keep the newest backup of each of the last W weeks that have one.") var keepWeekly = 0
    @Flag(name: .customLong("dry-run"), help: "Say what would be deleted; delete nothing.") var dryRun = false

    func validate() throws {
        if keepLast < 0 || keepDaily < 0 || keepWeekly < 0 { throw ValidationError("The --keep-* counts cannot be negative.") }
        if keepLast == 0 && keepDaily == 0 && keepWeekly == 0 {
            throw ValidationError("Give at least one of --keep-last, --keep-daily, --keep-weekly; prune never deletes every backup.")
        }
    }

    func run() throws {
        let policy = RetentionPolicy(last: keepLast, daily: keepDaily, weekly: keepWeekly)
        try options.write("backup prune") { host in
            let repository = try backup.repository(try backup.settings(host.store.layout))
            try BackupEngine(snapshots: host.store, repository: repository, output: host.output).prune(policy, dryRun: dryRun)
        }
    }
}

struct BackupScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Print the crontab line for the schedule in /etc/rast.conf (backup_schedule::, backup_keep::).",
        discussion: "Put the line into /etc/crontabs/root for busybox crond; it runs `rast backup run-scheduled`.")
    @OptionGroup var options: TreeOptions

    func run() throws {
        let schedule = try BackupSchedule(settings: try scheduledConfig(options))
        guard let line = schedule.crontabLine() else {
            throw UserError("/etc/rast.conf sets no backup_schedule:: (for example `backup_schedule::0 3 * * *`)")
        }
        print(line)
    }
}

struct BackupRunScheduledCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-scheduled", abstract: "What the schedule runs: `backup create`, then `backup prune` with backup_keep:: from /etc/rast.conf.")
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions

    func run() throws {
        let schedule = try BackupSchedule(settings: try scheduledConfig(options))
        try options.write("backup run-scheduled") { host in
            let repository = try backup.repository(try backup.settings(host.store.layout))
            let engine = BackupEngine(snapshots: host.store, repository: repository, output: host.output)
            try engine.create()
            if let keep = schedule.keep, !keep.keepsNothing { try engine.prune(keep) }
        }
    }
}

/// The rast.conf that holds the schedule: the running system's /etc, or with --root the etc
/// of the snapshot that boots next.
private func scheduledConfig(_ options: TreeOptions) throws -> [String: String] {
    let config: SnapshotConfig
    if options.root != nil {
        config = try options.read { host in
            let next = try host.store.nextSnapshot() ?? 0
            return SnapshotConfig.load(etcDirectory: host.store.layout.etc(next))
        }
    } else {
        config = SnapshotConfig.load(etcDirectory: "/etc")
    }
    return Dictionary(config.values.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
}

/// `rast restore`: a backup back as a snapshot, or a whole tree onto a new disk.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore a backup as a snapshot (never replacing one), or the whole tree onto a new filesystem.",
        discussion: """
            The backup and every backup it builds on are received into a scratch directory; the \
            snapshot and its tree entry appear together at the end, or not at all. An empty \
            filesystem given with --root gets the rastOS layout first.
            """)
    @OptionGroup var options: TreeOptions
    @OptionGroup var backup: BackupTargetOptions
    @Argument(help: "The backup ID (or a unique prefix).") var id: String?
    @Option(name: .customLong("as"), help: "The number of the restored snapshot (default: the backed-up snapshot's own).") var number: Int?
    @Flag(help: "Restore the newest backed-up tree: every snapshot in it that has a backup, under its own number.") var tree = false

    func validate() throws {
        if tree, id != nil { throw ValidationError("Give a backup ID or --tree, not both.") }
        if !tree, id == nil { throw ValidationError("Name the backup to restore (see `rast backup list`), or give --tree.") }
        if tree, number != nil { throw ValidationError("--as renumbers one snapshot; --tree keeps every number.") }
        if let number, number < 1 { throw ValidationError("--as \(number): snapshot 0 is the base and is never restored over; give 1 or more.") }
    }

    func run() throws {
        if let root = options.root {
            let layout = Layout(top: (root as NSString).standardizingPath)
            if !SnapshotStore.isInitialized(layout) {
                try Privileges.requireRoot(for: "rast restore")
                guard Files.isDirectory(layout.top), try FileManagerShim.contents(of: layout.top).isEmpty else {
                    throw UserError("--root \(root) holds no snapshot tree and is not empty; restore onto an empty filesystem or a rastOS one")
                }
                try SnapshotStore.initializeEmpty(layout)
            }
        }
        try options.write("restore") { host in
            let settings = try backup.settings(host.store.layout)
            let engine = BackupEngine(snapshots: host.store, repository: try backup.repository(settings), progress: TerminalProgress(), output: host.output)
            if tree {
                let restored = try engine.restoreTree()
                host.output("restored \(restored.count) snapshot\(restored.count == 1 ? "" : "s"): \(restored.map(String.init).joined(separator: " "))")
            } else if let id {
                let restored = try engine.restore(id, as: number)
                host.output("restored backup \(id) as snapshot \(restored)")
            }
        }
    }
}
