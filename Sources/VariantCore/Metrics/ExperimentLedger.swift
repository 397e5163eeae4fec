import Synchronization

/// The daemon's live record of what happened: aggregates per experiment and variant, treatments disabled by a
/// guardrail or an operator, and the event log.
///
/// Thread-safe (one `Mutex` guards all of it) and free of I/O: the daemon persists `encodedState()` and
/// restores it with `restore(from:)`. Memory is bounded by experiments × variants × metrics and by
/// `eventCapacity`, never by the number of records.
public final class ExperimentLedger: Sendable {
    struct State {
        var experiments: [String: [String: VariantAggregate]] = [:]
        var disabled: [VariantKey: DisabledTreatment] = [:]
        /// The guardrails' sequential tests, per treatment and metric.
        var sequential: [VariantKey: GuardrailCheck.States] = [:]
        var events: [LedgerEvent] = []
        /// Prompt guardrail triggers, per prompt version and rule (ExperimentLedger+PromptGuardrails.swift).
        var promptGuardrails: [PromptGuardrailKey: PromptGuardrailTally] = [:]
        var nextSequence = 1
        /// Bumped by every change, so a persister knows whether there is anything new to write.
        var generation: UInt64 = 0
    }

    /// An experiment and variant by name.
    public struct VariantKey: Hashable, Sendable {
        public var experiment: String
        public var variant: String

        public init(experiment: String, variant: String) {
            self.experiment = experiment
            self.variant = variant
        }
    }

    let state = Mutex(State())
    /// The assignment tallies of the configurations in use (weakly: a released tally folds its own rest).
    private let tallies = Mutex<[WeakTally]>([])

    private struct WeakTally {
        weak var tally: AssignmentTally?
    }
    /// The most events kept; older ones are dropped first.
    public let eventCapacity: Int

    public init(eventCapacity: Int = 1000) {
        self.eventCapacity = eventCapacity
    }

    /// Changes with every recorded change; equal values mean nothing new to persist.
    public var generation: UInt64 {
        foldTallies()
        return state.withLock { $0.generation }
    }

    // MARK: - Recording

    /// Makes `tally`'s counts part of this ledger's aggregates: they are folded in whenever the aggregates are read,
    /// and what is left when the tally is released (its configuration replaced) is folded in then.
    public func adopt(_ tally: AssignmentTally) {
        tallies.withLock { list in
            list.removeAll { $0.tally == nil }
            if !list.contains(where: { $0.tally === tally }) { list.append(WeakTally(tally: tally)) }
        }
        tally.attach(to: self)
    }

    /// Adds assignment counts drained from a tally.
    func add(assignmentCounts counts: [(key: VariantKey, count: Int)]) {
        state.withLock { state in
            for (key, count) in counts {
                state.experiments[key.experiment, default: [:]][key.variant, default: VariantAggregate()].assignments +=
                    count
            }
            state.generation &+= 1
        }
    }

    /// Folds the counts of every adopted tally into the aggregates.
    func foldTallies() {
        let live = tallies.withLock { list in list.compactMap(\.tally) }
        var counts: [(key: VariantKey, count: Int)] = []
        for tally in live { counts += tally.drain() }
        if !counts.isEmpty { add(assignmentCounts: counts) }
    }

    /// Adds one record to a variant's aggregate.
    /// - Throws: `too_many_metrics` when the record's custom metrics would take the variant over
    ///   `VariantAggregate.maximumCustomMetrics` distinct names; nothing is recorded then.
    public func record(experiment: String, variant: String, measurements: Measurements, shadow: Bool)
        throws(ProtocolError)
    {
        let entry = Entry(experiment: experiment, variant: variant, measurements: measurements, shadow: shadow)
        if let failure = record([entry]).failures[0] { throw failure }
    }

    /// One record bound for a variant.
    public struct Entry: Sendable {
        public var experiment: String
        public var variant: String
        public var measurements: Measurements
        public var shadow: Bool
        /// The experiment's control and guardrails, to check a treatment after the record is added; nil for no
        /// check.
        public var guardrails: (control: String, settings: GuardrailSettings)?

        public init(
            experiment: String, variant: String, measurements: Measurements, shadow: Bool,
            guardrails: (control: String, settings: GuardrailSettings)? = nil
        ) {
            self.experiment = experiment
            self.variant = variant
            self.measurements = measurements
            self.shadow = shadow
            self.guardrails = guardrails
        }
    }

    /// What recording a batch did.
    public struct RecordOutcome: Sendable {
        /// For each entry, nil when recorded, or why not (`too_many_metrics`).
        public var failures: [ProtocolError?]
        /// Treatments a guardrail disabled because of these records (`auto_disabled` events).
        public var disabled: [LedgerEvent]
    }

