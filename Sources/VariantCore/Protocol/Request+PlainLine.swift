#if canImport(Glibc)
import Glibc
#endif

/// The request decoder's fast path: reads the members of the most common request lines without the general JSON
/// parser, for `Request.decode` to check like any other line.
///
/// A plain line is an object whose members' values are strings, integers of at most 15
/// digits, or objects of at most 32 strings (`attributes`, `variables`), with no key twice and every top-level key
/// one the protocol knows; every key and string ASCII without escapes or control characters.
/// That covers a client's `assign` and `render` (and `health`, `config`, ...). The general parser costs about a
/// third of answering an `assign` and half of a `render` (profiled); this reader a small part of that. It reads
/// nothing the general parser would reject or read differently: any line it does not fully recognise gives nil
/// and goes to the general parser, and either way the same checks (`RequestFields`) run on the same members, so
/// both paths decode every line the same (pinned by a property test and the differential check, docs/testing.md).
enum PlainLine {
    /// More members than this in a nested object take the general path, whose parser finds duplicate keys by
    /// hashing; this reader compares every pair.
    static let maximumNestedMembers = 32

    /// Whether the line is a plain line (what the tests ask).
    static func isPlain(_ line: UnsafeBufferPointer<UInt8>) -> Bool { Members(reading: line).isPlain }

    /// A plain line's members as where each lies in the line: a value is made only when the checks ask for it,
    /// and nothing here needs releasing. Not copyable, so that its few hundred bytes are never copied.
    struct Members: RequestFields, ~Copyable {
        fileprivate enum Kind: UInt8 { case string, integer, object }

        /// Where a member's value lies: a string's bytes without the quotes, an object's with its braces; an
        /// integer's value.
        fileprivate struct Member {
            var kind: Kind
            var start: Int32
            var end: Int32
            var integer: Int
        }

        let line: UnsafeBufferPointer<UInt8>
        private var members = KeyedMembers<Member>()

        /// Whether the whole line was read (else the members are partly read, and the line is for the general
        /// parser).
        private(set) var isPlain = false

        /// Reads the line's members. An initializer, so that the decoder binds the result to a constant: a
        /// variable was copied whole (its few hundred bytes) when its members were checked, in the release build.
        init(reading line: UnsafeBufferPointer<UInt8>) {
            self.line = line
            var scanner = Scanner(bytes: line)
            scanner.skipWhitespace()
            guard scanner.plainRequest(into: &self) else { return }
            scanner.skipWhitespace()
            isPlain = scanner.atEnd
        }

        var present: RequestMembers.Keys { members.present }
        /// No: a line with a key the protocol does not know goes to the general parser.
        var hasUnknownMember: Bool { false }

        fileprivate mutating func add(_ key: RequestMembers.Key, _ member: Member) { members.add(key, member) }

        subscript(key: RequestMembers.Key) -> JSONValue? {
            guard let member = members[key] else { return nil }
            return value(of: member, key: key)
        }

        func firstMember(notIn allowed: RequestMembers.Keys) -> String? { members.firstMember(notIn: allowed) }

        private func value(of member: Member, key: RequestMembers.Key) -> JSONValue {
            let bytes = UnsafeBufferPointer(rebasing: line[Int(member.start)..<Int(member.end)])
            switch member.kind {
            case .string:
                // A known op's name is a literal: no string to make and check for it.
                let op = key == .op ? Request.Op(utf8: bytes) : .unknown
                return .string(op != .unknown ? op.name : String(decoding: bytes, as: UTF8.self))
            case .integer:
                return .number(Double(member.integer))
            case .object:
                var scanner = Scanner(bytes: line, position: Int(member.start))
                return .object(scanner.acceptedNestedObject())
            }
        }
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
        /// small integers, nested plain objects); false otherwise (a key the protocol does not know is left to the
        /// general parser, which reports it).
        mutating func plainRequest(into members: inout Members) -> Bool {
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
                let start = position
                var member = Members.Member(kind: .string, start: 0, end: 0, integer: 0)
                if let text = plainStringRange() {
                    (member.start, member.end) = (Int32(text.lowerBound), Int32(text.upperBound))
                } else if let number = smallInteger() {
                    member.kind = .integer
                    member.integer = number
                } else if plainNestedObject() {
                    member.kind = .object
                    (member.start, member.end) = (Int32(start), Int32(position))
                } else {
                    return false
                }
                members.add(key, member)
                skipWhitespace()
            } while consume(UInt8(ascii: ","))
            return consume(UInt8(ascii: "}"))
        }

