#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-sided mixture sequential probability ratio test (mSPRT) for "the treatment is worse than the control",
/// valid however often it is evaluated (Johari, Pekelis & Walsh 2017, "Always valid inference"; Robbins 1970).
///
/// The estimate θ̂ is the degradation (treatment − control, oriented so that positive means worse) with variance
/// W ≈ Var(θ̂) (for two arms W = σ_t²/n_t + σ_c²/n_c, so unequal arm sizes are handled exactly; with n pairs and a
/// per-observation variance V this is W = V/n, the paper's notation). Against the composite null θ ≤ 0, the
/// likelihood ratio of N(θ, W) to N(0, W) is mixed over a half-normal prior on θ > 0 with scale τ:
///
///     Λ = ∫₀^∞ exp(θθ̂/W − θ²/2W) · (2/τ)φ(θ/τ) dθ = 2 · √(W/(W + τ²)) · exp(b²/2) · Φ(b),
///     b = θ̂ τ / √(W(W + τ²)).
///
/// (The two-sided normal mixture is √(W/(W + τ²))·exp(b²/2); the one-sided mixture multiplies it by 2Φ(b).)
/// Under θ = 0 each mixed ratio is a martingale and under θ < 0 a supermartingale, so Λ is a non-negative
/// supermartingale with mean ≤ 1 and, by Ville's inequality, P(Λ ever reaches 1/α) ≤ α: checking after every
/// record costs no validity. The always-valid p-value is the running minimum of 1/Λ.
///
/// The confidence sequence that matches the test is the one-sided lower bound
/// L = θ̂ − x*, where x* solves Λ(x*, W) = 1/α: every θ₀ < L is rejected by the test of θ ≤ θ₀ (shifting θ̂ by θ₀),
/// so P(θ < L at any time) ≤ α, and L > 0 exactly when the test rejects. Its running maximum is still valid.
public struct OneSidedMixtureSPRT: Sendable, Equatable {
    /// τ², the variance of the mixing distribution, in the squared units of θ.
    public var mixingVariance: Double

    /// A test with mixing variance τ² > 0; nil otherwise.
    public init?(mixingVariance: Double) {
        guard mixingVariance > 0, mixingVariance.isFinite else { return nil }
        self.mixingVariance = mixingVariance
    }

    /// ln Λ for a degradation estimate and its variance; nil when the variance is not positive and finite.
    public func logLikelihoodRatio(estimate: Double, estimateVariance: Double) -> Double? {
        guard estimate.isFinite, estimateVariance > 0, estimateVariance.isFinite else { return nil }
        let W = estimateVariance
        let τ2 = mixingVariance
        let b = estimate * τ2.squareRoot() / (W * (W + τ2)).squareRoot()
        return log(2) + 0.5 * log(W / (W + τ2)) + Self.logScaledNormalCDF(b)
    }

    /// Λ, capped at the largest finite Double.
    public func likelihoodRatio(estimate: Double, estimateVariance: Double) -> Double? {
        guard let logRatio = logLikelihoodRatio(estimate: estimate, estimateVariance: estimateVariance) else {
            return nil
        }
        return min(exp(logRatio), .greatestFiniteMagnitude)
    }

    /// Whether Λ ≥ 1/α.
    public func rejects(estimate: Double, estimateVariance: Double, alpha: Double) -> Bool {
        guard alpha > 0, alpha < 1,
            let logRatio = logLikelihoodRatio(estimate: estimate, estimateVariance: estimateVariance)
        else { return false }
        return logRatio >= -log(alpha)
    }

    /// The always-valid one-sided lower confidence bound L on the degradation at level 1 − α (see the type's
    /// documentation); nil when the variance is not positive and finite or α is outside (0, 1).
    public func lowerConfidenceBound(estimate: Double, estimateVariance: Double, alpha: Double) -> Double? {
        guard alpha > 0, alpha < 1, estimate.isFinite, estimateVariance > 0, estimateVariance.isFinite else {
            return nil
        }
        let target = -log(alpha)
        func excess(_ x: Double) -> Double {
            logLikelihoodRatio(estimate: x, estimateVariance: estimateVariance)! - target
        }
        // ln Λ(0) = ½ ln(W/(W + τ²)) < 0 < target, and ln Λ grows like b²/2, so doubling finds an upper end.
        var lower = 0.0
        var upper = estimateVariance.squareRoot()
        while excess(upper) < 0 {
            lower = upper
            upper *= 2
        }
        for _ in 0..<200 {
            let middle = (lower + upper) / 2
            if middle <= lower || middle >= upper { break }
            if excess(middle) < 0 { lower = middle } else { upper = middle }
        }
        return estimate - (lower + upper) / 2
    }

    /// ln[exp(b²/2) Φ(b)] without overflow or underflow: directly where Φ(b) is representable, and from the
    /// asymptotic Mills-ratio series, exp(b²/2)Φ(b) ≈ (1/(|b|√2π))(1 − 1/b² + 3/b⁴ − 15/b⁶), below b = −30.
    static func logScaledNormalCDF(_ b: Double) -> Double {
        if b > -30 {
            return b * b / 2 + log(Normal.cdf(b))
        }
        let inverseSquare = 1 / (b * b)
        let series = 1 - inverseSquare * (1 - inverseSquare * (3 - 15 * inverseSquare))
        return -log(-b) - SpecialFunctions.logSquareRootOfTwoPi + log(series)
    }
}

/// What a sequential test remembers between evaluations: the always-valid p-value is a running minimum.
public struct SequentialTestState: Sendable, Equatable, Codable {
    /// min over all evaluations of 1/Λ, capped at 1.
    public var alwaysValidPValue: Double
    /// How many evaluations have contributed.
    public var evaluations: Int

    public init(alwaysValidPValue: Double = 1, evaluations: Int = 0) {
        self.alwaysValidPValue = min(1, max(0, alwaysValidPValue.isNaN ? 1 : alwaysValidPValue))
        self.evaluations = max(0, evaluations)
    }

    /// Folds in one evaluation's ln Λ and returns the updated always-valid p-value.
    @discardableResult
    public mutating func record(logLikelihoodRatio: Double) -> Double {
        evaluations += 1
        let pValue = logLikelihoodRatio > 0 ? exp(-logLikelihoodRatio) : 1
        alwaysValidPValue = min(alwaysValidPValue, pValue)
        return alwaysValidPValue
    }
}
