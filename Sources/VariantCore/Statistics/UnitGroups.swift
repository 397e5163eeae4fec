/// The hash that places a unit in its group and in the distinct-unit sample (protocol/STATISTICS.md, "Analysis
/// by unit").
///
/// FNV-1a over the unit's UTF-8 bytes, then SplitMix64's finalizer so that every output bit depends on every input
/// bit. It is not the assignment hash (SHA-256 of the experiment's salt): it must not depend on the experiment, so
/// a unit falls in the same group on every host and in every experiment, and it must be independent of the bucket
/// that chose the unit's variant, so that each variant's units spread evenly over the groups.
public enum UnitHash {
    /// The 64-bit hash of a unit id.
    @inline(__always)
    public static func of(_ unit: String) -> UInt64 {
        var unit = unit
        return unit.withUTF8 { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash ^= UInt64(byte)
                hash &*= 0x0000_0100_0000_01b3
            }
            return finalize(hash)
        }
    }

    /// SplitMix64's output function (Steele, Lea & Flood 2014): a bijection that mixes every bit.
    @inline(__always)
    static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The group (0 ..< `UnitGroupTotals.groupCount`) of a unit with this hash.
    @inline(__always)
    public static func group(of hash: UInt64) -> Int {
        Int(hash % UInt64(UnitGroupTotals.groupCount))
    }
}

/// Per-group totals of one metric of one variant, for a variance that stays valid when the records of one unit are
/// correlated (protocol/STATISTICS.md, "Analysis by unit").
///
/// Every unit is hashed into one of `groupCount` groups (`UnitHash`), so all records of a unit land in the same
/// group, on every host. Units are randomized, so the groups are independent and identically distributed clusters
/// of whole units, and the spread of the group totals around the mean gives the variance of the mean by the
/// cluster-robust delta method (a ratio estimator ΣS/ΣN over groups), whatever the correlation inside a unit.
///
/// Two numbers per group (records and sum), added record by record: the totals of two daemons add up to exactly
/// the totals of one daemon that saw every record. A record without a unit is its own cluster: it goes to the
/// group after the previous one (`roundRobinGroup`).
public struct UnitGroupTotals: Sendable, Equatable {
    /// B, the number of groups. 64: the variance estimate has up to 63 degrees of freedom (its relative error is
    /// about √(2/63) ≈ 18 %), two numbers per group keep a variant's metric at 1 KiB in memory and 128 series in
    /// Prometheus, and one pass over the groups costs about as much as the rest of a record (STATISTICS.md).
    public static let groupCount = 64

    /// Records in each group (empty until the first record, so an unused metric costs nothing).
    public private(set) var counts: [Int] = []
    /// The sum of the metric's values in each group.
    public private(set) var sums: [Double] = []

    public init() {}

    /// Totals restored from their stored arrays; nil when the arrays do not have `groupCount` entries each, or a
    /// count is negative or a sum is not finite.
    public init?(counts: [Int], sums: [Double]) {
        if counts.isEmpty && sums.isEmpty { return }
        guard counts.count == Self.groupCount, sums.count == Self.groupCount, counts.allSatisfy({ $0 >= 0 }),
            sums.allSatisfy(\.isFinite)
        else { return nil }
        self.counts = counts
        self.sums = sums
    }

    /// Whether no record was added.
    public var isEmpty: Bool { counts.isEmpty }

    /// Adds one value to a group.
    @inline(__always)
    public mutating func add(_ value: Double, group: Int) {
        if counts.isEmpty {
            counts = Array(repeating: 0, count: Self.groupCount)
            sums = Array(repeating: 0, count: Self.groupCount)
        }
        counts[group] += 1
        sums[group] += value
    }

    /// Folds another variant's totals into these (group by group).
    public mutating func merge(_ other: UnitGroupTotals) {
        guard !other.isEmpty else { return }
        guard !isEmpty else {
            self = other
            return
        }
        for group in 0..<Self.groupCount {
            counts[group] += other.counts[group]
            sums[group] += other.sums[group]
        }
    }

    /// The groups holding at least one record: the number of independent clusters behind the estimate.
    public var occupiedGroups: Int { counts.count { $0 > 0 } }

