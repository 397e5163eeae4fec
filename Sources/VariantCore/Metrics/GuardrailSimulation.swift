import Glibc

/// Simulated experiments checked after every record, to measure how often the guardrails disable a healthy
/// treatment (A/A) and how fast they disable a bad one (A/B). Deterministic for a seed.
public struct GuardrailSimulation: Sendable {
    /// Error rates and latency of the two arms.
    public struct Arms: Sendable {
        public var controlErrorRate: Double
        public var treatmentErrorRate: Double
        /// Latency is log-normal: exp(N(μ, σ)) milliseconds.
        public var controlLatencyLogMean: Double
        public var treatmentLatencyLogMean: Double
        public var latencyLogSigma: Double

        public init(
            controlErrorRate: Double, treatmentErrorRate: Double, controlLatencyLogMean: Double = log(800),
            treatmentLatencyLogMean: Double = log(800), latencyLogSigma: Double = 0.5
        ) {
            self.controlErrorRate = controlErrorRate
            self.treatmentErrorRate = treatmentErrorRate
            self.controlLatencyLogMean = controlLatencyLogMean
            self.treatmentLatencyLogMean = treatmentLatencyLogMean
            self.latencyLogSigma = latencyLogSigma
        }
    }

    /// How the runs went.
    public struct Summary: Sendable {
        public var runs: Int
        /// Runs in which the treatment was disabled.
        public var disabledRuns: Int
        /// Records (both arms together) until the disable, of the runs that disabled, sorted.
        public var recordsToDisable: [Int]

        public var disabledShare: Double { Double(disabledRuns) / Double(max(runs, 1)) }

        /// The records-to-disable at a quantile (0...1) of the runs that disabled, or nil if none did.
        public func recordsToDisable(atQuantile quantile: Double) -> Int? {
            guard !recordsToDisable.isEmpty else { return nil }
            return recordsToDisable[min(recordsToDisable.count - 1, Int(quantile * Double(recordsToDisable.count)))]
        }
    }

    public var arms: Arms
    public var settings: GuardrailSettings
    /// Records per arm in each run; the arms alternate, and the guardrails are checked after every record.
    public var recordsPerArm: Int

    public init(arms: Arms, settings: GuardrailSettings = GuardrailSettings(), recordsPerArm: Int) {
        self.arms = arms
        self.settings = settings
        self.recordsPerArm = recordsPerArm
    }

    /// Runs `runs` experiments with the guardrails of `settings`.
    public func run(runs: Int, seed: UInt64) -> Summary {
        simulate(runs: runs, seed: seed) { treatment, control in
            GuardrailCheck.breach(of: treatment, against: control, settings: settings) != nil
        }
    }

    /// The same runs judged by the naive rule that sequential testing replaces: a two-sided two-proportion
    /// z-test on the error rate at p < alpha, looked at after every record once both arms have
    /// `minimumSamples`.
    public func runNaive(runs: Int, seed: UInt64) -> Summary {
        let critical = 1.959963984540054  // the normal quantile at 0.975, for alpha = 0.05
        return simulate(runs: runs, seed: seed) { treatment, control in
            let (t, c) = (treatment.errors, control.errors)
            guard t.trials >= settings.minimumSamples, c.trials >= settings.minimumSamples else { return false }
            let pooled = (t.successes + c.successes) / Double(t.trials + c.trials)
            let standardError = (pooled * (1 - pooled) * (1 / Double(t.trials) + 1 / Double(c.trials))).squareRoot()
            guard standardError > 0 else { return false }
            return abs(t.successes / Double(t.trials) - c.successes / Double(c.trials)) / standardError > critical
        }
    }

    private func simulate(runs: Int, seed: UInt64, disables: (VariantAggregate, VariantAggregate) -> Bool) -> Summary {
        var random = SplitMix64(seed: seed)
        var summary = Summary(runs: runs, disabledRuns: 0, recordsToDisable: [])
        for _ in 0..<runs {
            var control = VariantAggregate()
            var treatment = VariantAggregate()
            for step in 0..<recordsPerArm {
                control.add(measurement(errorRate: arms.controlErrorRate, logMean: arms.controlLatencyLogMean, &random), shadow: false)
                treatment.add(measurement(errorRate: arms.treatmentErrorRate, logMean: arms.treatmentLatencyLogMean, &random), shadow: false)
                if disables(treatment, control) {
                    summary.disabledRuns += 1
                    summary.recordsToDisable.append(2 * (step + 1))
                    break
                }
            }
        }
        summary.recordsToDisable.sort()
        return summary
    }

    private func measurement(errorRate: Double, logMean: Double, _ random: inout SplitMix64) -> Measurements {
        let failed = random.nextUnit() < errorRate
        // Box–Muller: one standard normal from two uniforms.
        let normal = (-2 * log(1 - random.nextUnit())).squareRoot() * cos(2 * Double.pi * random.nextUnit())
        return Measurements(latencyMilliseconds: exp(logMean + arms.latencyLogSigma * normal), error: failed)
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a small, fast generator whose sequence is fixed by its seed.
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

    /// A uniform double in [0, 1).
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
