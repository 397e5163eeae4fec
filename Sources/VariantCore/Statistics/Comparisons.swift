#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A two-sided confidence interval.
public struct ConfidenceInterval: Sendable, Equatable, Codable {
    public var lower: Double
    public var upper: Double

    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }

    /// Whether the interval contains a value.
    public func contains(_ value: Double) -> Bool { lower <= value && value <= upper }
}

/// The z value of a two-sided interval at the given confidence (1.96 at 0.95); nil outside (0, 1).
func twoSidedCriticalValue(confidence: Double) -> Double? {
    guard confidence > 0, confidence < 1 else { return nil }
    return Normal.inverseSurvival((1 - confidence) / 2)
}

/// The two-sided p-value of a standard normal statistic, 2·P(Z > |z|), computed in the tail.
func twoSidedNormalPValue(_ z: Double) -> Double {
    min(1, 2 * Normal.survival(abs(z)))
}

/// Treatment against control on a rate (errors, conversions): the two-proportion z-test.
///
/// - The p-value uses the pooled standard error √(p̄(1 − p̄)(1/n₁ + 1/n₂)), the textbook z-test (equal to the
///   Pearson chi-square test of the 2×2 table without continuity correction).
/// - The interval for the absolute difference p₂ − p₁ uses the unpooled (Wald) standard error
///   √(p₁(1 − p₁)/n₁ + p₂(1 − p₂)/n₂).
/// - The interval for the relative difference p₂/p₁ − 1 applies the delta method to ln(p₂/p₁), whose variance is
///   about (1 − p₁)/(n₁p₁) + (1 − p₂)/(n₂p₂), and maps the ends back with exp(·) − 1 (so it is asymmetric and
///   never below −1).
public struct ProportionComparison: Sendable, Equatable {
    public var controlRate: Double
    public var treatmentRate: Double
    /// treatmentRate − controlRate.
    public var absoluteDifference: Double
    /// nil when the unpooled standard error is zero (both rates at 0 or 1), where a Wald interval says nothing.
    public var absoluteDifferenceInterval: ConfidenceInterval?
    /// treatmentRate / controlRate − 1; nil when the control rate is 0.
    public var relativeDifference: Double?
    /// nil when either rate is 0 (the log ratio is undefined).
    public var relativeDifferenceInterval: ConfidenceInterval?
    /// The z statistic with the pooled standard error; 0 when the pooled rate is 0 or 1 (both rates equal).
    public var z: Double
    /// The two-sided p-value; 1 when the pooled rate is 0 or 1.
    public var pValue: Double
    public var confidence: Double

    /// Compares the treatment's rate with the control's; nil when either has no trials or the confidence is not
    /// in (0, 1).
    public static func compare(
        control: ProportionCounts,
        treatment: ProportionCounts,
        confidence: Double = 0.95
    ) -> ProportionComparison? {
        guard control.trials > 0, treatment.trials > 0, let critical = twoSidedCriticalValue(confidence: confidence)
        else { return nil }
        let n1 = Double(control.trials)
        let n2 = Double(treatment.trials)
        let p1 = control.rate
        let p2 = treatment.rate
        let difference = p2 - p1

        let unpooled = (p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2).squareRoot()
        let absoluteInterval =
            unpooled > 0
            ? ConfidenceInterval(lower: difference - critical * unpooled, upper: difference + critical * unpooled) : nil

        let pooledRate = (control.successes + treatment.successes) / (n1 + n2)
        let pooled = (pooledRate * (1 - pooledRate) * (1 / n1 + 1 / n2)).squareRoot()
        let z = pooled > 0 ? difference / pooled : 0
        let pValue = pooled > 0 ? twoSidedNormalPValue(z) : 1

        var relative: Double? = nil
        var relativeInterval: ConfidenceInterval? = nil
        if p1 > 0 {
            relative = p2 / p1 - 1
            if p2 > 0 {
                let logRatio = log(p2 / p1)
                let standardError = ((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2)).squareRoot()
                relativeInterval = ConfidenceInterval(
                    lower: expm1(logRatio - critical * standardError),
                    upper: expm1(logRatio + critical * standardError)
                )
            }
        }
        return ProportionComparison(
            controlRate: p1,
            treatmentRate: p2,
            absoluteDifference: difference,
            absoluteDifferenceInterval: absoluteInterval,
            relativeDifference: relative,
            relativeDifferenceInterval: relativeInterval,
            z: z,
            pValue: pValue,
            confidence: confidence
        )
    }
}

