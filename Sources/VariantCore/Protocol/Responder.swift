/// Answers request lines from a serving snapshot: the whole protocol, with no I/O.
///
/// The socket server hands each line here and writes what comes back; tests call it directly.
public enum Responder {
    /// Appends the response to one request line (without its newline), newline included, and returns the line's
    /// op and outcome (for the daemon's request metrics).
    @discardableResult
    public static func respond(
        to line: UnsafeBufferPointer<UInt8>, snapshot: ServingSnapshot, now: Timestamp, context: RequestContext,
        into writer: inout JSONWriter
    ) -> RequestOutcome {
        respond(to: line, fastPath: true, snapshot: snapshot, now: now, context: context, into: &writer)
    }

    /// `respond`, with the decoder's fast path on or off (tests compare both).
    @discardableResult
    static func respond(
        to line: UnsafeBufferPointer<UInt8>, fastPath: Bool, snapshot: ServingSnapshot, now: Timestamp,
        context: RequestContext, into writer: inout JSONWriter
    ) -> RequestOutcome {
        let request: Request
        do {
            request = try decode(line, fastPath: fastPath, context: context, into: &writer)
        } catch {
            return error.outcome
        }
        return respond(durable: request, snapshot: snapshot, now: now, context: context, into: &writer)
    }

    /// What `respondUnlessDurable` did with a line.
    public enum LineDisposition: Sendable {
        /// Answered into the writer.
        case answered(RequestOutcome)
        /// Not answered: a request whose answer waits for the state file to be written (`disable`, `enable`,
        /// `new_phase`), for the caller to answer with `respond(durable:)` off its event loop.
        case durable(Request)
    }

    /// Like `respond`, except that a request that writes the state file before its answer is decoded and handed
    /// back unanswered, so the daemon can write the file without holding up the connection's event loop.
    public static func respondUnlessDurable(
        to line: UnsafeBufferPointer<UInt8>, snapshot: ServingSnapshot, now: Timestamp, context: RequestContext,
        into writer: inout JSONWriter
    ) -> LineDisposition {
        let request: Request
        do {
            request = try decode(line, fastPath: true, context: context, into: &writer)
        } catch {
            return .answered(error.outcome)
        }
        if request.operation.writesStateBeforeAnswer { return .durable(request) }
        return .answered(respond(durable: request, snapshot: snapshot, now: now, context: context, into: &writer))
    }

    /// Decodes a line, answering the error of one that does not decode (the failure is that answer's outcome).
    private static func decode(
        _ line: UnsafeBufferPointer<UInt8>, fastPath: Bool, context: RequestContext, into writer: inout JSONWriter
    ) throws(ParseRefusal) -> Request {
        do {
            return try Request.decode(line, fastPath: fastPath)
        } catch {
            writeError(error.error, id: error.id, into: &writer)
            if error.op == .record { context.recordsRefused(error.error.code, 1) }
            throw ParseRefusal(outcome: RequestOutcome(op: error.op, error: error.error.code))
        }
    }

    /// A line that did not parse, already answered.
    private struct ParseRefusal: Error {
        var outcome: RequestOutcome
    }

    /// Answers a parsed request (any, though `respondUnlessDurable` hands back only those that write the state
    /// file before their answer, which may then take the time of a disk write).
    public static func respond(
        durable request: Request, snapshot: ServingSnapshot, now: Timestamp, context: RequestContext,
        into writer: inout JSONWriter
    ) -> RequestOutcome {
        let op = request.operation.op
        do {
            try answer(request.operation, id: request.id, snapshot: snapshot, now: now, context: context, into: &writer)
            return RequestOutcome(op: op)
        } catch {
            writeError(error, id: request.id, into: &writer)
            if op == .record { context.recordsRefused(error.code, 1) }
            return RequestOutcome(op: op, error: error.code)
        }
    }

    /// Convenience for tests and tools: one line in, one line out (without the newline; empty when the request
    /// asked for no answer).
    public static func respond(to line: String, snapshot: ServingSnapshot, now: Timestamp, context: RequestContext)
        -> String
    {
        var writer = JSONWriter()
        var line = line
        line.withUTF8 { respond(to: $0, snapshot: snapshot, now: now, context: context, into: &writer) }
        return String(decoding: writer.bytes.dropLast(), as: UTF8.self)
    }

    /// Appends `{"id":ID,"ok":false,"error":{"code":..,"message":..}}` and a newline.
    public static func writeError(_ error: ProtocolError, id: RequestID, into writer: inout JSONWriter) {
        ErrorAnswer(id: id, error: error).write(to: &writer)
    }

