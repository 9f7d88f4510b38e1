import Foundation

/// BERT's uncased WordPiece tokenizer, as the reference (Hugging Face `tokenizers`,
/// `BertNormalizer` + `BertPreTokenizer` + `WordPiece`) runs it for all-MiniLM-L6-v2:
///
/// 1. clean: drop NUL, U+FFFD and control characters (other than tab, newline, carriage
///    return), turn white space into spaces;
/// 2. put spaces around CJK ideographs;
/// 3. strip accents (NFD, then drop non-spacing marks) and lower-case, character by character;
/// 4. split on white space and around every punctuation character;
/// 5. each word becomes the longest vocabulary pieces from the left ("##" marks a piece that
///    continues a word); a word that cannot be covered, or is longer than 100 characters,
///    becomes [UNK].
package struct WordPieceTokenizer: Sendable {
    package let vocabulary: [String]
    private let ids: [String: Int32]
    package let unknownID: Int32
    /// Longest vocabulary entry in Unicode scalars (bounds the greedy match).
    private let longestPiece: Int

    package static let maximumWordLength = 100

    package init(vocabulary: [String]) throws(SearchError) {
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(vocabulary.count)
        var longest = 1
        for (index, token) in vocabulary.enumerated() where ids[token] == nil {
            ids[token] = Int32(index)
            longest = max(longest, token.unicodeScalars.count)
        }
        guard let unknown = ids["[UNK]"] else { throw SearchError.badTable("the vocabulary has no [UNK] token") }
        self.vocabulary = vocabulary
        self.ids = ids
        self.unknownID = unknown
        self.longestPiece = longest
    }

    /// The token id of a vocabulary entry.
    package func id(of token: String) -> Int32? { ids[token] }

    /// The token ids of `text`, without [CLS] and [SEP] around it.
    package func encode(_ text: String) -> [Int32] {
        var result: [Int32] = []
        // Special tokens written in the text are tokens of their own, as the reference splits them
        // off before normalising.
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "[") {
            let tail = rest[open...]
            guard let special = Self.specialTokens.first(where: { tail.hasPrefix($0) }), let id = ids[special] else {
                for word in Self.words(String(rest[...open])) { appendPieces(of: word, to: &result) }
                rest = rest[rest.index(after: open)...]
                continue
            }
            for word in Self.words(String(rest[..<open])) { appendPieces(of: word, to: &result) }
            result.append(id)
            rest = tail.dropFirst(special.count)
        }
        for word in Self.words(String(rest)) { appendPieces(of: word, to: &result) }
        return result
    }

    static let specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    /// The token strings of `text` (for diagnostics and tests).
    package func tokens(_ text: String) -> [String] { encode(text).map { vocabulary[Int($0)] } }

    /// Steps 1-4: the normalised words of `text`.
    package static func words(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        func flush() {
            if !current.isEmpty { words.append(current) }
            current.removeAll(keepingCapacity: true)
        }
        func add(_ scalar: Unicode.Scalar) {
            if isWhitespace(scalar) {
                flush()
            } else if isPunctuation(scalar) {
                flush()
                words.append([scalar])
            } else {
                current.append(scalar)
            }
        }
        for scalar in text.unicodeScalars {
            if scalar.isASCII {
                // The common case, without Unicode tables: ASCII has no accents and no CJK.
                let value = scalar.value
                if value == 0 || (value < 0x20 && value != 0x09 && value != 0x0A && value != 0x0D) || value == 0x7F { continue }
                add(value >= 0x41 && value <= 0x5A ? Unicode.Scalar(UInt8(value + 0x20)) : scalar)
                continue
            }
            if scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) {
                flush()
                continue
            }
            if isChineseCharacter(scalar) {
                flush()
                words.append([scalar])
                continue
            }
            // Accents are stripped before lower-casing, each on the decomposition of one character.
            for decomposed in String(scalar).decomposedStringWithCanonicalMapping.unicodeScalars
            where decomposed.properties.generalCategory != .nonspacingMark {
                for lower in decomposed.properties.lowercaseMapping.unicodeScalars { add(lower) }
            }
        }
        flush()
        return words
    }

    /// Step 5 for one word.
    private func appendPieces(of word: [Unicode.Scalar], to result: inout [Int32]) {
        if word.count > Self.maximumWordLength {
            result.append(unknownID)
            return
        }
        let start = result.count
        var position = 0
        while position < word.count {
            var end = min(word.count, position + longestPiece)
            var found: Int32?
            while end > position {
                var piece = position > 0 ? "##" : ""
                piece.unicodeScalars.append(contentsOf: word[position..<end])
                if let id = ids[piece] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else {
                result.removeSubrange(start...)
                result.append(unknownID)
                return
            }
            result.append(found)
            position = end
        }
    }

    // Character classes as the reference defines them (Rust's char::is_whitespace and the
    // Unicode general categories).

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D, 0x20: return true
        default: return scalar.properties.isWhitespace
        }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D: return false
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .unassigned, .privateUse: return true
            default: return false
            }
        }
    }

    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (0x21...0x2F).contains(value) || (0x3A...0x40).contains(value) || (0x5B...0x60).contains(value) || (0x7B...0x7E).contains(value) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation,
             .otherPunctuation, .openPunctuation:
            return true
        default:
            return false
        }
    }

    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
