import Foundation

/// Okapi BM25 over analysed terms (lower-cased letters and digits, a few English function
/// words dropped, plurals folded by the S-stemmer). A document's name counts twice, so a
/// word in the name weighs more than the same word in its description.
package struct BM25Index: Sendable {
    package static let k1: Float = 1.2
    package static let b: Float = 0.75
    package static let nameWeight = 2

    private var postings: [String: [(document: Int32, frequency: Float)]] = [:]
    private var lengths: [Float] = []
    private var averageLength: Float = 1

    package init<Documents: Sequence>(_ documents: Documents) where Documents.Element == (name: String, text: String) {
        var total = 0
        for (index, document) in documents.enumerated() {
            var counts: [String: Int] = [:]
            let nameTerms = Self.terms(document.name)
            for term in nameTerms { counts[term, default: 0] += Self.nameWeight }
            let textTerms = Self.terms(document.text)
            for term in textTerms { counts[term, default: 0] += 1 }
            let length = nameTerms.count * Self.nameWeight + textTerms.count
            lengths.append(Float(length))
            total += length
            for (term, count) in counts { postings[term, default: []].append((Int32(index), Float(count))) }
        }
        averageLength = lengths.isEmpty ? 1 : max(1, Float(total) / Float(lengths.count))
    }

    /// How many documents the index covers.
    package var documentCount: Int { lengths.count }

    /// The index as the search index file stores it: u32 document count, f32 length of each,
    /// u32 term count, per term (sorted): string, u32 postings, per posting u32 document and
    /// u16 frequency.
    func write(to writer: inout ByteWriter) {
        writer.u32(UInt32(lengths.count))
        for length in lengths { writer.u32(length.bitPattern) }
        writer.u32(UInt32(postings.count))
        for (term, list) in postings.sorted(by: { $0.key < $1.key }) {
            writer.string(term)
            writer.u32(UInt32(list.count))
            for (document, frequency) in list {
                writer.u32(UInt32(document))
                writer.u16(UInt16(clamping: Int(frequency)))
            }
        }
    }

    init(reading reader: inout ByteReader) throws {
        let count = Int(try reader.u32())
        lengths.reserveCapacity(count)
        var total: Float = 0
        for _ in 0..<count {
            let length = Float(bitPattern: try reader.u32())
            lengths.append(length)
            total += length
        }
        averageLength = count == 0 ? 1 : max(1, total / Float(count))
        let terms = Int(try reader.u32())
        postings.reserveCapacity(terms)
        for _ in 0..<terms {
            let term = try reader.string()
            let size = Int(try reader.u32())
            let raw = try reader.bytes(size * 6)
            var list: [(document: Int32, frequency: Float)] = []
            list.reserveCapacity(size)
            for index in 0..<size {
                let base = index * 6
                let document = UInt32(raw[base]) | UInt32(raw[base + 1]) << 8 | UInt32(raw[base + 2]) << 16 | UInt32(raw[base + 3]) << 24
                guard Int(document) < count else { throw reader.damaged("a posting names document \(document) of \(count)") }
                list.append((Int32(document), Float(UInt16(raw[base + 4]) | UInt16(raw[base + 5]) << 8)))
            }
            postings[term] = list
        }
    }

    /// Documents with a score above zero, best first (ties by document order), at most `limit`.
    package func search(_ query: String, limit: Int) -> [(document: Int, score: Float)] {
        var scores: [Int32: Float] = [:]
        let count = Float(lengths.count)
        for term in Set(Self.terms(query)) {
            guard let list = postings[term] else { continue }
            let frequencyOfTerm = Float(list.count)
            let idf: Float = Float(log(Double(1 + (count - frequencyOfTerm + 0.5) / (frequencyOfTerm + 0.5))))
            for (document, frequency) in list {
                let relativeLength: Float = lengths[Int(document)] / averageLength
                let norm: Float = Self.k1 * (1 - Self.b + Self.b * relativeLength)
                let weight: Float = frequency * (Self.k1 + 1) / (frequency + norm)
                scores[document, default: 0] += idf * weight
            }
        }
        return scores.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(limit).map { (Int($0.key), $0.value) }
    }

    static let stopWords: Set<String> = [
        "a", "an", "the", "for", "of", "to", "in", "and", "or", "with", "on", "at", "by", "from", "is", "are", "be",
        "it", "its", "that", "this", "i", "me", "my", "do", "does", "have", "has", "want", "need", "how", "what",
        "which", "who", "some", "any", "all", "can", "should", "would", "get", "install", "installed",
    ]

    /// The analysed terms of a text.
    package static func terms(_ text: String) -> [String] {
        var terms: [String] = []
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            // ASCII (nearly every package description and configuration line), byte by byte.
            var current: [UInt8] = []
            current.reserveCapacity(32)
            func flush() {
                guard !current.isEmpty else { return }
                let word = String(decoding: current, as: UTF8.self)
                if !stopWords.contains(word) { terms.append(String(decoding: stem(current), as: UTF8.self)) }
                current.removeAll(keepingCapacity: true)
            }
            for byte in text.utf8 {
                switch byte {
                case 0x30...0x39, 0x61...0x7A: current.append(byte)
                case 0x41...0x5A: current.append(byte + 0x20)
                default: flush()
                }
            }
            flush()
            return terms
        }
        var current = ""
        func flush() {
            if !current.isEmpty, !stopWords.contains(current) { terms.append(stem(current)) }
            current = ""
        }
        for character in text.lowercased() {
            if character.isLetter || character.isNumber {
                current.append(character)
            } else {
                flush()
            }
        }
        flush()
        return terms
    }

    /// The S-stemmer on ASCII bytes.
    static func stem(_ word: [UInt8]) -> ArraySlice<UInt8> {
        let count = word.count
        func ends(_ suffix: StaticString) -> Bool {
            let length = suffix.utf8CodeUnitCount
            guard count >= length else { return false }
            return suffix.withUTF8Buffer { $0.elementsEqual(word[(count - length)...]) }
        }
        if count > 3, ends("ies"), !ends("eies"), !ends("aies") { return word[..<(count - 3)] + [0x79] }
        if count > 3, ends("es"), !ends("aes"), !ends("ees"), !ends("oes") { return word[..<(count - 1)] }
        if count > 2, ends("s"), !ends("us"), !ends("ss") { return word[..<(count - 1)] }
        return word[...]
    }

    /// Harman's S-stemmer: "libraries" -> "library", "boxes" -> "boxe", "files" -> "file".
    static func stem(_ word: String) -> String {
        if word.count > 3, word.hasSuffix("ies"), !word.hasSuffix("eies"), !word.hasSuffix("aies") { return String(word.dropLast(3)) + "y" }
        if word.count > 3, word.hasSuffix("es"), !word.hasSuffix("aes"), !word.hasSuffix("ees"), !word.hasSuffix("oes") { return String(word.dropLast()) }
        if word.count > 2, word.hasSuffix("s"), !word.hasSuffix("us"), !word.hasSuffix("ss") { return String(word.dropLast()) }
        return word
    }
}
