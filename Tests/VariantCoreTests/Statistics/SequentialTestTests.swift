import Foundation
import Testing

@testable import VariantCore

@Suite struct SequentialTestTests {
    /// The mixture integral ∫₀^∞ exp(θθ̂/W − θ²/2W)·(2/τ)φ(θ/τ) dθ by Simpson's rule, the definition the closed form
    /// must equal.
    static func integratedRatio(estimate: Double, variance: Double, mixingVariance: Double) -> Double {
        let τ = mixingVariance.squareRoot()
        let upper = max(12 * τ, abs(estimate) + 12 * variance.squareRoot()) * 2
        let steps = 200_000
        let h = upper / Double(steps)
        func integrand(_ θ: Double) -> Double {
            exp(θ * estimate / variance - θ * θ / (2 * variance)) * 2 / τ * Normal.density(θ / τ)
        }
        var sum = integrand(0) + integrand(upper)
        for index in 1..<steps {
            sum += integrand(Double(index) * h) * (index % 2 == 1 ? 4 : 2)
        }
        return sum * h / 3
    }

    @Test(arguments: [
        (0.0, 0.001, 0.0025), (0.03, 0.001, 0.0025), (-0.02, 0.0004, 0.0025), (0.08, 0.0009, 0.0025),
        (12.0, 25.0, 100.0), (-3.0, 4.0, 1.0),
    ])
    func closedFormEqualsTheMixtureIntegral(estimate: Double, variance: Double, mixingVariance: Double) throws {
        let test = try #require(OneSidedMixtureSPRT(mixingVariance: mixingVariance))
        let closedForm = try #require(test.likelihoodRatio(estimate: estimate, estimateVariance: variance))
        let integral = Self.integratedRatio(estimate: estimate, variance: variance, mixingVariance: mixingVariance)
        #expect(relativeError(closedForm, integral) < 1e-8)
    }

    @Test func noEvidenceAtZeroAndMoreEvidenceForLargerDegradation() throws {
        let test = try #require(OneSidedMixtureSPRT(mixingVariance: 0.0025))
        let atZero = try #require(test.likelihoodRatio(estimate: 0, estimateVariance: 0.001))
        #expect(relativeError(atZero, (0.001 / 0.0035).squareRoot()) < 1e-14)
        var previous = 0.0
        for step in -50...50 {
            let ratio = try #require(test.logLikelihoodRatio(estimate: Double(step) * 0.004, estimateVariance: 0.001))
            #expect(ratio > previous || step == -50)
            previous = ratio
        }
        // Improvement never counts as harm: Λ falls below its value at 0 (like 1/|b| for large improvements).
        let improved = try #require(test.likelihoodRatio(estimate: -1, estimateVariance: 0.001))
        #expect(improved < 0.02 && improved < atZero)
        #expect(test.likelihoodRatio(estimate: 0.1, estimateVariance: 0) == nil)
        #expect(OneSidedMixtureSPRT(mixingVariance: 0) == nil)
    }

    @Test func scaledNormalCDFIsContinuousAcrossItsAsymptoticBranch() {
        let direct = -30.0 * -30.0 / 2 + log(Normal.cdf(-30))
        #expect(abs(OneSidedMixtureSPRT.logScaledNormalCDF(-30.000001) - direct) < 1e-6)
        #expect(OneSidedMixtureSPRT.logScaledNormalCDF(-1e6).isFinite)
    }

    /// The lower bound is where the shifted test stops rejecting: Λ(θ̂ − L) = 1/α, and L > 0 exactly when Λ(θ̂) ≥ 1/α.
    @Test func lowerConfidenceBoundMatchesTheTest() throws {
        let test = try #require(OneSidedMixtureSPRT(mixingVariance: 0.0025))
        for estimate in [0.01, 0.05, 0.09, 0.2] {
            let bound = try #require(
                test.lowerConfidenceBound(estimate: estimate, estimateVariance: 0.0005, alpha: 0.05)
            )
            let ratio = try #require(test.likelihoodRatio(estimate: estimate - bound, estimateVariance: 0.0005))
            #expect(relativeError(ratio, 20) < 1e-9)
            #expect((bound > 0) == test.rejects(estimate: estimate, estimateVariance: 0.0005, alpha: 0.05))
            #expect(bound < estimate)
        }
    }

    @Test func stateKeepsTheRunningMinimumPValue() {
        var state = SequentialTestState()
        #expect(state.record(logLikelihoodRatio: -2) == 1)
        #expect(abs(state.record(logLikelihoodRatio: log(10)) - 0.1) < 1e-15)
        #expect(abs(state.record(logLikelihoodRatio: log(2)) - 0.1) < 1e-15)
        #expect(state.evaluations == 3)
        #expect(SequentialTestState(alwaysValidPValue: .nan).alwaysValidPValue == 1)
    }
}

@Suite struct GuardrailEvaluationTests {
    static let policy = GuardrailPolicy()

    static func errors(_ trials: Int, _ rate: Double) -> ProportionCounts {
        ProportionCounts(trials: trials, successes: (Double(trials) * rate).rounded())
    }

    /// Moments of n values with the given mean and standard deviation (half at mean − sd, half at mean + sd).
    static func moments(_ count: Int, mean: Double, sd: Double) -> RunningMoments {
        let adjusted = sd * (Double(count - 1) / Double(count)).squareRoot()
        return RunningMoments((0..<count).map { mean + ($0 % 2 == 0 ? adjusted : -adjusted) })
    }

