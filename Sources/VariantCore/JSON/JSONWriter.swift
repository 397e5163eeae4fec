/// Appends JSON text to a byte array, with members in exactly the order the caller writes them, so that equal
/// answers are equal bytes.
public struct JSONWriter: Sendable {
    public private(set) var bytes: [UInt8]

    /// A writer that appends to `bytes` (pass a buffer no one else holds, so it grows in place).
    public init(appendingTo bytes: [UInt8]) {
        self.bytes = bytes
    }

    public init(reservingCapacity capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends one byte of JSON syntax.
    public mutating func byte(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// Writes `,"key":` (or `"key":` for an object's first member) in one append: an answer writes a key per member,
    /// and each append costs about a hundred instructions whatever its length (the four appends this replaced were
    /// most of an `assign` answer's writing, callgrind).
    mutating func memberKey(_ key: StaticString, afterComma: Bool) {
        let keyLength = key.utf8CodeUnitCount
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: keyLength + 4) { buffer in
            var end = 0
            if afterComma {
                buffer[end] = UInt8(ascii: ",")
                end += 1
            }
            buffer[end] = UInt8(ascii: "\"")
            end += 1
            for index in 0..<keyLength {
                buffer[end] = key.utf8Start[index]
                end += 1
            }
            buffer[end] = UInt8(ascii: "\"")
            buffer[end + 1] = UInt8(ascii: ":")
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<(end + 2)]))
        }
    }

    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        stringContents(value)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Writes a string's JSON-escaped characters without the quotes around them, so that a string can be
    /// assembled from pieces (a rendered prompt from its pre-escaped literal parts and its variables).
    public mutating func stringContents(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in 0..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    raw("\\u00")
                    bytes.append(Self.hexDigit(byte >> 4))
                    bytes.append(Self.hexDigit(byte & 0xF))
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// Writes a number: integral values within ±2^53 without a fraction ("2", not "2.0"), others in Swift's
    /// shortest round-tripping form. Non-finite values, which JSON cannot carry, are written as `null`.
    public mutating func number(_ value: Double) {
        guard value.isFinite else { return raw("null") }
        if value.rounded() == value, abs(value) < 9_007_199_254_740_992 {
            integer(Int(value))
        } else {
            bytes.append(contentsOf: value.description.utf8)
        }
    }

    /// Writes the decimal digits straight into the buffer (every answer echoes an `id`, usually a number, and
    /// going through `String(value)` cost an allocation each time).
    public mutating func integer(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        // The magnitude as unsigned, so that Int.min has one too.
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { buffer in
            var position = buffer.count
            repeat {
                position -= 1
                buffer[position] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[position...]))
        }
    }

    public mutating func bool(_ value: Bool) {
        value ? raw("true") : raw("false")
    }

    public mutating func null() { raw("null") }

    public mutating func optionalString(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .number(let number): self.number(number)
        case .string(let text): string(text)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(element)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (index, member) in object.members.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(member.key)
                bytes.append(UInt8(ascii: ":"))
                self.value(member.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Appends bytes that are already JSON.
    public mutating func append(_ json: [UInt8]) {
        bytes.append(contentsOf: json)
    }

    /// Appends bytes that are already JSON.
    public mutating func append(_ json: UnsafeBufferPointer<UInt8>) {
        bytes.append(contentsOf: json)
    }

    /// Empties the buffer, keeping its storage for the next batch of responses.
    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    /// Writes a dictionary as a JSON object, keys sorted (so the bytes are the same for the same contents), each
    /// value written by `write`.
    public mutating func object<Value>(sortedBy members: [String: Value], _ write: (Value, inout JSONWriter) -> Void) {
        object { object in
            for key in members.keys.sorted() {
                object.key(named: key)
                write(members[key]!, &object.json)
            }
        }
    }

    /// Writes a JSON array of strings.
    public mutating func strings(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (index, element) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(element)
        }
        bytes.append(UInt8(ascii: "]"))
    }

}
