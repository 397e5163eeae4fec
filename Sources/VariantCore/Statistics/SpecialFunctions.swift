#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The special functions behind the distributions: log-gamma, the regularized incomplete gamma and beta functions,
/// and a safeguarded root finder for their inverses.
///
/// Every function here is written for *relative* accuracy in the tails: the complements (Q for P, I_y(b, a) for
/// I_x(a, b)) are computed directly, never as 1 − something, and the large-argument prefactors go through
/// Stirling-series forms so that arguments of 10⁶ lose no more than a few digits to cancellation.
enum SpecialFunctions {
    static let logSquareRootOfTwoPi = 0.918_938_533_204_672_741_780_329_736_4

    // MARK: Gamma

    /// ln Γ(x) for x > 0: Lanczos (g = 7, 9 terms, ~1e-15 relative in Γ) below 15, Stirling's series above.
    static func logGamma(_ x: Double) -> Double {
        precondition(x > 0, "logGamma is defined here for positive arguments only")
        if x >= 15 {
            return (x - 0.5) * log(x) - x + logSquareRootOfTwoPi + stirlingCorrection(x)
        }
        if x < 0.5 {
            // Reflection keeps the Lanczos sum in its accurate range: Γ(x)Γ(1−x) = π / sin(πx).
            return log(Double.pi / sin(Double.pi * x)) - logGamma(1 - x)
        }
        let coefficients: [Double] = [
            0.999_999_999_999_809_93, 676.520_368_121_885_1, -1259.139_216_722_402_8, 771.323_428_777_653_13,
            -176.615_029_162_140_59, 12.507_343_278_686_905, -0.138_571_095_265_720_12,
            9.984_369_578_019_571_6e-6, 1.505_632_735_149_311_6e-7,
        ]
        let shifted = x - 1
        var sum = coefficients[0]
        for index in 1..<coefficients.count {
            sum += coefficients[index] / (shifted + Double(index))
        }
        let t = shifted + 7.5
        return logSquareRootOfTwoPi + (shifted + 0.5) * log(t) - t + log(sum)
    }

    /// The remainder of Stirling's formula, ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π], from its asymptotic series;
    /// accurate to ~1e-17 absolute for x ≥ 15, and by direct subtraction below.
    static func stirlingCorrection(_ x: Double) -> Double {
        if x < 15 {
            return logGamma(x) - ((x - 0.5) * log(x) - x + logSquareRootOfTwoPi)
        }
        let inverse = 1 / x
        let inverseSquared = inverse * inverse
        // Bernoulli-number coefficients B₂ₖ / (2k(2k − 1)).
        let series =
            1.0 / 12 - inverseSquared
            * (1.0 / 360 - inverseSquared
                * (1.0 / 1260 - inverseSquared
                    * (1.0 / 1680 - inverseSquared * (1.0 / 1188 - inverseSquared * 691.0 / 360_360))))
        return series * inverse
    }

    /// log(1 + t) − t without cancellation for small t.
    static func logOnePlusMinus(_ t: Double) -> Double {
        if abs(t) > 0.25 {
            return log1p(t) - t
        }
        // −t²/2 + t³/3 − t⁴/4 + …
        var power = t * t
        var sum = 0.0
        var index = 2.0
        var sign = -1.0
        while index < 200 {
            let term = sign * power / index
            sum += term
            if abs(term) <= 1e-17 * abs(sum) { break }
            power *= t
            sign = -sign
            index += 1
        }
        return sum
    }

    /// ln[xᵃ e⁻ˣ / Γ(a)], the prefactor shared by the incomplete gamma function and the gamma density.
    ///
    /// For large a it is evaluated as a·(log1p(t) − t) + ½ ln(a/2π) − stirling(a) with x = a(1 + t), which keeps the
    /// three 10⁷-sized terms of the naive form from cancelling.
    static func logGammaPrefactor(a: Double, x: Double) -> Double {
        if a < 10 {
            return a * log(x) - x - logGamma(a)
        }
        let t = (x - a) / a
        // Near x = a the series form avoids cancellation; far from it, ln(x/a) keeps x/a exact where 1 + t would not.
        let scaledLog = abs(t) <= 0.25 ? a * logOnePlusMinus(t) : a * log(x / a) + (a - x)
        return scaledLog + 0.5 * log(a) - logSquareRootOfTwoPi - stirlingCorrection(a)
    }