    /// Adds records all at once, so that a state file or a statistic sees all of a batch or none of it, then
    /// checks the guardrails of every treatment that got a record.
    public func record(_ entries: [Entry], now: Timestamp = Timestamp(secondsSinceEpoch: 0)) -> RecordOutcome {
        state.withLock { state in
            var touched: [(key: VariantKey, control: String, settings: GuardrailSettings)] = []
            let failures = entries.map { entry -> ProtocolError? in
                var aggregate = state.experiments[entry.experiment]?[entry.variant] ?? VariantAggregate()
                if aggregate.wouldExceedCustomMetrics(entry.measurements.custom) {
                    return ProtocolError(
                        .tooManyMetrics,
                        "variant '\(entry.variant)' of '\(entry.experiment)' already has \(aggregate.custom.count) custom metrics; at most \(VariantAggregate.maximumCustomMetrics) are kept")
                }
                aggregate.add(entry.measurements, shadow: entry.shadow)
                state.experiments[entry.experiment, default: [:]][entry.variant] = aggregate
                if let guardrails = entry.guardrails, guardrails.settings.autoDisable, guardrails.control != entry.variant {
                    let key = VariantKey(experiment: entry.experiment, variant: entry.variant)
                    if !touched.contains(where: { $0.key == key }) { touched.append((key, guardrails.control, guardrails.settings)) }
                }
                return nil
            }
            state.generation &+= 1
            var disabled: [LedgerEvent] = []
            for check in touched where state.disabled[check.key] == nil {
                guard let variants = state.experiments[check.key.experiment], let treatment = variants[check.key.variant],
                    let control = variants[check.control]
                else { continue }
                var states = state.sequential[check.key] ?? [:]
                let breach = GuardrailCheck.breach(of: treatment, against: control, policy: check.settings.policy, states: &states)
                state.sequential[check.key] = states
                guard let breach else { continue }
                state.disabled[check.key] = DisabledTreatment(
                    experiment: check.key.experiment, variant: check.key.variant, at: now, automatic: true,
                    reason: breach.reason)
                disabled.append(
                    Self.append(
                        LedgerEvent(
                            at: now, kind: .autoDisabled, experiment: check.key.experiment, variant: check.key.variant,
                            actor: "guardrail", message: breach.reason, details: breach.details),
                        to: &state, capacity: eventCapacity))
            }
            return RecordOutcome(failures: failures, disabled: disabled)
        }
    }

    /// The aggregates of an experiment's variants, by variant name (empty when nothing was recorded).
    public func aggregates(experiment: String) -> [String: VariantAggregate] {
        foldTallies()
        return state.withLock { $0.experiments[experiment] ?? [:] }
    }

    // MARK: - Disabled treatments

    /// Every disabled treatment.
    public var disabled: [VariantKey: DisabledTreatment] { state.withLock { $0.disabled } }

    /// Disables a treatment and logs the event; returns nil when it was already disabled.
    public func disable(_ treatment: DisabledTreatment, actor: String, details: JSONObject = JSONObject()) -> LedgerEvent? {
        state.withLock { state in
            let key = VariantKey(experiment: treatment.experiment, variant: treatment.variant)
            guard state.disabled[key] == nil else { return nil }
            state.disabled[key] = treatment
            return Self.append(
                LedgerEvent(
                    at: treatment.at, kind: treatment.automatic ? .autoDisabled : .disabled,
                    experiment: treatment.experiment, variant: treatment.variant, actor: actor,
                    message: treatment.reason, details: details),
                to: &state, capacity: eventCapacity)
        }
    }

    /// Enables a disabled treatment and logs the event; returns nil when it was not disabled.
    public func enable(experiment: String, variant: String, at: Timestamp, actor: String) -> LedgerEvent? {
        state.withLock { state in
            let key = VariantKey(experiment: experiment, variant: variant)
            guard state.disabled.removeValue(forKey: key) != nil else { return nil }
            // Enabled again by a person: the guardrail starts gathering evidence afresh.
            state.sequential[key] = nil
            return Self.append(
                LedgerEvent(
                    at: at, kind: .enabled, experiment: experiment, variant: variant, actor: actor,
                    message: "enabled again; its units get their own variant"),
                to: &state, capacity: eventCapacity)
        }
    }

    // MARK: - Events

    /// Appends an event (its sequence number is assigned here) and returns it as stored.
    @discardableResult
    public func log(_ event: LedgerEvent) -> LedgerEvent {
        state.withLock { Self.append(event, to: &$0, capacity: eventCapacity) }
    }

    /// The latest events, oldest first.
    public func events(limit: Int) -> [LedgerEvent] {
        state.withLock { Array($0.events.suffix(limit)) }
    }

    static func append(_ event: LedgerEvent, to state: inout State, capacity: Int) -> LedgerEvent {
        var event = event
        event.sequence = state.nextSequence
        state.nextSequence += 1
        state.events.append(event)
        if state.events.count > capacity { state.events.removeFirst(state.events.count - capacity) }
        state.generation &+= 1
        return event
    }
}