/// The result of a chi-square test.
public struct ChiSquareTestResult: Sendable, Equatable {
    public var statistic: Double
    public var degreesOfFreedom: Int
    public var pValue: Double
}

/// Pearson's chi-square test of independence of variant and outcome over k variants × (success, failure), for
/// experiments with more than two variants (no continuity correction, as scipy's `chi2_contingency(correction=False)`).
public enum ProportionIndependenceTest {
    /// The test over the variants with at least one trial; nil when fewer than two have any. When every outcome is a
    /// success (or every one a failure) the variants cannot differ: statistic 0, p-value 1.
    public static func test(_ variants: [ProportionCounts]) -> ChiSquareTestResult? {
        let observed = variants.filter { $0.trials > 0 }
        guard observed.count >= 2 else { return nil }
        let total = observed.reduce(0.0) { $0 + Double($1.trials) }
        let successes = observed.reduce(0.0) { $0 + $1.successes }
        let failures = total - successes
        let degreesOfFreedom = observed.count - 1
        guard successes > 0, failures > 0 else {
            return ChiSquareTestResult(statistic: 0, degreesOfFreedom: degreesOfFreedom, pValue: 1)
        }
        var statistic = 0.0
        for variant in observed {
            let trials = Double(variant.trials)
            let expectedSuccesses = trials * successes / total
            let expectedFailures = trials * failures / total
            let successGap = variant.successes - expectedSuccesses
            let failureGap = variant.failures - expectedFailures
            statistic += successGap * successGap / expectedSuccesses + failureGap * failureGap / expectedFailures
        }
        let pValue = ChiSquare(degreesOfFreedom: Double(degreesOfFreedom))!.survival(statistic)
        return ChiSquareTestResult(statistic: statistic, degreesOfFreedom: degreesOfFreedom, pValue: pValue)
    }
}

/// Treatment against control on a mean (latency, cost, a custom number): Welch's unequal-variance t-test.
///
/// t = (x̄₂ − x̄₁)/√(s₁²/n₁ + s₂²/n₂), with the Welch–Satterthwaite degrees of freedom
/// ν = (v₁ + v₂)² / (v₁²/(n₁ − 1) + v₂²/(n₂ − 1)), vᵢ = sᵢ²/nᵢ; the interval is (x̄₂ − x̄₁) ± t_{ν, 1−α/2}·SE.
/// Cohen's d divides the difference by the pooled standard deviation √(((n₁−1)s₁² + (n₂−1)s₂²)/(n₁ + n₂ − 2)).
public struct MeanComparison: Sendable, Equatable {
    public var controlMean: Double
    public var treatmentMean: Double
    public var controlStandardDeviation: Double
    public var treatmentStandardDeviation: Double
    /// treatmentMean − controlMean.
    public var difference: Double
    /// nil when both samples have zero variance.
    public var differenceInterval: ConfidenceInterval?
    /// treatmentMean / controlMean − 1; nil when the control mean is 0.
    public var relativeDifference: Double?
    /// Welch–Satterthwaite ν; nil when both samples have zero variance.
    public var degreesOfFreedom: Double?
    /// nil when both samples have zero variance.
    public var t: Double?
    /// Two-sided; with zero variance in both samples, 1 if the means are equal and 0 if not.
    public var pValue: Double
    /// nil when the pooled standard deviation is 0.
    public var cohensD: Double?
    public var confidence: Double

