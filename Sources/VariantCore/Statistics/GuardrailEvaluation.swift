/// Which way a custom metric should move.
public enum MetricDirection: String, Sendable, Equatable, Codable {
    case higherIsBetter = "higher_is_better"
    case lowerIsBetter = "lower_is_better"
}

/// A guardrail on a custom numeric metric: the treatment is disabled when the metric moves in the bad direction by
/// more than `tolerance` (absolute, in the metric's units) and the sequential test is convinced it got worse.
public struct CustomMetricGuardrail: Sendable, Equatable {
    public var name: String
    public var direction: MetricDirection
    public var tolerance: Double

    public init(name: String, direction: MetricDirection, tolerance: Double) {
        self.name = name
        self.direction = direction
        self.tolerance = tolerance
    }
}

/// When a treatment is disabled automatically.
public struct GuardrailPolicy: Sendable, Equatable {
    /// Absolute increase of the error rate tolerated (0.05 = five points).
    public var maximumErrorRateIncrease: Double = 0.05
    /// Relative increase of mean latency_ms tolerated (0.5 = +50 %).
    public var maximumLatencyIncrease: Double = 0.5
    public var customMetrics: [CustomMetricGuardrail] = []
    /// Neither arm is judged on a metric before it has this many observations of it.
    public var minimumSamplesPerVariant: Int = 100
    /// The always-valid test's level: the chance that a treatment no worse than the control is ever disabled on
    /// a metric, however long the experiment runs and however often it is evaluated.
    public var alpha: Double = 0.05

    public init(
        maximumErrorRateIncrease: Double = 0.05,
        maximumLatencyIncrease: Double = 0.5,
        customMetrics: [CustomMetricGuardrail] = [],
        minimumSamplesPerVariant: Int = 100,
        alpha: Double = 0.05
    ) {
        self.maximumErrorRateIncrease = maximumErrorRateIncrease
        self.maximumLatencyIncrease = maximumLatencyIncrease
        self.customMetrics = customMetrics
        self.minimumSamplesPerVariant = minimumSamplesPerVariant
        self.alpha = alpha
    }
}

/// The metric a guardrail decision is about.
public enum GuardrailMetric: Sendable, Hashable, Codable, CustomStringConvertible {
    case errorRate
    case latency
    case custom(String)

    public var description: String {
        switch self {
        case .errorRate: "error_rate"
        case .latency: "latency_ms"
        case .custom(let name): name
        }
    }
}

/// One guardrail evaluation of a treatment against the control on one metric, with the numbers behind it.
public struct GuardrailDecision: Sendable, Equatable {
    public enum Verdict: String, Sendable, Equatable, Codable {
        /// An arm has fewer than `minimumSamplesPerVariant` observations, or the spread is zero.
        case insufficientData = "insufficient_data"
        /// Not (yet) shown to be worse beyond the tolerance.
        case healthy
        /// Shown worse by the always-valid test and observed beyond the tolerance: disable the treatment.
        case disable
    }

    public var metric: GuardrailMetric
    public var verdict: Verdict
    public var controlCount: Int
    public var treatmentCount: Int
    /// The control's error rate or mean.
    public var controlValue: Double
    /// The treatment's error rate or mean.
    public var treatmentValue: Double
    /// treatmentValue − controlValue.
    public var difference: Double
    /// The difference oriented so that positive is worse (for latency the relative increase of the mean).
    public var observedDegradation: Double
    /// The tolerance `observedDegradation` is compared with (same units).
    public var tolerance: Double
    /// The running-minimum always-valid p-value of "treatment no worse than control".
    public var alwaysValidPValue: Double
    /// Λ at this evaluation (capped at the largest finite Double); nil with insufficient data.
    public var likelihoodRatio: Double?
    /// The always-valid lower confidence bound (level 1 − α) on the degradation in the difference's units;
    /// computed only when the treatment is disabled (nil otherwise, to keep per-record evaluation cheap).
    public var degradationLowerBound: Double?
    /// The policy's α and minimum sample size, kept so that the decision explains itself.
    public var alpha: Double
    public var minimumSamplesPerVariant: Int

    public var disables: Bool { verdict == .disable }

