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
    /// Calls with an `error` measurement, and how many failed.
    public var errors = ProportionCounts(trials: 0, successes: 0)
    /// Calls with a `success` measurement, and the sum of their success scores.
    public var success = ProportionCounts(trials: 0, successes: 0)
    public var latencyMilliseconds = RunningMoments()
    /// Latency in microseconds, for percentiles.
    public var latencyHistogram = VariantAggregate.makeLatencyHistogram()
    public var costUSD = RunningMoments()
    public var tokens = RunningMoments()
    /// By metric name.
    public var custom: [String: RunningMoments] = [:]

    /// The most distinct custom metric names kept per variant; a record adding one more is refused.
    public static let maximumCustomMetrics = 32
    /// The histogram covers 1 µs to one hour with two significant digits (values above an hour count as an hour).
    static let latencyHistogramHighestMicroseconds: UInt64 = 3_600_000_000

    public init() {}

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

    mutating func add(_ measurements: Measurements, shadow: Bool) {
        records += 1
        if shadow { shadowRecords += 1 }
        if let failed = measurements.error {
            errors.trials += 1
            if failed { errors.successes += 1 }
        }
        if let score = measurements.success {
            success.trials += 1
            success.successes += score
        }
        if let latency = measurements.latencyMilliseconds {
            latencyMilliseconds.add(latency)
            recordLatencyMicroseconds(UInt64((latency * 1000).rounded()), count: 1)
        }
        if let cost = measurements.costUSD { costUSD.add(cost) }
        if let tokens = measurements.tokens { self.tokens.add(tokens) }
        for metric in measurements.custom {
            custom[metric.name, default: RunningMoments()].add(metric.value)
        }
    }

    mutating func recordLatencyMicroseconds(_ microseconds: UInt64, count: UInt64) {
        let clamped = min(max(microseconds, 1), Self.latencyHistogramHighestMicroseconds)
        _ = latencyHistogram.record(clamped, count: count)
    }

    /// The latency (ms) at a percentile (0–100), or nil before any latency was recorded.
    public func latencyPercentile(_ percentile: Double) -> Double? {
        guard latencyHistogram.totalCount > 0 else { return nil }
        return Double(latencyHistogram.valueAtPercentile(percentile)) / 1000
    }
}
