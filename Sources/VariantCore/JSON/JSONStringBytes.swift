/// What a JSON string's bytes mean, shared by the parser and the Swift shim's in-place reader of rendered text, so
/// that both read a string by one rule.
public enum JSONStringBytes {
    /// The position after the whole 8-byte words of plain ASCII from `position`: no quote, backslash, control
    /// character or byte of 0x80 and above (each found with the usual bit tricks on the word). A string's bytes are
    /// mostly such words; a byte-by-byte loop takes over at the first word that is not.
    @inlinable @inline(__always)
    public static func endOfPlainASCIIWords(_ base: UnsafePointer<UInt8>, from position: Int, count: Int) -> Int {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        var position = position
        while position + 8 <= count {
            let word = UInt64(littleEndian: UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self))
            let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
            let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
            let hasQuote = (quote &- ones) & ~quote
            let hasBackslash = (backslash &- ones) & ~backslash
            let hasControl = (word &- ones &* 0x20) & ~word
            guard (hasQuote | hasBackslash | hasControl | word) & highBits == 0 else { return position }
            position += 8
        }
        return position
    }

    /// The byte a two-character escape `\` + `escape` stands for; nil for `u` (four hex digits follow) and for an
    /// escape JSON does not have.
    @inlinable
    public static func shortEscape(_ escape: UInt8) -> UInt8? {
        switch escape {
        case UInt8(ascii: "\""): UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case UInt8(ascii: "/"): UInt8(ascii: "/")
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
    }
}
