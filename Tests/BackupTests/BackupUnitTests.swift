@testable import Backup
import Foundation
import SnapshotTree
import SystemSupport
import Testing
import TestSupport

/// The encrypted object format, zstd streams, retention and the schedule, without btrfs.
@Suite("Backup units")
struct BackupUnitTests {
    static let key: MasterKey = {
        do { return try MasterKey(bytes: Array(0..<32)) } catch { fatalError("\(error)") }
    }()

    static func seal(_ plain: [UInt8], object: String = "backups/x/root", chunk: Int = 4096, key: MasterKey = key) throws -> [UInt8] {
        var out: [UInt8] = []
        let sealer = try ObjectSealer(master: key, object: object, chunkSize: chunk) { out.append(contentsOf: $0) }
        try UnevenWrites.feed(plain, next: { $0 * 2 + 7 }, to: sealer.write)
        try sealer.finish()
        return out
    }

    static func open(_ sealed: [UInt8], object: String = "backups/x/root", key: MasterKey = key) throws -> [UInt8] {
        try ObjectOpener.open(sealed, master: key, object: object)
    }

    @Test(arguments: [0, 1, 4095, 4096, 4097, 8192, 20_000])
    func roundTrips(_ size: Int) throws {
        let plain = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let sealed = try BackupUnitTests.seal(plain)
        let chunks = max(1, (size + 4095) / 4096)  // the last holds 1...4096 bytes (0 only when all is empty)
        #expect(sealed.count == ObjectHeader.size + size + 16 * chunks)
        #expect(try BackupUnitTests.open(sealed) == plain)
    }

