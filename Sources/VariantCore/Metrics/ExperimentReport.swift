/// What the `stats` op answers for one experiment: per-variant summaries, each treatment against the control,
/// the sample-ratio check, the sample size reached, and a recommendation (PROTOCOL.md, `stats`).
///
/// Pure: built from the ledger's aggregates, the experiment and its disabled treatments.
public struct ExperimentReport: Sendable {
    /// The verdicts a recommendation can give.
    public enum Verdict: String, Sendable, CaseIterable {
        case noData = "no_data"
        case guardrailBreached = "guardrail_breached"
        case sampleRatioMismatch = "sample_ratio_mismatch"
        case needsMoreSamples = "needs_more_samples"
        case winner
        case noDifference = "no_difference"
    }

    /// One treatment against the control on one metric.
    public struct MetricComparison: Sendable {
        public var metric: String
        /// `two_proportion_z` for rates, `welch_t` for means.
        public var test: String
        public var comparison: TreatmentComparison
        /// treatment / control − 1; nil when the control's value is 0.
        public var relativeDifference: Double?
        /// Means only: the difference over the pooled per-record standard deviation.
        public var cohensD: Double?
        /// Whether the treatment is better on this metric (higher success; lower errors, latency, cost, tokens).
        public var higherIsBetter: Bool

        /// `better`, `worse` or `no_difference`: whether the anytime-valid interval excludes 0, and on which side.
        public var verdict: String {
            guard let interval = comparison.interval, interval.lower > 0 || interval.upper < 0 else {
                return "no_difference"
            }
            return (interval.lower > 0) == higherIsBetter ? "better" : "worse"
        }
    }

    public var experiment: Experiment
    /// The phase reported, and the experiment's current phase number.
    public var phase: ExperimentPhase
    public var currentPhase: Int
    public var aggregates: [VariantAggregate]
    public var disabled: [DisabledTreatment?]
    /// By treatment index (the control's entry is empty).
    public var comparisons: [[MetricComparison]]
    /// Across all variants when there are more than two: errors and success.
    public var errorRateIndependence: ChiSquareTestResult?
    public var successIndependence: ChiSquareTestResult?
    /// The sample-ratio check on distinct units (sampled, see `DistinctUnitSample`).
    public var sampleRatio: SampleRatioMismatch?
    /// Distinct units per variant (exact while `unitsAreExact`, else estimated) and the sampled counts the check
    /// ran on.
    public var units: [Double]
    public var sampledUnits: [Int]
    public var unitsAreExact: Bool
    /// The primary metric (`success` if recorded, else `error_rate`) and the sample each variant needs on it.
    public var primaryMetric: String?
    public var minimumDetectableEffect: Double?
    /// Records per variant, including the design effect of the analysis by unit.
    public var requiredPerVariant: Int?
    /// The design effect the required sample was multiplied by (1 per record).
    public var designEffect: Double = 1
    public var smallestVariantSample: Int
    public var verdict: Verdict
    public var recommendedVariant: String?
    public var reason: String
    /// The guardrails of the prompt versions the variants serve, with how often each fired.
    public var promptRules: [PromptRuleCount] = []

    /// One guardrail of a prompt version in the `stats` answer.
    public struct PromptRuleCount: Sendable, Equatable {
        public var prompt: String
        public var version: Int
        public var rule: String
        public var action: PromptRule.Action
        public var triggered: Int
    }

    /// The confidence of every interval, and 1 − the significance level of the recommendation.
    public static let confidence = 0.95

