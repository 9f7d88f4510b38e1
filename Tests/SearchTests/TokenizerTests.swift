import Foundation
@testable import Search
import SystemSupport
import TestSupport
import Testing

enum SearchFixtures {
    static let embeddings = ProjectPaths.root + "/Sources/Search/Embeddings"
    static let table = embeddings + "/" + EmbeddingTable.fileName
    static let fixtures = ProjectPaths.root + "/Tests/SearchTests/Fixtures"

    /// The committed table, loaded once per test process.
    static func loadTable() throws -> EmbeddingTable { try cached.get() }
    private static let cached: Result<EmbeddingTable, any Error> = Result { try EmbeddingTable(path: table) }
}

@Suite("WordPiece tokenizer and embedding table")
struct TokenizerTests {
    struct Reference: Decodable {
        let text: String
        let ids: [Int32]
    }

    /// The Swift tokenizer gives the reference tokenizer's ids for every text of the committed
    /// reference (made by make-tokenizer-reference.py with the pinned Hugging Face tokenizers).
    @Test func matchesTheReferenceTokenizer() throws {
        let table = try SearchFixtures.loadTable()
        let lines = try Files.readString(SearchFixtures.fixtures + "/tokenizer-reference.jsonl").split(separator: "\n")
        #expect(lines.count > 2_000)
        var mismatches: [String] = []
        for line in lines {
            let reference = try JSONDecoder().decode(Reference.self, from: Data(line.utf8))
            let ids = table.tokenizer.encode(reference.text)
            if ids != reference.ids {
                mismatches.append("\(reference.text.debugDescription): \(table.tokenizer.tokens(reference.text)) != \(reference.ids.map { table.tokenizer.vocabulary[Int($0)] })")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(lines.count) texts differ:\n\(mismatches.prefix(20).joined(separator: "\n"))")
    }

    /// The committed table is the one its checksum file names, with the licence beside it.
    @Test func tableMatchesItsChecksumAndCarriesItsLicence() throws {
        let recorded = try Files.readString(SearchFixtures.embeddings + "/" + EmbeddingTable.fileName + ".sha256")
        let digest = try SHA256.hash(file: SearchFixtures.table)
        #expect(recorded.hasPrefix(digest + "  " + EmbeddingTable.fileName))
        let notice = try Files.readString(SearchFixtures.embeddings + "/NOTICE")
        #expect(notice.contains("Apache License"))
        #expect(Files.exists(SearchFixtures.embeddings + "/LICENSE-all-MiniLM-L6-v2"))
        let table = try SearchFixtures.loadTable()
        #expect(table.tokenizer.vocabulary.count == 30_522)
    }

    /// Related words are nearer than unrelated ones; texts without meaningful tokens embed to zero.
    @Test func embeddingsPlaceRelatedWordsNearEachOther() throws {
        let table = try SearchFixtures.loadTable()
        func cosine(_ a: String, _ b: String) -> Float { zip(table.embed(a), table.embed(b)).map { $0 * $1 }.reduce(0, +) }
        #expect(cosine("web browser", "internet navigator for websites") > cosine("web browser", "compression library"))
        #expect(cosine("text editor", "edit files in the terminal") > cosine("text editor", "music player"))
        #expect(table.embed("").allSatisfy { $0 == 0 })
        let norm = table.embed("secure shell server").map { $0 * $0 }.reduce(0, +)
        #expect(abs(norm - 1) < 1e-4)
    }

    /// A damaged or truncated table is refused with a sentence naming the file.
    @Test func damagedTablesAreRefused() throws {
        let scratch = try TemporaryDirectory(prefix: "rast-search-table")
        defer { try? scratch.remove() }
        let bytes = try Files.read(SearchFixtures.table)
        let truncated = scratch.appending("truncated.rtab")
        try Files.writeAtomically(truncated, bytes: Array(bytes.dropLast(1000)))
        #expect(throws: SearchError.self) { try EmbeddingTable(path: truncated) }
        do {
            _ = try EmbeddingTable(path: truncated)
        } catch {
            #expect("\(error)".contains(truncated))
            #expect("\(error)".contains("truncated or damaged"))
        }
        let other = scratch.appending("other.rtab")
        try Files.writeAtomically(other, string: "not a table at all, but long enough to have a header\n")
        #expect(throws: SearchError.self) { try EmbeddingTable(path: other) }
        #expect(throws: SearchError.self) { try EmbeddingTable(path: scratch.appending("missing.rtab")) }
    }
}
