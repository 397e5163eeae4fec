/// The `assign` answer (PROTOCOL.md, `assign`); a `render` for an experiment answers its members too.
///
/// The members that depend on the variant alone are encoded once per variant when a config is applied
/// (`AssignmentAnswerParts`, by the same `AssignedVariant` functions); per request only `id`, `ok`, `enrolled`,
/// `reason` and `shadow` are written.
struct AssignAnswer: Answer {
    var id: RequestID
    var parts: AssignmentAnswerParts
    var enrolled: Bool
    var reason: AssignmentReason
    var shadow: Shadow

    /// The `shadow` member: only a shadow experiment's answers have one.
    enum Shadow {
        /// A live experiment: no `shadow` member.
        case absent
        /// `null`: no shadow variant runs for this unit.
        case none
        /// The shadow variant to run.
        case variant(AssignmentAnswerParts)
    }

    /// The answer while no config is loaded: no variant, `reason` `no_config`.
    static func unconfigured(id: RequestID, experiment: String) -> AssignAnswer {
        AssignAnswer(
            id: id, parts: AssignmentAnswerParts(AssignedVariant(experiment: experiment, variant: nil, configVersion: nil)),
            enrolled: false, reason: .noConfig, shadow: .absent)
    }

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.append(members: parts.leading)
        answer.append(members: Self.decisionMembers(enrolled: enrolled, reason: reason))
        switch shadow {
        case .absent: break
        case .none: answer.field("shadow", nil as String?)
        case .variant(let shadow): answer.field("shadow", json: shadow.asShadow)
        }
        answer.append(members: parts.trailing)
    }
}

extension AssignAnswer {
    /// `enrolled` and `reason`, the members that every answer writes per request: encoded once for each pair, as
    /// the members of each variant are once per config (one append instead of two keys and a string to escape:
    /// about 700 instructions per `assign`, callgrind).
    static func decisionMembers(enrolled: Bool, reason: AssignmentReason) -> [UInt8] {
        encodedDecisions[reason.ordinal * 2 + (enrolled ? 1 : 0)]
    }

    private static let encodedDecisions: [[UInt8]] = AssignmentReason.allCases.flatMap { reason in
        [false, true].map { enrolled in
            var writer = JSONWriter()
            writer.members { decision in
                decision.field("enrolled", enrolled)
                decision.field("reason", reason.rawValue)
            }
            return writer.bytes
        }
    }
}

extension AssignmentReason {
    /// The reason's place in `allCases`.
    fileprivate var ordinal: Int {
        switch self {
        case .assigned: 0
        case .draft: 1
        case .paused: 2
        case .completed: 3
        case .notStarted: 4
        case .ended: 5
        case .notTargeted: 6
        case .outsideExposure: 7
        case .disabled: 8
        case .shadow: 9
        case .noConfig: 10
        case .fallback: 11
        }
    }
}

/// The variant an `assign` answer names (nil while no config is loaded), with its experiment and config version.
struct AssignedVariant {
    var experiment: String
    var variant: Variant?
    var configVersion: String?

    /// `experiment`, the variant's identity, `params`: the members before the unit's decision.
    func writeLeading(into answer: inout JSONObjectWriter) {
        answer.field("experiment", experiment)
        writeIdentity(into: &answer)
        writeParams(into: &answer)
    }

    /// `config_version` and `metadata` (what a caller attaches to its traces): the members after the decision.
    func writeTrailing(into answer: inout JSONObjectWriter) {
        answer.field("config_version", configVersion)
        answer.object("metadata") { metadata in
            metadata.field("experiment", experiment)
            writeIdentity(into: &metadata)
            metadata.field("config_version", configVersion)
        }
    }

    /// The variant as a shadow to run: its identity and `params`.
    func writeAsShadow(into shadow: inout JSONObjectWriter) {
        writeIdentity(into: &shadow)
        writeParams(into: &shadow)
    }

    private func writeIdentity(into object: inout JSONObjectWriter) {
        object.field("variant", variant?.name)
        object.field("prompt", variant?.prompt)
        object.field("prompt_version", variant?.promptVersion)
    }

    private func writeParams(into object: inout JSONObjectWriter) {
        object.field("params", .object(variant?.params ?? JSONObject()))
    }
}

/// The members of an `assign` answer that are the same for every unit served a variant, encoded when the config
/// is applied: the hot path appends these bytes instead of writing nine members per request (raw bytes kept where
/// the benchmark shows they pay).
struct AssignmentAnswerParts: Sendable {
    /// `,"experiment":..,"variant":..,"prompt":..,"prompt_version":..,"params":{..}`
    let leading: [UInt8]
    /// `,"config_version":..,"metadata":{..}`
    let trailing: [UInt8]
    /// `{"variant":..,"prompt":..,"prompt_version":..,"params":{..}}`: this variant as a shadow to run.
    let asShadow: [UInt8]

    init(_ assigned: AssignedVariant) {
        var writer = JSONWriter()
        writer.members(assigned.writeLeading)
        leading = writer.bytes
        writer.reset()
        writer.members(assigned.writeTrailing)
        trailing = writer.bytes
        writer.reset()
        writer.object(assigned.writeAsShadow)
        asShadow = writer.bytes
    }
}
