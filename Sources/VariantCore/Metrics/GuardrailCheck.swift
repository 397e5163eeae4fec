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
                control: control.errors, treatment: treatment.errors, policy: policy,
                state: &states[GuardrailMetric.errorRate.description, default: SequentialTestState()]))
        decisions.append(
            GuardrailEvaluation.evaluateLatency(
                control: control.latencyMilliseconds, treatment: treatment.latencyMilliseconds, policy: policy,
                state: &states[GuardrailMetric.latency.description, default: SequentialTestState()]))
        for guardrail in policy.customMetrics {
            guard let treatmentMoments = treatment.custom[guardrail.name], let controlMoments = control.custom[guardrail.name]
            else { continue }
            decisions.append(
                GuardrailEvaluation.evaluateCustom(
                    guardrail, control: controlMoments, treatment: treatmentMoments, policy: policy,
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

/// Numbers for people.
public enum Readable {
    /// A number to four significant digits, without exponent noise for ordinary magnitudes.
    public static func fourSignificantDigits(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "\(value)" }
        let scale = pow10(3 - floorLog10(abs(value)))
        let rounded = (value * scale).rounded() / scale
        return rounded == rounded.rounded() && abs(rounded) < 1e15 ? "\(Int(rounded))" : "\(rounded)"
    }

    private static func floorLog10(_ value: Double) -> Int {
        var exponent = 0
        var scaled = value
        while scaled >= 10 { scaled /= 10; exponent += 1 }
        while scaled < 1 { scaled *= 10; exponent -= 1 }
        return exponent
    }

    private static func pow10(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<abs(exponent) { result *= 10 }
        return exponent < 0 ? 1 / result : result
    }
}
