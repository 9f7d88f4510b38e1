import Foundation
import QCOW2
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The two image formats rast-build writes.
package enum ImageFormat: String, Sendable {
    case raw
    case qcow2
}

/// A built image read as the virtual disk it holds: a sparse raw file (its holes found with
/// SEEK_DATA/SEEK_HOLE) or a QCOW2 image (its unallocated and zero clusters are the holes).
/// Holes read as zeros; `dataExtents()` lists everything else.
package final class ImageSource {
    package let path: String
    package let format: ImageFormat
    /// Size of the virtual disk in bytes.
    package let virtualSize: Int64
    /// Owned; closed in `deinit`.
    private let file: FileDescriptor
    private let reader: QCOW2Reader?

    /// Opens `path`, recognising QCOW2 by its magic number; anything else is a raw disk.
    package init(path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw SystemError("open image", path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw InstallError.invalidImage(path: path, reason: "it is not a regular file (give the .raw or .qcow2 file rast-build wrote)")
        }
        let file = try FileDescriptor.open(path: path, .readOnly, operation: "open image")
        self.path = path
        self.file = file
        if QCOW2Reader.isQCOW2(path: path) {
            do {
                let reader = try QCOW2Reader(path: path)
                self.reader = reader
                format = .qcow2
                virtualSize = reader.virtualSize
            } catch {
                try? file.close()
                throw error
            }
        } else {
            reader = nil
            format = .raw
            virtualSize = Int64(st.st_size)
        }
    }

    deinit { try? file.close() }

    /// The ranges of the virtual disk that hold data, in order; everything else reads as zeros.
    package func dataExtents() throws -> [Range<Int64>] {
        switch format {
        case .raw: return try rawExtents()
        case .qcow2: return try qcow2Extents()
        }
    }

    private func rawExtents() throws -> [Range<Int64>] {
        try file.dataExtents(size: virtualSize, path: path)
    }

    private func qcow2Extents() throws -> [Range<Int64>] {
        guard let reader else { return [] }
        let cluster = Int64(reader.clusterSize)
        let count = (virtualSize + cluster - 1) / cluster
        var extents: [Range<Int64>] = []
        for index in 0..<count {
            if index % 4096 == 0 { try checkCancelled() }
            switch try reader.mapping(ofCluster: index) {
            case .unallocated, .zero:
                continue
            case .data, .compressed:
                let range = index * cluster..<min((index + 1) * cluster, virtualSize)
                if let last = extents.last, last.upperBound == range.lowerBound {
                    extents[extents.count - 1] = last.lowerBound..<range.upperBound
                } else {
                    extents.append(range)
                }
            }
        }
        return extents
    }

    /// Fills `buffer` with the virtual disk's bytes at `offset` (zeros past the end of a raw file).
    package func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws {
        if let reader {
            try reader.read(at: offset, into: buffer)
            return
        }
        let got = try file.read(filling: buffer, fromAbsoluteOffset: offset, path: path)
        if got < buffer.count {
            UnsafeMutableRawBufferPointer(rebasing: buffer[got...]).initializeMemory(as: UInt8.self, repeating: 0)
        }
    }

    /// Bytes of data (everything that is not a hole).
    package func dataBytes() throws -> Int64 {
        try dataExtents().reduce(0) { $0 + Int64($1.count) }
    }

    /// SHA-256 of the image file itself (what NAME.manifest.json and SHA256SUMS record).
    package func fileSHA256(progress: ProgressReporter) throws -> String {
        try SHA256.hash(file: path) { done, total in
            try checkCancelled()
            progress.update(ProgressUpdate(task: "SHA-256", completed: done, total: total, unit: .bytes))
        }
    }
}

/// What rast-build recorded about an image beside it: NAME.manifest.json and SHA256SUMS.
package struct ImageRecords: Sendable {
    /// The parts of the manifest rast-install uses (decoded leniently, so that newer
    /// manifests with more fields still read).
    package struct ManifestSummary: Decodable, Sendable {
        package struct Output: Decodable, Sendable {
            package let file: String
            package let sha256: String
        }
        package struct Disk: Decodable, Sendable {
            package let bootloader: String?
            package let firmware: [String]?
        }
        package let name: String?
        package let outputs: [Output]?
        package let disk: Disk?
        package let deployed: Int?
    }

    package var manifestPath: String?
    package var manifest: ManifestSummary?
    /// The SHA-256 the records give for the image, and which file says so.
    package var expectedSHA256: (value: String, source: String)?

    /// Reads the records beside `image` (`DIR/NAME.raw` → `DIR/NAME.manifest.json`, `DIR/SHA256SUMS`).
    /// Records that disagree with each other are an error.
    package static func load(besides image: String) throws -> ImageRecords {
        let directory = (image as NSString).deletingLastPathComponent
        let file = (image as NSString).lastPathComponent
        let stem = (file as NSString).deletingPathExtension
        var records = ImageRecords()
        var expectations: [(value: String, source: String)] = []

        let manifestPath = (directory.isEmpty ? "." : directory) + "/\(stem).manifest.json"
        if Files.exists(manifestPath) {
            do {
                let manifest = try JSONDecoder().decode(ManifestSummary.self, from: Data(try Files.read(manifestPath)))
                records.manifest = manifest
                records.manifestPath = manifestPath
                if let output = manifest.outputs?.first(where: { $0.file == file }) {
                    expectations.append((output.sha256.lowercased(), (manifestPath as NSString).lastPathComponent))
                }
            } catch {
                throw InstallError.invalidImage(path: image, reason: "its manifest \(manifestPath) cannot be read: \(error)", cause: error)
            }
        }
        let sumsPath = (directory.isEmpty ? "." : directory) + "/SHA256SUMS"
        if Files.exists(sumsPath) {
            for line in try Files.readString(sumsPath).split(separator: "\n") {
                // sha256sum format: HASH, two characters (" " or " *"), NAME.
                let parts = line.split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { continue }
                var name = parts[1].drop { $0 == " " }
                if name.hasPrefix("*") { name = name.dropFirst() }
                if name == file { expectations.append((String(parts[0]).lowercased(), "SHA256SUMS")) }
            }
        }
        if let first = expectations.first, let other = expectations.first(where: { $0.value != first.value }) {
            throw InstallError.invalidImage(path: image, reason: "\(first.source) and \(other.source) record different SHA-256 sums for it (\(first.value), \(other.value))")
        }
        records.expectedSHA256 = expectations.first
        return records
    }
}