    private static func answer(
        _ operation: consuming Request.Operation, id: RequestID, snapshot: ServingSnapshot, now: Timestamp, context: RequestContext,
        into writer: inout JSONWriter
    ) throws(ProtocolError) {
        switch consume operation {
        case .assign(let experimentName, let unit, let attributes):
            guard let config = snapshot.config else {
                return AssignAnswer.unconfigured(id: id, experiment: experimentName).write(to: &writer)
            }
            try assign(
                experiment: experimentName, unit: unit, attributes: attributes, snapshot: snapshot, config: config,
                now: now, ledger: context.ledger, id: id, into: &writer)
        case .prompt(let query):
            try writePrompt(query, snapshot: snapshot, config: try loadedConfig(snapshot), now: now, id: id, into: &writer)
        case .config:
            ConfigAnswer(id: id, snapshot: snapshot, now: now).write(to: &writer)
        case .health:
            HealthAnswer(id: id, snapshot: snapshot, now: now).write(to: &writer)
        case .record(let record, let acknowledge):
            let variant = try self.record(record, snapshot: snapshot, config: try loadedConfig(snapshot), now: now, context: context)
            guard acknowledge else { return }
            RecordAnswer(id: id, variant: variant).write(to: &writer)
        case .batch(let records, let acknowledge):
            try writeBatch(records, acknowledge: acknowledge, snapshot: snapshot, now: now, context: context, id: id, into: &writer)
        case .stats(let experimentName, let effect, let phaseNumber):
            let config = try loadedConfig(snapshot)
            let index = try experimentIndex(named: experimentName, in: config)
            let experiment = config.document.experiments[index]
            let current = context.ledger.currentPhase(
                of: experiment.name, definition: config.assignmentTally.definitions[index], at: now)
            var phase = current
            if let phaseNumber, phaseNumber != current.number {
                guard let earlier = context.ledger.phase(phaseNumber, of: experiment.name) else {
                    let kept = context.ledger.phaseNumbers(of: experiment.name).map(String.init).joined(separator: ", ")
                    throw ProtocolError(.unknownPhase, "experiment '\(experiment.name)' has no phase \(phaseNumber) (phases kept: \(kept))")
                }
                phase = earlier
            }
            var report = ExperimentReport(
                experiment: experiment, phase: phase, currentPhase: current.number,
                disabled: phase.number == current.number
                    ? context.ledger.disabled.merging(experiment.configDisabledTreatments) { _, byConfig in byConfig }
                    : [:],
                minimumDetectableEffect: effect)
            report.promptRules = promptRuleCounts(of: experiment, in: config.document, ledger: context.ledger)
            StatsAnswer(id: id, report: report, configVersion: config.version).write(to: &writer)
        case .newPhase(let experimentName, let reason):
            try requireAdministrator(context.caller, op: "new_phase")
            let config = try loadedConfig(snapshot)
            let index = try experimentIndex(named: experimentName, in: config)
            let event = context.ledger.startPhase(
                of: experimentName, definition: config.assignmentTally.definitions[index], at: now,
                actor: context.caller.description, reason: reason ?? "requested by an operator")
            context.treatmentsChanged(event)
            try requireDurable(
                context, change: "phase \(event.details["phase"]?.integerValue ?? 0) of '\(experimentName)' started on this host now",
                undone: "go back to the phase before")
            NewPhaseAnswer(id: id, experiment: experimentName, phase: event.details["phase"]?.integerValue ?? 0)
                .write(to: &writer)
        case .events(let limit):
            EventsAnswer(id: id, events: context.ledger.events(limit: limit)).write(to: &writer)
        case .disable(let experiment, let variant, let reason):
            try disable(
                experiment: experiment, variant: variant, reason: reason, snapshot: snapshot, now: now, context: context,
                id: id, into: &writer)
        case .enable(let experiment, let variant):
            try enable(experiment: experiment, variant: variant, snapshot: snapshot, now: now, context: context, id: id, into: &writer)
        case .render(let query, let variables):
            try render(query, variables: variables, snapshot: snapshot, now: now, context: context, id: id, into: &writer)
        case .reload:
            try requireAdministrator(context.caller, op: "reload")
            guard context.reload() else {
                throw ProtocolError(.unavailable, "this daemon's config source cannot be reloaded")
            }
            ReloadAnswer(id: id).write(to: &writer)
        }
    }

    /// - Throws: `no_config`.
    static func loadedConfig(_ snapshot: ServingSnapshot) throws(ProtocolError) -> LoadedConfig {
        guard let config = snapshot.config else {
            throw ProtocolError(.noConfig, "no configuration is loaded yet (source \(snapshot.source))")
        }
        return config
    }

