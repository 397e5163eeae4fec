#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A treatment against the control on one metric, with the variances of the analysis by unit, as `stats` reports
/// it (protocol/STATISTICS.md, "Analysis by unit" and "Intervals that may be watched").
///
/// - The difference is treatment − control of the means (or rates) per record.
/// - Its variance is the sum of the arms' `ArmEstimate.variance` (by unit when the arm's records named units).
/// - `interval` is an anytime-valid confidence sequence: the two-sided normal-mixture boundary with the same kind
///   of mixing scale τ as the guardrail (the guardrail mixes a half-normal over harm only; the report mixes a
///   normal over both directions). θ̂ ± √(V(V + τ²)/τ² · (2 ln(1/α) + ln((V + τ²)/V))) covers the true difference
///   at every moment at once with probability ≥ 1 − α, so a person refreshing the table does not inflate errors;
///   `alwaysValidPValue` = min(1, 1/Λ) with Λ = √(V/(V + τ²))·exp(τ²θ̂²/(2V(V + τ²))) is the matching p-value.
/// - `fixedHorizonInterval` and `pValue` are the classical interval and test at the same variance, valid only when
///   looked at once, at a sample size fixed in advance; they are labelled so in the answer.
public struct TreatmentComparison: Sendable, Equatable {
    public var control: ArmEstimate
    public var treatment: ArmEstimate
    /// treatment.mean − control.mean.
    public var difference: Double
    /// √(V_c + V_t) with each arm's variance about its own mean.
    public var standardError: Double
    /// The test statistic: for rates, the difference over the pooled (null) standard error; for means, over
    /// `standardError`.
    public var statistic: Double
    /// Welch–Satterthwaite degrees of freedom for means (each arm's: occupied groups − 1 by unit, n − 1 per
    /// record); nil for rates (normal reference).
    public var degreesOfFreedom: Double?
    /// The fixed-horizon two-sided p-value.
    public var pValue: Double
    public var fixedHorizonInterval: ConfidenceInterval?
    /// τ, the mixture's scale, in the units of the difference.
    public var mixingScale: Double
    /// The anytime-valid confidence sequence at `confidence`; nil when the variance is zero.
    public var interval: ConfidenceInterval?
    /// The anytime-valid two-sided p-value of "no difference"; 1 when the variance is zero.
    public var alwaysValidPValue: Double
    public var confidence: Double

    /// Whether either arm is analysed by unit.
    public var isByUnit: Bool { control.isByUnit || treatment.isByUnit }
    /// The larger arm's design effect (variance by unit over variance by record; 1 per record).
    public var designEffect: Double { max(control.designEffect, treatment.designEffect) }

    /// Compares rates (errors, success). `pooledControl` and `pooledTreatment` are the arms' estimates with the
    /// variance centred on the pooled rate, for the test statistic. nil without trials in either arm.
    public static func rates(
        control: ArmEstimate, treatment: ArmEstimate, pooledControl: ArmEstimate, pooledTreatment: ArmEstimate,
        mixingScale: Double, confidence: Double
    ) -> TreatmentComparison? {
        guard control.count > 0, treatment.count > 0 else { return nil }
        let difference = treatment.mean - control.mean
        let pooledError = (pooledControl.variance + pooledTreatment.variance).squareRoot()
        let statistic = pooledError > 0 ? difference / pooledError : 0
        return build(
            control: control, treatment: treatment, statistic: statistic, degreesOfFreedom: nil,
            pValue: pooledError > 0 ? twoSidedNormalPValue(statistic) : 1, mixingScale: mixingScale,
            confidence: confidence)
    }

    /// Compares means (latency, cost, tokens, custom metrics). nil with fewer than two values in either arm.
    public static func means(
        control: ArmEstimate, treatment: ArmEstimate, mixingScale: Double, confidence: Double
    ) -> TreatmentComparison? {
        guard control.count >= 2, treatment.count >= 2 else { return nil }
        let difference = treatment.mean - control.mean
        let v1 = control.variance
        let v2 = treatment.variance
        let standardError = (v1 + v2).squareRoot()
        guard standardError > 0, standardError.isFinite else {
            return build(
                control: control, treatment: treatment, statistic: 0, degreesOfFreedom: nil,
                pValue: difference == 0 ? 1 : 0, mixingScale: mixingScale, confidence: confidence)
        }
        let ν = (v1 + v2) * (v1 + v2) / (v1 * v1 / control.degreesOfFreedom + v2 * v2 / treatment.degreesOfFreedom)
        let statistic = difference / standardError
        let pValue = StudentT(degreesOfFreedom: ν).map { min(1, 2 * $0.survival(abs(statistic))) } ?? 1
        return build(
            control: control, treatment: treatment, statistic: statistic, degreesOfFreedom: ν, pValue: pValue,
            mixingScale: mixingScale, confidence: confidence)
    }

    private static func build(
        control: ArmEstimate, treatment: ArmEstimate, statistic: Double, degreesOfFreedom: Double?, pValue: Double,
        mixingScale: Double, confidence: Double
    ) -> TreatmentComparison {
        let difference = treatment.mean - control.mean
        let variance = control.variance + treatment.variance
        let standardError = variance.squareRoot()
        var comparison = TreatmentComparison(
            control: control, treatment: treatment, difference: difference, standardError: standardError,
            statistic: statistic, degreesOfFreedom: degreesOfFreedom, pValue: pValue, fixedHorizonInterval: nil,
            mixingScale: mixingScale, interval: nil, alwaysValidPValue: 1, confidence: confidence)
        guard standardError > 0, standardError.isFinite, confidence > 0, confidence < 1 else { return comparison }
        let tail = (1 - confidence) / 2
        let critical =
            degreesOfFreedom.flatMap { StudentT(degreesOfFreedom: $0)?.inverseSurvival(tail) }
            ?? Normal.inverseSurvival(tail) ?? 1.96
        comparison.fixedHorizonInterval = ConfidenceInterval(
            lower: difference - critical * standardError, upper: difference + critical * standardError)
        comparison.interval = comparison.anytimeInterval(alpha: 1 - confidence)
        if mixingScale > 0, mixingScale.isFinite {
            let τ2 = mixingScale * mixingScale
            let logRatio = 0.5 * log(variance / (variance + τ2)) + τ2 * difference * difference / (2 * variance * (variance + τ2))
            comparison.alwaysValidPValue = logRatio > 0 ? exp(-logRatio) : 1
        }
        return comparison
    }

    /// The anytime-valid confidence sequence at level 1 − α (two-sided); nil when the variance or τ is not
    /// positive, or α is outside (0, 1).
    public func anytimeInterval(alpha: Double) -> ConfidenceInterval? {
        let variance = standardError * standardError
        guard alpha > 0, alpha < 1, variance > 0, variance.isFinite, mixingScale > 0, mixingScale.isFinite else {
            return nil
        }
        let τ2 = mixingScale * mixingScale
        let halfWidth = (variance * (variance + τ2) / τ2 * (2 * log(1 / alpha) + log((variance + τ2) / variance)))
            .squareRoot()
        return ConfidenceInterval(lower: difference - halfWidth, upper: difference + halfWidth)
    }
}
