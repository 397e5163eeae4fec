import Testing
import VariantCore

/// `JSONStringBytes.endOfPlainASCIIWords` (8 bytes at a time, with bit tricks on the word) ends where a
/// byte-by-byte reading of whole 8-byte words ends: at the first word from the start that holds a quote, a
/// backslash, a control character or a byte of 0x80 and above.
@Suite struct JSONStringBytesTests {
    /// The definition, one byte at a time.
    static func reference(_ bytes: [UInt8], from start: Int) -> Int {
        func plain(_ byte: UInt8) -> Bool {
            byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
        }
        var position = start
        while position + 8 <= bytes.count, bytes[position..<(position + 8)].allSatisfy(plain) { position += 8 }
        return position
    }

    @Test func plainWordsEndWhereTheDefinitionSaysOnRandomText() {
        var random = SplitMix64(seed: 17)
        // Special bytes, each placed alone at every distance from the start, then mixed at random.
        let special: [UInt8] = [UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x00, 0x0A, 0x1F, 0x80, 0xC3, 0xFF]
        for length in 0...72 {
            for start in 0...min(length, 9) {
                var plain = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                #expect(Self.end(of: plain, from: start) == Self.reference(plain, from: start))
                for position in start..<length {
                    for byte in special {
                        plain[position] = byte
                        #expect(
                            Self.end(of: plain, from: start) == Self.reference(plain, from: start),
                            "length \(length), start \(start), \(byte) at \(position)")
                        plain[position] = UInt8(ascii: "a")
                    }
                }
            }
        }
        for _ in 0..<5_000 {
            let length = Int(random.next() % 200)
            let bytes = (0..<length).map { _ -> UInt8 in
                random.next() % 40 == 0 ? special[Int(random.next() % UInt64(special.count))] : UInt8(0x20 + random.next() % 0x5F)
            }
            let start = length == 0 ? 0 : Int(random.next() % UInt64(length))
            #expect(Self.end(of: bytes, from: start) == Self.reference(bytes, from: start), "\(bytes) from \(start)")
        }
    }

    static func end(of bytes: [UInt8], from start: Int) -> Int {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return start }
            return JSONStringBytes.endOfPlainASCIIWords(base, from: start, count: buffer.count)
        }
    }
}