    /// A one-line human explanation, for logs and the recorded decision (built on demand: the daemon evaluates
    /// after every record and reads it only when something changes).
    public var reason: String {
        let observed = describe(observedDegradation)
        let limit = describe(tolerance)
        let p = Readable.fourSignificantDigits(alwaysValidPValue)
        let counts = "(n = \(controlCount) control, \(treatmentCount) treatment)"
        switch verdict {
        case .insufficientData:
            if controlCount < minimumSamplesPerVariant || treatmentCount < minimumSamplesPerVariant {
                return "\(metric): waiting for \(minimumSamplesPerVariant) observations per variant \(counts)"
            }
            return "\(metric): no spread in the observations yet, so no test is possible \(counts)"
        case .disable:
            return "\(metric) degraded by \(observed), beyond the tolerance of \(limit), with always-valid p = \(p) "
                + "≤ α = \(Readable.fourSignificantDigits(alpha)) \(counts)"
        case .healthy:
            if alwaysValidPValue <= alpha {
                return
                    "\(metric) is worse (always-valid p = \(p)) but by \(observed), within the tolerance of \(limit) \(counts)"
            }
            return "\(metric) not shown worse (always-valid p = \(p), observed change \(observed)) \(counts)"
        }
    }

    private func describe(_ value: Double) -> String {
        switch metric {
        case .errorRate: "\(Readable.fourSignificantDigits(value * 100)) points"
        case .latency: "\(Readable.fourSignificantDigits(value * 100)) % of the mean"
        case .custom: Readable.fourSignificantDigits(value)
        }
    }
}

/// The guardrail rule: a treatment is disabled on a metric when
/// (a) both arms have at least `minimumSamplesPerVariant` observations of it,
/// (b) the one-sided always-valid mSPRT rejects "the treatment is no worse than the control" at `alpha`, and
/// (c) the observed degradation exceeds the tolerance (error rate: absolute increase; latency: relative increase of
///     the mean; custom metrics: the difference in the bad direction).
///
/// The mixing scale τ of the mSPRT is matched to the tolerance, in the units of the tested difference: τ = the
/// error-rate tolerance, τ = latency tolerance × the control's mean latency, τ = a custom metric's tolerance (with
/// a tolerance of 0, τ = 0.2 × the pooled standard deviation, Cohen's "small" effect). The mixture then puts its
/// power on effects of the size that matter, so a degradation at the tolerance is detected about as early as any
/// fixed τ allows (Johari et al. §4: the best τ is of the order of the effects one cares about).
public enum GuardrailEvaluation {
    /// Evaluates the error-rate guardrail and folds the result into `state`.
    ///
    /// An arm given with its group totals is analysed by unit (its variance is the larger of the variance by
    /// record and the cluster-robust variance over groups); without, per record (STATISTICS.md, "Analysis by
    /// unit").
    public static func evaluateErrorRate(
        control: ProportionCounts,
        treatment: ProportionCounts,
        controlGroups: UnitGroupTotals? = nil,
        treatmentGroups: UnitGroupTotals? = nil,
        policy: GuardrailPolicy,
        state: inout SequentialTestState
    ) -> GuardrailDecision {
        let difference = treatment.rate - control.rate
        let decision = GuardrailDecision(
            metric: .errorRate,
            verdict: .insufficientData,
            controlCount: control.trials,
            treatmentCount: treatment.trials,
            controlValue: control.rate,
            treatmentValue: treatment.rate,
            difference: difference,
            observedDegradation: difference,
            tolerance: policy.maximumErrorRateIncrease,
            alwaysValidPValue: state.alwaysValidPValue,
            likelihoodRatio: nil,
            degradationLowerBound: nil,
            alpha: policy.alpha,
            minimumSamplesPerVariant: policy.minimumSamplesPerVariant
        )
        guard control.trials >= policy.minimumSamplesPerVariant, treatment.trials >= policy.minimumSamplesPerVariant
        else { return decision }
        // The pooled variance (the null's), which stays positive as soon as either arm has an error.
        let n1 = Double(control.trials)
        let n2 = Double(treatment.trials)
        let pooled = (control.successes + treatment.successes) / (n1 + n2)
        let variance =
            ArmEstimate.proportion(
                control, groups: controlGroups ?? UnitGroupTotals(), byUnit: controlGroups != nil, center: pooled
            ).variance
            + ArmEstimate.proportion(
                treatment, groups: treatmentGroups ?? UnitGroupTotals(), byUnit: treatmentGroups != nil,
                center: pooled
            ).variance
        let τ = policy.maximumErrorRateIncrease > 0 ? policy.maximumErrorRateIncrease : 0.2 * pooled.squareRoot()
        return conclude(
            decision,
            estimate: difference,
            variance: variance,
            mixingScale: τ,
            policy: policy,
            state: &state
        )
    }

