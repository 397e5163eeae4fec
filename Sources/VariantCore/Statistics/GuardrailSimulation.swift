#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator, so simulations repeat exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal draw (Box–Muller).
    public mutating func nextStandardNormal() -> Double {
        let u1 = 1 - nextUnit()  // (0, 1]
        let u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

/// A simulated experiment: records arrive one at a time, each assigned to control or treatment at random (50/50,
/// so the arms grow unequally), with an error flag and a lognormal latency; the guardrails are evaluated after
/// every record, as the daemon does.
public struct GuardrailSimulation: Sendable {
    public struct Arm: Sendable, Equatable {
        public var errorRate: Double
        /// The median latency (ms); latencies are exp(ln(median) + σZ).
        public var medianLatency: Double
        public var latencySpread: Double

        public init(errorRate: Double, medianLatency: Double = 200, latencySpread: Double = 0.5) {
            self.errorRate = errorRate
            self.medianLatency = medianLatency
            self.latencySpread = latencySpread
        }
    }

    /// When each rule first fired, as a count of records (both arms together); nil when it never did.
    public struct Outcome: Sendable, Equatable {
        /// The daemon's rule: always-valid mSPRT plus the tolerance.
        public var disabledAt: Int?
        /// The always-valid test alone (no tolerance): its false-alarm rate is what Ville's inequality bounds.
        public var sequentialSignificantAt: Int?
        /// The naive rule: one-sided fixed-horizon test at p < α, checked after every record once each arm has the
        /// minimum sample.
        public var naiveSignificantAt: Int?
        /// The naive rule with the same tolerance gate as the daemon's.
        public var naiveDisabledAt: Int?
    }

    public var control: Arm
    public var treatment: Arm
    public var recordsPerArm: Int
    public var policy: GuardrailPolicy

    public init(control: Arm, treatment: Arm, recordsPerArm: Int, policy: GuardrailPolicy = GuardrailPolicy()) {
        self.control = control
        self.treatment = treatment
        self.recordsPerArm = recordsPerArm
        self.policy = policy
    }

    /// Runs one experiment of 2 × recordsPerArm records (on average per arm) with the given seed.
    public func run(seed: UInt64) -> Outcome {
        var random = SplitMix64(seed: seed)
        var errors = [ProportionCounts(), ProportionCounts()]
        var latencies = [RunningMoments(), RunningMoments()]
        var errorState = SequentialTestState()
        var latencyState = SequentialTestState()
        var outcome = Outcome()
        let arms = [control, treatment]
        let naiveCritical = Normal.inverseSurvival(policy.alpha) ?? .infinity
        for record in 1...(2 * recordsPerArm) {
            let index = Int(random.next() >> 63)
            let arm = arms[index]
            errors[index].add(random.nextUnit() < arm.errorRate)
            latencies[index].add(arm.medianLatency * exp(arm.latencySpread * random.nextStandardNormal()))

            let errorDecision = GuardrailEvaluation.evaluateErrorRate(
                control: errors[0],
                treatment: errors[1],
                policy: policy,
                state: &errorState
            )
            let latencyDecision = GuardrailEvaluation.evaluateLatency(
                control: latencies[0],
                treatment: latencies[1],
                policy: policy,
                state: &latencyState
            )
            guard errorDecision.verdict != .insufficientData || latencyDecision.verdict != .insufficientData else {
                continue
            }
            if outcome.disabledAt == nil, errorDecision.disables || latencyDecision.disables {
                outcome.disabledAt = record
            }
            if outcome.sequentialSignificantAt == nil,
                errorState.alwaysValidPValue <= policy.alpha || latencyState.alwaysValidPValue <= policy.alpha
            {
                outcome.sequentialSignificantAt = record
            }
            if outcome.naiveSignificantAt == nil || outcome.naiveDisabledAt == nil {
                let errorZ = Self.pooledZ(errors[0], errors[1])
                let latencyZ = Self.welchZ(latencies[0], latencies[1])
                let errorSignificant = errorDecision.verdict != .insufficientData && errorZ > naiveCritical
                let latencySignificant = latencyDecision.verdict != .insufficientData && latencyZ > naiveCritical
                if outcome.naiveSignificantAt == nil, errorSignificant || latencySignificant {
                    outcome.naiveSignificantAt = record
                }
                if outcome.naiveDisabledAt == nil,
                    (errorSignificant && errorDecision.observedDegradation > errorDecision.tolerance)
                        || (latencySignificant && latencyDecision.observedDegradation > latencyDecision.tolerance)
                {
                    outcome.naiveDisabledAt = record
                }
            }
            if outcome.disabledAt != nil, outcome.sequentialSignificantAt != nil, outcome.naiveSignificantAt != nil,
                outcome.naiveDisabledAt != nil
            {
                break
            }
        }
        return outcome
    }

    /// Summary over many runs with seeds derived from one base seed.
    public struct Summary: Sendable, Equatable {
        public var runs: Int
        public var disabledShare: Double
        public var sequentialSignificantShare: Double
        public var naiveSignificantShare: Double
        public var naiveDisabledShare: Double
        /// Records (both arms) until the daemon's rule disabled, over the runs where it did.
        public var medianRecordsToDisable: Int?
        public var p90RecordsToDisable: Int?
    }

    public func summarize(runs: Int, seed: UInt64) -> Summary {
        var seeds = SplitMix64(seed: seed)
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(runs)
        for _ in 0..<runs {
            outcomes.append(run(seed: seeds.next()))
        }
        func share(_ keyPath: KeyPath<Outcome, Int?>) -> Double {
            runs > 0 ? Double(outcomes.filter { $0[keyPath: keyPath] != nil }.count) / Double(runs) : 0
        }
        let times = outcomes.compactMap(\.disabledAt).sorted()
        func percentile(_ fraction: Double) -> Int? {
            times.isEmpty ? nil : times[min(times.count - 1, Int((fraction * Double(times.count)).rounded(.up)) - 1)]
        }
        return Summary(
            runs: runs,
            disabledShare: share(\.disabledAt),
            sequentialSignificantShare: share(\.sequentialSignificantAt),
            naiveSignificantShare: share(\.naiveSignificantAt),
            naiveDisabledShare: share(\.naiveDisabledAt),
            medianRecordsToDisable: percentile(0.5),
            p90RecordsToDisable: percentile(0.9)
        )
    }

    static func pooledZ(_ control: ProportionCounts, _ treatment: ProportionCounts) -> Double {
        guard control.trials > 0, treatment.trials > 0 else { return 0 }
        let pooled = (control.successes + treatment.successes) / Double(control.trials + treatment.trials)
        let variance = pooled * (1 - pooled) * (1 / Double(control.trials) + 1 / Double(treatment.trials))
        return variance > 0 ? (treatment.rate - control.rate) / variance.squareRoot() : 0
    }

    static func welchZ(_ control: RunningMoments, _ treatment: RunningMoments) -> Double {
        let variance =
            control.variance / Double(max(1, control.count)) + treatment.variance / Double(max(1, treatment.count))
        return variance > 0 ? (treatment.mean - control.mean) / variance.squareRoot() : 0
    }
}
