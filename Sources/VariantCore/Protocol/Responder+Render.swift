/// The `render` op (PROTOCOL.md, `render`): a prompt version rendered with the request's variables, checked by
/// its prompt rules; with an experiment, in the same answer as the unit's assignment.
extension Responder {
    /// - Throws: `no_config`, `unknown_experiment`, `unknown_prompt`, `unknown_prompt_version`,
    ///   `invalid_variables`, `missing_variable`, `rule_blocked`.
    static func render(
        _ query: Request.RenderQuery, variables: JSONObject, snapshot: ServingSnapshot, now: Timestamp,
        context: RequestContext, id: RequestID, into writer: inout JSONWriter
    ) throws(ProtocolError) {
        let config = try loadedConfig(snapshot)
        switch query {
        case .assigned(let experimentName, let unit, let attributes):
            let index = try experimentIndex(named: experimentName, in: config)
            let assignment = snapshot.assignment(experimentIndex: index, unit: unit, attributes: attributes, now: now, in: config)
            let experiment = config.document.experiments[index]
            // Validation guarantees the variant's prompt version exists.
            guard let served = config.servedPromptVersions[index][assignment.variantIndex] else {
                let variant = experiment.variants[assignment.variantIndex]
                throw ProtocolError(.internal, "variant '\(variant.name)' names a prompt version the config does not have")
            }
            let prepared = try prepare(
                served.version, of: served.prompt, variables: variables, experiment: experiment.name, now: now,
                context: context)
            // Counted only when the unit is served its prompt: a refused render enrols no one.
            countAssignment(
                assignment, unit: unit, experimentIndex: index, snapshot: snapshot, config: config, ledger: context.ledger)
            RenderAnswer(
                id: id, source: .assigned(assignAnswer(assignment, experimentIndex: index, config: config, id: id)),
                rendering: prepared
            ).write(to: &writer)
        case .prompt(let promptName, let number):
            let (prompt, version) = try promptVersion(named: promptName, number: number, in: config)
            let prepared = try prepare(version, of: prompt.name, variables: variables, experiment: nil, now: now, context: context)
            RenderAnswer(
                id: id, source: .prompt(name: prompt.name, version: version.number, configVersion: config.version),
                rendering: prepared
            ).write(to: &writer)
        }
    }

    /// Renders and checks, counts every rule that fired (logging coalesced events for `log` rules), and throws
    /// `rule_blocked` when a `block` rule fired.
    private static func prepare(
        _ version: PromptVersion, of prompt: String, variables: JSONObject, experiment: String?, now: Timestamp,
        context: RequestContext
    ) throws(ProtocolError) -> PreparedRender {
        let prepared = try version.prepareRender(variables: variables)
        if !prepared.triggered.isEmpty {
            context.ledger.countPromptRules(
                prepared.triggered, prompt: prompt, version: version.number, experiment: experiment, at: now)
        }
        if let blocked = prepared.blocked {
            throw ProtocolError(.ruleBlocked, "rule '\(blocked.rule)' blocked the render: \(blocked.reason)")
        }
        return prepared
    }
}

extension Responder {
    /// The prompt rules of each prompt version the experiment's variants serve (each version once, in variant
    /// order), with how often each fired.
    static func promptRuleCounts(of experiment: Experiment, in document: ConfigDocument, ledger: ExperimentLedger)
        -> [ExperimentReport.PromptRuleCount]
    {
        var counts: [ExperimentReport.PromptRuleCount] = []
        var seen: [(prompt: String, version: Int)] = []
        for variant in experiment.variants {
            guard !seen.contains(where: { $0.prompt == variant.prompt && $0.version == variant.promptVersion }),
                let version = document.prompt(named: variant.prompt)?.version(variant.promptVersion)
            else { continue }
            seen.append((variant.prompt, variant.promptVersion))
            let rules = version.rules.filter { $0.kind != .model }
            guard !rules.isEmpty else { continue }
            let triggered = ledger.promptRuleCounts(prompt: variant.prompt, version: version.number, rules: rules.map(\.name))
            for (rule, count) in zip(rules, triggered) {
                counts.append(
                    .init(prompt: variant.prompt, version: version.number, rule: rule.name, action: rule.action, triggered: count))
            }
        }
        return counts
    }
}
