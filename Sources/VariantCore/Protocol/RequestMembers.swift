/// A request object's members, each under the protocol key it names: what `Request.decode`'s checks read.
///
/// Both readers of a line fill it (the plain-line reader straight from the bytes, the general parser's object
/// member by member), so the checks look a field up by its key's index and find a field the op does not take by
/// comparing two bit sets, instead of comparing key strings once per lookup. A key the protocol does not know is
/// kept only as the first one seen, for the error that names it.
///
/// Not copyable: it is a few hundred bytes, and each implicit copy (passing it on, reading a field) cost a
/// `memcpy` of all of them in the release build; borrowed, it is filled once and read in place.
struct RequestMembers: ~Copyable {
    /// Every key a request or a batch's record may carry.
    enum Key: Int, CaseIterable {
        case id, op, experiment, unit, attributes, prompt, promptVersion, variables, variant, reason, records, ack
        case shadow, metrics, minimumDetectableEffect, phase, limit

        static let count = 17

        /// The key as the protocol spells it.
        var name: String {
            switch self {
            case .id: "id"
            case .op: "op"
            case .experiment: "experiment"
            case .unit: "unit"
            case .attributes: "attributes"
            case .prompt: "prompt"
            case .promptVersion: "prompt_version"
            case .variables: "variables"
            case .variant: "variant"
            case .reason: "reason"
            case .records: "records"
            case .ack: "ack"
            case .shadow: "shadow"
            case .metrics: "metrics"
            case .minimumDetectableEffect: "minimum_detectable_effect"
            case .phase: "phase"
            case .limit: "limit"
            }
        }

        /// The key spelled by exactly these bytes (no normalisation: a key is its bytes), or nil.
        init?(utf8 name: UnsafeBufferPointer<UInt8>) {
            func spelled(_ spelling: StaticString) -> Bool {
                UnsafeBufferPointer.sameBytes(
                    name, UnsafeBufferPointer(start: spelling.utf8Start, count: spelling.utf8CodeUnitCount))
            }
            let key: Key?
            switch name.count {
            case 2: key = spelled("id") ? .id : spelled("op") ? .op : nil
            case 3: key = spelled("ack") ? .ack : nil
            case 4: key = spelled("unit") ? .unit : nil
            case 5: key = spelled("phase") ? .phase : spelled("limit") ? .limit : nil
            case 6: key = spelled("prompt") ? .prompt : spelled("reason") ? .reason : spelled("shadow") ? .shadow : nil
            case 7:
                key = spelled("variant") ? .variant : spelled("records") ? .records : spelled("metrics") ? .metrics : nil
            case 9: key = spelled("variables") ? .variables : nil
            case 10: key = spelled("experiment") ? .experiment : spelled("attributes") ? .attributes : nil
            case 14: key = spelled("prompt_version") ? .promptVersion : nil
            case 25: key = spelled("minimum_detectable_effect") ? .minimumDetectableEffect : nil
            default: key = nil
            }
            guard let key else { return nil }
            self = key
        }
    }

    /// A set of keys (the fields one op takes).
    struct Keys: OptionSet {
        let rawValue: UInt32

        init(rawValue: UInt32) { self.rawValue = rawValue }

        init(_ key: Key) { rawValue = 1 << UInt32(key.rawValue) }

        init(_ keys: [Key]) {
            rawValue = keys.reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        }

        func contains(_ key: Key) -> Bool { rawValue & 1 << UInt32(key.rawValue) != 0 }
    }

    // One stored property per key, reached through a switch (an `InlineArray` of the values was copied whole at
    // each read in the release build).
    private var idValue: JSONValue?
    private var opValue: JSONValue?
    private var experimentValue: JSONValue?
    private var unitValue: JSONValue?
    private var attributesValue: JSONValue?
    private var promptValue: JSONValue?
    private var promptVersionValue: JSONValue?
    private var variablesValue: JSONValue?
    private var variantValue: JSONValue?
    private var reasonValue: JSONValue?
    private var recordsValue: JSONValue?
    private var ackValue: JSONValue?
    private var shadowValue: JSONValue?
    private var metricsValue: JSONValue?
    private var minimumDetectableEffectValue: JSONValue?
    private var phaseValue: JSONValue?
    private var limitValue: JSONValue?
    /// Where each key stood among the members (for the error naming the first field not taken).
    private var positions = InlineArray<17, Int32>(repeating: 0)
    private(set) var present = Keys(rawValue: 0)
    private var memberCount: Int32 = 0
    /// The first member whose key the protocol does not know, and where it stood.
    private var firstUnknown: (name: String, position: Int32)?

    init() {}

    /// The members of a parsed object.
    init(_ object: JSONObject) {
        add(membersOf: object)
    }

    /// Adds the members of a parsed object. The parser has refused duplicate keys, so each key is here at most once.
    mutating func add(membersOf object: JSONObject) {
        for member in object.members {
            var key = member.key
            let known = key.withUTF8 { Key(utf8: $0) }
            if let known { add(known, member.value) } else { addUnknown(member.key) }
        }
    }

    subscript(key: Key) -> JSONValue? {
        get {
            switch key {
            case .id: idValue
            case .op: opValue
            case .experiment: experimentValue
            case .unit: unitValue
            case .attributes: attributesValue
            case .prompt: promptValue
            case .promptVersion: promptVersionValue
            case .variables: variablesValue
            case .variant: variantValue
            case .reason: reasonValue
            case .records: recordsValue
            case .ack: ackValue
            case .shadow: shadowValue
            case .metrics: metricsValue
            case .minimumDetectableEffect: minimumDetectableEffectValue
            case .phase: phaseValue
            case .limit: limitValue
            }
        }
        set {
            switch key {
            case .id: idValue = newValue
            case .op: opValue = newValue
            case .experiment: experimentValue = newValue
            case .unit: unitValue = newValue
            case .attributes: attributesValue = newValue
            case .prompt: promptValue = newValue
            case .promptVersion: promptVersionValue = newValue
            case .variables: variablesValue = newValue
            case .variant: variantValue = newValue
            case .reason: reasonValue = newValue
            case .records: recordsValue = newValue
            case .ack: ackValue = newValue
            case .shadow: shadowValue = newValue
            case .metrics: metricsValue = newValue
            case .minimumDetectableEffect: minimumDetectableEffectValue = newValue
            case .phase: phaseValue = newValue
            case .limit: limitValue = newValue
            }
        }
    }

    /// Adds a member under a key not seen before in this object (the readers refuse duplicates).
    mutating func add(_ key: Key, _ value: JSONValue) {
        self[key] = value
        positions[key.rawValue] = memberCount
        present.insert(Keys(key))
        memberCount += 1
    }

    mutating func addUnknown(_ name: String) {
        if firstUnknown == nil { firstUnknown = (name, memberCount) }
        memberCount += 1
    }

    /// The name of the first member (in the line's order) whose key is not among `allowed`, if any.
    func firstMember(notIn allowed: Keys) -> String? {
        let notAllowed = present.rawValue & ~allowed.rawValue
        guard notAllowed != 0 || firstUnknown != nil else { return nil }
        var first = firstUnknown
        for key in Key.allCases where notAllowed & 1 << UInt32(key.rawValue) != 0 {
            let position = positions[key.rawValue]
            if first == nil || position < first!.position { first = (key.name, position) }
        }
        return first?.name
    }
}
