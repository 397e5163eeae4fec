/// The names a mistyped one was likely meant to be, for errors that say what to do (`unknown_experiment`,
/// `unknown_field`, variantctl's unknown subcommand).
///
/// Near means an edit distance (Damerau–Levenshtein, optimal string alignment: insertions, deletions,
/// substitutions and swaps of neighbours, by Unicode scalar) of at most a third of the longer name, and at least 1,
/// so short names only match close typos and long ones tolerate a little more.
public enum NearNames {
    /// The candidates near `name`, nearest first (ties in the candidates' order), at most `limit` of them.
    public static func near(_ name: String, among candidates: [String], limit: Int = 3) -> [String] {
        let typed = Array(name.unicodeScalars)
        var scored: [(distance: Int, position: Int, name: String)] = []
        for (position, candidate) in candidates.enumerated() {
            let other = Array(candidate.unicodeScalars)
            let allowed = Swift.max(1, Swift.max(typed.count, other.count) / 3)
            guard abs(typed.count - other.count) <= allowed else { continue }
            let distance = editDistance(typed, other)
            if distance > 0, distance <= allowed { scored.append((distance, position, candidate)) }
        }
        scored.sort { ($0.distance, $0.position) < ($1.distance, $1.position) }
        return scored.prefix(limit).map(\.name)
    }

    /// The single nearest candidate, or nil when none is near.
    public static func closest(to name: String, among candidates: [String]) -> String? {
        near(name, among: candidates, limit: 1).first
    }

    /// The optimal-string-alignment distance between two scalar sequences.
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        // Three rows of the dynamic-programming table: two back (for swaps), one back, and the current.
        var twoBack = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var best = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    best = Swift.min(best, twoBack[j - 2] + 1)
                }
                current[j] = best
            }
            (twoBack, previous, current) = (previous, current, twoBack)
        }
        return previous[b.count]
    }
}