    /// Evaluates the latency guardrail (means of latency_ms) and folds the result into `state`.
    public static func evaluateLatency(
        control: RunningMoments,
        treatment: RunningMoments,
        controlGroups: UnitGroupTotals? = nil,
        treatmentGroups: UnitGroupTotals? = nil,
        policy: GuardrailPolicy,
        state: inout SequentialTestState
    ) -> GuardrailDecision {
        let difference = treatment.mean - control.mean
        let relative = control.mean > 0 ? difference / control.mean : 0
        let decision = GuardrailDecision(
            metric: .latency,
            verdict: .insufficientData,
            controlCount: control.count,
            treatmentCount: treatment.count,
            controlValue: control.mean,
            treatmentValue: treatment.mean,
            difference: difference,
            observedDegradation: relative,
            tolerance: policy.maximumLatencyIncrease,
            alwaysValidPValue: state.alwaysValidPValue,
            likelihoodRatio: nil,
            degradationLowerBound: nil,
            alpha: policy.alpha,
            minimumSamplesPerVariant: policy.minimumSamplesPerVariant
        )
        guard control.count >= policy.minimumSamplesPerVariant, treatment.count >= policy.minimumSamplesPerVariant,
            control.mean > 0
        else { return decision }
        let variance = meanVariance(control, controlGroups) + meanVariance(treatment, treatmentGroups)
        let τ =
            policy.maximumLatencyIncrease > 0
            ? policy.maximumLatencyIncrease * control.mean : 0.2 * pooledStandardDeviation(control, treatment)
        return conclude(
            decision,
            estimate: difference,
            variance: variance,
            mixingScale: τ,
            policy: policy,
            state: &state
        )
    }

    /// Evaluates a custom metric's guardrail and folds the result into `state`.
    public static func evaluateCustom(
        _ guardrail: CustomMetricGuardrail,
        control: RunningMoments,
        treatment: RunningMoments,
        controlGroups: UnitGroupTotals? = nil,
        treatmentGroups: UnitGroupTotals? = nil,
        policy: GuardrailPolicy,
        state: inout SequentialTestState
    ) -> GuardrailDecision {
        let difference = treatment.mean - control.mean
        let degradation = guardrail.direction == .lowerIsBetter ? difference : -difference
        let decision = GuardrailDecision(
            metric: .custom(guardrail.name),
            verdict: .insufficientData,
            controlCount: control.count,
            treatmentCount: treatment.count,
            controlValue: control.mean,
            treatmentValue: treatment.mean,
            difference: difference,
            observedDegradation: degradation,
            tolerance: guardrail.tolerance,
            alwaysValidPValue: state.alwaysValidPValue,
            likelihoodRatio: nil,
            degradationLowerBound: nil,
            alpha: policy.alpha,
            minimumSamplesPerVariant: policy.minimumSamplesPerVariant
        )
        guard control.count >= policy.minimumSamplesPerVariant, treatment.count >= policy.minimumSamplesPerVariant
        else { return decision }
        let variance = meanVariance(control, controlGroups) + meanVariance(treatment, treatmentGroups)
        let τ = guardrail.tolerance > 0 ? guardrail.tolerance : 0.2 * pooledStandardDeviation(control, treatment)
        return conclude(
            decision,
            estimate: degradation,
            variance: variance,
            mixingScale: τ,
            policy: policy,
            state: &state
        )
    }

    private static func conclude(
        _ decision: GuardrailDecision,
        estimate: Double,
        variance: Double,
        mixingScale τ: Double,
        policy: GuardrailPolicy,
        state: inout SequentialTestState
    ) -> GuardrailDecision {
        var decision = decision
        guard policy.alpha > 0, policy.alpha < 1, let test = OneSidedMixtureSPRT(mixingVariance: τ * τ),
            let logRatio = test.logLikelihoodRatio(estimate: estimate, estimateVariance: variance)
        else { return decision }
        let pValue = state.record(logLikelihoodRatio: logRatio)
        decision.alwaysValidPValue = pValue
        decision.likelihoodRatio = test.likelihoodRatio(estimate: estimate, estimateVariance: variance)
        if pValue <= policy.alpha && decision.observedDegradation > decision.tolerance {
            decision.verdict = .disable
            decision.degradationLowerBound = test.lowerConfidenceBound(
                estimate: estimate,
                estimateVariance: variance,
                alpha: policy.alpha
            )
        } else {
            decision.verdict = .healthy
        }
        return decision
    }

    /// The variance of an arm's mean: s²/n per record, or by unit when the arm's group totals are given.
    private static func meanVariance(_ moments: RunningMoments, _ groups: UnitGroupTotals?) -> Double {
        ArmEstimate.mean(moments, groups: groups ?? UnitGroupTotals(), byUnit: groups != nil).variance
    }

    private static func pooledStandardDeviation(_ a: RunningMoments, _ b: RunningMoments) -> Double {
        let degrees = Double(a.count + b.count - 2)
        guard degrees > 0 else { return 0 }
        return ((a.m2 + b.m2) / degrees).squareRoot()
    }
}