    @Test func everyChangeFailsToOpen() throws {
        let plain = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
        let sealed = try BackupUnitTests.seal(plain)
        let chunk = 4096 + 16
        var flipped = sealed
        flipped[ObjectHeader.size + chunk + 5] ^= 0x80
        #expect(throws: BackupCryptoError.authentication(object: "backups/x/root", chunk: 1)) { try BackupUnitTests.open(flipped) }
        var header = sealed
        header[20] ^= 1  // the salt: another key
        #expect(throws: BackupCryptoError.authentication(object: "backups/x/root", chunk: 0)) { try BackupUnitTests.open(header) }
        // The last chunk cut off: the chunk before it is not marked last.
        let truncated = Array(sealed.prefix(ObjectHeader.size + 2 * chunk))
        #expect(throws: BackupCryptoError.self) { try BackupUnitTests.open(truncated) }
        // Chunks swapped.
        var swapped = sealed
        let first = ObjectHeader.size
        swapped.replaceSubrange(first..<first + chunk, with: sealed[first + chunk..<first + 2 * chunk])
        swapped.replaceSubrange(first + chunk..<first + 2 * chunk, with: sealed[first..<first + chunk])
        #expect(throws: BackupCryptoError.authentication(object: "backups/x/root", chunk: 0)) { try BackupUnitTests.open(swapped) }
        // The same bytes under another name, or another key.
        #expect(throws: BackupCryptoError.authentication(object: "backups/y/root", chunk: 0)) {
            try BackupUnitTests.open(sealed, object: "backups/y/root")
        }
        let other = try MasterKey(bytes: Array(repeating: 9, count: 32))
        #expect(throws: BackupCryptoError.authentication(object: "backups/x/root", chunk: 0)) { try BackupUnitTests.open(sealed, key: other) }
        #expect(throws: BackupCryptoError.self) { try BackupUnitTests.open(Array("not an object at all".utf8)) }
    }

    @Test func sealingTwiceGivesDifferentBytes() throws {
        let plain = Array(repeating: UInt8(0), count: 5000)
        #expect(try BackupUnitTests.seal(plain) != (try BackupUnitTests.seal(plain)))
    }

    @Test func zstdStreamsRoundTrip() throws {
        let plain = (0..<3_000_000).map { UInt8(truncatingIfNeeded: ($0 / 7) &* 13) }
        var compressed: [UInt8] = []
        let compressor = try ZstdCompressor(level: 3, workers: 2) { compressed.append(contentsOf: $0) }
        try plain.withUnsafeBytes { bytes in
            for start in stride(from: 0, to: bytes.count, by: 100_000) {
                try compressor.write(UnsafeRawBufferPointer(rebasing: bytes[start..<min(start + 100_000, bytes.count)]))
            }
        }
        try compressor.finish()
        #expect(compressed.count < plain.count / 10)
        var out: [UInt8] = []
        let decompressor = try ZstdDecompressor { out.append(contentsOf: $0) }
        try compressed.withUnsafeBytes { try decompressor.write($0) }
        try decompressor.finish()
        #expect(out == plain)
        let cut = try ZstdDecompressor { _ in }
        try compressed.prefix(compressed.count - 10).withUnsafeBytes { try cut.write(UnsafeRawBufferPointer($0)) }
        #expect(throws: ZstdError.self) { try cut.finish() }
    }

    @Test func passphrasesDeriveTheSameKeyFromTheSameSalt() throws {
        let salt = Array(repeating: UInt8(7), count: 16)
        let a = try MasterKey.derive(passphrase: "correct horse", salt: salt, n: 1 << 10, r: 8, p: 1)
        #expect(a == (try MasterKey.derive(passphrase: "correct horse", salt: salt, n: 1 << 10, r: 8, p: 1)))
        #expect(a != (try MasterKey.derive(passphrase: "correct horsE", salt: salt, n: 1 << 10, r: 8, p: 1)))
        #expect(a.check != (try MasterKey.generate()).check)
        // RFC 7914's test vector: scrypt("password", "NaCl", N=1024, r=8, p=16), first 32 bytes.
        let vector = try MasterKey.derive(passphrase: "password", salt: Array("NaCl".utf8), n: 1024, r: 8, p: 16)
        #expect(Hex.encode(vector.bytes) == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162")
    }

    static func manifest(_ id: String, snapshot: Int, base: String? = nil) -> BackupManifest {
        BackupManifest(id: id, created: BackupEngine.timestamp(id), snapshot: snapshot, description: "", treeParent: nil,
                       snapshotCreated: "", base: base, subvolumes: [], tree: TreeState(), host: "", rastVersion: "")
    }

    @Test func retentionKeepsPerSnapshotAndEveryBaseOfWhatItKeeps() throws {
        let m = BackupUnitTests.manifest
        let backups = [
            m("20250101T010000.000Z-000001", 1, nil),
            m("20250101T020000.000Z-000002", 1, "20250101T010000.000Z-000001"),
            m("20250102T010000.000Z-000003", 1, "20250101T020000.000Z-000002"),
            m("20250110T010000.000Z-000004", 1, nil),
            m("20250110T020000.000Z-000005", 1, "20250110T010000.000Z-000004"),
            m("20250105T010000.000Z-000006", 2, nil),
        ]
        // The newest of snapshot 1 and of snapshot 2; the newest of 1 needs its full base.
        #expect(RetentionPolicy(last: 1).keep(backups) == ["20250110T020000.000Z-000005", "20250110T010000.000Z-000004", "20250105T010000.000Z-000006"])
        // Daily: the newest of each of the 2 latest days of snapshot 1 (Jan 10, Jan 2) and their chains.
        #expect(RetentionPolicy(daily: 2).keep(backups) == [
            "20250110T020000.000Z-000005", "20250110T010000.000Z-000004", "20250102T010000.000Z-000003",
            "20250101T020000.000Z-000002", "20250101T010000.000Z-000001", "20250105T010000.000Z-000006",
        ])
        // Weekly: 2025-01-01/02 are ISO week 1, 01-05 is week 1 too (a Sunday), 01-10 week 2.
        #expect(RetentionPolicy(weekly: 1).keep(backups) == ["20250110T020000.000Z-000005", "20250110T010000.000Z-000004", "20250105T010000.000Z-000006"])
        #expect(try RetentionPolicy.parse("--keep-last 7 --keep-daily 14 --keep-weekly 8") == RetentionPolicy(last: 7, daily: 14, weekly: 8))
        #expect(throws: UserError.self) { try RetentionPolicy.parse("--keep-monthly 3") }
        #expect(throws: UserError.self) { try RetentionPolicy.parse("--keep-last") }
    }

    @Test func backupIDsSortInTheOrderTheyWereMade() throws {
        let date = Date(timeIntervalSince1970: 1_735_700_000.5)
        var ids: [String] = []
        for _ in 0..<5 { ids.append(try BackupRepository.newID(after: ids, date: date)) }
        #expect(ids == ids.sorted())
        #expect(Set(ids.map { $0.prefix(20) }).count == 5)
        #expect(ids[0].hasPrefix("20250101T025320.500Z-"))
        #expect(BackupEngine.timestamp(ids[0]) == "2025-01-01T02:53:20.500Z")
    }

    @Test func theScheduleComesFromRastConf() throws {
        let schedule = try BackupSchedule(settings: ["backup_schedule": "0 3 * * *", "backup_keep": "--keep-daily 7"])
        #expect(schedule.crontabLine() == "0 3 * * * /usr/bin/rast backup run-scheduled")
        #expect(schedule.keep == RetentionPolicy(daily: 7))
        #expect(try BackupSchedule(settings: [:]).crontabLine() == nil)
        let error = try #require(throws: UserError.self) { try BackupSchedule(settings: ["backup_schedule": "daily"]) }
        #expect(error.description.contains("backup_schedule::daily is no crontab time"))
    }
}