    /// - Parameters:
    ///   - phase: the phase reported; `currentPhase` the experiment's current phase number.
    ///   - disabled: the disabled treatments (pass none for an earlier phase: its recommendation is history).
    ///   - minimumDetectableEffect: absolute effect the sample size is computed for; by default a tenth of the
    ///     control's value on the primary metric.
    public init(
        experiment: Experiment, phase: ExperimentPhase, currentPhase: Int,
        disabled: [ExperimentLedger.VariantKey: DisabledTreatment], minimumDetectableEffect requestedEffect: Double? = nil
    ) {
        self.experiment = experiment
        self.phase = phase
        self.currentPhase = currentPhase
        let names = experiment.variants.map(\.name)
        let aggregates = names.map { phase.variants[$0] ?? VariantAggregate() }
        self.aggregates = aggregates
        self.disabled = experiment.variants.map { disabled[.init(experiment: experiment.name, variant: $0.name)] }
        let control = aggregates[experiment.controlIndex]
        let policy = experiment.guardrails.policy
        comparisons = aggregates.indices.map { index in
            index == experiment.controlIndex ? [] : Self.compare(aggregates[index], against: control, policy: policy)
        }
        if aggregates.count > 2 {
            errorRateIndependence = ProportionIndependenceTest.test(aggregates.map(\.errors))
            successIndependence = ProportionIndependenceTest.test(aggregates.map(\.success))
        }
        units = phase.distinctUnits(of: names)
        sampledUnits = phase.sampledUnits(of: names)
        unitsAreExact = phase.units.isExact
        sampleRatio = SampleRatioMismatch.test(
            observed: sampledUnits, expectedWeights: experiment.variants.map { Double($0.weightBasisPoints) })

        // The primary metric and the sample it needs.
        let primary: (name: String, counts: (VariantAggregate) -> ProportionCounts, estimate: (VariantAggregate) -> ArmEstimate)? =
            aggregates.contains { $0.success.trials > 0 } ? ("success", \.success, { $0.successEstimate() })
            : aggregates.contains { $0.errors.trials > 0 } ? ("error_rate", \.errors, { $0.errorEstimate() }) : nil
        primaryMetric = primary?.name
        smallestVariantSample = primary.map { primary in aggregates.map { primary.counts($0).trials }.min() ?? 0 } ?? 0
        if let primary, case let baseline = primary.counts(control), baseline.trials > 0 {
            let effect = requestedEffect ?? max(baseline.rate * 0.1, 0.005)
            minimumDetectableEffect = effect
            // Correlated records of one unit carry less information than independent ones: the design effect
            // (variance by unit over variance by record) says how many records count as one.
            let designEffect = aggregates.map { primary.estimate($0).designEffect }.max() ?? 1
            self.designEffect = designEffect
            requiredPerVariant = SampleSize.forProportions(
                baselineRate: min(max(baseline.rate, 0.001), 0.999), minimumDetectableEffect: effect,
                alpha: 1 - Self.confidence, power: 0.8, variants: aggregates.count
            ).map { Int((Double($0.perVariant) * designEffect).rounded(.up)) }
        }

        // The recommendation, most urgent first.
        if let index = self.disabled.firstIndex(where: { $0 != nil }), let treatment = self.disabled[index] {
            verdict = .guardrailBreached
            recommendedVariant = experiment.control.name
            let by = treatment.configuredBy.map { who in
                who.isEmpty ? "by the configuration document" : "by the configuration document, \(who)"
            }
                ?? (treatment.automatic ? "by a guardrail" : "by an operator")
            reason = "'\(names[index])' is disabled (\(by)): \(treatment.reason)"
        } else if primary == nil {
            verdict = .noData
            reason = "no records yet"
        } else if let sampleRatio, sampleRatio.mismatch {
            verdict = .sampleRatioMismatch
            reason = "distinct units \(sampledUnits) (\(unitsAreExact ? "all" : "a uniform sample") of the phase's units) do not match the weights (p = \(Readable.fourSignificantDigits(sampleRatio.pValue))); fix the split before trusting any result"
        } else if let primary, case let empty = names.indices.filter({ primary.counts(aggregates[$0]).trials == 0 }),
            !empty.isEmpty
        {
            // No verdict without data: with a variant unmeasured, "no difference" would be a guess.
            verdict = .needsMoreSamples
            let listed = empty.map { "'\(names[$0])'" }.joined(separator: ", ")
            reason = "\(listed) \(empty.count == 1 ? "has" : "have") no \(primary.name) records yet; every variant needs some before any verdict"
        } else if let required = requiredPerVariant, smallestVariantSample < required {
            verdict = .needsMoreSamples
            reason = "\(required - smallestVariantSample) more samples in the smallest variant (\(smallestVariantSample) of \(required) per variant) to detect \(Readable.fourSignificantDigits(minimumDetectableEffect ?? 0)) on \(primaryMetric ?? "")"
        } else {
            // Bonferroni across the treatments, as the sample size assumed, on the anytime-valid interval.
            let alpha = (1 - Self.confidence) / Double(max(aggregates.count - 1, 1))
            let (comparisons, primaryMetric) = (self.comparisons, self.primaryMetric)
            let winners = comparisons.indices.compactMap { index -> (Int, Double)? in
                guard let comparison = comparisons[index].first(where: { $0.metric == primaryMetric })?.comparison,
                    let interval = comparison.anytimeInterval(alpha: alpha)
                else { return nil }
                let better = primaryMetric == "success" ? interval.lower > 0 : interval.upper < 0
                let improvement = primaryMetric == "success" ? comparison.difference : -comparison.difference
                return better ? (index, improvement) : nil
            }
            if let best = winners.max(by: { $0.1 < $1.1 }) {
                verdict = .winner
                recommendedVariant = names[best.0]
                reason = "'\(names[best.0])' beats the control on \(primaryMetric ?? ""): its anytime-valid \(Readable.fourSignificantDigits(100 * (1 - alpha))) % interval excludes no change"
            } else {
                verdict = .noDifference
                recommendedVariant = experiment.control.name
                reason = "no treatment differs from the control on \(primaryMetric ?? "") with the sample reached (anytime-valid \(Readable.fourSignificantDigits(100 * (1 - alpha))) % intervals)"
            }
        }
    }