    /// Compares the treatment's mean with the control's; nil when either has fewer than two values or the
    /// confidence is not in (0, 1).
    public static func compare(
        control: RunningMoments,
        treatment: RunningMoments,
        confidence: Double = 0.95
    ) -> MeanComparison? {
        guard control.count >= 2, treatment.count >= 2, confidence > 0, confidence < 1 else { return nil }
        let n1 = Double(control.count)
        let n2 = Double(treatment.count)
        let v1 = control.variance / n1
        let v2 = treatment.variance / n2
        let difference = treatment.mean - control.mean
        let standardError = (v1 + v2).squareRoot()
        let pooledVariance = ((n1 - 1) * control.variance + (n2 - 1) * treatment.variance) / (n1 + n2 - 2)
        let relative: Double? = control.mean != 0 ? treatment.mean / control.mean - 1 : nil
        let cohensD: Double? = pooledVariance > 0 ? difference / pooledVariance.squareRoot() : nil

        var interval: ConfidenceInterval? = nil
        var degreesOfFreedom: Double? = nil
        var t: Double? = nil
        let pValue: Double
        if standardError > 0, standardError.isFinite {
            let ν = (v1 + v2) * (v1 + v2) / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
            let distribution = StudentT(degreesOfFreedom: ν)!
            let statistic = difference / standardError
            let critical = distribution.inverseSurvival((1 - confidence) / 2)!
            interval = ConfidenceInterval(
                lower: difference - critical * standardError,
                upper: difference + critical * standardError
            )
            degreesOfFreedom = ν
            t = statistic
            pValue = min(1, 2 * distribution.survival(abs(statistic)))
        } else {
            pValue = difference == 0 ? 1 : 0
        }
        return MeanComparison(
            controlMean: control.mean,
            treatmentMean: treatment.mean,
            controlStandardDeviation: control.standardDeviation,
            treatmentStandardDeviation: treatment.standardDeviation,
            difference: difference,
            differenceInterval: interval,
            relativeDifference: relative,
            degreesOfFreedom: degreesOfFreedom,
            t: t,
            pValue: pValue,
            cohensD: cohensD,
            confidence: confidence
        )
    }
}

/// The sample-ratio-mismatch check: a chi-square goodness-of-fit test of the observed assignment counts against
/// the configured weights. A mismatch means assignment or logging is broken, so every other statistic of the
/// experiment is suspect; the threshold is strict (p < 0.001 by default) because the check runs continuously.
public struct SampleRatioMismatch: Sendable, Equatable {
    public var statistic: Double
    public var degreesOfFreedom: Int
    public var pValue: Double
    public var threshold: Double
    /// pValue < threshold.
    public var mismatch: Bool

    public static let defaultThreshold = 0.001

    /// Tests observed counts against weights (any positive scale: percentages or fractions). Variants of weight 0
    /// must have no observations; one that has some is a mismatch outright (statistic greatestFiniteMagnitude,
    /// p-value 0). nil when the arrays differ in length, a weight is negative or not finite, no weight is positive,
    /// fewer than two variants have positive weight, or nothing was observed.
    public static func test(
        observed: [Int],
        expectedWeights: [Double],
        threshold: Double = defaultThreshold
    ) -> SampleRatioMismatch? {
        guard observed.count == expectedWeights.count,
            expectedWeights.allSatisfy({ $0 >= 0 && $0.isFinite }), observed.allSatisfy({ $0 >= 0 })
        else { return nil }
        let totalWeight = expectedWeights.reduce(0, +)
        let total = Double(observed.reduce(0, +))
        let weighted = expectedWeights.filter { $0 > 0 }.count
        guard totalWeight > 0, total > 0, weighted >= 2 else { return nil }
        let degreesOfFreedom = weighted - 1
        var statistic = 0.0
        for (count, weight) in zip(observed, expectedWeights) {
            if weight == 0 {
                if count > 0 {
                    return SampleRatioMismatch(
                        statistic: .greatestFiniteMagnitude,
                        degreesOfFreedom: degreesOfFreedom,
                        pValue: 0,
                        threshold: threshold,
                        mismatch: true
                    )
                }
                continue
            }
            let expected = total * weight / totalWeight
            let gap = Double(count) - expected
            statistic += gap * gap / expected
        }
        let pValue = ChiSquare(degreesOfFreedom: Double(degreesOfFreedom))!.survival(statistic)
        return SampleRatioMismatch(
            statistic: statistic,
            degreesOfFreedom: degreesOfFreedom,
            pValue: pValue,
            threshold: threshold,
            mismatch: pValue < threshold
        )
    }
}

