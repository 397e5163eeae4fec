#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A simulated experiment on realistic traffic: units (users, sessions) are randomized 50/50, each sends 1 to
/// `maximumRecordsPerUnit` records spread over the experiment, and the records of one unit are correlated through a
/// per-unit error rate and a per-unit latency level (intra-unit correlation `correlation`). The guardrails are
/// evaluated after every record, as the daemon does, twice on the same records: analysed by unit (the daemon's
/// rule) and per record (the rule before the analysis by unit), so the two can be compared like with like
/// (protocol/STATISTICS.md, "Analysis by unit").
public struct ClusteredGuardrailSimulation: Sendable {
    /// One arm's traffic.
    public struct Arm: Sendable, Equatable {
        /// The mean error rate over units.
        public var errorRate: Double
        /// Added to every unit's error rate (capped at 1): a harm that hits every unit of the arm.
        public var errorRateIncrease: Double
        /// The median latency (ms); a record's latency is exp(ln(median) + σ(√ρ·Z_unit + √(1 − ρ)·Z_record)).
        public var medianLatency: Double
        public var latencySpread: Double

        public init(errorRate: Double, errorRateIncrease: Double = 0, medianLatency: Double = 200, latencySpread: Double = 0.5) {
            self.errorRate = errorRate
            self.errorRateIncrease = errorRateIncrease
            self.medianLatency = medianLatency
            self.latencySpread = latencySpread
        }
    }

    /// When each rule first disabled the treatment, as counts of records and units seen (both arms together).
    public struct Outcome: Sendable, Equatable {
        /// By unit (the daemon's rule): the record count at the first disable on any metric, and on each.
        public var disabledAt: Int?
        public var disabledOnErrorRateAt: Int?
        public var disabledOnLatencyAt: Int?
        /// Units of each arm seen when the rule by unit disabled.
        public var unitsAtDisable: Int?
        /// Per record (the rule before the analysis by unit), on the same records.
        public var perRecordDisabledAt: Int?
        public var perRecordDisabledOnErrorRateAt: Int?
        public var perRecordDisabledOnLatencyAt: Int?
        /// Records in the run, both arms.
        public var records: Int
    }

    public var control: Arm
    public var treatment: Arm
    /// Units randomized per arm on average (each unit is assigned at random, so the arms differ a little).
    public var unitsPerArm: Int
    /// Each unit sends a number of records drawn uniformly from 1 ... this.
    public var maximumRecordsPerUnit: Int
    /// The intra-unit correlation of errors (of the error indicator) and of log-latencies, in [0, 1).
    public var correlation: Double
    public var policy: GuardrailPolicy

    public init(
        control: Arm, treatment: Arm, unitsPerArm: Int, maximumRecordsPerUnit: Int, correlation: Double,
        policy: GuardrailPolicy = GuardrailPolicy()
    ) {
        self.control = control
        self.treatment = treatment
        self.unitsPerArm = unitsPerArm
        self.maximumRecordsPerUnit = maximumRecordsPerUnit
        self.correlation = correlation
        self.policy = policy
    }

    /// One simulated record: which unit sent it (its id is `unitName(unit)`), the unit's arm (0 control,
    /// 1 treatment) and the measurements.
    public struct Record: Sendable, Equatable {
        public var unit: Int
        public var arm: Int
        public var error: Bool
        public var latencyMilliseconds: Double
    }

    /// The id of simulated unit `index`, as a client would send it.
    public static func unitName(_ index: Int) -> String { "unit-\(index)" }

