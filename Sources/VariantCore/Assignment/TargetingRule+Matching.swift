extension TargetingRule {
    /// Whether a request's attributes satisfy this rule. A missing attribute matches no rule, so a unit whose
    /// attributes are unknown is never enrolled by accident.
    public func matches(_ attributes: JSONObject) -> Bool {
        guard let actual = attributes[attribute] else { return false }
        switch (op, operand) {
        case (.eq, .scalar(let expected)): return Self.scalarsEqual(actual, expected)
        case (.ne, .scalar(let expected)): return !Self.scalarsEqual(actual, expected)
        case (.in, .set(let values)): return values.contains { Self.scalarsEqual(actual, $0) }
        case (.notIn, .set(let values)): return !values.contains { Self.scalarsEqual(actual, $0) }
        case (.lt, .number(let bound)): return actual.numberValue.map { $0 < bound } ?? false
        case (.lte, .number(let bound)): return actual.numberValue.map { $0 <= bound } ?? false
        case (.gt, .number(let bound)): return actual.numberValue.map { $0 > bound } ?? false
        case (.gte, .number(let bound)): return actual.numberValue.map { $0 >= bound } ?? false
        default: return false  // validation never builds other pairs
        }
    }

    /// Equality of scalars of the same JSON type; a boolean never equals a number. Strings compare by their
    /// UTF-8 bytes, with no Unicode normalisation, as every client language can do the same.
    static func scalarsEqual(_ lhs: JSONValue, _ rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a.hasSameUTF8(as: b)
        case (.number(let a), .number(let b)): a == b
        case (.bool(let a), .bool(let b)): a == b
        default: false
        }
    }
}
