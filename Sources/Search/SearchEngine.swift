/// Ranks documents for a query: BM25 on the words, cosine similarity of static embeddings
/// for the meaning, fused by reciprocal rank (k = 60). A document whose name is the query
/// itself always comes first.
package final class SearchEngine: Sendable {
    package enum Ranking: String, Sendable, CaseIterable {
        case bm25, embedding, hybrid
    }

    package struct Result: Sendable, Equatable {
        package let document: SearchDocument
        package let score: Float
        /// 1-based ranks in the two lists (nil when the document was not in that list).
        package let bm25Rank: Int?
        package let embeddingRank: Int?
        package let exactName: Bool
    }

    package static let fusionK: Float = 60
    /// How deep each list goes into the fusion.
    package static let candidates = 200

    package let documents: [SearchDocument]
    package let table: EmbeddingTable
    /// Unit-length document embeddings, row after row.
    private let vectors: [Float]
    let bm25: BM25Index

    /// `vectors` holds one row of `table.dimensions` values per document, `bm25` the BM25 index
    /// of the documents (each computed when nil).
    package init(documents: [SearchDocument], vectors: [Float]? = nil, table: EmbeddingTable, bm25: BM25Index? = nil) {
        self.documents = documents
        self.table = table
        if let vectors, vectors.count == documents.count * table.dimensions {
            self.vectors = vectors
        } else {
            self.vectors = documents.flatMap { table.embed($0.embeddingText) }
        }
        self.bm25 = bm25 ?? BM25Index(documents.lazy.map { (name: $0.rankedName, text: $0.text) })
    }

    /// The documents called `name` (ignoring case), in order.
    func named(_ name: String) -> [Int] {
        documents.indices.filter { Self.equalIgnoringCase(documents[$0].name, name) }
    }

    /// ASCII compared byte by byte (a scan over every document stays fast); anything else lower-cased.
    static func equalIgnoringCase(_ a: String, _ b: String) -> Bool {
        var left = a.utf8.makeIterator(), right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil):
                return true
            case (let x?, let y?) where x < 0x80 && y < 0x80:
                let lowerX = x >= 0x41 && x <= 0x5A ? x + 0x20 : x
                let lowerY = y >= 0x41 && y <= 0x5A ? y + 0x20 : y
                if lowerX != lowerY { return false }
            case (let x?, let y?) where x >= 0x80 || y >= 0x80:
                return a.lowercased() == b.lowercased()
            default:
                return false
            }
        }
    }

    /// The package called `name`, if any document is.
    package func package(named name: String) -> SearchDocument? {
        named(name).lazy.map { self.documents[$0] }.first { $0.kind == .package }
    }

    package func search(_ query: String, kinds: Set<SearchDocument.Kind> = Set(SearchDocument.Kind.allCases),
                       limit: Int = 10, ranking: Ranking = .hybrid, exactFirst: Bool = true) -> [Result] {
        let wanted = { (index: Int) in kinds.contains(self.documents[index].kind) }
        let lexical = ranking == .embedding ? [] : bm25.search(query, limit: Int.max).lazy.map(\.document).filter(wanted).prefix(Self.candidates)
        let semantic = ranking == .bm25 ? [] : nearest(table.embed(query), limit: Self.candidates, where: wanted)
        var scores: [Int: Float] = [:]
        var lexicalRanks: [Int: Int] = [:]
        var semanticRanks: [Int: Int] = [:]
        for (rank, document) in lexical.enumerated() {
            lexicalRanks[document] = rank + 1
            scores[document, default: 0] += 1 / (Self.fusionK + Float(rank + 1))
        }
        for (rank, document) in semantic.enumerated() {
            semanticRanks[document] = rank + 1
            scores[document, default: 0] += 1 / (Self.fusionK + Float(rank + 1))
        }
        let exact = exactFirst ? Set(named(query.trimmingWhitespace).filter(wanted)) : []
        for document in exact where scores[document] == nil { scores[document] = 0 }
        let ordered = scores.sorted { a, b in
            let aExact = exact.contains(a.key), bExact = exact.contains(b.key)
            if aExact != bExact { return aExact }
            if a.value != b.value { return a.value > b.value }
            return a.key < b.key
        }
        return ordered.prefix(limit).map { index, score in
            Result(document: documents[index], score: score, bm25Rank: lexicalRanks[index], embeddingRank: semanticRanks[index],
                   exactName: exact.contains(index))
        }
    }

    /// The documents most similar to `query` (a unit vector), best first.
    func nearest(_ query: [Float], limit: Int, where wanted: (Int) -> Bool) -> [Int] {
        let dimensions = table.dimensions
        guard query.contains(where: { $0 != 0 }) else { return [] }
        var scored: [(index: Int, score: Float)] = []
        scored.reserveCapacity(documents.count)
        vectors.withUnsafeBufferPointer { vectors in
            query.withUnsafeBufferPointer { query in
                for index in documents.indices where wanted(index) {
                    var dot: Float = 0
                    let offset = index * dimensions
                    for column in 0..<dimensions { dot += vectors[offset + column] * query[column] }
                    scored.append((index, dot))
                }
            }
        }
        scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
        return scored.prefix(limit).map(\.index)
    }
}

extension String {
    var trimmingWhitespace: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