    /// The records of one experiment, in arrival order: units randomized 50/50, each with its own error rate and
    /// latency level, each sending 1 to `maximumRecordsPerUnit` records, interleaved at random.
    public func records(seed: UInt64) -> [Record] {
        var random = SplitMix64(seed: seed)
        let arms = [control, treatment]
        var units: [(arm: Int, errorRate: Double, latencyLevel: Double)] = []
        var order: [Int32] = []
        for index in 0..<(2 * unitsPerArm) {
            let armIndex = Int(random.next() >> 63)
            let arm = arms[armIndex]
            let baseRate = Self.betaWithMean(arm.errorRate, correlation: correlation, random: &random)
            units.append(
                (armIndex, min(1, baseRate + arm.errorRateIncrease), correlation.squareRoot() * random.nextStandardNormal()))
            let records = 1 + Int(random.next() % UInt64(maximumRecordsPerUnit))
            order.append(contentsOf: repeatElement(Int32(index), count: records))
        }
        for position in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(position, Int(random.next() % UInt64(position + 1)))
        }
        let recordSpread = (1 - correlation).squareRoot()
        return order.map { unitIndex in
            let unit = units[Int(unitIndex)]
            let arm = arms[unit.arm]
            let failed = random.nextUnit() < unit.errorRate
            let latency =
                arm.medianLatency
                * exp(arm.latencySpread * (unit.latencyLevel + recordSpread * random.nextStandardNormal()))
            return Record(unit: Int(unitIndex), arm: unit.arm, error: failed, latencyMilliseconds: latency)
        }
    }

    /// Runs one experiment with the given seed: the guardrails are evaluated after every record of the treatment,
    /// as the daemon does (a control record never triggers a check).
    public func run(seed: UInt64) -> Outcome {
        let records = records(seed: seed)
        var groupOfUnit: [Int: Int] = [:]
        var errors = [ProportionCounts(), ProportionCounts()]
        var latencies = [RunningMoments(), RunningMoments()]
        var errorGroups = [UnitGroupTotals(), UnitGroupTotals()]
        var latencyGroups = [UnitGroupTotals(), UnitGroupTotals()]
        var unitsSeen = 0
        var byUnit = (error: SequentialTestState(), latency: SequentialTestState())
        var perRecord = (error: SequentialTestState(), latency: SequentialTestState())
        var outcome = Outcome(records: records.count)
        for (position, record) in records.enumerated() {
            let group: Int
            if let known = groupOfUnit[record.unit] {
                group = known
            } else {
                group = UnitHash.group(of: UnitHash.of(Self.unitName(record.unit)))
                groupOfUnit[record.unit] = group
                unitsSeen += 1
            }
            errors[record.arm].add(record.error)
            errorGroups[record.arm].add(record.error ? 1 : 0, group: group)
            latencies[record.arm].add(record.latencyMilliseconds)
            latencyGroups[record.arm].add(record.latencyMilliseconds, group: group)
            guard record.arm == 1 else { continue }
            let count = position + 1

            if outcome.disabledAt == nil {
                let error = GuardrailEvaluation.evaluateErrorRate(
                    control: errors[0], treatment: errors[1], controlGroups: errorGroups[0],
                    treatmentGroups: errorGroups[1], policy: policy, state: &byUnit.error)
                let latency = GuardrailEvaluation.evaluateLatency(
                    control: latencies[0], treatment: latencies[1], controlGroups: latencyGroups[0],
                    treatmentGroups: latencyGroups[1], policy: policy, state: &byUnit.latency)
                if error.disables { outcome.disabledOnErrorRateAt = outcome.disabledOnErrorRateAt ?? count }
                if latency.disables { outcome.disabledOnLatencyAt = outcome.disabledOnLatencyAt ?? count }
                if error.disables || latency.disables {
                    outcome.disabledAt = count
                    outcome.unitsAtDisable = unitsSeen
                }
            }
            if outcome.perRecordDisabledAt == nil {
                let error = GuardrailEvaluation.evaluateErrorRate(
                    control: errors[0], treatment: errors[1], policy: policy, state: &perRecord.error)
                let latency = GuardrailEvaluation.evaluateLatency(
                    control: latencies[0], treatment: latencies[1], policy: policy, state: &perRecord.latency)
                if error.disables { outcome.perRecordDisabledOnErrorRateAt = count }
                if latency.disables { outcome.perRecordDisabledOnLatencyAt = count }
                if error.disables || latency.disables { outcome.perRecordDisabledAt = count }
            }
            if outcome.disabledAt != nil, outcome.perRecordDisabledAt != nil { break }
        }
        return outcome
    }

    /// Shares and times over many runs.
    public struct Summary: Sendable, Equatable {
        public var runs: Int
        /// By unit: runs disabled at all, on the error rate, on latency.
        public var disabledShare: Double
        public var disabledOnErrorRateShare: Double
        public var disabledOnLatencyShare: Double
        /// Per record, on the same records.
        public var perRecordDisabledShare: Double
        public var perRecordDisabledOnErrorRateShare: Double
        public var perRecordDisabledOnLatencyShare: Double
        /// Over the runs disabled by unit: median records and units (both arms) until the disable.
        public var medianRecordsToDisable: Int?
        public var medianUnitsToDisable: Int?
        public var p90RecordsToDisable: Int?
        /// Records per run on average, both arms.
        public var meanRecords: Double
    }

    public func summarize(runs: Int, seed: UInt64) -> Summary {
        var seeds = SplitMix64(seed: seed)
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(runs)
        for _ in 0..<runs { outcomes.append(run(seed: seeds.next())) }
        func share(_ keyPath: KeyPath<Outcome, Int?>) -> Double {
            runs > 0 ? Double(outcomes.count { $0[keyPath: keyPath] != nil }) / Double(runs) : 0
        }
        func percentile(_ values: [Int], _ fraction: Double) -> Int? {
            let sorted = values.sorted()
            return sorted.isEmpty
                ? nil : sorted[min(sorted.count - 1, max(0, Int((fraction * Double(sorted.count)).rounded(.up)) - 1))]
        }
        let times = outcomes.compactMap(\.disabledAt)
        return Summary(
            runs: runs,
            disabledShare: share(\.disabledAt),
            disabledOnErrorRateShare: share(\.disabledOnErrorRateAt),
            disabledOnLatencyShare: share(\.disabledOnLatencyAt),
            perRecordDisabledShare: share(\.perRecordDisabledAt),
            perRecordDisabledOnErrorRateShare: share(\.perRecordDisabledOnErrorRateAt),
            perRecordDisabledOnLatencyShare: share(\.perRecordDisabledOnLatencyAt),
            medianRecordsToDisable: percentile(times, 0.5),
            medianUnitsToDisable: percentile(outcomes.compactMap(\.unitsAtDisable), 0.5),
            p90RecordsToDisable: percentile(times, 0.9),
            meanRecords: runs > 0 ? Double(outcomes.reduce(0) { $0 + $1.records }) / Double(runs) : 0)
    }

    /// A unit's error rate: Beta-distributed with the given mean and intra-unit correlation ρ = 1/(a + b + 1)
    /// (the correlation of two error indicators of the same unit), or the mean itself when ρ = 0.
    public static func betaWithMean(_ mean: Double, correlation: Double, random: inout SplitMix64) -> Double {
        guard correlation > 0, mean > 0, mean < 1 else { return mean }
        let concentration = (1 - correlation) / correlation
        let a = gamma(shape: mean * concentration, random: &random)
        let b = gamma(shape: (1 - mean) * concentration, random: &random)
        return a + b > 0 ? a / (a + b) : mean
    }

    /// A Gamma(shape, 1) draw: Marsaglia & Tsang (2000), with Gamma(k) = Gamma(k + 1)·U^(1/k) for k < 1.
    static func gamma(shape: Double, random: inout SplitMix64) -> Double {
        if shape < 1 {
            let boosted = gamma(shape: shape + 1, random: &random)
            return boosted * pow(1 - random.nextUnit(), 1 / shape)
        }
        let d = shape - 1.0 / 3
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double
            var v: Double
            repeat {
                x = random.nextStandardNormal()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1 - random.nextUnit()
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