/// How many units each variant needs to detect a given effect with a two-sided test.
///
/// With more than two variants every treatment is compared with the control, so alpha is split over the
/// variants − 1 comparisons (Bonferroni: α' = α/(variants − 1)), which keeps the family-wise error rate at α.
public enum SampleSize {
    public struct Estimate: Sendable, Equatable {
        /// Units per variant (rounded up).
        public var perVariant: Int
        /// perVariant × variants.
        public var total: Int
        /// The per-comparison alpha after the Bonferroni correction.
        public var adjustedAlpha: Double
    }

    /// Two proportions, p₁ = baseline and p₂ = baseline + effect (absolute):
    /// n = [z_{1−α'/2}·√(2p̄(1 − p̄)) + z_{power}·√(p₁(1 − p₁) + p₂(1 − p₂))]² / (p₂ − p₁)², p̄ = (p₁ + p₂)/2
    /// (Fleiss' formula without continuity correction). nil unless 0 < p₁, p₂ < 1, the effect is non-zero,
    /// 0 < alpha < 1, 0 < power < 1 and variants ≥ 2.
    public static func forProportions(
        baselineRate: Double,
        minimumDetectableEffect: Double,
        alpha: Double = 0.05,
        power: Double = 0.8,
        variants: Int = 2
    ) -> Estimate? {
        let p1 = baselineRate
        let p2 = baselineRate + minimumDetectableEffect
        guard p1 > 0, p1 < 1, p2 > 0, p2 < 1, minimumDetectableEffect != 0,
            let (zAlpha, zPower, adjusted) = criticalValues(alpha: alpha, power: power, variants: variants)
        else { return nil }
        let average = (p1 + p2) / 2
        let root =
            zAlpha * (2 * average * (1 - average)).squareRoot() + zPower * (p1 * (1 - p1) + p2 * (1 - p2)).squareRoot()
        let n = root * root / (minimumDetectableEffect * minimumDetectableEffect)
        return estimate(n, variants: variants, adjustedAlpha: adjusted)
    }

    /// Two means with a common standard deviation σ and a difference δ (absolute):
    /// n = 2σ²(z_{1−α'/2} + z_{power})² / δ² (the normal approximation; a t-based calculation adds about one unit
    /// for the sizes this daemon sees). nil unless σ > 0, δ ≠ 0, 0 < alpha < 1, 0 < power < 1 and variants ≥ 2.
    public static func forMeans(
        standardDeviation: Double,
        minimumDetectableEffect: Double,
        alpha: Double = 0.05,
        power: Double = 0.8,
        variants: Int = 2
    ) -> Estimate? {
        guard standardDeviation > 0, standardDeviation.isFinite, minimumDetectableEffect != 0,
            minimumDetectableEffect.isFinite,
            let (zAlpha, zPower, adjusted) = criticalValues(alpha: alpha, power: power, variants: variants)
        else { return nil }
        let sum = zAlpha + zPower
        let n =
            2 * standardDeviation * standardDeviation * sum * sum
            / (minimumDetectableEffect * minimumDetectableEffect)
        return estimate(n, variants: variants, adjustedAlpha: adjusted)
    }

    private static func criticalValues(alpha: Double, power: Double, variants: Int) -> (Double, Double, Double)? {
        guard alpha > 0, alpha < 1, power > 0, power < 1, variants >= 2 else { return nil }
        let adjusted = variants > 2 ? alpha / Double(variants - 1) : alpha
        guard let zAlpha = Normal.inverseSurvival(adjusted / 2), let zPower = Normal.quantile(power) else { return nil }
        return (zAlpha, zPower, adjusted)
    }

    private static func estimate(_ n: Double, variants: Int, adjustedAlpha: Double) -> Estimate? {
        guard n.isFinite, n < Double(Int.max / 4) / Double(variants) else { return nil }
        let perVariant = Int(n.rounded(.up))
        return Estimate(perVariant: perVariant, total: perVariant * variants, adjustedAlpha: adjustedAlpha)
    }
}
