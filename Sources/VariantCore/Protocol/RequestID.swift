/// A request's `id`, echoed in its answer exactly as the request wrote it (PROTOCOL.md, section 3).
///
/// A number is kept as its text: read as a double, `9007199254740993` would come back as `9007199254740992`
/// and `1.0` as `1`, and a client matching answers by id would never find its own.
public struct RequestID: Sendable, Equatable {
    /// The id as a value: null, a string or a number.
    public var value: JSONValue
    /// A number's JSON text as the request wrote it; nil for other ids, and for numbers `JSONWriter.number` writes
    /// the same way.
    var numberText: [UInt8]?

    /// No id: the answer says `"id":null`.
    public static let null = RequestID(.null)

    public init(_ value: JSONValue, numberText: [UInt8]? = nil) {
        self.value = value
        self.numberText = numberText
    }
}

extension JSONWriter {
    /// Writes a request's id as the request wrote it.
    public mutating func id(_ id: RequestID) {
        if let text = id.numberText {
            append(text)
        } else {
            value(id.value)
        }
    }
}

extension JSONObjectWriter {
    /// A request's id, as the request wrote it.
    public mutating func field(_ key: StaticString, _ id: RequestID) {
        self.key(key)
        json.id(id)
    }
}
