/// The count, mean, spread and range of a stream of numbers, kept in constant space and mergeable across shards.
///
/// The mean and the sum of squared deviations (`m2`) follow Welford's update, which stays accurate when the values
/// sit far from zero (latencies around 10⁹ ns with sub-unit noise lose no precision, where Σx² − n·x̄² would cancel).
/// Two summaries combine exactly with Chan, Golub and LeVeque's parallel formula, so a persisted summary can be
/// merged with a fresh one. Non-finite values are refused: they would poison every later statistic.
public struct RunningMoments: Sendable, Equatable, Codable {
    /// How many values were added.
    public private(set) var count: Int
    /// The arithmetic mean of the values; 0 when there are none.
    public private(set) var mean: Double
    /// The sum of squared deviations from the mean, Σ(x − x̄)²; 0 with fewer than two values.
    public private(set) var m2: Double
    /// The smallest value; 0 when there are none.
    public private(set) var min: Double
    /// The largest value; 0 when there are none.
    public private(set) var max: Double

    /// An empty summary.
    public init() {
        self.init(count: 0, mean: 0, m2: 0, min: 0, max: 0)
    }

    /// Restores a summary from its stored fields (as persisted by the daemon).
    ///
    /// Fields that cannot belong to any stream (a negative count or `m2`, non-finite numbers) are clamped to the
    /// empty summary's values, so a damaged file degrades the statistics instead of producing NaN.
    public init(count: Int, mean: Double, m2: Double, min: Double, max: Double) {
        guard count > 0, mean.isFinite, m2.isFinite, min.isFinite, max.isFinite else {
            self.count = 0
            self.mean = 0
            self.m2 = 0
            self.min = 0
            self.max = 0
            return
        }
        self.count = count
        self.mean = mean
        self.m2 = Swift.max(0, m2)
        self.min = min
        self.max = max
    }

    /// A summary of the given values (non-finite ones skipped).
    public init<Values: Sequence>(_ values: Values) where Values.Element == Double {
        self.init()
        for value in values { add(value) }
    }

    /// Whether no value has been added.
    public var isEmpty: Bool { count == 0 }

    /// The sum of the values, n·x̄.
    public var sum: Double { mean * Double(count) }

    /// The unbiased sample variance, m2 / (n − 1); 0 with fewer than two values.
    public var variance: Double {
        count > 1 ? m2 / Double(count - 1) : 0
    }

    /// The sample standard deviation; 0 with fewer than two values.
    public var standardDeviation: Double { variance.squareRoot() }

    /// The standard error of the mean, s / √n; 0 with fewer than two values.
    public var standardErrorOfMean: Double {
        count > 1 ? (variance / Double(count)).squareRoot() : 0
    }

    /// Adds one value (Welford's update). Returns false, leaving the summary unchanged, for NaN or an infinity, or
    /// for a value so far from the others that the mean or `m2` would overflow: a summary stays finite whatever it
    /// is offered, so it can always be reported and saved.
    @discardableResult
    public mutating func add(_ x: Double) -> Bool {
        guard let updated = adding(x) else { return false }
        self = updated
        return true
    }

    /// Whether `add(x)` would take the value; lets a caller add a record to several summaries all or not at all.
    public func accepts(_ x: Double) -> Bool { adding(x) != nil }

    private func adding(_ x: Double) -> RunningMoments? {
        guard x.isFinite else { return nil }
        guard count > 0 else { return RunningMoments(count: 1, mean: x, m2: 0, min: x, max: x) }
        let newCount = count + 1
        let delta = x - mean
        let newMean = mean + delta / Double(newCount)
        let newM2 = m2 + delta * (x - newMean)
        guard delta.isFinite, newMean.isFinite, newM2.isFinite else { return nil }
        return RunningMoments(
            count: newCount, mean: newMean, m2: newM2, min: Swift.min(min, x), max: Swift.max(max, x))
    }

    /// Folds another summary into this one, as if its values had been added here (Chan et al.'s combination).
    /// Returns false, leaving this summary unchanged, when the combined mean or `m2` would overflow.
    @discardableResult
    public mutating func merge(_ other: RunningMoments) -> Bool {
        guard other.count > 0 else { return true }
        guard count > 0 else {
            self = other
            return true
        }
        let ownCount = Double(count)
        let otherCount = Double(other.count)
        let total = ownCount + otherCount
        let delta = other.mean - mean
        let newMean = mean + delta * (otherCount / total)
        let newM2 = m2 + other.m2 + delta * delta * (ownCount * otherCount / total)
        guard newMean.isFinite, newM2.isFinite else { return false }
        mean = newMean
        m2 = newM2
        count += other.count
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        return true
    }

    /// This summary merged with another.
    public func merging(_ other: RunningMoments) -> RunningMoments {
        var merged = self
        merged.merge(other)
        return merged
    }
}

/// Trials and successes of a binary (or fractional, 0...1) outcome, such as errors or conversions.
///
/// A success may be a fraction (a partial conversion scored 0.4), so `successes` is a sum of values in 0...1.
public struct ProportionCounts: Sendable, Equatable, Codable {
    /// How many outcomes were recorded.
    public var trials: Int
    /// The sum of the outcomes, each in 0...1.
    public var successes: Double

    /// Counts restored or built from totals. Negative or non-finite inputs are clamped into a possible state
    /// (0 ≤ successes ≤ trials).
    public init(trials: Int = 0, successes: Double = 0) {
        let trials = Swift.max(0, trials)
        self.trials = trials
        self.successes = successes.isFinite ? Swift.min(Swift.max(0, successes), Double(trials)) : 0
    }

    /// The success rate, successes / trials; 0 when there are no trials.
    public var rate: Double {
        trials > 0 ? successes / Double(trials) : 0
    }

    /// The sum of the complements, trials − successes.
    public var failures: Double { Double(trials) - successes }

    /// Records one outcome: true counts 1, false 0.
    public mutating func add(_ success: Bool) {
        trials += 1
        successes += success ? 1 : 0
    }

    /// Records one fractional outcome. Returns false, leaving the counts unchanged, outside 0...1 or for NaN.
    @discardableResult
    public mutating func add(fraction: Double) -> Bool {
        guard fraction >= 0, fraction <= 1 else { return false }
        trials += 1
        successes += fraction
        return true
    }

    /// Folds other counts into these.
    public mutating func merge(_ other: ProportionCounts) {
        trials += other.trials
        successes += other.successes
    }
}
