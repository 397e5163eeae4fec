/// The ops that feed and steer experiments: `record`, `batch`, `events`, and the admin ops `disable` and
/// `enable` (PROTOCOL.md, section 3).
extension Responder {
    /// Checks a record against the config in use and adds it to the ledger.
    /// - Returns: the name of the variant it was recorded for.
    /// - Throws: `unknown_experiment`, `unknown_variant`, `not_enrolled`, `not_shadow`, `invalid_metric` (a value
    ///   outside its plausible range), `too_many_metrics`.
    static func record(
        _ record: RecordRequest, snapshot: ServingSnapshot, config: LoadedConfig, now: Timestamp,
        context: RequestContext
    ) throws(ProtocolError) -> String {
        let entry = try ledgerEntry(for: record, snapshot: snapshot, config: config, now: now)
        let outcome = context.ledger.record([entry], now: now)
        outcome.disabled.forEach(context.treatmentsChanged)
        if let failure = outcome.failures[0] { throw failure }
        return entry.variant
    }

    /// Resolves a record's variant against the config in use.
    /// - Throws: `unknown_experiment`, `unknown_variant`, `not_enrolled`, `not_shadow`.
    static func ledgerEntry(
        for record: RecordRequest, snapshot: ServingSnapshot, config: LoadedConfig, now: Timestamp
    ) throws(ProtocolError) -> ExperimentLedger.Entry {
        let experimentIndex = try experimentIndex(named: record.experiment, in: config)
        let experiment = config.document.experiments[experimentIndex]
        let variantIndex: Int
        let unitHash: UInt64?
        switch record.subject {
        case .variant(let name, let unit):
            variantIndex = try self.variantIndex(named: name, in: experiment)
            unitHash = unit.map(UnitHash.of)
        case .unit(let unit, let attributes):
            unitHash = UnitHash.of(unit)
            let assignment = snapshot.assignment(
                experimentIndex: experimentIndex, unit: unit, attributes: attributes, now: now, in: config)
            guard assignment.enrolled else {
                throw ProtocolError(.notEnrolled, "unit is not enrolled in '\(experiment.name)' (reason \(assignment.reason.rawValue)); nothing to record")
            }
            // In shadow mode a unit's shadow results belong to its shadow variant, its live ones to the control.
            variantIndex = record.shadow ? (assignment.shadowVariantIndex ?? experiment.controlIndex) : assignment.variantIndex
        }
        // Shadow results come only from a shadow experiment's treatments, and a shadow experiment's treatments
        // never serve users, so their results are always shadow results.
        let isTreatment = variantIndex != experiment.controlIndex
        switch (experiment.mode, record.shadow) {
        case (.live, true):
            throw ProtocolError(.notShadow, "experiment '\(experiment.name)' is not in shadow mode; send 'shadow' only for a shadow variant's results")
        case (.shadow, true) where !isTreatment:
            throw ProtocolError(.notShadow, "the control of '\(experiment.name)' serves users; record its results without 'shadow'")
        case (.shadow, false) where isTreatment:
            throw ProtocolError(.notShadow, "'\(experiment.name)' is in shadow mode, so '\(experiment.variants[variantIndex].name)' only runs in the shadow; record its results with \"shadow\":true")
        default:
            break
        }
        // Guardrails watch running experiments only: a paused or finished one serves no treatment to protect.
        let guarded = experiment.status == .running
        return ExperimentLedger.Entry(
            experiment: experiment.name, variant: experiment.variants[variantIndex].name,
            measurements: record.measurements, shadow: record.shadow, unitHash: unitHash,
            phase: config.assignmentTally.definitions[experimentIndex],
            guardrails: guarded ? (experiment.control.name, experiment.guardrails) : nil,
            ranges: experiment.metricRanges)
    }

    /// Records every valid entry of a batch and reports the others by index.
    static func writeBatch(
        _ records: [Result<RecordRequest, ProtocolError>], acknowledge: Bool, snapshot: ServingSnapshot, now: Timestamp,
        context: RequestContext, id: RequestID, into writer: inout JSONWriter
    ) throws(ProtocolError) {
        let config: LoadedConfig
        do {
            config = try loadedConfig(snapshot)
        } catch {
            context.recordsRefused(error.code, records.count)
            throw error
        }
        var rejected: [(index: Int, error: ProtocolError)] = []
        var accepted: [(index: Int, entry: ExperimentLedger.Entry)] = []
        for (index, record) in records.enumerated() {
            do {
                accepted.append((index, try ledgerEntry(for: record.get(), snapshot: snapshot, config: config, now: now)))
            } catch {
                rejected.append((index, error))
            }
        }
        let outcome = context.ledger.record(accepted.map(\.entry), now: now)
        outcome.disabled.forEach(context.treatmentsChanged)
        for (accepted, outcome) in zip(accepted, outcome.failures) {
            if let outcome { rejected.append((accepted.index, outcome)) }
        }
        rejected.sort { $0.index < $1.index }
        for rejection in rejected { context.recordsRefused(rejection.error.code, 1) }
        let recorded = records.count - rejected.count
        guard acknowledge || !rejected.isEmpty else { return }
        BatchAnswer(id: id, recorded: recorded, rejected: rejected).write(to: &writer)
    }

