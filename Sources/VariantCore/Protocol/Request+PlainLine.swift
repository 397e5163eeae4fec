/// The request decoder's fast path: reads the members of the most common request lines without the general JSON
/// parser, for `Request.decode` to check like any other line.
///
/// A plain line is an object whose members are strings, integers of at most 15 digits, or objects of at most 32
/// strings (`attributes`, `variables`), with no key twice; every key and string printable ASCII without escapes.
/// That covers a client's `assign` and `render` (and `health`, `config`, ...). The general parser costs about a
/// third of answering an `assign` and half of a `render` (profiled); this reader a small part of that. It reads
/// nothing the general parser would reject or read differently: any line it does not fully recognise gives nil
/// and goes to the general parser, and either way the same `Request.fields` checks run on the same members, so
/// both paths decode every line the same (pinned by a property test and the differential check, docs/testing.md).
enum PlainLine {
    /// More members than this in a nested object take the general path, whose parser finds duplicate keys by
    /// hashing; this reader compares every pair.
    static let maximumNestedMembers = 32

    /// The line's members, or nil when it is not a plain line.
    static func members(_ line: UnsafeBufferPointer<UInt8>) -> JSONObject? {
        var scanner = Scanner(bytes: line)
        scanner.skipWhitespace()
        guard let object = scanner.plainObject(nested: false) else { return nil }
        scanner.skipWhitespace()
        return scanner.atEnd ? object : nil
    }

    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0

        var atEnd: Bool { position == bytes.count }

        mutating func skipWhitespace() {
            while position < bytes.count,
                bytes[position] == 0x20 || bytes[position] == 0x09 || bytes[position] == 0x0A || bytes[position] == 0x0D
            {
                position += 1
            }
        }

        mutating func consume(_ byte: UInt8) -> Bool {
            guard position < bytes.count, bytes[position] == byte else { return false }
            position += 1
            return true
        }

        /// An object of plain members (top level: strings, small integers and nested plain objects; nested: strings
        /// only, at most `maximumNestedMembers`) with no key twice; nil otherwise.
        mutating func plainObject(nested: Bool) -> JSONObject? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var members: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return JSONObject(members) }
            members.reserveCapacity(nested ? 8 : 5)
            var keys: [Range<Int>] = []
            keys.reserveCapacity(nested ? 8 : 5)
            repeat {
                skipWhitespace()
                guard let key = plainStringRange() else { return nil }
                let keyBytes = UnsafeBufferPointer(rebasing: bytes[key])
                guard !keys.contains(where: { UnsafeBufferPointer.sameBytes(UnsafeBufferPointer(rebasing: bytes[$0]), keyBytes) })
                else { return nil }
                keys.append(key)
                skipWhitespace()
                guard consume(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                let value: JSONValue
                if let text = plainStringRange() {
                    value = .string(String(decoding: UnsafeBufferPointer(rebasing: bytes[text]), as: UTF8.self))
                } else if nested {
                    return nil
                } else if let number = smallInteger() {
                    value = .number(Double(number))
                } else if let object = plainObject(nested: true) {
                    value = .object(object)
                } else {
                    return nil
                }
                if nested, members.count == PlainLine.maximumNestedMembers { return nil }
                members.append((String(decoding: keyBytes, as: UTF8.self), value))
                skipWhitespace()
            } while consume(UInt8(ascii: ","))
            guard consume(UInt8(ascii: "}")) else { return nil }
            return JSONObject(members)
        }

        /// A string of printable ASCII without escapes, as the range of `bytes` its contents occupy (without the
        /// quotes); nil (position unchanged) otherwise.
        mutating func plainStringRange() -> Range<Int>? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { return nil }
            var end = position + 1
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") {
                    let contents = (position + 1)..<end
                    position = end + 1
                    return contents
                }
                guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
                end += 1
            }
            return nil
        }

        /// An integer literal of 1 to 15 digits as JSON writes it (no leading zero, optional minus), not followed by
        /// a fraction or an exponent; nil (position unchanged) otherwise. Its double is exact, and `JSONWriter`
        /// writes it back as the request wrote it, so an `id` needs no copy of its text.
        mutating func smallInteger() -> Int? {
            var end = position
            let negative = end < bytes.count && bytes[end] == UInt8(ascii: "-")
            if negative { end += 1 }
            let digitsStart = end
            var value = 0
            while end < bytes.count, bytes[end] >= UInt8(ascii: "0"), bytes[end] <= UInt8(ascii: "9") {
                // Stop before the value could overflow (found by fuzz-request: a 26-digit id trapped here).
                guard end - digitsStart < 15 else { return nil }
                value = value * 10 + Int(bytes[end] - UInt8(ascii: "0"))
                end += 1
            }
            let digits = end - digitsStart
            guard (1...15).contains(digits), !(digits > 1 && bytes[digitsStart] == UInt8(ascii: "0")) else { return nil }
            if end < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[end]) {
                return nil
            }
            // `-0` reads as 0, which is not how the request wrote it: left to the general parser.
            guard !(negative && value == 0) else { return nil }
            position = end
            return negative ? -value : value
        }
    }
}
