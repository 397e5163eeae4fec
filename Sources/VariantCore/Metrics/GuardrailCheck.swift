import Glibc

/// The evidence that a treatment breached a guardrail: enough to log, record as an event, and act on.
public struct GuardrailBreach: Sendable, Equatable {
    /// `error_rate`, `latency_ms`, or a custom metric's name.
    public var metric: String
    public var controlValue: Double
    public var treatmentValue: Double
    public var controlCount: Int
    public var treatmentCount: Int
    /// Treatment minus control, in the bad direction (positive means worse).
    public var degradation: Double
    /// The tolerated degradation, in the same unit as `degradation`.
    public var tolerance: Double
    /// The mixture likelihood ratio Λ of the sequential test.
    public var likelihoodRatio: Double
    /// 1/Λ: valid however often the test was looked at.
    public var alwaysValidPValue: Double

    /// One line for logs and the event log.
    public var message: String {
        let format = Self.fourSignificantDigits
        return "\(metric) guardrail breached: treatment \(format(treatmentValue)) (n=\(treatmentCount)) vs control \(format(controlValue)) (n=\(controlCount)); worse by \(format(degradation)), tolerance \(format(tolerance)); always-valid p = \(format(alwaysValidPValue))"
    }

    /// A number to four significant digits, for people.
    public static func fourSignificantDigits(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "\(value)" }
        let scale = pow(10, 3 - floor(log10(abs(value))))
        let rounded = (value * scale).rounded() / scale
        return rounded == rounded.rounded() && abs(rounded) < 1e15 ? "\(Int(rounded))" : "\(rounded)"
    }

    /// The numbers, for the event's `details`.
    public var details: JSONObject {
        JSONObject([
            ("metric", .string(metric)), ("control", .number(controlValue)), ("treatment", .number(treatmentValue)),
            ("control_n", .number(Double(controlCount))), ("treatment_n", .number(Double(treatmentCount))),
            ("degradation", .number(degradation)), ("tolerance", .number(tolerance)),
            ("likelihood_ratio", .number(likelihoodRatio)), ("p_value", .number(alwaysValidPValue)),
        ])
    }
}

/// Decides whether a treatment breached a guardrail, with a test that stays valid although it is evaluated
/// after every record (protocol/STATISTICS.md, "Guardrails").
///
/// The test is Robbins' normal-mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh,
/// "Always valid inference", 2017). For a difference θ̂ of two means (or rates) with estimated variance V of θ̂
/// and a N(0, τ²) mixing distribution over the true difference,
///
///     Λ = √(V / (V + τ²)) · exp(θ̂² τ² / (2 V (V + τ²)))
///
/// is a nonnegative martingale under "no difference", so P(Λ ever ≥ 1/α) ≤ α (Ville's inequality): looking
/// after every record does not inflate the false-alarm rate. A treatment is disabled on a metric only when
/// (a) both variants have `minimumSamples` observations of it, (b) Λ ≥ 1/α with the treatment worse, and
/// (c) the observed degradation exceeds the metric's tolerance, so a real but tolerable difference never
/// disables anything.
public enum GuardrailCheck {
    /// Λ for an observed difference, the variance of its estimate, and the mixing variance τ².
    public static func mixtureLikelihoodRatio(difference: Double, variance: Double, mixingVariance: Double) -> Double {
        guard variance > 0, mixingVariance > 0, difference.isFinite else { return 1 }
        let total = variance + mixingVariance
        let logRatio = 0.5 * log(variance / total) + difference * difference * mixingVariance / (2 * variance * total)
        return exp(min(logRatio, 700))
    }

    /// The first guardrail the treatment breaches against the control, or nil.
    public static func breach(
        of treatment: VariantAggregate, against control: VariantAggregate, settings: GuardrailSettings
    ) -> GuardrailBreach? {
        errorRateBreach(treatment, control, settings) ?? latencyBreach(treatment, control, settings)
            ?? settings.metrics.lazy.compactMap { customBreach($0, treatment, control, settings) }.first
    }

