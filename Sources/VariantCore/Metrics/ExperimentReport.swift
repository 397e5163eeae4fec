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
        public var proportion: ProportionComparison?
        public var mean: MeanComparison?
        /// Whether the treatment is better on this metric (higher success; lower errors, latency, cost, tokens).
        public var higherIsBetter: Bool
    }

    public var experiment: Experiment
    public var aggregates: [VariantAggregate]
    public var disabled: [DisabledTreatment?]
    /// By treatment index (the control's entry is empty).
    public var comparisons: [[MetricComparison]]
    /// Across all variants when there are more than two: errors and success.
    public var errorRateIndependence: ChiSquareTestResult?
    public var successIndependence: ChiSquareTestResult?
    public var sampleRatio: SampleRatioMismatch?
    /// The primary metric (`success` if recorded, else `error_rate`) and the sample each variant needs on it.
    public var primaryMetric: String?
    public var minimumDetectableEffect: Double?
    public var requiredPerVariant: Int?
    public var smallestVariantSample: Int
    public var verdict: Verdict
    public var recommendedVariant: String?
    public var reason: String
    /// The guardrails of the prompt versions the variants serve, with how often each fired.
    public var promptGuardrails: [PromptGuardrailCount] = []

    /// One guardrail of a prompt version in the `stats` answer.
    public struct PromptGuardrailCount: Sendable, Equatable {
        public var prompt: String
        public var version: Int
        public var rule: String
        public var action: PromptGuardrail.Action
        public var triggered: Int
    }

    /// The confidence of every interval, and 1 − the significance level of the recommendation.
    public static let confidence = 0.95

    /// - Parameter minimumDetectableEffect: absolute effect the sample size is computed for; by default a tenth
    ///   of the control's value on the primary metric.
    public init(
        experiment: Experiment, aggregates byName: [String: VariantAggregate],
        disabled: [ExperimentLedger.VariantKey: DisabledTreatment], minimumDetectableEffect requestedEffect: Double? = nil
    ) {
        self.experiment = experiment
        let aggregates = experiment.variants.map { byName[$0.name] ?? VariantAggregate() }
        self.aggregates = aggregates
        self.disabled = experiment.variants.map { disabled[.init(experiment: experiment.name, variant: $0.name)] }
        let control = aggregates[experiment.controlIndex]
        comparisons = aggregates.indices.map { index in
            index == experiment.controlIndex ? [] : Self.compare(aggregates[index], against: control)
        }
        if aggregates.count > 2 {
            errorRateIndependence = ProportionIndependenceTest.test(aggregates.map(\.errors))
            successIndependence = ProportionIndependenceTest.test(aggregates.map(\.success))
        }
        sampleRatio = SampleRatioMismatch.test(
            observed: aggregates.map(\.assignments),
            expectedWeights: experiment.variants.map { Double($0.weightBasisPoints) })

        // The primary metric and the sample it needs.
        let primary: (name: String, counts: (VariantAggregate) -> ProportionCounts)? =
            aggregates.contains { $0.success.trials > 0 } ? ("success", \.success)
            : aggregates.contains { $0.errors.trials > 0 } ? ("error_rate", \.errors) : nil
        primaryMetric = primary?.name
        smallestVariantSample = primary.map { primary in aggregates.map { primary.counts($0).trials }.min() ?? 0 } ?? 0
        if let primary, case let baseline = primary.counts(control), baseline.trials > 0 {
            let effect = requestedEffect ?? max(baseline.rate * 0.1, 0.005)
            minimumDetectableEffect = effect
            requiredPerVariant = SampleSize.forProportions(
                baselineRate: min(max(baseline.rate, 0.001), 0.999), minimumDetectableEffect: effect,
                alpha: 1 - Self.confidence, power: 0.8, variants: aggregates.count)?.perVariant
        }

        // The recommendation, most urgent first.
        let names = experiment.variants.map(\.name)
        if let index = self.disabled.firstIndex(where: { $0 != nil }), let treatment = self.disabled[index] {
            verdict = .guardrailBreached
            recommendedVariant = experiment.control.name
            reason = "'\(names[index])' is disabled (\(treatment.automatic ? "by a guardrail" : "by an operator")): \(treatment.reason)"
        } else if primary == nil {
            verdict = .noData
            reason = "no records yet"
        } else if let sampleRatio, sampleRatio.mismatch {
            verdict = .sampleRatioMismatch
            reason = "assignment counts \(aggregates.map(\.assignments)) do not match the weights (p = \(Readable.fourSignificantDigits(sampleRatio.pValue))); fix the split before trusting any result"
        } else if let required = requiredPerVariant, smallestVariantSample < required {
            verdict = .needsMoreSamples
            reason = "\(required - smallestVariantSample) more samples in the smallest variant (\(smallestVariantSample) of \(required) per variant) to detect \(Readable.fourSignificantDigits(minimumDetectableEffect ?? 0)) on \(primaryMetric ?? "")"
        } else {
            // Bonferroni across the treatments, as the sample size assumed.
            let threshold = (1 - Self.confidence) / Double(max(aggregates.count - 1, 1))
            let (comparisons, primaryMetric) = (self.comparisons, self.primaryMetric)
            let winners = comparisons.indices.compactMap { index -> (Int, Double)? in
                guard let comparison = comparisons[index].first(where: { $0.metric == primaryMetric })?.proportion,
                    comparison.pValue < threshold
                else { return nil }
                let improvement = primaryMetric == "success" ? comparison.absoluteDifference : -comparison.absoluteDifference
                return improvement > 0 ? (index, improvement) : nil
            }
            if let best = winners.max(by: { $0.1 < $1.1 }) {
                verdict = .winner
                recommendedVariant = names[best.0]
                reason = "'\(names[best.0])' beats the control on \(primaryMetric ?? "") at p < \(Readable.fourSignificantDigits(threshold))"
            } else {
                verdict = .noDifference
                recommendedVariant = experiment.control.name
                reason = "no treatment differs significantly from the control on \(primaryMetric ?? "") with the sample reached"
            }
        }
    }

    static func compare(_ treatment: VariantAggregate, against control: VariantAggregate) -> [MetricComparison] {
        var result: [MetricComparison] = []
        if let comparison = ProportionComparison.compare(control: control.errors, treatment: treatment.errors, confidence: confidence) {
            result.append(MetricComparison(metric: "error_rate", proportion: comparison, higherIsBetter: false))
        }
        if let comparison = ProportionComparison.compare(control: control.success, treatment: treatment.success, confidence: confidence) {
            result.append(MetricComparison(metric: "success", proportion: comparison, higherIsBetter: true))
        }
        for (name, pick) in [
            ("latency_ms", \VariantAggregate.latencyMilliseconds), ("cost_usd", \.costUSD), ("tokens", \.tokens),
        ] {
            if let comparison = MeanComparison.compare(control: control[keyPath: pick], treatment: treatment[keyPath: pick], confidence: confidence) {
                result.append(MetricComparison(metric: name, mean: comparison, higherIsBetter: false))
            }
        }
        for name in treatment.custom.keys.sorted() {
            guard let t = treatment.custom[name], let c = control.custom[name],
                let comparison = MeanComparison.compare(control: c, treatment: t, confidence: confidence)
            else { continue }
            result.append(MetricComparison(metric: name, mean: comparison, higherIsBetter: true))
        }
        return result
    }
}
