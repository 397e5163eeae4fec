/// A validated configuration document: every prompt and experiment the daemon serves.
///
/// Only `ConfigDocument.validate(_:)` makes one, so holding a `ConfigDocument` means holding a document whose
/// cross references, weights and windows are all sound.
public struct ConfigDocument: Sendable {
    public var prompts: [String: Prompt]
    public var experiments: [Experiment]
    private var experimentIndexByName: [String: Int]

    init(prompts: [String: Prompt], experiments: [Experiment]) {
        self.prompts = prompts
        self.experiments = experiments
        var index: [String: Int] = [:]
        for (position, experiment) in experiments.enumerated() { index[experiment.name] = position }
        self.experimentIndexByName = index
    }

    /// The experiment with exactly this name, byte for byte (the dictionary alone would also match a
    /// canonically equivalent name).
    public func experiment(named name: String) -> Experiment? {
        experimentIndex(named: name).map { experiments[$0] }
    }

    /// Up to this many experiments, a name is looked up by comparing it with each: most differ in length, which
    /// costs a compare, where the dictionary hashes the whole name (about 400 of the daemon's instructions per
    /// `assign` with the example config, callgrind).
    static let experimentsLookedUpInTurn = 16

    /// The position in `experiments` of the experiment with exactly this name.
    public func experimentIndex(named name: String) -> Int? {
        if experiments.count <= Self.experimentsLookedUpInTurn {
            return experiments.firstIndex { $0.name.hasSameUTF8(as: name) }
        }
        guard let index = experimentIndexByName[name], experiments[index].name.hasSameUTF8(as: name) else { return nil }
        return index
    }

    /// The prompt with exactly this name, byte for byte.
    public func prompt(named name: String) -> Prompt? {
        Self.prompt(named: name, in: prompts)
    }

    static func prompt(named name: String, in prompts: [String: Prompt]) -> Prompt? {
        guard let prompt = prompts[name], prompt.name.hasSameUTF8(as: name) else { return nil }
        return prompt
    }
}

/// A named prompt with its numbered versions.
public struct Prompt: Sendable {
    public var name: String
    public var description: String?
    /// Sorted by version number, ascending.
    public var versions: [PromptVersion]

    public var latest: PromptVersion { versions[versions.count - 1] }

    public func version(_ number: Int) -> PromptVersion? {
        versions.first { $0.number == number }
    }
}

/// One immutable version of a prompt.
public struct PromptVersion: Sendable {
    public var number: Int
    /// The template of a text prompt; empty for a chat prompt.
    public var template: String
    /// The messages of a chat prompt (each content a template); nil for a text prompt.
    public var messages: [PromptMessage]?
    public var requiredVariables: [String]
    public var optionalVariables: [String]
    public var description: String?
    /// The prompt's rules, then the version's own.
    public var rules: [PromptRule] = []
    /// The templates, parsed, and the rules split by what they read, ready for `render`.
    var rendering: PromptRendering
}

/// One message of a chat prompt.
public struct PromptMessage: Sendable, Equatable {
    public var role: String
    /// A template.
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// An experiment: who is enrolled, and how enrolled units split across variants.
///
/// A class, immutable once validated, so that answering a request shares it instead of copying its fields.
public final class Experiment: Sendable {
    public enum Status: String, Sendable, CaseIterable {
        case draft, running, paused, completed
    }

    /// `live` serves each enrolled unit its variant; `shadow` serves everyone the control and names the treatment
    /// the client should also run in the background (PROTOCOL.md, "Shadow mode").
    public enum Mode: String, Sendable, CaseIterable {
        case live, shadow
    }

    public let name: String
    public let description: String?
    public let salt: String
    public let status: Status
    public let start: Timestamp?
    public let end: Timestamp?
    /// Share of units enrolled, in basis points (0...10000).
    public let exposureBasisPoints: Int
    /// Every rule must match for a unit to be enrolled.
    public let targeting: [TargetingRule]
    /// In document order, which is part of the bucket mapping.
    public let variants: [Variant]
    public let controlIndex: Int
    /// The variant a completed experiment serves; nil unless the status is `completed`.
    public let winnerIndex: Int?
    public let mode: Mode
    /// When a treatment is disabled automatically.
    public let guardrails: GuardrailSettings
    /// The plausible range of each metric; records outside it are refused (`metric_ranges`).
    public let metricRanges: MetricRanges

