// A backup repository in an object store:
//
//   PREFIX/rast-backup.json          plaintext: format, how the key is made (scrypt salt and
//                                    costs, or a key file), a key check value, chunk size
//   PREFIX/backups/ID/root           the zstd-compressed `btrfs send` stream of snapshot N's
//   PREFIX/backups/ID/etc            root, etc and boot subvolumes, each encrypted (Crypto.swift)
//   PREFIX/backups/ID/boot
//   PREFIX/backups/ID/manifest       encrypted JSON (BackupManifest), written last: a backup
//                                    is good once its manifest exists and opens
//
// ID is "YYYYMMDDTHHMMSS.mmmZ-" and six random hex digits: sorting by ID sorts by time. Objects
// below backups/ID/ without a manifest are an interrupted backup: never listed as good, and
// removed (with the store's pending multipart uploads) by the next `backup create` or `prune`.
import Foundation
import ObjectStore
import SnapshotTree
import SystemSupport

/// What the repository's plaintext configuration object holds.
package struct RepositoryConfig: Codable, Sendable, Equatable {
    package struct Scrypt: Codable, Sendable, Equatable {
        package var salt: String
        package var n: UInt64
        package var r: UInt64
        package var p: UInt64
    }

    package var format: Int
    package var kind: String
    package var created: String
    /// "key-file" or "passphrase".
    package var keySource: String
    package var scrypt: Scrypt?
    /// HMAC of a fixed text under the key: tells a wrong key from a damaged object.
    package var keyCheck: String
    package var chunkSize: Int
}

/// Where the key comes from.
package enum KeySource: Sendable, Equatable {
    /// A file with 64 hexadecimal digits; `backup init` creates it when it does not exist.
    case keyFile(String)
    case passphrase(String)
}

/// One subvolume's stream in a backup.
package struct SubvolumeBackup: Codable, Sendable, Equatable {
    /// "root", "etc" or "boot".
    package var name: String
    package var object: String
    /// What btrfs knows the sent subvolume as (its received UUID, else its UUID): what an
    /// incremental stream names as its parent. The sent subvolume is a read-only snapshot of
    /// the snapshot's subvolume, kept on the machine as the parent of the next increment.
    package var identity: String
    /// The identity of the snapshot's own subvolume when it was backed up.
    package var source: String
    /// The identity of the subvolume the stream is relative to (`btrfs send -p`); nil for a full stream.
    package var parentIdentity: String?
    /// Bytes of the `btrfs send` stream.
    package var streamBytes: Int64
    /// Bytes of the stored (compressed, encrypted) object.
    package var storedBytes: Int64
    /// SHA-256 of the stored object.
    package var sha256: String
}

/// Everything about one backup; stored encrypted.
package struct BackupManifest: Codable, Sendable, Equatable {
    package var format = 1
    package var id: String
    package var created: String
    package var snapshot: Int
    package var description: String
    /// The snapshot's parent in the tree when it was backed up.
    package var treeParent: Int?
    package var snapshotCreated: String
    /// The backup this one is an increment to; nil for a full backup.
    package var base: String?
    package var subvolumes: [SubvolumeBackup]
    /// rast's tree state when the backup was made.
    package var tree: TreeState
    package var host: String
    package var rastVersion: String

    package var storedBytes: Int64 { subvolumes.reduce(0) { $0 + $1.storedBytes } }
    package var streamBytes: Int64 { subvolumes.reduce(0) { $0 + $1.streamBytes } }
    package var identities: [String] { subvolumes.map(\.identity) }
    package var sources: [String] { subvolumes.map(\.source) }

    /// The creation time (the ID's timestamp).
    package var date: Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: created) ?? ISO8601DateFormatter().date(from: created) ?? Date(timeIntervalSince1970: 0)
    }
}

