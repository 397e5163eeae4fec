/// A parsed JSON value that keeps object keys in document order, so that what the daemon echoes back
/// (a variant's `params`, a request `id`) comes out byte for byte as the operator wrote it.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The JSON type's name as used in error messages ("string", "number", ...).
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The value as an exact integer, if it is a number without a fractional part within ±2^53.
    public var integerValue: Int? {
        guard case .number(let value) = self, value.rounded() == value, abs(value) <= 9_007_199_254_740_992 else {
            return nil
        }
        return Int(value)
    }

    /// Whether the value is a string, a number or a boolean.
    public var isScalar: Bool {
        switch self {
        case .string, .number, .bool: true
        default: false
        }
    }

    /// The value as a text log shows it to a person: a string without quotes, a whole number exactly, another
    /// number to four significant digits (`0.05`, `7.707e-154`), `true`, `null`, and arrays and objects as compact
    /// JSON. Not for machines: the JSON writer is.
    public var plainDescription: String {
        switch self {
        case .string(let text): return text
        case .number(let number):
            return number == number.rounded() && abs(number) < 1e15 ? Readable.number(number) : Readable.fourSignificantDigits(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        case .array, .object:
            var writer = JSONWriter()
            writer.value(self)
            return String(decoding: writer.bytes, as: UTF8.self)
        }
    }
}

/// A JSON object: its members in document order, with lookup by key.
///
/// Objects in configuration documents and requests are small, so a linear scan beats hashing. Keys compare by
/// their UTF-8 bytes (no Unicode normalisation), as JSON's own definition of member names does.
public struct JSONObject: Sendable, Equatable {
    public var members: [(key: String, value: JSONValue)]

    public init(_ members: [(key: String, value: JSONValue)] = []) {
        self.members = members
    }

    public subscript(key: String) -> JSONValue? {
        for member in members where member.key.hasSameUTF8(as: key) {
            return member.value
        }
        return nil
    }

    public var keys: [String] { members.map(\.key) }
    public var isEmpty: Bool { members.isEmpty }
    public var count: Int { members.count }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key.hasSameUTF8(as: $1.key) && $0.value == $1.value }
    }
}
