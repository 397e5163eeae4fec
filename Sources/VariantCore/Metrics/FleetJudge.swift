/// The fleet's guardrail (`variantd-judge`): the daemon's own guardrail evaluation (`GuardrailCheck`, the same
/// sequential tests, tolerances and α from the same document) run on the fleet's merged phase (`FleetState`)
/// instead of one host's share, so a harmful treatment is caught on all the evidence and disabled everywhere at
/// once through the configuration source (docs/fleet.md, "The judge").
///
/// Its state (each test's always-valid p-value so far, and the decisions made) is kept by the caller across
/// restarts, so evidence gathered before a restart still counts and a decision is published once.
public struct FleetJudge: Sendable, Equatable, Codable {
    /// A treatment to disable, with the statistics behind it.
    public struct Decision: Sendable, Equatable, Codable {
        public var experiment: String
        public var variant: String
        /// The phase's fingerprint: the decision is about this configuration of the experiment.
        public var fingerprint: String
        /// When it was decided (Unix seconds).
        public var at: Double
        /// The guardrail's reason, as a daemon's `auto_disabled` event says it.
        public var reason: String
        /// The numbers behind it, as JSON text (metric, control and treatment values and counts, degradation,
        /// tolerance, p-value, α, hosts counted).
        public var evidence: String
        /// Whether it reached the configuration source.
        public var published: Bool
    }

    /// The sequential test states by experiment and fingerprint, then variant, then metric.
    public private(set) var tests: [String: [String: [String: SequentialTestState]]] = [:]
    /// Every decision, by `experiment/variant@fingerprint`: a new configuration of the experiment (a new phase) is
    /// judged afresh.
    public private(set) var decisions: [String: Decision] = [:]

    public init() {}

    static func key(_ experiment: String, _ variant: String, _ fingerprint: String) -> String {
        experiment + "/" + variant + "@" + fingerprint
    }

    /// The decision made for a treatment in this configuration of its experiment, if any.
    public func decision(experiment: String, variant: String, fingerprint: String) -> Decision? {
        decisions[Self.key(experiment, variant, fingerprint)]
    }

    /// Runs every treatment's guardrails on the fleet's merged phase; returns the treatments that breach now.
    ///
    /// Treatments the document already disables (`alreadyDisabled`), or with a decision made before, are not
    /// judged again. Nothing is decided without data: a treatment or control with no records is skipped, and the
    /// tests' own minimum samples apply.
    public mutating func judge(_ fleet: FleetState, alreadyDisabled: Set<String> = [], at now: Timestamp) -> [Decision] {
        let experiment = fleet.experiment
        let control = experiment.control.name
        let fingerprint = fleet.phase.definition?.fingerprint ?? ""
        let testsKey = experiment.name + " " + fingerprint
        guard let controlAggregate = fleet.phase.variants[control] else { return [] }
        var made: [Decision] = []
        for variant in experiment.variants where !variant.isControl {
            let key = Self.key(experiment.name, variant.name, fingerprint)
            guard decisions[key] == nil, !alreadyDisabled.contains(variant.name),
                let treatment = fleet.phase.variants[variant.name]
            else { continue }
            var states = tests[testsKey]?[variant.name] ?? [:]
            let breach = GuardrailCheck.breach(
                of: treatment, against: controlAggregate, policy: experiment.guardrails.policy, states: &states)
            tests[testsKey, default: [:]][variant.name] = states
            guard let breach else { continue }
            var details = breach.details
            details.members.append(("hosts_counted", .number(Double(fleet.hosts.count(where: \.counted)))))
            details.members.append(("fingerprint", .string(fingerprint)))
            var writer = JSONWriter()
            writer.value(.object(details))
            let decision = Decision(
                experiment: experiment.name, variant: variant.name, fingerprint: fingerprint,
                at: now.secondsSinceEpoch, reason: "fleet: " + breach.reason,
                evidence: String(decoding: writer.bytes, as: UTF8.self), published: false)
            decisions[key] = decision
            made.append(decision)
        }
        return made
    }

    /// Records that a decision reached the configuration source (it is not published again).
    public mutating func markPublished(_ decision: Decision) {
        decisions[Self.key(decision.experiment, decision.variant, decision.fingerprint)]?.published = true
    }

    /// The decisions not yet published (after a failed publish, or a restart in between).
    public var unpublished: [Decision] {
        decisions.values.filter { !$0.published }.sorted { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }
    }
}
