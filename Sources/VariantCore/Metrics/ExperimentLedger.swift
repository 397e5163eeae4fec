import Synchronization

/// The daemon's live record of what happened: aggregates per experiment and variant, treatments disabled by a
/// guardrail or an operator, and the event log.
///
/// Thread-safe (one `Mutex` guards all of it) and free of I/O: the daemon persists `encodedState()` and
/// restores it with `restore(from:)`. Memory is bounded by experiments × variants × metrics and by
/// `eventCapacity`, never by the number of records.
public final class ExperimentLedger: Sendable {
    struct State {
        /// Each experiment's phases, oldest first; the last is the current one.
        var experiments: [String: [ExperimentPhase]] = [:]
        /// Disabled on this host, by a guardrail or an operator.
        var disabled: [VariantKey: DisabledTreatment] = [:]
        /// Disabled by the configuration document last followed (`followDisables(of:at:)`), kept so that a disable
        /// is logged once however often (and across however many restarts) the same document is applied.
        var configDisabled: [VariantKey: DisabledTreatment] = [:]
        var events: [LedgerEvent] = []
        /// Prompt rule triggers, per prompt version and rule (ExperimentLedger+PromptRules.swift).
        var promptRules: [PromptRuleKey: PromptRuleTally] = [:]
        var nextSequence = 1
        /// Bumped by every change, so a persister knows whether there is anything new to write.
        var generation: UInt64 = 0
    }

    /// The most phases kept per experiment; the oldest is dropped first.
    public static let maximumPhasesKept = 20

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

    /// Adds what a tally gathered: assignment counts (drained) and its unit samples, to the phase of the
    /// configuration it counted for. A phase these counts start begins at `now`, or when the time is not known
    /// (a fold on a read that carries none), when the configuration was loaded.
    func add(_ gathered: [AssignmentTally.Gathered], at now: Timestamp?) {
        guard !gathered.isEmpty else { return }
        state.withLock { state in
            for entry in gathered {
                let index = Self.phaseIndex(
                    for: entry.definition, of: entry.experiment, lookingBack: true, at: now ?? entry.countedSince,
                    in: &state, capacity: eventCapacity)
                state.experiments[entry.experiment]![index].mergeTally(entry)
            }
            state.generation &+= 1
        }
    }

    /// Adds assignment counts to the experiments' current phases (for tools and tests that count without a tally).
    func add(assignmentCounts counts: [(key: VariantKey, count: Int)]) {
        state.withLock { state in
            for (key, count) in counts {
                let index = Self.phaseIndex(
                    for: nil, of: key.experiment, lookingBack: false, at: Timestamp(secondsSinceEpoch: 0), in: &state,
                    capacity: eventCapacity)
                state.experiments[key.experiment]![index].variants[key.variant, default: VariantAggregate()]
                    .assignments += count
            }
            state.generation &+= 1
        }
    }

    /// Folds the counts of every adopted tally into the aggregates.
    func foldTallies(at now: Timestamp? = nil) {
        let live = tallies.withLock { list in list.compactMap(\.tally) }
        var gathered: [AssignmentTally.Gathered] = []
        for tally in live { gathered += tally.gather() }
        add(gathered, at: now)
    }