    private static func assign(
        experiment name: String, unit: String, attributes: JSONObject, snapshot: ServingSnapshot, config: LoadedConfig,
        now: Timestamp, ledger: ExperimentLedger, id: RequestID, into writer: inout JSONWriter
    ) throws(ProtocolError) {
        let index = try experimentIndex(named: name, in: config)
        let assignment = snapshot.assignment(experimentIndex: index, unit: unit, attributes: attributes, now: now, in: config)
        countAssignment(
            assignment, unit: unit, experimentIndex: index, snapshot: snapshot, config: config, ledger: ledger)
        assignAnswer(assignment, experimentIndex: index, config: config, id: id).write(to: &writer)
    }

    /// Counts an answer that enrols the unit (`stats` "assignments") and the unit among the experiment's distinct
    /// units, except while a treatment of the experiment is disabled (its units then get the control, so the split
    /// of that time says nothing about assignment: the sample-ratio check leaves it out).
    static func countAssignment(
        _ assignment: Assignment, unit: String, experimentIndex index: Int, snapshot: ServingSnapshot,
        config: LoadedConfig, ledger: ExperimentLedger
    ) {
        guard assignment.enrolled else { return }
        config.assignmentTally.countAssignment(
            experimentIndex: index, variantIndex: assignment.measuredVariantIndex,
            unitHash: snapshot.hasDisabledTreatment(experimentIndex: index) ? nil : UnitHash.of(unit), for: ledger)
    }

    /// A prompt and one of its versions (the latest without `number`).
    /// - Throws: `unknown_prompt`, `unknown_prompt_version`.
    static func promptVersion(named name: String, number: Int?, in config: LoadedConfig) throws(ProtocolError)
        -> (Prompt, PromptVersion)
    {
        guard let prompt = config.document.prompt(named: name) else {
            throw ProtocolError(.unknownPrompt, "no prompt named '\(name)' in config \(config.version)")
        }
        guard let number else { return (prompt, prompt.latest) }
        guard let version = prompt.version(number) else {
            throw ProtocolError(.unknownPromptVersion, "prompt '\(name)' has no version \(number)")
        }
        return (prompt, version)
    }

    /// - Throws: `unknown_experiment`.
    static func experimentIndex(named name: String, in config: LoadedConfig) throws(ProtocolError) -> Int {
        guard let index = config.document.experimentIndex(named: name) else {
            let near = NearNames.near(name, among: config.document.experiments.map(\.name))
            let hint = near.isEmpty ? "" : " (did you mean \(near.map { "'\($0)'" }.joined(separator: ", "))?)"
            throw ProtocolError(.unknownExperiment, "no experiment named '\(name)' in config \(config.version)\(hint)")
        }
        return index
    }

    /// The answer for a unit's assignment, from the encoded parts of its variant (and of its shadow variant).
    static func assignAnswer(_ assignment: Assignment, experimentIndex: Int, config: LoadedConfig, id: RequestID)
        -> AssignAnswer
    {
        let answers = config.assignmentAnswers[experimentIndex]
        var shadow = AssignAnswer.Shadow.absent
        if config.document.experiments[experimentIndex].mode == .shadow {
            shadow = assignment.shadowVariantIndex.map { .variant(answers[$0]) } ?? .none
        }
        return AssignAnswer(
            id: id, parts: answers[assignment.variantIndex], enrolled: assignment.enrolled, reason: assignment.reason,
            shadow: shadow)
    }

    private static func writePrompt(
        _ query: Request.PromptQuery, snapshot: ServingSnapshot, config: LoadedConfig, now: Timestamp, id: RequestID,
        into writer: inout JSONWriter
    ) throws(ProtocolError) {
        let promptName: String
        var requestedVersion: Int?
        var decision: (experiment: Experiment, assignment: Assignment)?
        switch query {
        case .version(let prompt, let version):
            promptName = prompt
            requestedVersion = version
        case .latest(let prompt):
            promptName = prompt
        case .assigned(let experimentName, let unit, let attributes, let expectedPrompt):
            let index = try experimentIndex(named: experimentName, in: config)
            let experiment = config.document.experiments[index]
            let assignment = snapshot.assignment(experimentIndex: index, unit: unit, attributes: attributes, now: now, in: config)
            let variant = experiment.variants[assignment.variantIndex]
            if let expectedPrompt, !expectedPrompt.hasSameUTF8(as: variant.prompt) {
                throw ProtocolError(.promptMismatch, "unit is assigned prompt '\(variant.prompt)' in experiment '\(experimentName)', not '\(expectedPrompt)'")
            }
            promptName = variant.prompt
            requestedVersion = variant.promptVersion
            decision = (experiment, assignment)
        }
        let (prompt, version) = try promptVersion(named: promptName, number: requestedVersion, in: config)
        PromptAnswer(
            id: id, prompt: prompt.name, version: version, configVersion: config.version,
            decision: decision.map {
                PromptAnswer.Decision(
                    experiment: $0.experiment.name, variant: $0.experiment.variants[$0.assignment.variantIndex].name,
                    reason: $0.assignment.reason)
            }
        ).write(to: &writer)
    }
}
