/// The plausible range of every metric of a record (PROTOCOL.md, `record`): a value outside it is a unit mistake
/// or an attack, never a measurement, and one such value would dominate every mean and test of its variant.
///
/// The built-in metrics have fixed ranges; a custom metric has `defaultCustom` unless the experiment's
/// `metric_ranges` gives it its own. A record with a value outside its range is refused whole (`invalid_metric`)
/// and counted in its variant's `out_of_range` (`ExperimentLedger.record`).
public struct MetricRanges: Sendable, Equatable {
    /// One day in milliseconds: seconds sent as milliseconds stay below it, microseconds do not.
    public static let latencyMilliseconds: ClosedRange<Double> = 0...86_400_000
    /// A thousand dollars for one call: well above any model's price for the longest context.
    public static let costUSD: ClosedRange<Double> = 0...1_000
    /// Ten million tokens for one call: above every context window.
    public static let tokens: ClosedRange<Double> = 0...10_000_000
    /// A custom metric without a range of its own.
    public static let defaultCustom: ClosedRange<Double> = -1e12...1e12
    /// The widest range the configuration may give a custom metric: the squares of its deviations, summed over
    /// any count of records a daemon can hold, stay far from overflowing a double.
    public static let widestCustom: ClosedRange<Double> = -1e15...1e15

    /// Ranges of custom metrics, by name.
    public var custom: [String: ClosedRange<Double>]

    public init(custom: [String: ClosedRange<Double>] = [:]) {
        self.custom = custom
    }

    /// The range a custom metric's values must fall in.
    public func range(ofCustom name: String) -> ClosedRange<Double> {
        custom[name] ?? Self.defaultCustom
    }

    /// The first measurement outside its range, as the error that refuses the record; nil when all are plausible.
    public func violation(in measurements: Measurements) -> ProtocolError? {
        if let value = measurements.latencyMilliseconds, let error = Self.check(value, "latency_ms", Self.latencyMilliseconds) {
            return error
        }
        if let value = measurements.costUSD, let error = Self.check(value, "cost_usd", Self.costUSD) { return error }
        if let value = measurements.tokens, let error = Self.check(value, "tokens", Self.tokens) { return error }
        for metric in measurements.custom {
            if let error = Self.check(metric.value, "custom." + metric.name, range(ofCustom: metric.name)) { return error }
        }
        return nil
    }

    private static func check(_ value: Double, _ name: String, _ range: ClosedRange<Double>) -> ProtocolError? {
        guard !range.contains(value) else { return nil }
        return ProtocolError(
            .invalidMetric,
            "'\(name)' must be from \(Readable.number(range.lowerBound)) to \(Readable.number(range.upperBound)), found \(Readable.number(value))")
    }
}