    public var control: Variant { variants[controlIndex] }

    init(
        name: String, description: String?, salt: String, status: Status, start: Timestamp?, end: Timestamp?,
        exposureBasisPoints: Int, targeting: [TargetingRule], variants: [Variant], controlIndex: Int, winnerIndex: Int?,
        mode: Mode = .live, guardrails: GuardrailSettings = GuardrailSettings(), metricRanges: MetricRanges = MetricRanges()
    ) {
        self.metricRanges = metricRanges
        self.name = name
        self.description = description
        self.salt = salt
        self.status = status
        self.start = start
        self.end = end
        self.exposureBasisPoints = exposureBasisPoints
        self.targeting = targeting
        self.variants = variants
        self.controlIndex = controlIndex
        self.winnerIndex = winnerIndex
        self.mode = mode
        self.guardrails = guardrails
    }
}

/// One arm of an experiment.
public struct Variant: Sendable {
    public var name: String
    /// Share of enrolled units, in basis points; the weights of an experiment add up to 10000.
    public var weightBasisPoints: Int
    public var prompt: String
    public var promptVersion: Int
    public var isControl: Bool
    /// Free-form settings returned with every assignment, keys in document order.
    public var params: JSONObject
    /// Set when the document disables this treatment (never the control): its units get the control, as when an
    /// operator or a guardrail disables it (PROTOCOL.md, "Decision order").
    public var disabled: ConfigDisable? = nil
}

/// A treatment disabled by the configuration document (a variant's `disabled`), typically written by a judge that
/// decided on the whole fleet's evidence. Not part of the phase: disabling a treatment does not start new
/// statistics.
public struct ConfigDisable: Sendable, Equatable {
    /// When it was decided (the document's RFC 3339 time, not when a host applied it).
    public var at: Timestamp
    /// Who decided (`variantd-judge@host`); 1 to 256 bytes.
    public var by: String
    /// Why, for humans; at most 1000 bytes.
    public var reason: String
    /// The statistics behind the decision, free-form; nil when the document gives none.
    public var evidence: JSONObject?

    public init(at: Timestamp, by: String, reason: String, evidence: JSONObject? = nil) {
        self.at = at
        self.by = by
        self.reason = reason
        self.evidence = evidence
    }

    /// The longest `by`, in bytes of UTF-8.
    public static let maximumByBytes = 256
    /// The longest `reason`, in bytes of UTF-8 (the same limit as the `disable` op's).
    public static let maximumReasonBytes = 1000

    /// The disable as the daemon lists disabled treatments (`stats`, the ledger).
    public func treatment(experiment: String, variant: String) -> DisabledTreatment {
        DisabledTreatment(
            experiment: experiment, variant: variant, at: at, automatic: false, reason: reason, configuredBy: by)
    }
}

extension Experiment {
    /// The treatments this experiment's document disables, as disabled treatments.
    public var configDisabledTreatments: [ExperimentLedger.VariantKey: DisabledTreatment] {
        var treatments: [ExperimentLedger.VariantKey: DisabledTreatment] = [:]
        for variant in variants {
            guard let disable = variant.disabled else { continue }
            treatments[.init(experiment: name, variant: variant.name)] =
                disable.treatment(experiment: name, variant: variant.name)
        }
        return treatments
    }
}

/// A condition on one request attribute; see PROTOCOL.md, "Targeting rule".
public struct TargetingRule: Sendable {
    public enum Operator: String, Sendable, CaseIterable {
        case eq, ne, `in`, notIn = "not_in", lt, lte, gt, gte
    }

    public enum Operand: Sendable {
        case scalar(JSONValue)
        case set([JSONValue])
        case number(Double)
    }

    public var attribute: String
    public var op: Operator
    public var operand: Operand
}