    /// - Throws: `forbidden`, `no_config`, `unknown_experiment`, `unknown_variant`, `control_cannot_be_disabled`,
    ///   `state_not_durable` (disabled in memory, not on disk).
    static func disable(
        experiment experimentName: String, variant variantName: String, reason: String?, snapshot: ServingSnapshot,
        now: Timestamp, context: RequestContext, id: RequestID, into writer: inout JSONWriter
    ) throws(ProtocolError) {
        try requireAdministrator(context.caller, op: "disable")
        let config = try loadedConfig(snapshot)
        let experiment = config.document.experiments[try experimentIndex(named: experimentName, in: config)]
        let variant = experiment.variants[try variantIndex(named: variantName, in: experiment)]
        guard !variant.isControl else {
            throw ProtocolError(.controlCannotBeDisabled, "'\(variant.name)' is the control of '\(experiment.name)'; pause the experiment instead")
        }
        let event = context.ledger.disable(
            DisabledTreatment(
                experiment: experiment.name, variant: variant.name, at: now, automatic: false,
                reason: reason ?? "disabled by an operator"),
            actor: context.caller.description)
        if let event { context.treatmentsChanged(event) }
        try requireDurable(
            context, change: "'\(variant.name)' of '\(experiment.name)' is disabled on this host now (its units get the control)",
            undone: "serve it again")
        TreatmentStateAnswer(id: id, experiment: experiment.name, variant: variant.name, disabled: true, changed: event != nil)
            .write(to: &writer)
    }

    /// - Throws: `forbidden`, `no_config`, `unknown_experiment`, `unknown_variant`, `disabled_by_config`,
    ///   `state_not_durable` (enabled in memory, not on disk).
    static func enable(
        experiment experimentName: String, variant variantName: String, snapshot: ServingSnapshot, now: Timestamp,
        context: RequestContext, id: RequestID, into writer: inout JSONWriter
    ) throws(ProtocolError) {
        try requireAdministrator(context.caller, op: "enable")
        // The document is followed by every host; an operator on one cannot overrule it.
        if let experiment = snapshot.config?.document.experiment(named: experimentName),
            let variant = experiment.variants.first(where: { $0.name.hasSameUTF8(as: variantName) }),
            let disable = variant.disabled
        {
            throw ProtocolError(
                .disabledByConfig,
                "'\(variant.name)' of '\(experiment.name)' is disabled by the configuration document (by \(disable.by) at \(disable.at.rfc3339): \(disable.reason)); remove its \"disabled\" from the document to serve it again")
        }
        // A treatment disabled under an older config can be enabled whatever the config in use says.
        let key = ExperimentLedger.VariantKey(experiment: experimentName, variant: variantName)
        if context.ledger.locallyDisabled[key] == nil {
            let config = try loadedConfig(snapshot)
            let experiment = config.document.experiments[try experimentIndex(named: experimentName, in: config)]
            _ = try variantIndex(named: variantName, in: experiment)
        }
        let event = context.ledger.enable(
            experiment: experimentName, variant: variantName, at: now, actor: context.caller.description)
        if let event { context.treatmentsChanged(event) }
        try requireDurable(
            context, change: "'\(variantName)' of '\(experimentName)' is served on this host now", undone: "disable it again")
        TreatmentStateAnswer(id: id, experiment: experimentName, variant: variantName, disabled: false, changed: event != nil)
            .write(to: &writer)
    }

    /// Writes the state before an admin op's answer (PROTOCOL.md: the change is on disk when the answer goes out).
    /// - Parameters:
    ///   - change: what took effect in memory, as the message says it.
    ///   - undone: what a restart would do instead, as the message says it.
    /// - Throws: `state_not_durable` when the state file cannot be written; the change stays in effect in memory.
    static func requireDurable(_ context: RequestContext, change: String, undone: String) throws(ProtocolError) {
        guard let failure = context.persist() else { return }
        throw ProtocolError(
            .stateNotDurable,
            "\(change), but the state file could not be written (\(failure)), so a restart would \(undone); make the state directory writable (health shows state_error until a write succeeds) and repeat the request")
    }

    /// - Throws: `forbidden` unless the caller may administer the daemon.
    static func requireAdministrator(_ caller: Caller, op: String) throws(ProtocolError) {
        guard caller.mayAdminister else {
            throw ProtocolError(.forbidden, "'\(op)' is an admin op; \(caller) is not root, the daemon's user or in its admin group")
        }
    }

    /// - Throws: `unknown_variant`.
    static func variantIndex(named name: String, in experiment: Experiment) throws(ProtocolError) -> Int {
        guard let index = experiment.variants.firstIndex(where: { $0.name.hasSameUTF8(as: name) }) else {
            throw ProtocolError(
                .unknownVariant,
                "experiment '\(experiment.name)' has no variant '\(name)' (variants: \(experiment.variants.map(\.name).joined(separator: ", ")))")
        }
        return index
    }
}