    static func errorRateBreach(_ treatment: VariantAggregate, _ control: VariantAggregate, _ settings: GuardrailSettings)
        -> GuardrailBreach?
    {
        let (t, c) = (treatment.errors, control.errors)
        guard t.trials >= settings.minimumSamples, c.trials >= settings.minimumSamples else { return nil }
        let treatmentRate = t.successes / Double(t.trials)
        let controlRate = c.successes / Double(c.trials)
        // Rates smoothed by one pseudo-failure and one pseudo-success each, so that a run of zero errors
        // does not claim zero variance.
        func smoothedVariance(_ counts: ProportionCounts) -> Double {
            let rate = (counts.successes + 1) / Double(counts.trials + 2)
            return rate * (1 - rate) / Double(counts.trials)
        }
        return decide(
            metric: "error_rate", treatmentValue: treatmentRate, controlValue: controlRate,
            treatmentCount: t.trials, controlCount: c.trials, degradation: treatmentRate - controlRate,
            variance: smoothedVariance(t) + smoothedVariance(c), tolerance: settings.maximumErrorRateIncrease,
            mixingScale: max(2 * settings.maximumErrorRateIncrease, 0.02), alpha: settings.alpha)
    }

    static func latencyBreach(_ treatment: VariantAggregate, _ control: VariantAggregate, _ settings: GuardrailSettings)
        -> GuardrailBreach?
    {
        let (t, c) = (treatment.latencyMilliseconds, control.latencyMilliseconds)
        guard t.count >= settings.minimumSamples, c.count >= settings.minimumSamples, c.mean > 0 else { return nil }
        let tolerance = settings.maximumLatencyIncrease * c.mean
        return decide(
            metric: "latency_ms", treatmentValue: t.mean, controlValue: c.mean, treatmentCount: t.count,
            controlCount: c.count, degradation: t.mean - c.mean,
            variance: t.variance / Double(t.count) + c.variance / Double(c.count), tolerance: tolerance,
            mixingScale: max(2 * tolerance, 1e-9), alpha: settings.alpha)
    }

    static func customBreach(
        _ guardrail: CustomMetricGuardrail, _ treatment: VariantAggregate, _ control: VariantAggregate,
        _ settings: GuardrailSettings
    ) -> GuardrailBreach? {
        guard let t = treatment.custom[guardrail.name], let c = control.custom[guardrail.name],
            t.count >= settings.minimumSamples, c.count >= settings.minimumSamples
        else { return nil }
        let worse = guardrail.direction == .higherIsBetter ? c.mean - t.mean : t.mean - c.mean
        let scale = max(2 * guardrail.tolerance, (c.standardDeviation + t.standardDeviation) / 2, 1e-9)
        return decide(
            metric: guardrail.name, treatmentValue: t.mean, controlValue: c.mean, treatmentCount: t.count,
            controlCount: c.count, degradation: worse,
            variance: t.variance / Double(t.count) + c.variance / Double(c.count), tolerance: guardrail.tolerance,
            mixingScale: scale, alpha: settings.alpha)
    }

    private static func decide(
        metric: String, treatmentValue: Double, controlValue: Double, treatmentCount: Int, controlCount: Int,
        degradation: Double, variance: Double, tolerance: Double, mixingScale: Double, alpha: Double
    ) -> GuardrailBreach? {
        guard degradation > tolerance, degradation > 0 else { return nil }
        let ratio = mixtureLikelihoodRatio(difference: degradation, variance: variance, mixingVariance: mixingScale * mixingScale)
        guard ratio >= 1 / alpha else { return nil }
        return GuardrailBreach(
            metric: metric, controlValue: controlValue, treatmentValue: treatmentValue, controlCount: controlCount,
            treatmentCount: treatmentCount, degradation: degradation, tolerance: tolerance, likelihoodRatio: ratio,
            alwaysValidPValue: min(1, 1 / ratio))
    }
}