    /// The regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 − P(a, x), each to full relative accuracy.
    static func incompleteGamma(a: Double, x: Double) -> (lower: Double, upper: Double) {
        precondition(a > 0, "incompleteGamma needs a positive shape")
        if !(x > 0) { return (0, 1) }
        if x == .infinity { return (1, 0) }
        let logPrefactor = logGammaPrefactor(a: a, x: x)
        if x < a + 1 {
            // Series: P = prefactor · Σ xⁿ / (a (a+1) … (a+n)).
            var term = 1 / a
            var sum = term
            var denominator = a
            for _ in 0..<maximumIterations {
                denominator += 1
                term *= x / denominator
                sum += term
                if abs(term) < abs(sum) * 1e-17 { break }
            }
            let lower = exp(logPrefactor + log(sum))
            return (lower, 1 - lower)
        }
        // Continued fraction for Q (modified Lentz).
        var b = x + 1 - a
        var c = 1 / tiny
        var d = 1 / b
        var fraction = d
        var index = 1.0
        for _ in 0..<maximumIterations {
            let an = -index * (index - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            fraction *= delta
            if abs(delta - 1) < 1e-16 { break }
            index += 1
        }
        let upper = exp(logPrefactor + log(fraction))
        return (1 - upper, upper)
    }

    // MARK: Beta

    /// ln B(a, b), with the large-argument cancellation handled by Stirling's remainder.
    static func logBeta(_ a: Double, _ b: Double) -> Double {
        let small = min(a, b)
        let large = max(a, b)
        if large < 10 {
            return logGamma(a) + logGamma(b) - logGamma(a + b)
        }
        let sum = small + large
        if small < 10 {
            // ln Γ(large) − ln Γ(large + small), expanded so the big logarithms cancel analytically.
            let difference =
                -(large - 0.5) * log1p(small / large) - small * log(sum) + small
                + stirlingCorrection(large) - stirlingCorrection(sum)
            return logGamma(small) + difference
        }
        return -0.5 * log(large) + logSquareRootOfTwoPi + (small - 0.5) * log(small / sum)
            + large * log1p(-small / sum) + stirlingCorrection(small) + stirlingCorrection(large)
            - stirlingCorrection(sum)
    }

    /// The regularized incomplete beta function I_x(a, b) and its complement I_y(b, a) = 1 − I_x(a, b), where the
    /// caller passes y = 1 − x computed without cancellation (as t²/(ν + t²) rather than 1 − ν/(ν + t²)).
    static func incompleteBeta(a: Double, b: Double, x: Double, y: Double) -> (lower: Double, upper: Double) {
        precondition(a > 0 && b > 0, "incompleteBeta needs positive shapes")
        if !(x > 0) { return (0, 1) }
        if !(y > 0) { return (1, 0) }
        if x > (a + 1) / (a + b + 2) {
            let swapped = incompleteBeta(a: b, b: a, x: y, y: x)
            return (swapped.upper, swapped.lower)
        }
        let logX = x < 0.5 ? log(x) : log1p(-y)
        let logY = y < 0.5 ? log(y) : log1p(-x)
        let logPrefactor = a * logX + b * logY - logBeta(a, b) - log(a)
        let lower = exp(logPrefactor + log(betaContinuedFraction(a: a, b: b, x: x)))
        return (lower, 1 - lower)
    }

    /// The continued fraction of I_x(a, b) (Numerical Recipes' betacf with Lentz's method), valid for
    /// x < (a + 1)/(a + b + 2).
    private static func betaContinuedFraction(a: Double, b: Double, x: Double) -> Double {
        let sum = a + b
        let plusOne = a + 1
        let minusOne = a - 1
        var c = 1.0
        var d = 1 - sum * x / plusOne
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var fraction = d
        var m = 1.0
        for _ in 0..<maximumIterations {
            let twiceM = 2 * m
            var coefficient = m * (b - m) * x / ((minusOne + twiceM) * (a + twiceM))
            d = 1 + coefficient * d
            if abs(d) < tiny { d = tiny }
            c = 1 + coefficient / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            fraction *= d * c
            coefficient = -(a + m) * (sum + m) * x / ((a + twiceM) * (plusOne + twiceM))
            d = 1 + coefficient * d
            if abs(d) < tiny { d = tiny }
            c = 1 + coefficient / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            fraction *= delta
            if abs(delta - 1) < 1e-16 { break }
            m += 1
        }
        return fraction
    }

    // MARK: Root finding

    /// Solves F(u) = target for an increasing F by Newton's method, falling back to bisection whenever a step
    /// leaves the bracket that the previous evaluations established. `evaluate` returns F(u) and F′(u); either may
    /// be non-finite at the edges of the domain (treated as "below" or "above" by its sign, with bisection).
    ///
    /// The bracket is first grown from `initial` by doubling steps, so any root within ±2⁶⁰ of the guess is found.
    static func solveIncreasing(
        target: Double,
        initial: Double,
        tolerance: Double = 2e-16,
        evaluate: (Double) -> (value: Double, derivative: Double)
    ) -> Double {
        var lower = -Double.infinity
        var upper = Double.infinity
        var u = initial
        var evaluation = evaluate(u)
        // Grow the bracket: Newton steps stretched by 20 %, and at least a minimum step that quadruples each time.
        var minimumStep = 0.01
        for _ in 0..<64 {
            if evaluation.value == target { return u }
            let below = evaluation.value < target
            if below { lower = u } else { upper = u }
            if lower.isFinite && upper.isFinite { break }
            let newtonStep = abs((target - evaluation.value) / evaluation.derivative)
            let size =
                newtonStep.isFinite && evaluation.derivative > 0 ? max(newtonStep * 1.2, minimumStep) : minimumStep
            u += below ? size : -size
            minimumStep *= 4
            evaluation = evaluate(u)
        }
        guard lower.isFinite, upper.isFinite else { return u }
        // Safeguarded Newton inside the bracket, from the last evaluated end.
        for _ in 0..<200 {
            let residual = evaluation.value - target
            var next = u - residual / evaluation.derivative
            if !next.isFinite || !(evaluation.derivative > 0) || next <= lower || next >= upper {
                next = (lower + upper) / 2
            }
            let scale = max(1, abs(next))
            if abs(next - u) <= tolerance * scale || upper - lower <= tolerance * scale {
                return next
            }
            u = next
            evaluation = evaluate(u)
            if evaluation.value == target { return u }
            if evaluation.value < target { lower = u } else { upper = u }
        }
        return u
    }

    static let tiny = 1e-300
    static let maximumIterations = 1_000_000
}
