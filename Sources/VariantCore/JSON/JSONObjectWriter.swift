/// Writes the members of one JSON object: the commas between them and the quotes around their keys, so that an
/// answer names each member once (`object.field("ok", true)`) instead of spelling `,"ok":` by hand.
///
/// `JSONWriter.object` lends one to a closure. It holds the writer's buffer meanwhile (moved in and back, not
/// copied, so the buffer still grows in place and nothing is allocated).
public struct JSONObjectWriter {
    /// The writer whose buffer this object is written into.
    public var json: JSONWriter
    private var isEmpty: Bool

    init(moving json: inout JSONWriter, continuing: Bool) {
        self.json = JSONWriter(appendingTo: [])
        isEmpty = !continuing
        swap(&self.json, &json)
    }

    /// Writes the next member's key and colon, after a comma unless it is the first member.
    public mutating func key(_ key: StaticString) {
        json.memberKey(key, afterComma: !isEmpty)
        isEmpty = false
    }

    /// A key that is data (a metric's or a label's name), escaped as a string.
    public mutating func key(named key: String) {
        if isEmpty { isEmpty = false } else { json.byte(UInt8(ascii: ",")) }
        json.string(key)
        json.byte(UInt8(ascii: ":"))
    }

    public mutating func field(_ key: StaticString, _ value: String) {
        self.key(key)
        json.string(value)
    }

    /// `null` for nil.
    public mutating func field(_ key: StaticString, _ value: String?) {
        self.key(key)
        json.optionalString(value)
    }

    public mutating func field(_ key: StaticString, _ value: Int) {
        self.key(key)
        json.integer(value)
    }

    /// `null` for nil.
    public mutating func field(_ key: StaticString, _ value: Int?) {
        self.key(key)
        if let value { json.integer(value) } else { json.null() }
    }

    /// A number as `JSONWriter.number` writes it (`null` when not finite).
    public mutating func field(_ key: StaticString, _ value: Double) {
        self.key(key)
        json.number(value)
    }

    /// `null` for nil (and, as always, for a value that is not finite).
    public mutating func field(_ key: StaticString, _ value: Double?) {
        self.key(key)
        if let value { json.number(value) } else { json.null() }
    }

    public mutating func field(_ key: StaticString, _ value: Bool) {
        self.key(key)
        json.bool(value)
    }

    public mutating func field(_ key: StaticString, _ value: JSONValue) {
        self.key(key)
        json.value(value)
    }

    /// A value that writes itself as an object; `null` for nil.
    public mutating func field(_ key: StaticString, _ value: (some JSONObjectWritable)?) {
        self.key(key)
        if let value { json.object { value.writeMembers(into: &$0) } } else { json.null() }
    }

    /// An object written by `members` from `value`, or `null` for nil.
    public mutating func object<Value>(
        _ key: StaticString, _ value: Value?, members: (Value, inout JSONObjectWriter) -> Void
    ) {
        self.key(key)
        if let value { json.object { members(value, &$0) } } else { json.null() }
    }

    /// An array of strings.
    public mutating func strings(_ key: StaticString, _ strings: [String]) {
        self.key(key)
        json.strings(strings)
    }

    /// A nested object, its members written by `members`.
    public mutating func object(_ key: StaticString, _ members: (inout JSONObjectWriter) -> Void) {
        self.key(key)
        json.object(members)
    }

    /// A nested array, its elements written by `elements`.
    public mutating func array(_ key: StaticString, _ elements: (inout JSONArrayWriter) -> Void) {
        self.key(key)
        json.array(elements)
    }

    /// An array of objects, one per element, each written by `members`.
    public mutating func objects<Elements: Sequence>(
        _ key: StaticString, _ elements: Elements, _ members: (Elements.Element, inout JSONObjectWriter) -> Void
    ) {
        self.key(key)
        json.array { array in
            for element in elements { array.object { members(element, &$0) } }
        }
    }

    /// A value written straight into the buffer by `value` (one JSON value, for values no overload covers).
    public mutating func field(_ key: StaticString, writing value: (inout JSONWriter) -> Void) {
        self.key(key)
        value(&json)
    }

    /// A value that is already JSON.
    public mutating func field(_ key: StaticString, json value: [UInt8]) {
        self.key(key)
        json.append(value)
    }

    /// Members that are already JSON, each after a comma (as `JSONWriter.members` writes them); the object must
    /// have a member before them.
    public mutating func append(members: [UInt8]) {
        assert(!isEmpty && (members.isEmpty || members.first == UInt8(ascii: ",")), "pre-encoded members follow a member")
        json.append(members)
    }
}

/// Writes the elements of one JSON array, with the commas between them.
public struct JSONArrayWriter {
    public var json: JSONWriter
    private var isEmpty = true

    init(moving json: inout JSONWriter) {
        self.json = JSONWriter(appendingTo: [])
        swap(&self.json, &json)
    }

    /// Writes the comma before every element but the first; then write one value into `json`.
    public mutating func next() {
        if isEmpty { isEmpty = false } else { json.byte(UInt8(ascii: ",")) }
    }

    public mutating func element(_ value: String) {
        next()
        json.string(value)
    }

    public mutating func element(_ value: Int) {
        next()
        json.integer(value)
    }

    public mutating func element(_ value: Double) {
        next()
        json.number(value)
    }

    public mutating func element(_ value: JSONValue) {
        next()
        json.value(value)
    }

    /// An element that writes itself as an object.
    public mutating func element(_ value: some JSONObjectWritable) {
        next()
        json.object { value.writeMembers(into: &$0) }
    }

    /// An object element, its members written by `members`.
    public mutating func object(_ members: (inout JSONObjectWriter) -> Void) {
        next()
        json.object(members)
    }

    /// An array element, its elements written by `elements`.
    public mutating func array(_ elements: (inout JSONArrayWriter) -> Void) {
        next()
        json.array(elements)
    }
}

/// A value written as a JSON object by one function, its members in a fixed order.
public protocol JSONObjectWritable {
    func writeMembers(into object: inout JSONObjectWriter)
}

extension JSONWriter {
    /// Writes `{`, the members `members` writes, `}`.
    public mutating func object(_ members: (inout JSONObjectWriter) -> Void) {
        byte(UInt8(ascii: "{"))
        var object = JSONObjectWriter(moving: &self, continuing: false)
        members(&object)
        swap(&self, &object.json)
        byte(UInt8(ascii: "}"))
    }

    /// Writes an object's members without its braces, each after a comma, to continue an object that already has
    /// a member: the fixed members of an answer, encoded once and appended with `JSONObjectWriter.append(members:)`.
    public mutating func members(_ members: (inout JSONObjectWriter) -> Void) {
        var object = JSONObjectWriter(moving: &self, continuing: true)
        members(&object)
        swap(&self, &object.json)
    }

    /// Writes `[`, the elements `elements` writes, `]`.
    public mutating func array(_ elements: (inout JSONArrayWriter) -> Void) {
        byte(UInt8(ascii: "["))
        var array = JSONArrayWriter(moving: &self)
        elements(&array)
        swap(&self, &array.json)
        byte(UInt8(ascii: "]"))
    }

    /// Writes `value` as an object.
    public mutating func object(_ value: some JSONObjectWritable) {
        object { value.writeMembers(into: &$0) }
    }

    /// Ends an answer line.
    public mutating func newline() {
        byte(UInt8(ascii: "\n"))
    }
}