/// Errors about the repository as a whole; each names the target and says what to do.
package enum BackupError: Error, CustomStringConvertible, Sendable, Equatable {
    case notInitialized(target: String)
    case alreadyInitialized(target: String)
    case wrongKey(target: String, source: String)
    case unreadableConfig(target: String, reason: String)
    case noSuchBackup(String)
    case ambiguousBackup(String, matches: [String])
    case missingBase(backup: String, base: String)
    case damaged(backup: String, reason: String)
    case snapshotExists(Int)
    case noSettings(path: String)
    case verifyFailed([String])
    case nothingToRestore(String)

    package var description: String {
        switch self {
        case .notInitialized(let target):
            return "\(target) is no rast backup repository (no rast-backup.json); run `rast backup init \(target)` first"
        case .alreadyInitialized(let target):
            return "\(target) is a rast backup repository already, with another key; `backup init` never replaces a repository's key"
        case .wrongKey(let target, let source):
            return "the \(source) does not open the backup repository \(target) (its key check does not match): wrong key file or passphrase; nothing was read or changed"
        case .unreadableConfig(let target, let reason):
            return "\(target)/rast-backup.json cannot be read: \(reason)"
        case .noSuchBackup(let id):
            return "there is no good backup '\(id)' (see `rast backup list`)"
        case .ambiguousBackup(let id, let matches):
            return "'\(id)' names several backups: \(matches.joined(separator: ", "))"
        case .missingBase(let backup, let base):
            return "backup \(backup) is an increment to backup \(base), which is missing from the repository; it cannot be restored, and nothing was restored"
        case .damaged(let backup, let reason):
            return "backup \(backup) is damaged: \(reason)"
        case .snapshotExists(let id):
            return "snapshot \(id) exists already and a restore never replaces a snapshot; restore it under another number with --as N"
        case .noSettings(let path):
            return "no backup target is set up (\(path) is missing): run `rast backup init TARGET`, or name one with --target"
        case .verifyFailed(let problems):
            return "verification failed:\n" + problems.map { "  " + $0 }.joined(separator: "\n")
        case .nothingToRestore(let reason):
            return "nothing to restore: \(reason)"
        }
    }
}

/// The repository's backups as its objects show them.
package struct BackupCatalog: Sendable {
    /// Good backups (manifest present and authentic), oldest first.
    package var backups: [BackupManifest]
    /// Backups whose objects exist without a manifest (interrupted uploads).
    package var incomplete: [String]
    /// Backups whose manifest does not open, with the reason.
    package var damaged: [(id: String, reason: String)]

    package func backup(_ id: String) -> BackupManifest? { backups.first { $0.id == id } }

    /// The backup `text` names: its ID or a unique prefix of one.
    package func find(_ text: String) throws -> BackupManifest {
        if let exact = backup(text) { return exact }
        let matches = backups.filter { $0.id.hasPrefix(text) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw BackupError.ambiguousBackup(text, matches: matches.map(\.id)) }
        if let damage = damaged.first(where: { $0.id == text }) { throw BackupError.damaged(backup: damage.id, reason: damage.reason) }
        throw BackupError.noSuchBackup(text)
    }

    /// `backup` and the backups it builds on, the full backup first.
    package func chain(_ backup: BackupManifest) throws -> [BackupManifest] {
        var chain = [backup]
        while let base = chain[chain.count - 1].base {
            guard let found = self.backup(base) else { throw BackupError.missingBase(backup: chain[chain.count - 1].id, base: base) }
            guard !chain.contains(where: { $0.id == found.id }) else {
                throw BackupError.damaged(backup: backup.id, reason: "its chain of bases loops through \(found.id)")
            }
            chain.append(found)
        }
        return chain.reversed()
    }
}

