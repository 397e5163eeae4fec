#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The standard normal distribution.
///
/// `survival` is computed from `erfc` directly, so it keeps full relative accuracy far into the upper tail
/// (`survival(10)` ≈ 7.62e-24, where 1 − cdf(10) would be 0); `quantile` is Wichura's AS241 (PPND16), accurate to
/// about 1e-16 relative.
public enum Normal {
    /// P(Z ≤ x).
    public static func cdf(_ x: Double) -> Double {
        if x.isNaN { return 0.5 }
        return 0.5 * erfc(-x / 2.0.squareRoot())
    }

    /// P(Z > x), without cancellation in the upper tail.
    public static func survival(_ x: Double) -> Double {
        if x.isNaN { return 0.5 }
        return 0.5 * erfc(x / 2.0.squareRoot())
    }

    /// The density φ(x).
    public static func density(_ x: Double) -> Double {
        exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
    }

    /// The x with P(Z ≤ x) = p, for 0 < p < 1; nil outside that range.
    public static func quantile(_ p: Double) -> Double? {
        guard p > 0, p < 1 else { return nil }
        return wichuraQuantile(p)
    }

    /// The x with P(Z > x) = q, for 0 < q < 1; exact for tiny q where 1 − q would round (nil outside (0, 1)).
    public static func inverseSurvival(_ q: Double) -> Double? {
        guard q > 0, q < 1 else { return nil }
        return -wichuraQuantile(q)
    }

    /// Wichura (1988), Algorithm AS 241, PPND16.
    static func wichuraQuantile(_ p: Double) -> Double {
        let q = p - 0.5
        if abs(q) <= 0.425 {
            let r = 0.180625 - q * q
            let numerator =
                ((((((r * 2509.080_928_730_122_7 + 33430.575_583_588_128) * r + 67265.770_927_008_700_853) * r
                    + 45921.953_931_549_871_457) * r + 13731.693_765_509_461_125) * r
                    + 1971.590_950_306_551_442_7) * r + 133.141_667_891_784_377_45) * r
                + 3.387_132_872_796_366_608
            let denominator =
                ((((((r * 5226.495_278_852_545_925 + 28729.085_735_721_942_674) * r + 39307.895_800_092_710_61) * r
                    + 21213.794_301_586_595_867) * r + 5394.196_021_424_751_077_1) * r
                    + 687.187_007_492_057_908_95) * r + 42.313_330_701_600_911_252) * r + 1
            return q * numerator / denominator
        }
        var r = q < 0 ? p : 1 - p
        r = (-log(r)).squareRoot()
        var value: Double
        if r <= 5 {
            r -= 1.6
            let numerator =
                ((((((r * 7.745_450_142_783_414_076_4e-4 + 0.022_723_844_989_269_184_583) * r
                    + 0.241_780_725_177_450_611_77) * r + 1.270_458_252_452_368_382_58) * r
                    + 3.647_848_324_763_204_605_04) * r + 5.769_497_221_460_691_405_5) * r
                    + 4.630_337_846_156_545_295_9) * r + 1.423_437_110_749_683_577_34
            let denominator =
                ((((((r * 1.050_750_071_644_416_843_24e-9 + 5.475_938_084_995_344_946_0e-4) * r
                    + 0.015_198_666_563_616_457_2) * r + 0.148_103_976_427_480_074_59) * r
                    + 0.689_767_334_985_100_004_55) * r + 1.676_384_830_183_803_849_4) * r
                    + 2.053_191_626_637_758_821_87) * r + 1
            value = numerator / denominator
        } else {
            r -= 5
            let numerator =
                ((((((r * 2.010_334_399_292_288_132_65e-7 + 2.711_555_568_743_487_578_15e-5) * r
                    + 0.001_242_660_947_388_078_438_6) * r + 0.026_532_189_526_576_123_093) * r
                    + 0.296_560_571_828_504_891_23) * r + 1.784_826_539_917_291_335_8) * r
                    + 5.463_784_911_164_114_369_9) * r + 6.657_904_643_501_103_777_2
            let denominator =
                ((((((r * 2.044_263_103_389_939_785_64e-15 + 1.421_511_758_316_445_887_87e-7) * r
                    + 1.846_318_317_510_054_681_9e-5) * r + 7.868_691_311_456_132_591e-4) * r
                    + 0.014_875_361_290_850_614_852_5) * r + 0.136_929_880_922_735_805_31) * r
                    + 0.599_832_206_555_887_937_69) * r + 1
            value = numerator / denominator
        }
        return q < 0 ? -value : value
    }
}

