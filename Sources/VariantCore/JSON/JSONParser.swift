/// A strict RFC 8259 JSON parser over UTF-8 bytes.
///
/// Foundation's `JSONDecoder` costs about 8 µs for a one-line request on these machines, which alone would cap
/// the daemon far below its throughput target; this parser reads a request in well under a microsecond. It also
/// keeps object keys in order, rejects duplicate keys, bounds nesting depth, and reports the line, column and byte
/// offset of the first error, which `JSONDecoder` does not.
public struct JSONParser {
    /// Why a document is not JSON, and where.
    public struct SyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
        /// Bytes before the error, from 0.
        public var offset: Int
        public var reason: String
        /// The line of the error, from 1 (lines end at `\n`).
        public var line: Int
        /// The character of the line (Unicode scalar, from 1) at the error, as editors count columns.
        public var column: Int
        public var description: String { "\(reason) at line \(line), column \(column) (byte \(offset))" }

        public init(offset: Int, reason: String, line: Int, column: Int) {
            self.offset = offset
            self.reason = reason
            self.line = line
            self.column = column
        }

        /// An error located by its offset alone; `parseDocument` adds the line and column.
        init(offset: Int, reason: String) {
            self.init(offset: offset, reason: reason, line: 0, column: 0)
        }

        /// This error with the line and column of its offset in `bytes`.
        func located(in bytes: UnsafeBufferPointer<UInt8>) -> SyntaxError {
            var line = 1
            var column = 1
            for byte in bytes.prefix(offset) {
                if byte == UInt8(ascii: "\n") {
                    line += 1
                    column = 1
                } else if byte & 0xC0 != 0x80 {  // not a UTF-8 continuation byte
                    column += 1
                }
            }
            return SyntaxError(offset: offset, reason: reason, line: line, column: column)
        }
    }

    public static let defaultMaximumDepth = 32

    /// Parses one complete JSON text; trailing whitespace is allowed, anything else after the value is not.
    /// - Throws: `SyntaxError`.
    public static func parse(_ bytes: some Collection<UInt8>, maximumDepth: Int = defaultMaximumDepth) throws(SyntaxError)
        -> JSONValue
    {
        let array = Array(bytes)
        return try array.withUnsafeBufferPointer { buffer throws(SyntaxError) in
            try parse(buffer: buffer, maximumDepth: maximumDepth)
        }
    }

    /// Parses one complete JSON text from a buffer the caller keeps alive for the duration of the call.
    /// - Throws: `SyntaxError`.
    public static func parse(buffer: UnsafeBufferPointer<UInt8>, maximumDepth: Int = defaultMaximumDepth)
        throws(SyntaxError) -> JSONValue
    {
        var parser = JSONParser(bytes: buffer, maximumDepth: maximumDepth)
        return try parser.parseDocument()
    }

    /// Parses a request line, and gives the text of its top-level `id` when that is a number, so that the answer
    /// can echo it byte for byte (`RequestID`).
    /// - Throws: `SyntaxError`.
    public static func parseRequest(buffer: UnsafeBufferPointer<UInt8>, maximumDepth: Int = defaultMaximumDepth)
        throws(SyntaxError) -> (value: JSONValue, idNumberText: [UInt8]?)
    {
        var parser = JSONParser(bytes: buffer, maximumDepth: maximumDepth)
        let value = try parser.parseDocument()
        return (value, parser.idNumberSpan.map { Array(buffer[$0]) })
    }

    private mutating func parseDocument() throws(SyntaxError) -> JSONValue {
        do throws(SyntaxError) {
            skipWhitespace()
            let value = try parseValue(depth: 0)
            skipWhitespace()
            guard position == bytes.count else {
                throw SyntaxError(offset: position, reason: "unexpected data after the JSON value")
            }
            return value
        } catch {
            throw error.located(in: bytes)
        }
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maximumDepth: Int
    private var position = 0
    /// Where the number of a top-level object's `id` member stands, once read.
    private var idNumberSpan: Range<Int>?

    private init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    private func error(_ reason: String) -> SyntaxError {
        SyntaxError(offset: position, reason: reason)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): position += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(SyntaxError) -> JSONValue {
        guard position < bytes.count else { throw error("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(SyntaxError) {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw error("invalid literal") }
        let start = literal.utf8Start
        for index in 0..<count where bytes[position + index] != start[index] {
            throw error("invalid literal")
        }
        position += count
    }

    private mutating func parseObject(depth: Int) throws(SyntaxError) -> JSONValue {
        guard depth <= maximumDepth else { throw error("nesting deeper than \(maximumDepth)") }
        position += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        // Small objects (every request) check duplicates by a scan; large ones by hashing their key bytes, so a
        // line of thousands of keys costs linear, not quadratic, time.
        var largeObjectKeys: Set<[UInt8]>?
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw error("expected a string key")
            }
            let keyOffset = position
            let key = try parseString()
            let isDuplicate: Bool
            if var keys = largeObjectKeys {
                largeObjectKeys = nil  // keep the set uniquely referenced while inserting
                isDuplicate = !keys.insert(Array(key.utf8)).inserted
                largeObjectKeys = keys
            } else {
                isDuplicate = members.contains { $0.key.hasSameUTF8(as: key) }
                if members.count == 16 { largeObjectKeys = Set(members.map { Array($0.key.utf8) } + [Array(key.utf8)]) }
            }
            if isDuplicate {
                throw SyntaxError(offset: keyOffset, reason: "duplicate key \"\(key)\"")
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw error("expected ':'") }
            position += 1
            skipWhitespace()
            let valueStart = position
            let value = try parseValue(depth: depth)
            if depth == 1, case .number = value, key.utf8.elementsEqual("id".utf8) {
                idNumberSpan = valueStart..<position
            }
            members.append((key, value))
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(JSONObject(members))
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(SyntaxError) -> JSONValue {
        guard depth <= maximumDepth else { throw error("nesting deeper than \(maximumDepth)") }
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            guard position < bytes.count else { throw error("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func parseString() throws(SyntaxError) -> String {
        position += 1  // opening quote
        let start = position
        var isASCII = true
        // Fast path: no escapes, all validation left to the UTF-8 check below.
        while position < bytes.count {
            skipPlainASCII()
            guard position < bytes.count else { break }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<position])
                position += 1
                // ASCII is valid UTF-8 as it is, and decoding it is much cheaper than validating.
                if isASCII { return String(decoding: slice, as: UTF8.self) }
                guard let string = String(validating: slice, as: UTF8.self) else {
                    throw SyntaxError(offset: start, reason: "invalid UTF-8 in string")
                }
                return string
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in string") }
            if byte >= 0x80 { isASCII = false }
            position += 1
        }
        // With escapes: the runs between them are copied whole (a rendered prompt has an escaped newline every
        // line or so), and the UTF-8 check is needed only if a byte of the input itself was not ASCII: an escape
        // appends a valid encoding.
        var utf8: [UInt8] = []
        utf8.reserveCapacity(64 + 2 * (position - start))
        utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<position]))
        while position < bytes.count {
            let runStart = position
            while position < bytes.count {
                skipPlainASCII()
                guard position < bytes.count else { break }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                if byte >= 0x80 { isASCII = false }
                position += 1
            }
            if position > runStart { utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position])) }
            guard position < bytes.count else { break }
            switch bytes[position] {
            case UInt8(ascii: "\""):
                position += 1
                if isASCII { return String(decoding: utf8, as: UTF8.self) }
                guard let string = String(validating: utf8, as: UTF8.self) else {
                    throw SyntaxError(offset: start, reason: "invalid UTF-8 in string")
                }
                return string
            case UInt8(ascii: "\\"):
                position += 1
                guard position < bytes.count else { throw error("unexpected end of input") }
                let escape = bytes[position]
                position += 1
                if let decoded = JSONStringBytes.shortEscape(escape) {
                    utf8.append(decoded)
                } else if escape == UInt8(ascii: "u") {
                    try appendUnicodeEscape(to: &utf8)
                } else {
                    throw error("invalid escape")
                }
            default:
                throw error("control character in string")
            }
        }
        throw error("unterminated string")
    }

    /// Moves `position` past whole 8-byte words of plain ASCII in a string (`JSONStringBytes`).
    @inline(__always)
    private mutating func skipPlainASCII() {
        guard let base = bytes.baseAddress else { return }
        position = JSONStringBytes.endOfPlainASCIIWords(base, from: position, count: bytes.count)
    }

    private mutating func readHex4() throws(SyntaxError) -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func appendUnicodeEscape(to utf8: inout [UInt8]) throws(SyntaxError) {
        var scalar = try readHex4()
        if (0xD800...0xDBFF).contains(scalar) {
            guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                bytes[position + 1] == UInt8(ascii: "u")
            else { throw error("unpaired surrogate") }
            position += 2
            let low = try readHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00...0xDFFF).contains(scalar) {
            throw error("unpaired surrogate")
        }
        guard let unicodeScalar = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
        utf8.append(contentsOf: String(Character(unicodeScalar)).utf8)
    }

    private mutating func parseNumber() throws(SyntaxError) -> Double {
        let start = position
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count else { throw error("invalid number") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else if (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[position]) {
            skipDigits()
        } else {
            throw error("invalid number")
        }
        var isInteger = true
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < bytes.count, isDigit(bytes[position]) else { throw error("invalid number") }
            skipDigits()
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard position < bytes.count, isDigit(bytes[position]) else { throw error("invalid number") }
            skipDigits()
        }
        let digits = UnsafeBufferPointer(rebasing: bytes[start..<position])
        if isInteger, digits.count <= 15 {
            // Exact and much cheaper than the general conversion.
            var value: Int64 = 0
            var negative = false
            for byte in digits {
                if byte == UInt8(ascii: "-") { negative = true } else { value = value * 10 + Int64(byte - 48) }
            }
            return Double(negative ? -value : value)
        }
        guard let value = Double(String(decoding: digits, as: UTF8.self)), value.isFinite else {
            throw SyntaxError(offset: start, reason: "number out of range")
        }
        return value
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    private mutating func skipDigits() {
        while position < bytes.count, isDigit(bytes[position]) { position += 1 }
    }
}
