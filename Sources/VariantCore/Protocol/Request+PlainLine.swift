/// The request decoder's fast path: reads the members of the most common request lines without the general JSON
/// parser, for `Request.decode` to check like any other line.
///
/// A plain line is an object whose members are strings, integers of at most 15 digits, or objects of at most 32
/// strings (`attributes`, `variables`), with no key twice and every top-level key one the protocol knows; every
/// key and string printable ASCII without escapes.
/// That covers a client's `assign` and `render` (and `health`, `config`, ...). The general parser costs about a
/// third of answering an `assign` and half of a `render` (profiled); this reader a small part of that. It reads
/// nothing the general parser would reject or read differently: any line it does not fully recognise gives nil
/// and goes to the general parser, and either way the same checks run on the same `RequestMembers`, so
/// both paths decode every line the same (pinned by a property test and the differential check, docs/testing.md).
enum PlainLine {
    /// More members than this in a nested object take the general path, whose parser finds duplicate keys by
    /// hashing; this reader compares every pair.
    static let maximumNestedMembers = 32

    /// Reads the line's members into `members` (empty when called) and returns true, or returns false when it is
    /// not a plain line, with `members` partly filled. Filled in place: the members are a few hundred bytes, and
    /// returning them cost a copy per request.
    static func read(_ line: UnsafeBufferPointer<UInt8>, into members: inout RequestMembers) -> Bool {
        var scanner = Scanner(bytes: line)
        scanner.skipWhitespace()
        guard scanner.plainRequest(into: &members) else { return false }
        scanner.skipWhitespace()
        return scanner.atEnd
    }

    /// Whether the line is a plain line (what the tests ask).
    static func isPlain(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        var members = RequestMembers()
        return read(line, into: &members)
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

        /// The request object: members whose keys the protocol knows, each once, with plain values (strings,
        /// small integers, nested plain objects); nil otherwise (a key the protocol does not know is left to the
        /// general parser, which reports it).
        mutating func plainRequest(into members: inout RequestMembers) -> Bool {
            guard consume(UInt8(ascii: "{")) else { return false }
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return true }
            repeat {
                skipWhitespace()
                guard let keyRange = plainStringRange(),
                    let key = RequestMembers.Key(utf8: UnsafeBufferPointer(rebasing: bytes[keyRange])),
                    !members.present.contains(key)
                else { return false }
                skipWhitespace()
                guard consume(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                let value: JSONValue
                if let text = plainStringRange() {
                    let textBytes = UnsafeBufferPointer(rebasing: bytes[text])
                    // A known op's name is a literal: no string to make and check for it.
                    let op = key == .op ? Request.Op(utf8: textBytes) : .unknown
                    value = .string(op != .unknown ? op.name : String(decoding: textBytes, as: UTF8.self))
                } else if let number = smallInteger() {
                    value = .number(Double(number))
                } else if let object = plainNestedObject() {
                    value = .object(object)
                } else {
                    return false
                }
                members.add(key, value)
                skipWhitespace()
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "}"))
        }

        /// An object of at most `maximumNestedMembers` strings (`attributes`, `variables`) with no key twice; nil
        /// otherwise.
        mutating func plainNestedObject() -> JSONObject? {
            guard consume(UInt8(ascii: "{")) else { return nil }
            var members: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return JSONObject(members) }
            members.reserveCapacity(8)
            var keys: [Range<Int>] = []
            keys.reserveCapacity(8)
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
                guard let text = plainStringRange(), members.count < PlainLine.maximumNestedMembers else { return nil }
                members.append(
                    (String(decoding: keyBytes, as: UTF8.self),
                     .string(String(decoding: UnsafeBufferPointer(rebasing: bytes[text]), as: UTF8.self))))
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
            if end < bytes.count,
                bytes[end] == UInt8(ascii: ".") || bytes[end] == UInt8(ascii: "e") || bytes[end] == UInt8(ascii: "E")
            {
                return nil
            }
            // `-0` reads as 0, which is not how the request wrote it: left to the general parser.
            guard !(negative && value == 0) else { return nil }
            position = end
            return negative ? -value : value
        }
    }
}
