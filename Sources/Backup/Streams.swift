// The two pipelines of a backup, each streaming with bounded memory:
//   btrfs send [-p PARENT] SUBVOLUME | zstd | AES-256-GCM chunks | multipart upload (+ SHA-256)
//   download (+ SHA-256) | open chunks | unzstd | btrfs receive DIRECTORY
import Btrfs
import Foundation
import ObjectStore
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of what passes by, for closures.
final class StreamDigest {
    private var hasher = SHA256()
    private(set) var count: Int64 = 0

    func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bytes)
        count += Int64(bytes.count)
    }

    func finalize() -> String {
        var finished = SHA256()
        swap(&hasher, &finished)
        return finished.finalize()
    }
}

/// Bytes and rate of a transfer, reported as progress at most ten times a second.
final class TransferMeter {
    let task: String
    let total: Int64?
    let progress: ProgressReporter
    private let watch = Stopwatch()
    private var lastReport = 0.0
    private(set) var bytes: Int64 = 0
    var other: Int64 = 0
    var otherLabel = ""

    init(task: String, total: Int64?, progress: ProgressReporter) {
        self.task = task
        self.total = total
        self.progress = progress
    }

    func add(_ count: Int) {
        bytes += Int64(count)
        let now = watch.elapsed
        if now - lastReport >= 0.1 {
            lastReport = now
            report()
        }
    }

    func report() {
        var detail = TransferMeter.rate(bytes, seconds: watch.elapsed)
        if !otherLabel.isEmpty { detail += ", \(ByteCount.format(other)) \(otherLabel)" }
        progress.update(ProgressUpdate(task: task, completed: bytes, total: total, unit: .bytes, detail: detail))
    }

    var elapsed: Double { watch.elapsed }

    static func rate(_ bytes: Int64, seconds: Double) -> String {
        seconds > 0 ? ByteCount.format(Int64(Double(bytes) / seconds)) + "/s" : "-"
    }
}

extension BackupEngine {
    /// Sends one subvolume into a new object and returns what the manifest records of it.
    func sendAndUpload(name: String, subvolume: String, source: String, parent: String?, object: String, meter: TransferMeter) throws -> SubvolumeBackup {
        let store = repository.store
        let upload = try store.upload(object)
        var completed = false
        defer { if !completed { upload.abort() } }
        let digest = StreamDigest()
        let sealer = try ObjectSealer(master: repository.key, object: object, chunkSize: repository.config.chunkSize) { bytes in
            digest.update(bytes)
            try upload.write(bytes)
        }
        let compressor = try ZstdCompressor(level: compressionLevel, workers: compressionWorkers) { try sealer.write($0) }
        var arguments = ["send", "-q"]
        if let parent { arguments += ["-p", parent] }
        arguments.append(subvolume)
        let send = try PipedProcess(Command("btrfs", arguments), pipe: .standardOutput)
        defer { send.terminate() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var streamBytes: Int64 = 0
        while true {
            let count = try send.read(into: buffer)
            if count == 0 { break }
            try checkCancelled()
            try compressor.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            streamBytes += Int64(count)
            meter.other = digest.count
            meter.add(count)
        }
        try send.finish()
        try compressor.finish()
        try sealer.finish()
        let stored = try upload.complete()
        completed = true
        meter.other = stored
        return SubvolumeBackup(name: name, object: object, identity: try BackupEngine.identity(subvolume), source: source,
                               parentIdentity: try parent.map { try BackupEngine.identity($0) },
                               streamBytes: streamBytes, storedBytes: stored, sha256: digest.finalize())
    }

    /// Downloads one object, checks it, and feeds its stream to `sink` (nil: only check).
    func download(_ subvolume: SubvolumeBackup, backup: String, meter: TransferMeter,
                  into sink: ((UnsafeRawBufferPointer) throws -> Void)?) throws {
        let digest = StreamDigest()
        var streamBytes: Int64 = 0
        let decompressor = try ZstdDecompressor { bytes in
            streamBytes += Int64(bytes.count)
            try sink?(bytes)
        }
        let opener = try ObjectOpener(master: repository.key, object: subvolume.object) { try decompressor.write($0) }
        do {
            try repository.store.get(subvolume.object) { bytes in
                try checkCancelled()
                digest.update(bytes)
                try opener.write(bytes)
                meter.add(bytes.count)
            }
            try opener.finish()
            try decompressor.finish()
        } catch let error as BackupCryptoError {
            throw BackupError.damaged(backup: backup, reason: "\(error)")
        } catch let error as ZstdError {
            throw BackupError.damaged(backup: backup, reason: "\(subvolume.object): \(error)")
        } catch ObjectStoreError.notFound(_, let key) {
            throw BackupError.damaged(backup: backup, reason: "its object \(key) is missing")
        }
        let sha = digest.finalize()
        guard sha == subvolume.sha256, digest.count == subvolume.storedBytes else {
            throw BackupError.damaged(backup: backup, reason: "\(subvolume.object) has SHA-256 \(sha) and \(digest.count) bytes; its manifest says \(subvolume.sha256) and \(subvolume.storedBytes)")
        }
        guard streamBytes == subvolume.streamBytes else {
            throw BackupError.damaged(backup: backup, reason: "\(subvolume.object) holds a stream of \(streamBytes) bytes; its manifest says \(subvolume.streamBytes)")
        }
    }

    /// Receives one subvolume into the empty directory `directory`; returns its path.
    func receive(_ subvolume: SubvolumeBackup, backup: String, into directory: String, meter: TransferMeter) throws -> String {
        try Files.createDirectory(directory)
        let receive = try PipedProcess(Command("btrfs", ["receive", "-q", directory]), pipe: .standardInput)
        defer { receive.terminate() }
        do {
            try download(subvolume, backup: backup, meter: meter) { try receive.write($0) }
        } catch let error as SystemError where receive.pipe == .standardInput && error.errno == EPIPE {
            try receive.finish()  // btrfs receive gave up: its own message says why
            throw error
        }
        try receive.finish()
        let names = try FileManagerShim.contents(of: directory)
        guard names.count == 1, try Btrfs.isSubvolume(directory + "/" + names[0]) else {
            throw BackupError.damaged(backup: backup, reason: "receiving \(subvolume.object) left \(names) in \(directory), not one subvolume")
        }
        return directory + "/" + names[0]
    }

    /// What btrfs calls a subvolume in send streams: its received UUID, else its UUID.
    static func identity(_ path: String) throws -> String {
        let info = try Btrfs.subvolumeInfo(path)
        return (info.receivedUUID ?? info.uuid).uuidString.lowercased()
    }
}
