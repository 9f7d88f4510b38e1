/// The message for a key a reader does not know: "unknown key 'x'; did you mean 'y'?" when it
/// looks like a typo of a known one, otherwise "unknown key 'x'; the keys here are 'a', 'b'".
package func unknownKeyMessage(_ key: String, known: [String]) -> String {
    if let suggestion = closestMatch(to: key, among: known) {
        return "unknown key '\(key)'; did you mean '\(suggestion)'?"
    }
    return "unknown key '\(key)'; the keys here are \(known.map { "'\($0)'" }.joined(separator: ", "))"
}

/// The known name closest to `word` (by edit distance, ignoring case), if it is close enough
/// to be a likely typo.
package func closestMatch(to word: String, among candidates: [String]) -> String? {
    let target = Array(word.lowercased())
    var best: (name: String, distance: Int)?
    for candidate in candidates {
        let distance = editDistance(target, Array(candidate.lowercased()))
        if distance < (best?.distance ?? Int.max) { best = (candidate, distance) }
    }
    guard let best else { return nil }
    // One edit for short words, up to a third of the word for long ones.
    let allowed = max(1, min(3, max(word.count, best.name.count) / 3))
    return best.distance <= allowed ? best.name : nil
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// adjacent characters each cost one.
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previousPrevious = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], previousPrevious[j - 2] + 1)
            }
        }
        (previousPrevious, previous, current) = (previous, current, previousPrevious)
    }
    return previous[b.count]
}
