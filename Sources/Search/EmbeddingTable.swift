import Foundation
import SystemSupport

/// The static token-embedding table `rast search` ranks with: one row per WordPiece token,
/// distilled from all-MiniLM-L6-v2 by `Embeddings/generate-embeddings.py` (see its header for
/// the method). A text's embedding is the normalised mean of its tokens' rows.
///
/// File layout (little-endian):
/// ```
/// offset      size    field
/// 0           8       magic "RASTEMB1"
/// 8           4       u32 format version (1)
/// 12          4       u32 V, vocabulary size
/// 16          4       u32 D, dimensions
/// 20          4       u32 quantisation: 1 = int8 rows with a float32 scale per row
/// 24          4       u32 N, bytes of the vocabulary block
/// 28          4       u32 flags: bit 0 = lower-case and strip accents before WordPiece
/// 32          N       vocabulary: V tokens in id order, each ending with "\n"
/// 32+N        pad     zero bytes up to a multiple of 4
/// A           4*V     f32 scale of each row
/// A+4V        D*V     i8 rows; row i, dimension j = scale[i] * value[i*D + j]
/// ```
package final class EmbeddingTable: Sendable {
    package let tokenizer: WordPieceTokenizer
    package let dimensions: Int
    /// FNV-1a of the whole file: search indexes made with another table are rebuilt.
    package let identity: UInt64
    /// Row i is `scales[i] * rows[i*dimensions ..< (i+1)*dimensions]`.
    private let rows: [Int8]
    private let scales: [Float]

    package static let fileName = "embeddings.rtab"
    static let magic = Array("RASTEMB1".utf8)

    package convenience init(path: String) throws(SearchError) {
        let bytes: [UInt8]
        do {
            bytes = try Files.read(path)
        } catch {
            throw SearchError.missingTable(path: path, cause: error)
        }
        try self.init(bytes: bytes, path: path)
    }

    init(bytes: [UInt8], path: String) throws(SearchError) {
        func fail(_ reason: String) -> SearchError { .badTable("\(path): \(reason)") }
        guard bytes.count >= 32, Array(bytes[0..<8]) == Self.magic else { throw fail("not a rast embedding table (no RASTEMB1 header)") }
        func u32(_ offset: Int) -> Int {
            Int(UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24)
        }
        let version = u32(8), count = u32(12), dimensions = u32(16), quantisation = u32(20), vocabularyBytes = u32(24)
        guard version == 1 else { throw fail("format version \(version); this rast reads version 1") }
        guard quantisation == 1 else { throw fail("quantisation \(quantisation) is unknown (1 = int8)") }
        guard count > 0, dimensions > 0, dimensions <= 4096 else { throw fail("\(count) tokens of \(dimensions) dimensions") }
        let scalesOffset = (32 + vocabularyBytes + 3) / 4 * 4
        let rowsOffset = scalesOffset + 4 * count
        guard bytes.count == rowsOffset + count * dimensions else {
            throw fail("\(bytes.count) bytes, but the header describes \(rowsOffset + count * dimensions) (truncated or damaged)")
        }
        var vocabulary = String(decoding: bytes[32..<(32 + vocabularyBytes)], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if vocabulary.last == "" { vocabulary.removeLast() }
        guard vocabulary.count == count else { throw fail("the vocabulary holds \(vocabulary.count) tokens, the header says \(count)") }
        var scales = [Float](repeating: 0, count: count)
        for row in 0..<count { scales[row] = Float(bitPattern: UInt32(u32(scalesOffset + 4 * row))) }
        let rows = bytes[rowsOffset...].map { Int8(bitPattern: $0) }
        // FNV-1a over 8-byte words (the identity only has to change when the table does).
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBytes { raw in
            let words = raw.count / 8
            for index in 0..<words { hash = (hash ^ raw.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) &* 0x100_0000_01b3 }
            for index in (words * 8)..<raw.count { hash = (hash ^ UInt64(raw[index])) &* 0x100_0000_01b3 }
        }
        self.identity = hash
        self.tokenizer = try WordPieceTokenizer(vocabulary: vocabulary)
        self.dimensions = dimensions
        self.rows = rows
        self.scales = scales
    }

    /// The unit-length embedding of `text` (all zeros when no token of it carries meaning).
    package func embed(_ text: String) -> [Float] {
        embed(tokens: tokenizer.encode(text))
    }

    package func embed(tokens: [Int32]) -> [Float] {
        var sum = [Float](repeating: 0, count: dimensions)
        guard !tokens.isEmpty else { return sum }
        rows.withUnsafeBufferPointer { rows in
            sum.withUnsafeMutableBufferPointer { sum in
                for token in tokens {
                    let scale = scales[Int(token)]
                    guard scale != 0 else { continue }
                    let offset = Int(token) * dimensions
                    for column in 0..<dimensions { sum[column] += scale * Float(rows[offset + column]) }
                }
            }
        }
        var norm: Float = 0
        for value in sum { norm += value * value }
        norm = norm.squareRoot()
        guard norm > 0 else { return sum }
        return sum.map { $0 / norm }
    }

    /// Where the table is: `$RAST_SEARCH_DATA`; the source checkout rast was built in
    /// (Sources/Search/Embeddings); else /usr/share/rast/search, where the rast package puts it.
    package static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let directory = environment["RAST_SEARCH_DATA"], !directory.isEmpty { return directory + "/" + fileName }
        let checkout = "Sources/Search/Embeddings/" + fileName
        let base = DataDirectory.locate(containing: checkout)
        if base != DataDirectory.installed, Files.exists(base + "/" + checkout) { return base + "/" + checkout }
        return DataDirectory.installed + "/search/" + fileName
    }
}