    /// The variance of the mean ΣS/ΣN by the delta method over groups, with residuals about `center`:
    /// V = G/(G − 1) · Σ_g (S_g − c·N_g)² / (ΣN)², G the occupied groups (the CR1 small-sample factor).
    /// With `center` the mean itself this is the cluster-robust variance of the mean; with a pooled rate it is the
    /// null variance the error-rate test uses. nil with fewer than two occupied groups.
    public func varianceOfMean(about center: Double) -> Double? {
        guard !isEmpty else { return nil }
        var total = 0
        var squares = 0.0
        var occupied = 0
        for group in 0..<Self.groupCount where counts[group] > 0 {
            occupied += 1
            total += counts[group]
            let residual = sums[group] - center * Double(counts[group])
            squares += residual * residual
        }
        guard occupied > 1, total > 0 else { return nil }
        let n = Double(total)
        let g = Double(occupied)
        return g / (g - 1) * squares / (n * n)
    }
}

/// One arm's estimate of a metric's mean (or rate) with the variance the tests use (STATISTICS.md, "Analysis by
/// unit"): by unit when the arm's records named units, never below the variance by record.
public struct ArmEstimate: Sendable, Equatable {
    /// Observations of the metric.
    public var count: Int
    /// The mean (or rate) per record.
    public var mean: Double
    /// The variance of `mean` treating records as independent (s²/n, or p(1 − p)/n about the centre used).
    public var varianceByRecord: Double
    /// The variance of `mean` by unit (`UnitGroupTotals.varianceOfMean`); nil when no record of the arm named a
    /// unit, or fewer than two groups are occupied.
    public var varianceByUnit: Double?
    /// The occupied groups when `varianceByUnit` is used.
    public var clusters: Int?

    public init(count: Int, mean: Double, varianceByRecord: Double, varianceByUnit: Double?, clusters: Int?) {
        self.count = count
        self.mean = mean
        self.varianceByRecord = varianceByRecord
        self.varianceByUnit = varianceByUnit
        self.clusters = clusters
    }

    /// The variance the tests use: by unit when known, but never below the variance by record, so a noisy group
    /// estimate never makes an arm look more precise than independent records would.
    public var variance: Double { max(varianceByRecord, varianceByUnit ?? 0) }

    /// Whether the variance by unit is in use (it is larger than the variance by record).
    public var isByUnit: Bool { (varianceByUnit ?? 0) > varianceByRecord }

    /// Degrees of freedom of `variance`: occupied groups − 1 by unit, else n − 1.
    public var degreesOfFreedom: Double { Double(max((isByUnit ? clusters ?? count : count) - 1, 1)) }

    /// The design effect, variance by unit over variance by record (1 when records are analysed per record).
    public var designEffect: Double {
        guard let byUnit = varianceByUnit, varianceByRecord > 0 else { return 1 }
        return max(1, byUnit / varianceByRecord)
    }

    /// A rate's estimate; the variance's centre is the arm's own rate unless `center` (a pooled rate) is given.
    public static func proportion(
        _ counts: ProportionCounts, groups: UnitGroupTotals, byUnit: Bool, center: Double? = nil
    ) -> ArmEstimate {
        let rate = counts.rate
        let c = center ?? rate
        // The binomial variance at the centre: p(1 − p)/n about the arm's rate, p̄(1 − p̄)/n about a pooled rate.
        let byRecord = c * (1 - c) / Double(max(counts.trials, 1))
        return ArmEstimate(
            count: counts.trials, mean: rate, varianceByRecord: byRecord,
            varianceByUnit: byUnit ? groups.varianceOfMean(about: c) : nil,
            clusters: byUnit ? groups.occupiedGroups : nil)
    }

    /// A mean's estimate (variance about the arm's own mean).
    public static func mean(_ moments: RunningMoments, groups: UnitGroupTotals, byUnit: Bool) -> ArmEstimate {
        ArmEstimate(
            count: moments.count, mean: moments.mean,
            varianceByRecord: moments.count > 1 ? moments.variance / Double(moments.count) : 0,
            varianceByUnit: byUnit ? groups.varianceOfMean(about: moments.mean) : nil,
            clusters: byUnit ? groups.occupiedGroups : nil)
    }
}