    @Test func nothingIsJudgedBeforeTheMinimumSample() {
        var state = SequentialTestState()
        let decision = GuardrailEvaluation.evaluateErrorRate(
            control: Self.errors(99, 0.05),
            treatment: Self.errors(500, 0.5),
            policy: Self.policy,
            state: &state
        )
        #expect(decision.verdict == .insufficientData)
        #expect(decision.reason.contains("waiting for 100"))
        #expect(state.evaluations == 0)
    }

    @Test func aLargeSignificantErrorIncreaseDisables() throws {
        var state = SequentialTestState()
        let decision = GuardrailEvaluation.evaluateErrorRate(
            control: Self.errors(1000, 0.05),
            treatment: Self.errors(900, 0.2),
            policy: Self.policy,
            state: &state
        )
        #expect(decision.disables)
        #expect(decision.alwaysValidPValue < 1e-6)
        #expect(abs(decision.observedDegradation - 0.15) < 1e-12)
        let bound = try #require(decision.degradationLowerBound)
        #expect(bound > 0 && bound < 0.15)
        #expect(decision.reason.contains("error_rate degraded by 15 points"))
    }

    @Test func aSignificantIncreaseWithinToleranceStaysEnabled() {
        var state = SequentialTestState()
        let decision = GuardrailEvaluation.evaluateErrorRate(
            control: Self.errors(50_000, 0.05),
            treatment: Self.errors(50_000, 0.08),
            policy: Self.policy,
            state: &state
        )
        #expect(decision.verdict == .healthy)
        #expect(decision.alwaysValidPValue <= 0.05)
        #expect(decision.reason.contains("within the tolerance"))
    }

    @Test func aLargeButUnprovenIncreaseStaysEnabled() {
        var state = SequentialTestState()
        let decision = GuardrailEvaluation.evaluateErrorRate(
            control: Self.errors(100, 0.05),
            treatment: Self.errors(100, 0.11),
            policy: Self.policy,
            state: &state
        )
        #expect(decision.verdict == .healthy)
        #expect(decision.alwaysValidPValue > 0.05)
    }

    @Test func latencyIsJudgedOnTheRelativeIncreaseOfTheMean() {
        var state = SequentialTestState()
        let doubled = GuardrailEvaluation.evaluateLatency(
            control: Self.moments(400, mean: 200, sd: 80),
            treatment: Self.moments(400, mean: 400, sd: 160),
            policy: Self.policy,
            state: &state
        )
        #expect(doubled.disables)
        #expect(abs(doubled.observedDegradation - 1) < 1e-12)
        var otherState = SequentialTestState()
        let slower = GuardrailEvaluation.evaluateLatency(
            control: Self.moments(5000, mean: 200, sd: 80),
            treatment: Self.moments(5000, mean: 260, sd: 80),
            policy: Self.policy,
            state: &otherState
        )
        #expect(slower.verdict == .healthy && slower.alwaysValidPValue <= 0.05)
    }

    @Test func customMetricsFollowTheirDirection() {
        let guardrail = CustomMetricGuardrail(name: "conversion_value", direction: .higherIsBetter, tolerance: 1)
        let control = Self.moments(500, mean: 10, sd: 2)
        var state = SequentialTestState()
        let worse = GuardrailEvaluation.evaluateCustom(
            guardrail,
            control: control,
            treatment: Self.moments(500, mean: 8, sd: 2),
            policy: Self.policy,
            state: &state
        )
        #expect(worse.disables && worse.metric == .custom("conversion_value"))
        #expect(abs(worse.observedDegradation - 2) < 1e-9)
        var betterState = SequentialTestState()
        let better = GuardrailEvaluation.evaluateCustom(
            guardrail,
            control: control,
            treatment: Self.moments(500, mean: 14, sd: 2),
            policy: Self.policy,
            state: &betterState
        )
        #expect(better.verdict == .healthy && better.alwaysValidPValue == 1)
    }

    @Test func constantObservationsCannotBeTested() {
        var state = SequentialTestState()
        let decision = GuardrailEvaluation.evaluateLatency(
            control: RunningMoments([Double](repeating: 5, count: 200)),
            treatment: RunningMoments([Double](repeating: 9, count: 200)),
            policy: Self.policy,
            state: &state
        )
        #expect(decision.verdict == .insufficientData && decision.reason.contains("no spread"))
    }

    /// A fixed-seed, smaller version of `variantd-simulate`: evaluated after every record, the always-valid rule
    /// keeps its false-disable rate under α (plus a 3-point margin for 300 runs' sampling error) while the naive
    /// repeated fixed-horizon test goes far beyond it; a 10-point error increase is caught in nearly every run.
    @Test func simulationKeepsFalseDisablesUnderAlphaAndDetectsHarm() {
        let healthy = GuardrailSimulation.Arm(errorRate: 0.05)
        let aa = GuardrailSimulation(control: healthy, treatment: healthy, recordsPerArm: 1500)
            .summarize(runs: 300, seed: 7)
        #expect(aa.disabledShare <= 0.05 + 0.03)
        #expect(aa.sequentialSignificantShare <= 0.05 + 0.03)
        #expect(aa.naiveSignificantShare > 0.15, "the naive rule should cry wolf, or the contrast is moot")
        let ab = GuardrailSimulation(
            control: healthy,
            treatment: GuardrailSimulation.Arm(errorRate: 0.15),
            recordsPerArm: 1500
        ).summarize(runs: 200, seed: 8)
        #expect(ab.disabledShare >= 0.9)
        #expect((ab.medianRecordsToDisable ?? .max) < 1000)
    }
}
