import Foundation
import SystemSupport

/// A snapshot's search index on disk: its documents and their embeddings, in segments, one
/// per source (a repository database, the installed-package database, one file of /etc). Each
/// segment carries the fingerprint of its source; an update rebuilds only the segments whose
/// source changed and keeps the rest, embeddings included.
///
/// File layout (little-endian; strings are a u32 byte count and UTF-8 bytes):
/// ```
/// "RASTIDX1"  u32 version (2)  u32 D  u64 table identity  u32 segment count
/// segment:    string key  string fingerprint  u32 document count
///             per document: u8 kind, string name, string text, string path, u32 line,
///                           string repository, string version, string installed version
///             per document: f32 scale, D x i8 (the unit embedding, quantised)
/// BM25 index over the merged documents (see BM25Index.write), so a search does not analyse
/// every document again
/// ```
/// The table identity changes with the embedding table, and then every segment is rebuilt.
package struct SearchIndex: Sendable {
    /// One source of documents and how to tell whether it changed.
    package struct Source {
        package let key: String
        package let fingerprint: String
        package let documents: () throws -> [SearchDocument]

        package init(key: String, fingerprint: String, documents: @escaping () throws -> [SearchDocument]) {
            self.key = key
            self.fingerprint = fingerprint
            self.documents = documents
        }
    }

    struct Segment: Sendable {
        var key: String
        var fingerprint: String
        var documents: [SearchDocument]
        /// Unit embeddings, D per document.
        var vectors: [Float]
    }

    /// What an update did, for the log and the tests.
    package struct UpdateReport: Sendable, Equatable {
        package var rebuilt: [String] = []
        package var kept = 0
        package var removed = 0
    }

    static let magic = Array("RASTIDX1".utf8)
    static let version: UInt32 = 2

    var segments: [Segment]
    let identity: UInt64
    /// The BM25 index of `engine`'s documents, when read from a file or computed.
    var bm25: BM25Index?

    /// Reads an index; nil when there is none or it was made with another table or format.
    static func read(path: String, table: EmbeddingTable) throws -> SearchIndex? {
        guard Files.exists(path) else { return nil }
        let bytes = try Files.read(path)
        return try bytes.withUnsafeBufferPointer { buffer throws -> SearchIndex? in
            var reader = ByteReader(bytes: buffer)
            guard try reader.bytes(8).elementsEqual(magic), try reader.u32() == version, try reader.u32() == UInt32(table.dimensions),
                  try reader.u64() == table.identity else { return nil }
            let dimensions = table.dimensions
            let count = try reader.u32()
            var segments: [Segment] = []
            for _ in 0..<count {
                let key = try reader.string(), fingerprint = try reader.string()
                let documentCount = Int(try reader.u32())
                var documents: [SearchDocument] = []
                documents.reserveCapacity(documentCount)
                for _ in 0..<documentCount {
                    guard let kind = SearchDocument.Kind(rawValue: try reader.u8()) else { throw reader.damaged("unknown document kind") }
                    documents.append(SearchDocument(kind: kind, name: try reader.string(), text: try reader.string(),
                                                    path: try reader.string(), line: Int(try reader.u32()),
                                                    repository: try reader.string(), version: try reader.string(),
                                                    installedVersion: try reader.string()))
                }
                var vectors = [Float](repeating: 0, count: documentCount * dimensions)
                for row in 0..<documentCount {
                    let scale = Float(bitPattern: try reader.u32())
                    let values = try reader.bytes(dimensions)
                    for column in 0..<dimensions { vectors[row * dimensions + column] = scale * Float(Int8(bitPattern: values[column])) }
                }
                segments.append(Segment(key: key, fingerprint: fingerprint, documents: documents, vectors: vectors))
            }
            let bm25 = try BM25Index(reading: &reader)
            guard reader.atEnd else { throw reader.damaged("trailing bytes") }
            return SearchIndex(segments: segments, identity: table.identity, bm25: bm25)
        }
    }

    func write(path: String, dimensions: Int, bm25: BM25Index) throws {
        var writer = ByteWriter()
        writer.bytes(Self.magic)
        writer.u32(Self.version)
        writer.u32(UInt32(dimensions))
        writer.u64(identity)
        writer.u32(UInt32(segments.count))
        for segment in segments {
            writer.string(segment.key)
            writer.string(segment.fingerprint)
            writer.u32(UInt32(segment.documents.count))
            for document in segment.documents {
                writer.u8(document.kind.rawValue)
                writer.string(document.name)
                writer.string(document.text)
                writer.string(document.path)
                writer.u32(UInt32(clamping: document.line))
                writer.string(document.repository)
                writer.string(document.version)
                writer.string(document.installedVersion)
            }
            for row in 0..<segment.documents.count {
                let values = segment.vectors[(row * dimensions)..<((row + 1) * dimensions)]
                let largest = values.reduce(Float(0)) { max($0, abs($1)) }
                let scale = largest > 0 ? largest / 127 : 0
                writer.u32(scale.bitPattern)
                for value in values {
                    writer.u8(UInt8(bitPattern: scale > 0 ? Int8(max(-127, min(127, (value / scale).rounded()))) : 0))
                }
            }
        }
        bm25.write(to: &writer)
        try Files.createDirectory((path as NSString).deletingLastPathComponent, mode: 0o700)
        try Files.writeAtomically(path, bytes: writer.buffer, mode: 0o600)
    }

    /// Brings the index at `path` up to date with `sources` (segments whose fingerprint did
    /// not change are kept; `seeds` are other indexes whose segments may be reused, such as
    /// the parent snapshot's) and returns the engine over it. When `path` cannot be written
    /// (a user without root), the index is only built in memory.
    package static func update(path: String, sources: [Source], table: EmbeddingTable, seeds: [String] = [],
                              log: (String) -> Void = { _ in }) throws -> (engine: SearchEngine, report: UpdateReport) {
        var clock = Stopwatch()
        var known: [String: Segment] = [:]
        var previous: [String] = []
        var storedBM25: BM25Index?
        for candidate in seeds.reversed() + [path] {
            do {
                guard let index = try read(path: candidate, table: table) else { continue }
                for segment in index.segments { known[segment.key + "\u{0}" + segment.fingerprint] = segment }
                if candidate == path {
                    previous = index.segments.map(\.key)
                    storedBM25 = index.bm25
                }
            } catch {
                log("\(SearchError.badIndex(path: candidate, reason: "\(error)")); it is built anew")
            }
        }
        log(String(format: "search: index read in %.1f ms", clock.elapsed * 1000))
        clock = Stopwatch()
        var report = UpdateReport()
        var segments: [Segment] = []
        for source in sources {
            if let segment = known[source.key + "\u{0}" + source.fingerprint] {
                segments.append(segment)
                report.kept += 1
                continue
            }
            let documents = try source.documents()
            let vectors = documents.flatMap { table.embed($0.embeddingText) }
            segments.append(Segment(key: source.key, fingerprint: source.fingerprint, documents: documents, vectors: vectors))
            report.rebuilt.append(source.key)
        }
        report.removed = Set(previous).subtracting(sources.map(\.key)).count
        var index = SearchIndex(segments: segments, identity: table.identity)
        let changed = !report.rebuilt.isEmpty || report.removed > 0 || previous.isEmpty || previous != sources.map(\.key)
        if !changed, let stored = known.isEmpty ? nil : storedBM25 { index.bm25 = stored }
        log(String(format: "search: %d segments brought up to date in %.1f ms", segments.count, clock.elapsed * 1000))
        clock = Stopwatch()
        let engine = index.engine(table: table)
        log(String(format: "search: ranking structures for %d documents ready in %.1f ms", engine.documents.count, clock.elapsed * 1000))
        if changed {
            do {
                try index.write(path: path, dimensions: table.dimensions, bm25: engine.bm25)
            } catch {
                log("the search index \(path) was not saved (\(error)); it is rebuilt next time")
            }
        }
        return (engine, report)
    }

    /// The engine over every segment. A package both installed and in a repository becomes one
    /// document: the repository's, with the installed version.
    func engine(table: EmbeddingTable) -> SearchEngine {
        var documents: [SearchDocument] = []
        var vectors: [Float] = []
        var packageIndex: [String: Int] = [:]
        let dimensions = table.dimensions
        for segment in segments {
            for (row, document) in segment.documents.enumerated() {
                if document.kind == .package, let existing = packageIndex[document.name] {
                    // The first repository that has a package wins (pacman's order); the installed
                    // database only adds its version.
                    if documents[existing].installedVersion.isEmpty { documents[existing].installedVersion = document.installedVersion }
                    if documents[existing].repository.isEmpty, !document.repository.isEmpty {
                        let installed = documents[existing].installedVersion
                        documents[existing] = document
                        documents[existing].installedVersion = installed
                        vectors.replaceSubrange((existing * dimensions)..<((existing + 1) * dimensions),
                                                with: segment.vectors[(row * dimensions)..<((row + 1) * dimensions)])
                    }
                    continue
                }
                if document.kind == .package { packageIndex[document.name] = documents.count }
                documents.append(document)
                vectors += segment.vectors[(row * dimensions)..<((row + 1) * dimensions)]
            }
        }
        return SearchEngine(documents: documents, vectors: vectors, table: table, bm25: bm25.flatMap { $0.documentCount == documents.count ? $0 : nil })
    }
}

struct ByteWriter {
    var buffer: [UInt8] = []
    mutating func bytes(_ values: [UInt8]) { buffer += values }
    mutating func u8(_ value: UInt8) { buffer.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { buffer += $0 } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { buffer += $0 } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { buffer += $0 } }
    mutating func string(_ value: String) {
        let utf8 = Array(value.utf8)
        u32(UInt32(utf8.count))
        buffer += utf8
    }
}

struct ByteReader {
    struct Damaged: Error, CustomStringConvertible {
        let description: String
    }

    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0

    var atEnd: Bool { offset == bytes.count }

    func damaged(_ reason: String) -> Damaged { Damaged(description: "\(reason) at byte \(offset)") }

    mutating func bytes(_ count: Int) throws -> UnsafeBufferPointer<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw damaged("truncated") }
        defer { offset += count }
        return UnsafeBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    mutating func u8() throws -> UInt8 { try bytes(1)[0] }

    mutating func u32() throws -> UInt32 {
        let b = try bytes(4)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    mutating func u64() throws -> UInt64 {
        let low = UInt64(try u32())
        return low | UInt64(try u32()) << 32
    }

    mutating func string() throws -> String {
        String(decoding: try bytes(Int(try u32())), as: UTF8.self)
    }
}
