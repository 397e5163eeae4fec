/// Recognises the most common request lines without building a JSON tree: an `assign` with only `id`, `op`,
/// `experiment` and `unit`, and a `render` with those and `variables`, an object of at most 32 members whose values
/// are strings, in any order; every string printable ASCII without escapes, and `id` such a string or an integer of at most 15 digits.
///
/// The general parser costs about a third of answering an `assign` and half of a `render` (profiled); this
/// scanner a small part of that. It accepts nothing the general parser would reject or read differently: any line
/// it does not fully recognise returns nil and takes the general path, so both paths answer every line with the
/// same bytes (pinned by a property test).
struct PlainRequest {
    enum Operation: Equatable {
        case assign
        /// The variables, in request order.
        case render(variables: [Variable])
    }

    /// A variable of a plain `render`: where its name and its value (both plain strings, without their quotes)
    /// lie in the request line. Rendering matches names against the version's declarations as bytes and makes a
    /// string of each value only, instead of building a JSON object of strings first.
    struct Variable: Equatable {
        var name: Range<Int>
        var value: Range<Int>
    }

    /// More variables than this take the general path, whose parser finds duplicate names by hashing; the
    /// scanner compares every pair.
    static let maximumPlainVariables = 32

    var id: RequestID
    var operation: Operation
    var experiment: String
    var unit: String

    private enum Key { case id, op, experiment, unit, variables }

    static func parse(_ line: UnsafeBufferPointer<UInt8>) -> PlainRequest? {
        var scanner = Scanner(bytes: line)
        var id: RequestID?
        var op: UnsafeBufferPointer<UInt8>?
        var experiment: UnsafeBufferPointer<UInt8>?
        var unit: UnsafeBufferPointer<UInt8>?
        var variables: [Variable]?
        scanner.skipWhitespace()
        guard scanner.consume(UInt8(ascii: "{")) else { return nil }
        repeat {
            scanner.skipWhitespace()
            guard let keyBytes = scanner.plainString() else { return nil }
            scanner.skipWhitespace()
            guard scanner.consume(UInt8(ascii: ":")) else { return nil }
            scanner.skipWhitespace()
            switch key(keyBytes) {
            case .id?:
                guard id == nil else { return nil }
                if let text = scanner.plainString() {
                    id = RequestID(.string(String(decoding: text, as: UTF8.self)))
                } else if let number = scanner.smallInteger() {
                    // Up to 15 digits, as the writer writes them: echoed verbatim without keeping the text.
                    id = RequestID(.number(Double(number)))
                } else {
                    return nil
                }
            case .op?:
                guard op == nil, let value = scanner.plainString() else { return nil }
                op = value
            case .experiment?:
                guard experiment == nil, let value = scanner.plainString() else { return nil }
                experiment = value
            case .unit?:
                guard unit == nil, let value = scanner.plainString() else { return nil }
                unit = value
            case .variables?:
                guard variables == nil, let value = scanner.plainStringMembers() else { return nil }
                variables = value
            case nil:
                return nil
            }
            scanner.skipWhitespace()
        } while scanner.consume(UInt8(ascii: ","))
        guard scanner.consume(UInt8(ascii: "}")) else { return nil }
        scanner.skipWhitespace()
        guard scanner.atEnd, let op, let experiment, let unit, (1...Request.maximumUnitBytes).contains(unit.count)
        else { return nil }
        let operation: Operation
        if equals(op, "assign"), variables == nil {
            operation = .assign
        } else if equals(op, "render") {
            operation = .render(variables: variables ?? [])
        } else {
            return nil
        }
        return PlainRequest(
            id: id ?? .null, operation: operation, experiment: String(decoding: experiment, as: UTF8.self),
            unit: String(decoding: unit, as: UTF8.self))
    }

    private static func key(_ bytes: UnsafeBufferPointer<UInt8>) -> Key? {
        if equals(bytes, "id") { return .id }
        if equals(bytes, "op") { return .op }
        if equals(bytes, "experiment") { return .experiment }
        if equals(bytes, "unit") { return .unit }
        if equals(bytes, "variables") { return .variables }
        return nil
    }

    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ text: StaticString) -> Bool {
        UnsafeBufferPointer.sameBytes(bytes, UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
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

        /// A string of printable ASCII without escapes, without its quotes; nil (position unchanged) otherwise.
        mutating func plainString() -> UnsafeBufferPointer<UInt8>? {
            plainStringRange().map { UnsafeBufferPointer(rebasing: bytes[$0]) }
        }

        /// `plainString()`, as the range of `bytes` its contents occupy.
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

        /// `{}` or an object of at most `maximumPlainVariables` plain strings (keys and values) with no key
        /// twice, as the positions of its keys and values; nil (position unchanged) otherwise.
        mutating func plainStringMembers() -> [Variable]? {
            let start = position
            guard consume(UInt8(ascii: "{")) else { return nil }
            var members: [Variable] = []
            skipWhitespace()
            if consume(UInt8(ascii: "}")) { return members }
            members.reserveCapacity(8)
            repeat {
                skipWhitespace()
                guard let key = plainStringRange() else { break }
                skipWhitespace()
                guard consume(UInt8(ascii: ":")) else { break }
                skipWhitespace()
                guard let value = plainStringRange(), members.count < PlainRequest.maximumPlainVariables else { break }
                let name = UnsafeBufferPointer(rebasing: bytes[key])
                guard !members.contains(where: { UnsafeBufferPointer.sameBytes(UnsafeBufferPointer(rebasing: bytes[$0.name]), name) })
                else { break }
                members.append(Variable(name: key, value: value))
                skipWhitespace()
                if consume(UInt8(ascii: "}")) { return members }
            } while consume(UInt8(ascii: ","))
            position = start
            return nil
        }

        /// An integer literal of 1 to 15 digits as JSON writes it (no leading zero, optional minus), not followed by
        /// a fraction or an exponent; nil (position unchanged) otherwise.
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