package final class BackupRepository {
    package let store: ObjectStore
    package let key: MasterKey
    package let config: RepositoryConfig
    static let configObject = "rast-backup.json"
    static let backupsPrefix = "backups/"

    init(store: ObjectStore, key: MasterKey, config: RepositoryConfig) {
        self.store = store
        self.key = key
        self.config = config
    }

    /// scrypt costs for new repositories: 64 MiB and about a quarter of a second.
    package static let scryptCost: (n: UInt64, r: UInt64, p: UInt64) = (1 << 16, 8, 1)

    /// Makes `store` a repository, or opens it when it is one with the same key.
    package static func initialize(store: ObjectStore, key source: KeySource) throws -> (repository: BackupRepository, created: Bool) {
        if try store.head(configObject) != nil {
            do {
                return (try open(store: store, key: source), false)
            } catch BackupError.wrongKey {
                throw BackupError.alreadyInitialized(target: store.location)
            }
        }
        let key: MasterKey
        var scrypt: RepositoryConfig.Scrypt?
        switch source {
        case .keyFile(let path):
            if Files.exists(path) {
                key = try MasterKey.read(keyFile: path)
            } else {
                key = try MasterKey.generate()
                try key.write(keyFile: path)
            }
        case .passphrase(let passphrase):
            let salt = try Random.bytes(16)
            let cost = scryptCost
            key = try MasterKey.derive(passphrase: passphrase, salt: salt, n: cost.n, r: cost.r, p: cost.p)
            scrypt = .init(salt: Hex.encode(salt), n: cost.n, r: cost.r, p: cost.p)
        }
        let config = RepositoryConfig(format: 1, kind: "rast-backup", created: TreeState.timestamp(),
                                      keySource: scrypt == nil ? "key-file" : "passphrase", scrypt: scrypt,
                                      keyCheck: key.check, chunkSize: 1 << 20)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try store.put(configObject, bytes: Array(try encoder.encode(config)) + [10])
        return (BackupRepository(store: store, key: key, config: config), true)
    }

    /// Opens a repository, checking the key before anything else is read.
    package static func open(store: ObjectStore, key source: KeySource) throws -> BackupRepository {
        let bytes: [UInt8]
        do {
            bytes = try store.get(configObject)
        } catch ObjectStoreError.notFound {
            throw BackupError.notInitialized(target: store.location)
        }
        let config: RepositoryConfig
        do {
            config = try JSONDecoder().decode(RepositoryConfig.self, from: Data(bytes))
        } catch {
            throw BackupError.unreadableConfig(target: store.location, reason: "\(error)")
        }
        guard config.kind == "rast-backup", config.format == 1 else {
            throw BackupError.unreadableConfig(target: store.location, reason: "format \(config.format) of kind '\(config.kind)' is not one this rast reads")
        }
        let key: MasterKey
        let what: String
        switch source {
        case .keyFile(let path):
            key = try MasterKey.read(keyFile: path)
            what = "key file \(path)"
        case .passphrase(let passphrase):
            guard let scrypt = config.scrypt, let salt = Hex.decode(scrypt.salt) else {
                throw BackupError.wrongKey(target: store.location, source: "passphrase (this repository uses a key file)")
            }
            key = try MasterKey.derive(passphrase: passphrase, salt: salt, n: scrypt.n, r: scrypt.r, p: scrypt.p)
            what = "passphrase"
        }
        guard key.check == config.keyCheck else { throw BackupError.wrongKey(target: store.location, source: what) }
        return BackupRepository(store: store, key: key, config: config)
    }

    static func objectKey(_ id: String, _ name: String) -> String { backupsPrefix + id + "/" + name }

    /// Every backup, read from the store: manifests are downloaded and opened.
    package func catalog() throws -> BackupCatalog {
        var objects: [String: Set<String>] = [:]
        for info in try store.list(prefix: BackupRepository.backupsPrefix) {
            let parts = info.key.dropFirst(BackupRepository.backupsPrefix.count).split(separator: "/", maxSplits: 1)
            guard parts.count == 2 else { continue }
            objects[String(parts[0]), default: []].insert(String(parts[1]))
        }
        var catalog = BackupCatalog(backups: [], incomplete: [], damaged: [])
        for id in objects.keys.sorted() {
            guard objects[id]?.contains("manifest") == true else {
                catalog.incomplete.append(id)
                continue
            }
            do {
                catalog.backups.append(try manifest(id))
            } catch {
                catalog.damaged.append((id, "its manifest: \(error)"))
            }
        }
        return catalog
    }

    func manifest(_ id: String) throws -> BackupManifest {
        let object = BackupRepository.objectKey(id, "manifest")
        let plain = try ObjectOpener.open(try store.get(object), master: key, object: object)
        let manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(plain))
        guard manifest.id == id else { throw BackupError.damaged(backup: id, reason: "its manifest names backup \(manifest.id)") }
        return manifest
    }

    func write(_ manifest: BackupManifest) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let object = BackupRepository.objectKey(manifest.id, "manifest")
        try store.put(object, bytes: try ObjectSealer.seal(Array(try encoder.encode(manifest)), master: key, object: object))
    }

    /// Deletes a backup: its manifest first, so that it stops being good before its data goes.
    func delete(_ id: String) throws {
        try store.delete(BackupRepository.objectKey(id, "manifest"))
        for info in try store.list(prefix: BackupRepository.objectKey(id, "")) { try store.delete(info.key) }
    }

    /// Removes what interrupted backups left: objects without a manifest and pending
    /// multipart uploads. Returns the IDs removed.
    @discardableResult
    func removeIncomplete(_ catalog: BackupCatalog) throws -> [String] {
        var removed = Set<String>()
        for upload in try store.pendingUploads(prefix: BackupRepository.backupsPrefix) {
            let id = upload.key.dropFirst(BackupRepository.backupsPrefix.count).prefix { $0 != "/" }
            guard catalog.backup(String(id)) == nil else { continue }
            try store.abort(upload)
            removed.insert(String(id))
        }
        for id in catalog.incomplete {
            for info in try store.list(prefix: BackupRepository.objectKey(id, "")) { try store.delete(info.key) }
            removed.insert(id)
        }
        return removed.sorted()
    }

    /// A new backup ID: the time to the millisecond (IDs sort by time) and six random hex
    /// digits; later than every ID in `after`, so that backups made within one millisecond
    /// still sort in the order they were made.
    static func newID(after existing: [String] = [], date: Date = Date()) throws -> String {
        var milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        func format(_ value: Int64) -> String {
            let (amzDate, _) = SigV4Signer.timestamps(Date(timeIntervalSince1970: Double(value / 1000)))
            return amzDate.dropLast() + String(format: ".%03dZ", Int(value % 1000))
        }
        while let newest = existing.max(), format(milliseconds) <= String(newest.prefix(20)) { milliseconds += 1 }
        return format(milliseconds) + "-" + Hex.encode(try Random.bytes(3))
    }
}