    /// The index of the phase that records for `definition` go to, starting a new phase when needed.
    ///
    /// Records and reports (`lookingBack: false`) belong to the current phase if it has this definition, else to a
    /// new one. Counts folded from a tally (`lookingBack: true`) may come from a configuration replaced since, so
    /// they go to the latest phase with their definition, and start a new one only when no phase has it. A nil
    /// definition means the current phase; a phase without a definition (from an old state file) adopts the first.
    static func phaseIndex(
        for definition: PhaseDefinition?, of experiment: String, lookingBack: Bool, at now: Timestamp,
        in state: inout State, capacity: Int
    ) -> Int {
        // The path of nearly every record: the current phase has this definition.
        if let definition, let count = state.experiments[experiment]?.count, count > 0,
            state.experiments[experiment]![count - 1].definition?.fingerprint == definition.fingerprint
        {
            return count - 1
        }
        var phases = state.experiments[experiment] ?? []
        defer { state.experiments[experiment] = phases }
        guard let definition else {
            if phases.isEmpty {
                phases.append(
                    ExperimentPhase(number: 1, definition: nil, startedAt: now, reason: "first records", unitVariants: []))
            }
            return phases.count - 1
        }
        guard let current = phases.last else {
            phases.append(
                ExperimentPhase(
                    number: 1, definition: definition, startedAt: now, reason: "first records",
                    unitVariants: definition.variantNames))
            return 0
        }
        guard let currentDefinition = current.definition else {
            phases[phases.count - 1].definition = definition
            phases[phases.count - 1].unitVariants = definition.variantNames
            return phases.count - 1
        }
        if currentDefinition.fingerprint == definition.fingerprint { return phases.count - 1 }
        if lookingBack, let index = phases.lastIndex(where: { $0.definition?.fingerprint == definition.fingerprint }) {
            return index
        }
        let changed = definition.changedParts(from: currentDefinition)
        let reason = "configuration changed: " + changed.joined(separator: ", ")
        phases.append(
            ExperimentPhase(
                number: current.number + 1, definition: definition, startedAt: now, reason: reason,
                unitVariants: definition.variantNames))
        if phases.count > maximumPhasesKept { phases.removeFirst(phases.count - maximumPhasesKept) }
        _ = append(
            LedgerEvent(
                at: now, kind: .phaseStarted, experiment: experiment, actor: "config source",
                message: "phase \(current.number + 1) started: \(reason)",
                details: JSONObject([
                    ("phase", .number(Double(current.number + 1))), ("fingerprint", .string(definition.fingerprint)),
                    ("changed", .array(changed.map(JSONValue.string))),
                ])),
            to: &state, capacity: capacity)
        return phases.count - 1
    }

    /// Adds one record to a variant's aggregate.
    /// - Throws: `invalid_metric` when a value is outside its metric's plausible range (the variant's
    ///   `outOfRange` counts it), `too_many_metrics` when the record's custom metrics would take the variant over
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
        /// `UnitHash.of(unit)` when the record named its unit; nil for a record analysed per record.
        public var unitHash: UInt64?
        /// The experiment's configuration as it is now: records go to the phase of this definition (nil: the
        /// current phase, whatever it is).
        public var phase: PhaseDefinition?
        /// The experiment's control and guardrails, to check a treatment after the record is added; nil for no
        /// check.
        public var guardrails: (control: String, settings: GuardrailSettings)?
        /// The plausible range of each metric (the experiment's `metric_ranges` over the defaults).
        public var ranges: MetricRanges

