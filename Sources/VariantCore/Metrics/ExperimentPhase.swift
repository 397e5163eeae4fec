/// One phase of an experiment: everything recorded while its configuration stayed the same (PROTOCOL.md,
/// "Phases"). Statistics, the sample-ratio check and the guardrails judge one phase at a time.
public struct ExperimentPhase: Sendable {
    /// 1 for the first phase, then one more for each new phase.
    public var number: Int
    /// The configuration the phase is about; nil only for a phase restored from a state file written before phases
    /// existed, which the first configuration seen then adopts.
    public var definition: PhaseDefinition?
    public var startedAt: Timestamp
    /// Why it started ("first records", "configuration changed: weight, prompt", "new_phase by uid 0: ...").
    public var reason: String
    /// The aggregates of the phase's variants, by variant name.
    public var variants: [String: VariantAggregate] = [:]
    /// The guardrails' sequential tests of each treatment, by variant name.
    var sequential: [String: GuardrailCheck.States] = [:]
    /// The distinct units enrolled in the phase, with their variants (indexes into `unitVariants`).
    public var units = DistinctUnitSample()
    /// The variant names the indexes of `units` refer to.
    public var unitVariants: [String]

    public init(number: Int, definition: PhaseDefinition?, startedAt: Timestamp, reason: String, unitVariants: [String]) {
        self.number = number
        self.definition = definition
        self.startedAt = startedAt
        self.reason = reason
        self.unitVariants = unitVariants
    }

    /// The distinct units of each named variant (exact below the sample's capacity, else estimated).
    public func distinctUnits(of names: [String]) -> [Double] {
        let estimates = units.estimatedDistinctUnits(variantCount: unitVariants.count)
        return names.map { name in unitVariants.firstIndex(of: name).map { estimates[$0] } ?? 0 }
    }

    /// The sampled units of each named variant (the sample-ratio test's counts).
    public func sampledUnits(of names: [String]) -> [Int] {
        let counts = units.sampledCounts(variantCount: unitVariants.count)
        return names.map { name in unitVariants.firstIndex(of: name).map { counts[$0] } ?? 0 }
    }

    /// Folds another daemon's record of the same phase into this one: its aggregates and its unit sample.
    public mutating func merge(_ other: ExperimentPhase) {
        for (name, aggregate) in other.variants { variants[name, default: VariantAggregate()].merge(aggregate) }
        mergeUnits(other.units, variants: other.unitVariants)
    }

    /// Folds a unit sample whose variant indexes refer to `names` into this phase's.
    mutating func mergeUnits(_ sample: DistinctUnitSample, variants names: [String]) {
        if unitVariants.isEmpty { unitVariants = names }
        guard unitVariants != names else { return units.merge(sample) }
        for (hash, variant) in zip(sample.hashes, sample.variants) {
            guard Int(variant) < names.count, let index = unitVariants.firstIndex(of: names[Int(variant)]) else {
                continue
            }
            units.add(hash: hash, variant: index)
        }
    }

    /// Adds one record to its variant's aggregate, in place (a copy of the aggregate would copy its histogram
    /// and group totals for every record).
    /// - Returns: `invalid_metric` for a value outside its plausible range or one that would overflow the
    ///   variant's statistics (counted in `outOfRange`), `too_many_metrics` when the record's custom metrics would
    ///   take the variant over `VariantAggregate.maximumCustomMetrics` names; nothing is recorded then. nil when
    ///   recorded.
    mutating func add(_ entry: ExperimentLedger.Entry) -> ProtocolError? {
        var refusal = entry.ranges.violation(in: entry.measurements)
        if refusal == nil, let metric = variants[entry.variant]?.overflowingMetric(entry.measurements) {
            refusal = ProtocolError(
                .invalidMetric,
                "'\(metric)' is so far from the values recorded for variant '\(entry.variant)' of '\(entry.experiment)' that its statistics would overflow")
        }
        if let refusal {
            variants[entry.variant, default: VariantAggregate()].outOfRange += 1
            return refusal
        }
        if let aggregate = variants[entry.variant], aggregate.wouldExceedCustomMetrics(entry.measurements.custom) {
            return ProtocolError(
                .tooManyMetrics,
                "variant '\(entry.variant)' of '\(entry.experiment)' already has \(aggregate.custom.count) custom metrics; at most \(VariantAggregate.maximumCustomMetrics) are kept")
        }
        variants[entry.variant, default: VariantAggregate()].add(
            entry.measurements, shadow: entry.shadow, unitHash: entry.unitHash)
        return nil
    }

    /// Adds what a configuration's tally gathered for this phase's experiment.
    mutating func mergeTally(_ gathered: AssignmentTally.Gathered) {
        for (variant, count) in gathered.counts { variants[variant, default: VariantAggregate()].assignments += count }
        if let sample = gathered.units { mergeUnits(sample, variants: gathered.definition.variantNames) }
    }
}