    /// A report of aggregates alone, as one phase (for tools and tests without a ledger).
    public init(
        experiment: Experiment, aggregates: [String: VariantAggregate],
        disabled: [ExperimentLedger.VariantKey: DisabledTreatment] = [:], minimumDetectableEffect: Double? = nil
    ) {
        var phase = ExperimentPhase(
            number: 1, definition: PhaseDefinition(experiment), startedAt: Timestamp(secondsSinceEpoch: 0),
            reason: "given", unitVariants: experiment.variants.map(\.name))
        phase.variants = aggregates
        self.init(
            experiment: experiment, phase: phase, currentPhase: 1, disabled: disabled,
            minimumDetectableEffect: minimumDetectableEffect)
    }

    /// The mixture scale τ of a metric's anytime-valid interval: the guardrail's (its tolerance, in the units of
    /// the difference) for guarded metrics, else a tenth of the control's value (the default minimum detectable
    /// effect), else 0.2 × the pooled per-record standard deviation (Cohen's "small" effect).
    static func mixingScale(tolerance: Double?, controlValue: Double, pooledStandardDeviation: Double) -> Double {
        if let tolerance, tolerance > 0 { return tolerance }
        if controlValue != 0 { return abs(controlValue) * 0.1 }
        return 0.2 * pooledStandardDeviation
    }

    static func compare(_ treatment: VariantAggregate, against control: VariantAggregate, policy: GuardrailPolicy)
        -> [MetricComparison]
    {
        var result: [MetricComparison] = []
        for (name, counts, estimate, higherIsBetter) in [
            ("error_rate", \VariantAggregate.errors, { (aggregate: VariantAggregate, pooled: Double?) in aggregate.errorEstimate(pooledRate: pooled) }, false),
            ("success", \VariantAggregate.success, { (aggregate: VariantAggregate, pooled: Double?) in aggregate.successEstimate(pooledRate: pooled) }, true),
        ] {
            let c = control[keyPath: counts]
            let t = treatment[keyPath: counts]
            guard c.trials > 0, t.trials > 0 else { continue }
            let pooled = (c.successes + t.successes) / Double(c.trials + t.trials)
            let τ = mixingScale(
                tolerance: name == "error_rate" ? policy.maximumErrorRateIncrease : nil, controlValue: c.rate,
                pooledStandardDeviation: (pooled * (1 - pooled)).squareRoot())
            guard
                let comparison = TreatmentComparison.rates(
                    control: estimate(control, nil), treatment: estimate(treatment, nil),
                    pooledControl: estimate(control, pooled), pooledTreatment: estimate(treatment, pooled),
                    mixingScale: τ, confidence: confidence)
            else { continue }
            result.append(
                MetricComparison(
                    metric: name, test: "two_proportion_z", comparison: comparison,
                    relativeDifference: c.rate > 0 ? t.rate / c.rate - 1 : nil, cohensD: nil,
                    higherIsBetter: higherIsBetter))
        }
        var means: [(String, RunningMoments, RunningMoments, ArmEstimate, ArmEstimate, Double?, Bool)] = [
            ("latency_ms", control.latencyMilliseconds, treatment.latencyMilliseconds, control.latencyEstimate,
                treatment.latencyEstimate, policy.maximumLatencyIncrease * control.latencyMilliseconds.mean, false),
            ("cost_usd", control.costUSD, treatment.costUSD, control.costEstimate, treatment.costEstimate, nil, false),
            ("tokens", control.tokens, treatment.tokens, control.tokenEstimate, treatment.tokenEstimate, nil, false),
        ]
        for name in treatment.custom.keys.sorted() {
            guard let t = treatment.custom[name], let c = control.custom[name],
                let tEstimate = treatment.customEstimate(name), let cEstimate = control.customEstimate(name)
            else { continue }
            let guardrail = policy.customMetrics.first { $0.name == name }
            means.append(
                (name, c, t, cEstimate, tEstimate, guardrail?.tolerance, guardrail?.direction != .lowerIsBetter))
        }
        for (name, c, t, cEstimate, tEstimate, tolerance, higherIsBetter) in means {
            let degrees = Double(c.count + t.count - 2)
            let pooledSD = degrees > 0 ? ((c.m2 + t.m2) / degrees).squareRoot() : 0
            let τ = mixingScale(tolerance: tolerance, controlValue: c.mean, pooledStandardDeviation: pooledSD)
            guard
                let comparison = TreatmentComparison.means(
                    control: cEstimate, treatment: tEstimate, mixingScale: τ, confidence: confidence)
            else { continue }
            result.append(
                MetricComparison(
                    metric: name, test: "welch_t", comparison: comparison,
                    relativeDifference: c.mean != 0 ? t.mean / c.mean - 1 : nil,
                    cohensD: pooledSD > 0 ? (t.mean - c.mean) / pooledSD : nil, higherIsBetter: higherIsBetter))
        }
        return result
    }
}
