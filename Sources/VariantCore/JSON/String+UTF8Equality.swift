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
            rhs.withUTF8 { rhsBytes in UnsafeBufferPointer.sameBytes(lhsBytes, rhsBytes) }
        }
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// Whether two byte buffers hold the same bytes: a plain loop, which the generic `elementsEqual` (an iterator
    /// per side) is several times slower than on the request path.
    @inlinable
    static func sameBytes(_ lhs: UnsafeBufferPointer<UInt8>, _ rhs: UnsafeBufferPointer<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        guard let left = lhs.baseAddress, let right = rhs.baseAddress else { return true }
        var index = 0
        while index < lhs.count {
            if left[index] != right[index] { return false }
            index += 1
        }
        return true
    }
}