        public init(
            experiment: String, variant: String, measurements: Measurements, shadow: Bool, unitHash: UInt64? = nil,
            phase: PhaseDefinition? = nil, guardrails: (control: String, settings: GuardrailSettings)? = nil,
            ranges: MetricRanges = MetricRanges()
        ) {
            self.ranges = ranges
            self.phase = phase
            self.experiment = experiment
            self.variant = variant
            self.measurements = measurements
            self.shadow = shadow
            self.unitHash = unitHash
            self.guardrails = guardrails
        }
    }

    /// What recording a batch did.
    public struct RecordOutcome: Sendable {
        /// For each entry, nil when recorded, or why not (`invalid_metric`, `too_many_metrics`).
        public var failures: [ProtocolError?]
        /// Treatments a guardrail disabled because of these records (`auto_disabled` events).
        public var disabled: [LedgerEvent]
    }

    /// Adds records all at once, so that a state file or a statistic sees all of a batch or none of it, then
    /// checks the guardrails of every treatment that got a record.
    public func record(_ entries: [Entry], now: Timestamp = Timestamp(secondsSinceEpoch: 0)) -> RecordOutcome {
        state.withLock { state in
            var touched: [(key: VariantKey, phase: Int, control: String, settings: GuardrailSettings)] = []
            let failures = entries.map { entry -> ProtocolError? in
                let phase = Self.phaseIndex(
                    for: entry.phase, of: entry.experiment, lookingBack: false, at: now, in: &state,
                    capacity: eventCapacity)
                // Changed in place: a copy of the aggregate would copy its histogram and group totals per record.
                if let failure = state.experiments[entry.experiment]![phase].add(entry) { return failure }
                if let guardrails = entry.guardrails, guardrails.settings.evaluatesOnHost,
                    guardrails.control != entry.variant
                {
                    let key = VariantKey(experiment: entry.experiment, variant: entry.variant)
                    if !touched.contains(where: { $0.key == key }) {
                        touched.append((key, phase, guardrails.control, guardrails.settings))
                    }
                }
                return nil
            }
            state.generation &+= 1
            var disabled: [LedgerEvent] = []
            for check in touched where state.disabled[check.key] == nil && state.configDisabled[check.key] == nil {
                guard let variants = state.experiments[check.key.experiment]?[check.phase].variants,
                    let treatment = variants[check.key.variant], let control = variants[check.control]
                else { continue }
                let breach = GuardrailCheck.breach(
                    of: treatment, against: control, policy: check.settings.policy,
                    states: &state.experiments[check.key.experiment]![check.phase].sequential[
                        check.key.variant, default: [:]])
                // With scope `fleet` the evaluation runs (its state is this host's verdict, kept for export) but
                // only the document, written by a judge of the whole fleet's evidence, disables.
                guard let breach, check.settings.disablesOnHost else { continue }
                let phaseNumber = state.experiments[check.key.experiment]![check.phase].number
                state.disabled[check.key] = DisabledTreatment(
                    experiment: check.key.experiment, variant: check.key.variant, at: now, automatic: true,
                    reason: breach.reason)
                var details = breach.details
                details.members.append(("phase", .number(Double(phaseNumber))))
                disabled.append(
                    Self.append(
                        LedgerEvent(
                            at: now, kind: .autoDisabled, experiment: check.key.experiment, variant: check.key.variant,
                            actor: "guardrail", message: breach.reason, details: details),
                        to: &state, capacity: eventCapacity))
            }
            return RecordOutcome(failures: failures, disabled: disabled)
        }
    }

    /// The aggregates of an experiment's current phase, by variant name (empty when nothing was recorded).
    public func aggregates(experiment: String) -> [String: VariantAggregate] {
        foldTallies()
        return state.withLock { $0.experiments[experiment]?.last?.variants ?? [:] }
    }

    /// Every experiment's current phase, with assignment tallies folded in first (for the metrics endpoint). The
    /// copies share storage with the ledger until it next changes them, so taking them costs little.
    public func currentPhases() -> [(experiment: String, phase: ExperimentPhase)] {
        foldTallies()
        return state.withLock { state in
            state.experiments.compactMap { name, phases in phases.last.map { (experiment: name, phase: $0) } }
                .sorted { $0.experiment < $1.experiment }
        }
    }

    // MARK: - Phases

    /// The experiment's phase for its configuration as it is now (started if the configuration changed), and
    /// the numbers of every phase kept.
    public func currentPhase(of experiment: String, definition: PhaseDefinition, at now: Timestamp) -> ExperimentPhase {
        foldTallies(at: now)
        return state.withLock { state in
            let index = Self.phaseIndex(
                for: definition, of: experiment, lookingBack: false, at: now, in: &state, capacity: eventCapacity)
            return state.experiments[experiment]![index]
        }
    }

    /// Starts a new phase for every experiment of a configuration just applied whose definition changed, so that
    /// the phase starts when the configuration does, not at its first record. Experiments with nothing recorded
    /// yet are left alone.
    public func follow(_ config: LoadedConfig) {
        foldTallies(at: config.loadedAt)
        state.withLock { state in
            for (experiment, definition) in zip(config.document.experiments, config.assignmentTally.definitions)
            where state.experiments[experiment.name] != nil {
                _ = Self.phaseIndex(
                    for: definition, of: experiment.name, lookingBack: false, at: config.loadedAt, in: &state,
                    capacity: eventCapacity)
            }
        }
    }

    /// A phase by number; nil when it was never started or is no longer kept.
    public func phase(_ number: Int, of experiment: String) -> ExperimentPhase? {
        foldTallies()
        return state.withLock { $0.experiments[experiment]?.first { $0.number == number } }
    }

    /// The numbers of the phases kept for an experiment, oldest first.
    public func phaseNumbers(of experiment: String) -> [Int] {
        state.withLock { $0.experiments[experiment]?.map(\.number) ?? [] }
    }

    /// Starts a new phase of an experiment on request (`new_phase`): its statistics, sample-ratio check and
    /// guardrail evidence start afresh; the configuration is unchanged. Returns the event logged.
    public func startPhase(
        of experiment: String, definition: PhaseDefinition, at now: Timestamp, actor: String, reason: String
    ) -> LedgerEvent {
        foldTallies(at: now)
        let event = state.withLock { state in
            let current = Self.phaseIndex(
                for: definition, of: experiment, lookingBack: false, at: now, in: &state, capacity: eventCapacity)
            let number = state.experiments[experiment]![current].number + 1
            state.experiments[experiment]!.append(
                ExperimentPhase(
                    number: number, definition: definition, startedAt: now, reason: "new_phase by \(actor): \(reason)",
                    unitVariants: definition.variantNames))
            if state.experiments[experiment]!.count > Self.maximumPhasesKept {
                state.experiments[experiment]!.removeFirst()
            }
            return Self.append(
                LedgerEvent(
                    at: now, kind: .phaseStarted, experiment: experiment, actor: actor,
                    message: "phase \(number) started: \(reason)",
                    details: JSONObject([
                        ("phase", .number(Double(number))), ("fingerprint", .string(definition.fingerprint)),
                        ("changed", .array([])),
                    ])),
                to: &state, capacity: eventCapacity)
        }
        // Units counted by the configurations in use belong to the phase that just ended.
        for tally in tallies.withLock({ list in list.compactMap(\.tally) }) { tally.forgetUnits(of: experiment) }
        return event
    }

    // MARK: - Disabled treatments

    /// Every disabled treatment: by a guardrail, an operator, or the configuration document last followed (which
    /// is listed when both disable one).
    public var disabled: [VariantKey: DisabledTreatment] {
        state.withLock { state in state.disabled.merging(state.configDisabled) { _, byConfig in byConfig } }
    }

    /// The treatments disabled on this host, by a guardrail or an operator (not by the document).
    public var locallyDisabled: [VariantKey: DisabledTreatment] { state.withLock { $0.disabled } }

    /// The treatments the configuration document last followed disables.
    public var configDisabled: [VariantKey: DisabledTreatment] { state.withLock { $0.configDisabled } }

    /// Follows the treatments a document just applied disables: logs a `disabled` event (actor `config: BY`) for
    /// each disable not logged before (a treatment newly disabled, or disabled again at another `at`), and an
    /// `enabled` event (actor `config`) for each treatment the previous document disabled and this one, which
    /// still has it, no longer does. The same document applied again, here or after a restart, logs nothing.
    /// Returns the events logged.
    public func followDisables(of document: ConfigDocument, at now: Timestamp) -> [LedgerEvent] {
        var wanted: [VariantKey: (treatment: DisabledTreatment, evidence: JSONObject?)] = [:]
        var variantsInDocument: Set<VariantKey> = []
        for experiment in document.experiments {
            for variant in experiment.variants {
                let key = VariantKey(experiment: experiment.name, variant: variant.name)
                variantsInDocument.insert(key)
                if let disable = variant.disabled {
                    let treatment = disable.treatment(experiment: experiment.name, variant: variant.name)
                    wanted[key] = (treatment, disable.evidence)
                }
            }
        }
        let byName: (VariantKey, VariantKey) -> Bool = { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }
        return state.withLock { state in
            var events: [LedgerEvent] = []
            for key in wanted.keys.sorted(by: byName) {
                let (treatment, evidence) = wanted[key]!
                // To the second, as the state file keeps times: a judge's fractional `at` is the same decision
                // after a restart.
                if let logged = state.configDisabled[key], logged.at.rfc3339 == treatment.at.rfc3339 { continue }
                let by = treatment.configuredBy ?? ""
                events.append(
                    Self.append(
                        LedgerEvent(
                            at: now, kind: .disabled, experiment: key.experiment, variant: key.variant,
                            actor: "config: \(by)", message: treatment.reason,
                            details: JSONObject([
                                ("at", .string(treatment.at.rfc3339)), ("by", .string(by)),
                                ("evidence", .object(evidence ?? JSONObject())),
                            ])),
                        to: &state, capacity: eventCapacity))
            }
            for key in state.configDisabled.keys.sorted(by: byName) where wanted[key] == nil {
                // A treatment gone from the document is forgotten silently: there is nothing left to serve.
                guard variantsInDocument.contains(key) else { continue }
                if state.disabled[key] == nil, let last = state.experiments[key.experiment]?.indices.last {
                    state.experiments[key.experiment]![last].sequential[key.variant] = nil
                }
                events.append(
                    Self.append(
                        LedgerEvent(
                            at: now, kind: .enabled, experiment: key.experiment, variant: key.variant, actor: "config",
                            message: state.disabled[key] == nil
                                ? "enabled again by the configuration document; its units get their own variant"
                                : "no longer disabled by the configuration document; still disabled on this host"),
                        to: &state, capacity: eventCapacity))
            }
            let followed = wanted.mapValues { $0.treatment }
            if followed != state.configDisabled {
                state.configDisabled = followed
                state.generation &+= 1
            }
            return events
        }
    }

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
            if let last = state.experiments[experiment]?.indices.last {
                state.experiments[experiment]![last].sequential[variant] = nil
            }
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
