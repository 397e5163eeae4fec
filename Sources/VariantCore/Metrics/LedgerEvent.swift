/// Something that changed what variantd serves or decided, kept in the event log (`events` op) and in the
/// state file.
public struct LedgerEvent: Sendable, Equatable {
    /// Stable kind names (PROTOCOL.md, `events`).
    public enum Kind: String, Sendable, CaseIterable {
        /// A guardrail disabled a treatment; `details` holds the statistics behind the decision.
        case autoDisabled = "auto_disabled"
        /// An operator, or the configuration document (actor `config: BY`), disabled a treatment.
        case disabled
        /// An operator, or the configuration document (actor `config`), enabled a treatment again.
        case enabled
        /// A configuration document was applied.
        case configApplied = "config_applied"
        /// A configuration document was rejected or could not be fetched.
        case configRejected = "config_rejected"
        /// A prompt rule with action `log` fired; `details.count` says how often since its previous event
        /// (at most one event per rule and prompt version per minute).
        case promptRule = "prompt_rule"
        /// An experiment's statistics started afresh: its configuration changed (`details.changed` lists what), or
        /// an operator asked (`new_phase`). `details.phase` is the new phase's number.
        case phaseStarted = "phase_started"
        /// The state file was damaged in part: everything sound in it was restored, and `details.problems` lists
        /// each part left out or started afresh (disabled treatments are kept whenever they can be named).
        case stateDamaged = "state_damaged"
    }

    /// Increases by one with every event, across restarts.
    public var sequence: Int
    public var at: Timestamp
    public var kind: Kind
    public var experiment: String?
    public var variant: String?
    /// Who decided: `guardrail`, `config source`, or the caller (`uid 1000 pid 4242`).
    public var actor: String
    public var message: String
    /// Numbers and names behind the event, for machines.
    public var details: JSONObject

    public init(
        sequence: Int = 0, at: Timestamp, kind: Kind, experiment: String? = nil, variant: String? = nil,
        actor: String, message: String, details: JSONObject = JSONObject()
    ) {
        self.sequence = sequence
        self.at = at
        self.kind = kind
        self.experiment = experiment
        self.variant = variant
        self.actor = actor
        self.message = message
        self.details = details
    }

    /// The event as `events` answers it and the state file keeps it.
    func writeMembers(into object: inout JSONObjectWriter) {
        object.field("sequence", sequence)
        object.field("at", at.rfc3339)
        object.field("kind", kind.rawValue)
        object.field("experiment", experiment)
        object.field("variant", variant)
        object.field("actor", actor)
        object.field("message", message)
        object.field("details", .object(details))
    }
}

/// A treatment that serves the control to its units until enabled again.
public struct DisabledTreatment: Sendable, Equatable {
    public var experiment: String
    public var variant: String
    public var at: Timestamp
    /// `true` when a guardrail disabled it, `false` for an operator or the configuration document.
    public var automatic: Bool
    public var reason: String
    /// Who disabled it through the configuration document (the document's `disabled.by`; empty when not known, as
    /// in the fleet's metrics); nil when a guardrail or an operator disabled it on a host.
    public var configuredBy: String? = nil

    /// Who disabled it, as `stats` and the metrics label it: `guardrail`, `operator` or `config`.
    public var source: String {
        configuredBy != nil ? "config" : automatic ? "guardrail" : "operator"
    }
}
