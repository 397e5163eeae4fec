/// The distinct units of one experiment with the variant each was assigned, kept as a bottom-k sample: the
/// `capacity` units with the smallest `UnitHash`, each with its variant (protocol/STATISTICS.md, "Sample ratio by
/// unit").
///
/// Why this sketch: the hash is independent of the assignment, so the sampled units are a uniform random sample
/// of the experiment's distinct units, whatever their variant; their variants are then a multinomial sample of the
/// true unit split, and the sample-ratio test on them is exact (no sketch error to correct for, unlike per-variant
/// HyperLogLog counts, whose 1–2 % error would swamp the test at scale). With fewer distinct units than
/// `capacity`, the sample holds every unit and the counts are exact; above it, a variant's distinct units are
/// estimated as its share of the sample times the KMV estimate (k − 1)/h_(k) of all distinct units.
///
/// Bounded (at most `capacity` entries) and mergeable: the union of two samples, cut to the `capacity` smallest
/// hashes, is the sample of the union of their units, so two daemons' samples merge into exactly the sample one
/// daemon would hold.
public struct DistinctUnitSample: Sendable, Equatable {
    /// k. 4096 entries (36 KiB): exact up to 4096 units; above, a distinct-unit estimate within about 1.6 % and a
    /// test that detects a 50/50 split drifting to 47.5/52.5 at p < 0.001.
    public static let defaultCapacity = 4096

    public let capacity: Int
    /// Sorted by hash, at most `capacity`.
    public private(set) var hashes: [UInt64] = []
    /// The variant index of each entry of `hashes`.
    public private(set) var variants: [UInt8] = []

    public init(capacity: Int = DistinctUnitSample.defaultCapacity) {
        self.capacity = max(2, capacity)
    }

    /// A sample restored from its entries; nil when they are not sorted and distinct, or more than `capacity`.
    public init?(capacity: Int = DistinctUnitSample.defaultCapacity, hashes: [UInt64], variants: [UInt8]) {
        self.init(capacity: capacity)
        guard hashes.count == variants.count, hashes.count <= self.capacity,
            zip(hashes, hashes.dropFirst()).allSatisfy({ $0 < $1 })
        else { return nil }
        self.hashes = hashes
        self.variants = variants
    }

    /// Whether every distinct unit seen is in the sample (so the counts are exact).
    public var isExact: Bool { hashes.count < capacity }

    /// The largest hash that can still enter the sample (`UInt64.max` while it is not full).
    public var threshold: UInt64 { hashes.count < capacity ? .max : hashes[hashes.count - 1] }

    /// Adds a unit seen with a variant; a unit already in the sample keeps its first variant. Returns whether the
    /// sample changed.
    @discardableResult
    public mutating func add(hash: UInt64, variant: Int) -> Bool {
        guard hash <= threshold || hashes.count < capacity else { return false }
        let position = insertionIndex(of: hash)
        if position < hashes.count && hashes[position] == hash { return false }
        if hashes.count == capacity {
            guard position < capacity else { return false }
            hashes.removeLast()
            variants.removeLast()
        }
        hashes.insert(hash, at: position)
        variants.insert(UInt8(clamping: variant), at: position)
        return true
    }

    /// Folds another sample of the same experiment into this one (the union, cut to the smallest hashes).
    public mutating func merge(_ other: DistinctUnitSample) {
        for (hash, variant) in zip(other.hashes, other.variants) { add(hash: hash, variant: Int(variant)) }
    }

    /// The number of sampled units in each of `variantCount` variants.
    public func sampledCounts(variantCount: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: variantCount)
        for variant in variants where Int(variant) < variantCount { counts[Int(variant)] += 1 }
        return counts
    }

    /// The distinct units of the experiment: exact below `capacity`, else the KMV estimate (k − 1)·2⁶⁴/h_(k).
    public var estimatedDistinctUnits: Double {
        guard !isExact, let largest = hashes.last, largest > 0 else { return Double(hashes.count) }
        return Double(capacity - 1) * 0x1p64 / Double(largest)
    }

    /// Each variant's distinct units: exact below `capacity`, else its share of the sample times the estimate of
    /// all distinct units.
    public func estimatedDistinctUnits(variantCount: Int) -> [Double] {
        let counts = sampledCounts(variantCount: variantCount)
        guard !isExact else { return counts.map(Double.init) }
        let total = estimatedDistinctUnits
        return counts.map { Double($0) / Double(hashes.count) * total }
    }

    private func insertionIndex(of hash: UInt64) -> Int {
        var low = 0
        var high = hashes.count
        while low < high {
            let middle = (low + high) / 2
            if hashes[middle] < hash { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