/// Student's t distribution with ν > 0 degrees of freedom, ν not necessarily an integer (Welch's test needs
/// fractional ν).
///
/// The tails come from the incomplete beta function, P(T > t) = ½ I_{ν/(ν+t²)}(ν/2, ½), with the complement
/// t²/(ν + t²) formed directly; values near the centre use P(|T| < t) = I_{t²/(ν+t²)}(½, ν/2) so that the quantile
/// keeps relative accuracy near p = ½ too.
public struct StudentT: Sendable, Equatable {
    /// ν.
    public let degreesOfFreedom: Double

    /// A t distribution; nil unless ν is positive (ν = ∞ is accepted and behaves as the normal distribution).
    public init?(degreesOfFreedom: Double) {
        guard degreesOfFreedom > 0 else { return nil }
        self.degreesOfFreedom = degreesOfFreedom
    }

    /// Beyond this many degrees of freedom the t and normal distributions agree to better than 1e-12 relative in
    /// the range the daemon uses, and the normal is used directly.
    static let normalThreshold = 1e12

    /// P(T > |t|) and P(|T| < |t|), each computed without cancellation.
    func tailAndCentre(_ t: Double) -> (tail: Double, centre: Double) {
        let ν = degreesOfFreedom
        if t.isNaN { return (0.5, 0) }
        if ν > Self.normalThreshold {
            let tail = Normal.survival(abs(t))
            return (tail, 1 - 2 * tail)
        }
        let square = t * t
        if square.isInfinite { return (0, 1) }
        let x = ν / (ν + square)
        let y = square / (ν + square)
        let beta = SpecialFunctions.incompleteBeta(a: ν / 2, b: 0.5, x: x, y: y)
        return (0.5 * beta.lower, beta.upper)
    }

    /// P(T ≤ t).
    public func cdf(_ t: Double) -> Double {
        let (tail, centre) = tailAndCentre(t)
        if t > 0 { return centre < 0.5 ? 0.5 + 0.5 * centre : 1 - tail }
        return tail
    }

    /// P(T > t), without cancellation in the upper tail.
    public func survival(_ t: Double) -> Double {
        cdf(-t)
    }

    /// The density f(t) = (1 + t²/ν)^(−(ν+1)/2) / (√ν B(ν/2, ½)).
    public func density(_ t: Double) -> Double {
        exp(logDensity(t))
    }

    func logDensity(_ t: Double) -> Double {
        let ν = degreesOfFreedom
        if ν > Self.normalThreshold { return -0.5 * t * t - SpecialFunctions.logSquareRootOfTwoPi }
        let magnitude = abs(t)
        let logKernel: Double
        if magnitude > 1e100 {
            logKernel = 2 * log(magnitude) - log(ν) + log1p(ν / (magnitude * magnitude))
        } else {
            logKernel = log1p(magnitude * magnitude / ν)
        }
        return -(ν + 1) / 2 * logKernel - 0.5 * log(ν) - SpecialFunctions.logBeta(ν / 2, 0.5)
    }

    /// The t with P(T ≤ t) = p, for 0 < p < 1; nil outside that range.
    public func quantile(_ p: Double) -> Double? {
        guard p > 0, p < 1 else { return nil }
        if p == 0.5 { return 0 }
        // Solve for |t| on the tail probability, exact on whichever side of ½ p lies (1 − p is exact for p ≥ ½).
        let magnitude =
            p < 0.5 ? upperQuantile(tail: p, centre: 1 - 2 * p) : upperQuantile(tail: 1 - p, centre: 2 * p - 1)
        return p < 0.5 ? -magnitude : magnitude
    }

    /// The t with P(T > t) = q, for 0 < q < 1; exact for tiny q (nil outside (0, 1)).
    public func inverseSurvival(_ q: Double) -> Double? {
        guard q > 0, q < 1 else { return nil }
        if q == 0.5 { return 0 }
        let magnitude =
            q < 0.5 ? upperQuantile(tail: q, centre: 1 - 2 * q) : upperQuantile(tail: 1 - q, centre: 2 * q - 1)
        return q < 0.5 ? magnitude : -magnitude
    }

