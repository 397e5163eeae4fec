import Histogram

/// Everything recorded for one variant of one experiment: counts, running moments and a latency histogram.
///
/// Its size does not grow with the number of records: a fixed set of moments per metric, at most
/// `maximumCustomMetrics` custom metrics, and a histogram of fixed footprint.
public struct VariantAggregate: Sendable {
    /// `assign` answers that enrolled a unit in this variant (for the sample-ratio check).
    public var assignments: Int = 0
    /// Records received (live and shadow).
    public var records: Int = 0
    /// Of them, how many came from running the variant in shadow.
    public var shadowRecords: Int = 0
    /// Records refused because a value was outside its metric's plausible range (`MetricRanges`), or would have
    /// taken a running sum beyond what a double holds; not part of `records`.
    public var outOfRange: Int = 0
    /// Calls with an `error` measurement, and how many failed.
    public var errors = ProportionCounts(trials: 0, successes: 0)
    /// Calls with a `success` measurement, and the sum of their success scores.
    public var success = ProportionCounts(trials: 0, successes: 0)
    public var latencyMilliseconds = RunningMoments()
    /// Latency in microseconds, for percentiles.
    public private(set) var latencyHistogram = VariantAggregate.makeLatencyHistogram()
    /// Latency records under each of `fixedLatencyBoundsSeconds` (not cumulative; a record above the last bound is
    /// in none), kept beside the histogram so that the metrics endpoint need not walk its 3,328 counters per
    /// scrape. Empty until the first latency.
    public private(set) var fixedLatencyBuckets: [UInt64] = []
    public var costUSD = RunningMoments()
    public var tokens = RunningMoments()
    /// By metric name.
    public var custom: [String: RunningMoments] = [:]

    /// Records that named their unit (`record` by `unit`): while there are none, the variant is analysed per
    /// record; with any, by unit (STATISTICS.md, "Analysis by unit").
    public var unitRecords: Int = 0
    /// Per-group totals of each metric, for the variance by unit (`UnitGroupTotals`).
    public var errorGroups = UnitGroupTotals()
    public var successGroups = UnitGroupTotals()
    public var latencyGroups = UnitGroupTotals()
    public var costGroups = UnitGroupTotals()
    public var tokenGroups = UnitGroupTotals()
    public var customGroups: [String: UnitGroupTotals] = [:]

    /// The most distinct custom metric names kept per variant; a record adding one more is refused.
    public static let maximumCustomMetrics = 32
    /// The histogram covers 1 µs to one hour with two significant digits (values above an hour count as an hour).
    static let latencyHistogramHighestMicroseconds: UInt64 = 3_600_000_000

    public init() {}

    /// The latency buckets exported to Prometheus, in seconds: the same on every host, so counts add up.
    public static let fixedLatencyBoundsSeconds: [Double] = [
        0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120,
    ]

    /// The largest latency (µs) counted under each of `fixedLatencyBoundsSeconds`: a histogram bucket is counted
    /// under the first bound at or above its highest value, so a bound inside a bucket takes the buckets below.
    static let fixedLatencyBucketLastMicroseconds: [UInt64] = {
        let histogram = makeLatencyHistogram()
        return fixedLatencyBoundsSeconds.map { bound in
            let microseconds = UInt64((bound * 1_000_000).rounded())
            return histogram.highestEquivalentForValue(microseconds) == microseconds
                ? microseconds : histogram.lowestEquivalentForValue(microseconds) - 1
        }
    }()

