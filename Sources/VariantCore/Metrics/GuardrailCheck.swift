/// The guardrails of one treatment, checked after each of its records with the always-valid sequential test of
/// `GuardrailEvaluation` (protocol/STATISTICS.md, "Guardrails").
///
/// The test's running state (the always-valid p-value of each metric) lives in the ledger and its state file, so
/// evidence gathered before a restart still counts after it.
enum GuardrailCheck {
    /// The sequential state of each guarded metric of one treatment, by metric name.
    typealias States = [String: SequentialTestState]

    /// Evaluates every guarded metric of the treatment and returns the first decision that disables it.
    static func breach(
        of treatment: VariantAggregate, against control: VariantAggregate, policy: GuardrailPolicy,
        states: inout States
    ) -> GuardrailDecision? {
        var decisions: [GuardrailDecision] = []
        decisions.append(
            GuardrailEvaluation.evaluateErrorRate(
                control: control.errors, treatment: treatment.errors,
                controlGroups: control.isAnalysedByUnit ? control.errorGroups : nil,
                treatmentGroups: treatment.isAnalysedByUnit ? treatment.errorGroups : nil, policy: policy,
                state: &states[GuardrailMetric.errorRate.description, default: SequentialTestState()]))
        decisions.append(
            GuardrailEvaluation.evaluateLatency(
                control: control.latencyMilliseconds, treatment: treatment.latencyMilliseconds,
                controlGroups: control.isAnalysedByUnit ? control.latencyGroups : nil,
                treatmentGroups: treatment.isAnalysedByUnit ? treatment.latencyGroups : nil, policy: policy,
                state: &states[GuardrailMetric.latency.description, default: SequentialTestState()]))
        for guardrail in policy.customMetrics {
            guard let treatmentMoments = treatment.custom[guardrail.name], let controlMoments = control.custom[guardrail.name]
            else { continue }
            decisions.append(
                GuardrailEvaluation.evaluateCustom(
                    guardrail, control: controlMoments, treatment: treatmentMoments,
                    controlGroups: control.isAnalysedByUnit ? control.customGroups[guardrail.name] : nil,
                    treatmentGroups: treatment.isAnalysedByUnit ? treatment.customGroups[guardrail.name] : nil,
                    policy: policy,
                    state: &states[guardrail.name, default: SequentialTestState()]))
        }
        return decisions.first(where: \.disables)
    }
}

extension GuardrailDecision {
    /// The numbers behind a decision, for the event's `details`.
    var details: JSONObject {
        var members: [(key: String, value: JSONValue)] = [
            ("metric", .string(metric.description)), ("control", .number(controlValue)),
            ("treatment", .number(treatmentValue)), ("control_n", .number(Double(controlCount))),
            ("treatment_n", .number(Double(treatmentCount))), ("degradation", .number(observedDegradation)),
            ("tolerance", .number(tolerance)), ("p_value", .number(alwaysValidPValue)), ("alpha", .number(alpha)),
        ]
        if let likelihoodRatio, likelihoodRatio.isFinite { members.append(("likelihood_ratio", .number(likelihoodRatio))) }
        if let degradationLowerBound, degradationLowerBound.isFinite {
            members.append(("degradation_lower_bound", .number(degradationLowerBound)))
        }
        return JSONObject(members)
    }
}
