extension String {
    /// Whether two strings have the same UTF-8 bytes. Unlike `==`, which compares by Unicode canonical
    /// equivalence ("K" equals the Kelvin sign "\u{212A}"), this is what every client language can reproduce,
    /// so names, keys and attribute values compare this way throughout (PROTOCOL.md, "Targeting rule").
    @inlinable
    public func hasSameUTF8(as other: String) -> Bool {
        // O(1) for native strings, and most names that differ differ in length: no copy, no scan.
        guard utf8.count == other.utf8.count else { return false }
        var lhs = self
        var rhs = other
        return lhs.withUTF8 { lhsBytes in
            rhs.withUTF8 { rhsBytes in lhsBytes.count == rhsBytes.count && lhsBytes.elementsEqual(rhsBytes) }
        }
    }
}