    static func makeLatencyHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(
            lowestDiscernibleValue: 1, highestTrackableValue: latencyHistogramHighestMicroseconds,
            numberOfSignificantValueDigits: .two)
    }

    /// Whether a record with these custom metrics would take the variant over `maximumCustomMetrics`.
    func wouldExceedCustomMetrics(_ custom: [CustomMeasurement]) -> Bool {
        let added = custom.count { self.custom[$0.name] == nil }
        return self.custom.count + added > Self.maximumCustomMetrics
    }

    /// The first metric of a record whose running moments could not take its value without overflowing; nil
    /// when the whole record fits. Checked before `add`, so a record is added to every summary or to none.
    func overflowingMetric(_ measurements: Measurements) -> String? {
        if let value = measurements.latencyMilliseconds, !latencyMilliseconds.accepts(value) { return "latency_ms" }
        if let value = measurements.costUSD, !costUSD.accepts(value) { return "cost_usd" }
        if let value = measurements.tokens, !tokens.accepts(value) { return "tokens" }
        for metric in measurements.custom where !(custom[metric.name] ?? RunningMoments()).accepts(metric.value) {
            return "custom." + metric.name
        }
        return nil
    }

    /// Adds one record. `unitHash` is `UnitHash.of(unit)` for a record that named its unit, nil for one that did
    /// not (it then goes to the next group in turn, as a cluster of its own).
    mutating func add(_ measurements: Measurements, shadow: Bool, unitHash: UInt64? = nil) {
        let group: Int
        if let unitHash {
            group = UnitHash.group(of: unitHash)
            unitRecords += 1
        } else {
            group = records % UnitGroupTotals.groupCount
        }
        records += 1
        if shadow { shadowRecords += 1 }
        if let failed = measurements.error {
            errors.trials += 1
            if failed { errors.successes += 1 }
            errorGroups.add(failed ? 1 : 0, group: group)
        }
        if let score = measurements.success {
            success.trials += 1
            success.successes += score
            successGroups.add(score, group: group)
        }
        if let latency = measurements.latencyMilliseconds {
            latencyMilliseconds.add(latency)
            latencyGroups.add(latency, group: group)
            recordLatencyMicroseconds(UInt64((latency * 1000).rounded()), count: 1)
        }
        if let cost = measurements.costUSD {
            costUSD.add(cost)
            costGroups.add(cost, group: group)
        }
        if let tokens = measurements.tokens {
            self.tokens.add(tokens)
            tokenGroups.add(tokens, group: group)
        }
        for metric in measurements.custom {
            custom[metric.name, default: RunningMoments()].add(metric.value)
            customGroups[metric.name, default: UnitGroupTotals()].add(metric.value, group: group)
        }
    }

    /// Folds another aggregate of the same variant into this one (another daemon's, or another shard's): every
    /// count, sum, group total and histogram bucket adds up, so the merged aggregate gives the figures of one
    /// aggregate that saw every record.
    public mutating func merge(_ other: VariantAggregate) {
        assignments += other.assignments
        records += other.records
        shadowRecords += other.shadowRecords
        outOfRange += other.outOfRange
        unitRecords += other.unitRecords
        errors.merge(other.errors)
        success.merge(other.success)
        latencyMilliseconds.merge(other.latencyMilliseconds)
        latencyHistogram.add(other.latencyHistogram)
        if fixedLatencyBuckets.isEmpty {
            fixedLatencyBuckets = other.fixedLatencyBuckets
        } else {
            for (index, count) in other.fixedLatencyBuckets.enumerated() { fixedLatencyBuckets[index] += count }
        }
        costUSD.merge(other.costUSD)
        tokens.merge(other.tokens)
        for (name, moments) in other.custom { custom[name, default: RunningMoments()].merge(moments) }
        errorGroups.merge(other.errorGroups)
        successGroups.merge(other.successGroups)
        latencyGroups.merge(other.latencyGroups)
        costGroups.merge(other.costGroups)
        tokenGroups.merge(other.tokenGroups)
        for (name, groups) in other.customGroups { customGroups[name, default: UnitGroupTotals()].merge(groups) }
    }

    /// Whether this variant is analysed by unit: some record named its unit.
    public var isAnalysedByUnit: Bool { unitRecords > 0 }

    /// The error rate's estimate; `pooledRate` centres the variance on the null's common rate.
    public func errorEstimate(pooledRate: Double? = nil) -> ArmEstimate {
        .proportion(errors, groups: errorGroups, byUnit: isAnalysedByUnit, center: pooledRate)
    }

    public func successEstimate(pooledRate: Double? = nil) -> ArmEstimate {
        .proportion(success, groups: successGroups, byUnit: isAnalysedByUnit, center: pooledRate)
    }

    public var latencyEstimate: ArmEstimate {
        .mean(latencyMilliseconds, groups: latencyGroups, byUnit: isAnalysedByUnit)
    }

    public var costEstimate: ArmEstimate { .mean(costUSD, groups: costGroups, byUnit: isAnalysedByUnit) }

    public var tokenEstimate: ArmEstimate { .mean(tokens, groups: tokenGroups, byUnit: isAnalysedByUnit) }

    /// A custom metric's estimate; nil when the variant has no observation of it.
    public func customEstimate(_ name: String) -> ArmEstimate? {
        guard let moments = custom[name] else { return nil }
        return .mean(moments, groups: customGroups[name] ?? UnitGroupTotals(), byUnit: isAnalysedByUnit)
    }

    mutating func recordLatencyMicroseconds(_ microseconds: UInt64, count: UInt64) {
        let clamped = min(max(microseconds, 1), Self.latencyHistogramHighestMicroseconds)
        _ = latencyHistogram.record(clamped, count: count)
        // Made at the first latency, whatever its bucket (one beyond the last bound counts in +Inf only), so that
        // empty buckets mean "no latency recorded" and nothing else.
        if fixedLatencyBuckets.isEmpty {
            fixedLatencyBuckets = [UInt64](repeating: 0, count: Self.fixedLatencyBoundsSeconds.count)
        }
        if let bucket = Self.fixedLatencyBucketLastMicroseconds.firstIndex(where: { clamped <= $0 }) {
            fixedLatencyBuckets[bucket] += count
        }
    }

    /// The latency (ms) at a percentile (0–100), or nil before any latency was recorded.
    public func latencyPercentile(_ percentile: Double) -> Double? {
        guard latencyHistogram.totalCount > 0 else { return nil }
        return Double(latencyHistogram.valueAtPercentile(percentile)) / 1000
    }
}
