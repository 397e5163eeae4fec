/// A request object's members by key: what `Request.decode`'s checks read, whichever reader read the line.
///
/// Two readers provide them: `RequestMembers` (the members of an object the general JSON parser made) and
/// `PlainLine.Members` (where a plain line's members lie in the line, values made only when asked). The checks
/// are written once, over this protocol, and compiled for each.
protocol RequestFields: ~Copyable {
    /// The member under `key`, if the object has it.
    subscript(key: RequestMembers.Key) -> JSONValue? { get }
    /// The keys the object has.
    var present: RequestMembers.Keys { get }
    /// The object has a member whose key the protocol does not know.
    var hasUnknownMember: Bool { get }
    /// The name of the first member (in the line's order) whose key is not among `allowed`, if any (a key the
    /// protocol does not know included).
    func firstMember(notIn allowed: RequestMembers.Keys) -> String?
}

/// The members of an object the general parser made, each under the protocol key it names.
///
/// The checks look a field up by its key's index and find a field the op does not take by comparing two bit sets,
/// instead of comparing key strings once per lookup.
struct RequestMembers: RequestFields, ~Copyable {
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

        @inline(__always)
        init(_ key: Key) { rawValue = 1 << UInt32(key.rawValue) }

        init(_ keys: [Key]) {
            rawValue = keys.reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        }

        @inline(__always)
        func contains(_ key: Key) -> Bool { rawValue & 1 << UInt32(key.rawValue) != 0 }
    }

    private var members = KeyedMembers<JSONValue>()

    /// The members of a parsed object. The parser has refused duplicate keys, so each key is here at most once.
    init(_ object: JSONObject) {
        for member in object.members {
            var key = member.key
            let known = key.withUTF8 { Key(utf8: $0) }
            if let known { members.add(known, member.value) } else { members.addUnknown(member.key) }
        }
    }

    subscript(key: Key) -> JSONValue? { members[key] }
    var present: Keys { members.present }
    var hasUnknownMember: Bool { members.hasUnknownMember }
    func firstMember(notIn allowed: Keys) -> String? { members.firstMember(notIn: allowed) }
}

/// Values stored by protocol key (one stored property each, reached through a switch), with which keys are
/// present, in what order, and the first member whose key the protocol does not know (kept for the error that
/// names it).
///
/// Not copyable: it is a few hundred bytes, and each implicit copy (passing it on, reading a field) cost a
/// `memcpy` of all of them in the release build; borrowed, it is filled once and read in place. (An
/// `InlineArray` of the values was copied whole at each read.)
struct KeyedMembers<Value>: ~Copyable {
    typealias Key = RequestMembers.Key
    typealias Keys = RequestMembers.Keys

    private var idValue: Value?
    private var opValue: Value?
    private var experimentValue: Value?
    private var unitValue: Value?
    private var attributesValue: Value?
    private var promptValue: Value?
    private var promptVersionValue: Value?
    private var variablesValue: Value?
    private var variantValue: Value?
    private var reasonValue: Value?
    private var recordsValue: Value?
    private var ackValue: Value?
    private var shadowValue: Value?
    private var metricsValue: Value?
    private var minimumDetectableEffectValue: Value?
    private var phaseValue: Value?
    private var limitValue: Value?
    /// Where each key stood among the members (for the error naming the first field not taken).
    private var positions = InlineArray<17, Int32>(repeating: 0)
    private(set) var present = Keys(rawValue: 0)
    private var memberCount: Int32 = 0
    /// The first member whose key the protocol does not know, and where it stood.
    private var firstUnknown: (name: String, position: Int32)?

    init() {}

    var hasUnknownMember: Bool { firstUnknown != nil }

    subscript(key: Key) -> Value? {
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
    mutating func add(_ key: Key, _ value: Value) {
        self[key] = value
        positions[key.rawValue] = memberCount
        present.insert(Keys(key))
        memberCount += 1
    }

    mutating func addUnknown(_ name: String) {
        if firstUnknown == nil { firstUnknown = (name, memberCount) }
        memberCount += 1
    }

    /// The name of the first member (in line order) whose key is not among `allowed`, the unknown member included.
    /// Callers on the hot path test the bit sets themselves first (`rejectUnknown`).
    func firstMember(notIn allowed: Keys) -> String? {
        let notAllowed = Keys(rawValue: present.rawValue & ~allowed.rawValue)
        guard notAllowed.rawValue != 0 || firstUnknown != nil else { return nil }
        var first = firstUnknown
        for key in Key.allCases where notAllowed.contains(key) {
            let position = positions[key.rawValue]
            if first == nil || position < first!.position { first = (key.name, position) }
        }
        return first?.name
    }
}