        /// An object of at most `maximumNestedMembers` strings (`attributes`, `variables`) with no key twice;
        /// false otherwise.
        mutating func plainNestedObject() -> Bool {
            guard consume(UInt8(ascii: "{")) else { return false }
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return true }
            return withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: PlainLine.maximumNestedMembers) { keys in
                var count = 0
                // One bit per key from its length and its first and last bytes: keys are compared only when
                // their bits collide.
                var signatures: UInt64 = 0
                repeat {
                    skipWhitespace()
                    guard count < PlainLine.maximumNestedMembers, let key = plainStringRange() else { return false }
                    let signature: UInt64 = key.isEmpty ? 1 : 1 << ((UInt64(key.count) &* 31 &+ UInt64(bytes[key.lowerBound]) &+ UInt64(bytes[key.upperBound - 1])) & 63)
                    if signatures & signature != 0 {
                        let keyBytes = UnsafeBufferPointer(rebasing: bytes[key])
                        for earlier in keys[..<count]
                        where UnsafeBufferPointer.sameBytes(UnsafeBufferPointer(rebasing: bytes[earlier]), keyBytes) {
                            return false
                        }
                    }
                    signatures |= signature
                    keys.initializeElement(at: count, to: key)
                    count += 1
                    skipWhitespace()
                    guard consume(UInt8(ascii: ":")) else { return false }
                    skipWhitespace()
                    guard plainStringRange() != nil else { return false }
                    skipWhitespace()
                } while consume(UInt8(ascii: ","))
                return consume(UInt8(ascii: "}"))
            }
        }

        /// The members of the nested object at `position`, which `plainNestedObject` has accepted: every key and
        /// value a string without escapes, so each ends at the next quote.
        mutating func acceptedNestedObject() -> JSONObject {
            var members: [(key: String, value: JSONValue)] = []
            position += 1
            skipWhitespace()
            while position < bytes.count, bytes[position] == UInt8(ascii: "\"") {
                if members.isEmpty { members.reserveCapacity(8) }
                let key = acceptedString()
                skipWhitespace()
                position += 1  // the colon
                skipWhitespace()
                members.append((key, .string(acceptedString())))
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: ",") {
                    position += 1
                    skipWhitespace()
                }
            }
            return JSONObject(members)
        }

        /// The string at `position` (its opening quote), accepted already: it ends at the next quote.
        private mutating func acceptedString() -> String {
            let start = position + 1
            var end = start
            if let base = bytes.baseAddress, let quote = memchr(base + start, Int32(UInt8(ascii: "\"")), bytes.count - start) {
                end = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(quote))
            }
            position = end + 1
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        }

        /// A string of ASCII without escapes or control characters, as the range of `bytes` its contents occupy
        /// (without the quotes); nil (position unchanged) otherwise. Inlined: most of a line's strings are short,
        /// and a call cost as much as reading one.
        @inline(__always)
        mutating func plainStringRange() -> Range<Int>? {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\""), let base = bytes.baseAddress else {
                return nil
            }
            var end = JSONStringBytes.endOfPlainASCIIWords(base, from: position + 1, count: bytes.count)
            while end < bytes.count {
                let byte = bytes[end]
                if byte == UInt8(ascii: "\"") {
                    let contents = (position + 1)..<end
                    position = end + 1
                    return contents
                }
                guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { return nil }
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