    /// The positive t with P(T > t) = tail (≤ ½), where `centre` = 1 − 2·tail = P(|T| < t).
    private func upperQuantile(tail: Double, centre: Double) -> Double {
        let ν = degreesOfFreedom
        // Closed forms for ν = 1 (Cauchy) and ν = 2.
        if ν == 1 {
            // Cauchy: t = cot(π q), or tan(π c / 2) near the centre where π q approaches π/2.
            return tail < 0.25 ? 1 / tan(Double.pi * tail) : tan(Double.pi * centre / 2)
        }
        if ν == 2 {
            // P(T > t) = ½(1 − t/√(2 + t²)), so t = (1 − 2q)/√(2q(1 − q)).
            return centre / (2 * tail * (1 - tail)).squareRoot()
        }
        // Initial guess: the normal quantile with the first Cornish–Fisher correction.
        let z = -Normal.wichuraQuantile(tail)
        var guess = z + (z * z * z + z) / (4 * ν)
        if !(guess > 0) || !guess.isFinite { guess = 1 }
        // In u = ln t, ln(tail) and ln(centre) are close to linear (power-law tails, linear centre), so Newton
        // converges in a handful of steps; the centre form is used near ½ where the tail is flat.
        if tail > 0.25 {
            let target = log(centre)
            let u = SpecialFunctions.solveIncreasing(target: target, initial: log(guess)) { u in
                let t = exp(u)
                let value = tailAndCentre(t).centre
                // d ln(centre)/du = 2 t f(t) / centre.
                return (log(value), 2 * t * exp(logDensity(t)) / value)
            }
            return exp(u)
        }
        let target = -log(tail)
        let u = SpecialFunctions.solveIncreasing(target: target, initial: log(guess)) { u in
            let t = exp(u)
            let value = tailAndCentre(t).tail
            if value == 0 { return (.infinity, .nan) }
            // d(−ln tail)/du = t f(t) / tail.
            return (-log(value), exp(u + logDensity(t)) / value)
        }
        return min(exp(u), .greatestFiniteMagnitude)
    }
}

/// The chi-square distribution with k > 0 degrees of freedom (k need not be an integer): a gamma distribution
/// with shape k/2 and scale 2, evaluated through the regularized incomplete gamma functions.
public struct ChiSquare: Sendable, Equatable {
    /// k.
    public let degreesOfFreedom: Double

    /// A chi-square distribution; nil unless k is positive and finite.
    public init?(degreesOfFreedom: Double) {
        guard degreesOfFreedom > 0, degreesOfFreedom.isFinite else { return nil }
        self.degreesOfFreedom = degreesOfFreedom
    }

    private var shape: Double { degreesOfFreedom / 2 }

    /// P(X ≤ x).
    public func cdf(_ x: Double) -> Double {
        if x.isNaN { return 0 }
        return SpecialFunctions.incompleteGamma(a: shape, x: x / 2).lower
    }

    /// P(X > x), computed directly (the continued fraction for Q), so it keeps relative accuracy at huge x.
    public func survival(_ x: Double) -> Double {
        if x.isNaN { return 1 }
        return SpecialFunctions.incompleteGamma(a: shape, x: x / 2).upper
    }

    /// The density.
    public func density(_ x: Double) -> Double {
        guard x > 0 else { return 0 }
        return exp(logDensity(x))
    }

    func logDensity(_ x: Double) -> Double {
        let half = x / 2
        return SpecialFunctions.logGammaPrefactor(a: shape, x: half) - log(x)
    }

    /// The x with P(X ≤ x) = p, for 0 < p < 1; nil outside that range.
    public func quantile(_ p: Double) -> Double? {
        guard p > 0, p < 1 else { return nil }
        return p <= 0.5 ? lowerQuantile(p) : upperQuantile(1 - p)
    }

    /// The x with P(X > x) = q, for 0 < q < 1; exact for tiny q (nil outside (0, 1)).
    public func inverseSurvival(_ q: Double) -> Double? {
        guard q > 0, q < 1 else { return nil }
        return q <= 0.5 ? upperQuantile(q) : lowerQuantile(1 - q)
    }

    /// Wilson–Hilferty's cube-root normal approximation, a starting point for Newton.
    private func initialGuess(standardNormal z: Double) -> Double {
        let k = degreesOfFreedom
        let spread = (2 / (9 * k)).squareRoot()
        let base = 1 - 2 / (9 * k) + z * spread
        let guess = k * base * base * base
        return guess > 0 && guess.isFinite ? guess : k * 0.01 + 1e-3
    }

    private func lowerQuantile(_ p: Double) -> Double {
        let guess = initialGuess(standardNormal: Normal.wichuraQuantile(p))
        let target = log(p)
        let u = SpecialFunctions.solveIncreasing(target: target, initial: log(guess)) { u in
            let x = exp(u)
            let value = cdf(x)
            if value == 0 { return (-.infinity, .nan) }
            // d ln P / du = x f(x) / P.
            return (log(value), exp(u + logDensity(x)) / value)
        }
        return exp(u)
    }

    private func upperQuantile(_ q: Double) -> Double {
        let guess = initialGuess(standardNormal: -Normal.wichuraQuantile(q))
        let target = -log(q)
        let u = SpecialFunctions.solveIncreasing(target: target, initial: log(guess)) { u in
            let x = exp(u)
            let value = survival(x)
            if value == 0 { return (.infinity, .nan) }
            return (-log(value), exp(u + logDensity(x)) / value)
        }
        return min(exp(u), .greatestFiniteMagnitude)
    }
}
