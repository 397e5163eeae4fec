import Testing

@testable import VariantCore

@Suite struct ComparisonTests {
    static let vectors = DistributionTests.vectors
    /// scipy and this code evaluate the same formulas in double precision; they agree far beyond 6 digits.
    static let tolerance = 1e-9

    @Test func welchMatchesScipy() throws {
        for (index, vector) in try Self.vectors.get().comparisons.welch.enumerated() {
            let comparison = try #require(
                MeanComparison.compare(
                    control: RunningMoments(vector.control),
                    treatment: RunningMoments(vector.treatment)
                )
            )
            // Case 3 compares means of values near 10⁹ that differ by 0.1: a Double mean there has a resolution of
            // 1.2e-7, about 1e-6 of the difference, so no double-precision code can do better (scipy itself is
            // 6.5e-7 away from the exact rational t of these inputs). Every other case agrees to 1e-9.
            let tolerance = index == 3 ? 2e-5 : Self.tolerance
            #expect(relativeError(comparison.t, vector.t) < tolerance, "case \(index) t")
            #expect(relativeError(comparison.pValue, vector.pValue) < tolerance, "case \(index) p")
            #expect(relativeError(comparison.degreesOfFreedom, vector.degreesOfFreedom) < tolerance, "case \(index) ν")
            #expect(
                relativeError(comparison.differenceInterval?.lower, vector.lower95) < tolerance,
                "case \(index) lower"
            )
            #expect(
                relativeError(comparison.differenceInterval?.upper, vector.upper95) < tolerance,
                "case \(index) upper"
            )
        }
    }

    @Test func welchReportsEffectSizesAndRelativeDifference() throws {
        let control = RunningMoments([10, 12, 14])  // mean 12, s² 4
        let treatment = RunningMoments([15, 18, 21])  // mean 18, s² 9
        let comparison = try #require(MeanComparison.compare(control: control, treatment: treatment))
        #expect(comparison.difference == 6)
        #expect(abs(comparison.relativeDifference! - 0.5) < 1e-15)
        // Pooled SD √((2·4 + 2·9)/4) = √6.5.
        #expect(abs(comparison.cohensD! - 6 / 6.5.squareRoot()) < 1e-14)
        #expect(comparison.controlStandardDeviation == 2 && comparison.treatmentStandardDeviation == 3)
    }

    @Test func welchDegenerateInputsGiveDocumentedValues() throws {
        #expect(MeanComparison.compare(control: RunningMoments([1]), treatment: RunningMoments([1, 2])) == nil)
        #expect(
            MeanComparison.compare(control: RunningMoments([1, 2]), treatment: RunningMoments([1, 2]), confidence: 1)
                == nil
        )
        let constant = try #require(
            MeanComparison.compare(control: RunningMoments([0, 0]), treatment: RunningMoments([3, 3]))
        )
        #expect(constant.t == nil && constant.differenceInterval == nil && constant.pValue == 0)
        #expect(constant.relativeDifference == nil && constant.cohensD == nil)
        let same = try #require(
            MeanComparison.compare(control: RunningMoments([2, 2]), treatment: RunningMoments([2, 2]))
        )
        #expect(same.pValue == 1)
    }

    @Test func twoProportionTestMatchesTextbookFormula() throws {
        for (index, vector) in try Self.vectors.get().comparisons.twoProportion.enumerated() {
            let comparison = try #require(
                ProportionComparison.compare(
                    control: ProportionCounts(trials: vector.controlTrials, successes: vector.controlSuccesses),
                    treatment: ProportionCounts(trials: vector.treatmentTrials, successes: vector.treatmentSuccesses)
                )
            )
            #expect(relativeError(comparison.z, vector.z) < Self.tolerance, "case \(index) z")
            #expect(relativeError(comparison.pValue, vector.pValue) < Self.tolerance, "case \(index) p")
            #expect(relativeError(comparison.absoluteDifferenceInterval?.lower, vector.lower95) < Self.tolerance)
            #expect(relativeError(comparison.absoluteDifferenceInterval?.upper, vector.upper95) < Self.tolerance)
        }
    }

    /// 10 % against 13 % of 1 000: the log-ratio delta-method interval, from scipy/numpy in the comment:
    /// se = √((1−.1)/100 + (1−.13)/130); expm1(ln 1.3 ∓ 1.959964·se) = 0.016984270971045, 0.661775947022680.
    @Test func relativeDifferenceIntervalUsesTheLogRatio() throws {
        let comparison = try #require(
            ProportionComparison.compare(
                control: ProportionCounts(trials: 1000, successes: 100),
                treatment: ProportionCounts(trials: 1000, successes: 130)
            )
        )
        #expect(abs(comparison.relativeDifference! - 0.3) < 1e-12)
        #expect(relativeError(comparison.relativeDifferenceInterval?.lower, 0.016_984_270_971_045_465) < 1e-9)
        #expect(relativeError(comparison.relativeDifferenceInterval?.upper, 0.661_775_947_022_680_2) < 1e-9)
    }

    @Test func degenerateProportionsLeakNoNaN() throws {
        #expect(
            ProportionComparison.compare(
                control: ProportionCounts(),
                treatment: ProportionCounts(trials: 5, successes: 1)
            ) == nil
        )
        let allZero = try #require(
            ProportionComparison.compare(control: ProportionCounts(trials: 50), treatment: ProportionCounts(trials: 40))
        )
        #expect(allZero.z == 0 && allZero.pValue == 1)
        #expect(allZero.absoluteDifferenceInterval == nil && allZero.relativeDifference == nil)
        let allOne = try #require(
            ProportionComparison.compare(
                control: ProportionCounts(trials: 50, successes: 50),
                treatment: ProportionCounts(trials: 40, successes: 40)
            )
        )
        #expect(allOne.pValue == 1 && allOne.relativeDifference == 0 && allOne.relativeDifferenceInterval != nil)
        let fromZero = try #require(
            ProportionComparison.compare(
                control: ProportionCounts(trials: 50, successes: 0),
                treatment: ProportionCounts(trials: 40, successes: 4)
            )
        )
        #expect(
            fromZero.relativeDifference == nil && fromZero.pValue < 0.05 && fromZero.absoluteDifferenceInterval != nil
        )
    }

    @Test func contingencyTestMatchesScipy() throws {
        for vector in try Self.vectors.get().comparisons.contingency {
            let variants = vector.table.map { ProportionCounts(trials: Int($0[0] + $0[1]), successes: $0[0]) }
            let result = try #require(ProportionIndependenceTest.test(variants))
            #expect(result.degreesOfFreedom == vector.degreesOfFreedom)
            #expect(relativeError(result.statistic, vector.statistic) < Self.tolerance)
            #expect(relativeError(result.pValue, vector.pValue) < Self.tolerance)
        }
        #expect(ProportionIndependenceTest.test([ProportionCounts(trials: 10, successes: 2)]) == nil)
        #expect(
            ProportionIndependenceTest.test([ProportionCounts(trials: 10), ProportionCounts(trials: 7)])?.pValue == 1
        )
    }

    @Test func sampleRatioMismatchMatchesScipyAndFlagsAtTheStrictThreshold() throws {
        for vector in try Self.vectors.get().comparisons.goodnessOfFit {
            let result = try #require(
                SampleRatioMismatch.test(observed: vector.observed, expectedWeights: vector.weights)
            )
            #expect(relativeError(result.statistic, vector.statistic) < Self.tolerance)
            #expect(relativeError(result.pValue, vector.pValue) < Self.tolerance)
            #expect(result.mismatch == (vector.pValue < 0.001))
        }
        // 5 040 / 4 960 is ordinary noise; 5 200 / 4 800 (p ≈ 6.3e-5) is a mismatch.
        #expect(SampleRatioMismatch.test(observed: [5040, 4960], expectedWeights: [50, 50])?.mismatch == false)
        #expect(SampleRatioMismatch.test(observed: [5200, 4800], expectedWeights: [50, 50])?.mismatch == true)
        #expect(SampleRatioMismatch.test(observed: [10, 3], expectedWeights: [100, 0])?.mismatch == nil)
        #expect(SampleRatioMismatch.test(observed: [10, 3, 1], expectedWeights: [50, 50, 0])?.mismatch == true)
        #expect(SampleRatioMismatch.test(observed: [0, 0], expectedWeights: [50, 50]) == nil)
        #expect(SampleRatioMismatch.test(observed: [1, 2], expectedWeights: [50]) == nil)
    }

    /// Baseline 10 %, +2 points, α 0.05 two-sided, power 0.8: [1.959964·√(2·.11·.89) + 0.841621·√(.09 + .1056)]²/.0004
    /// = 3 840.85 → 3 841 per arm (the classic figure; scipy-evaluated formula in the comment values below).
    @Test func sampleSizeForProportionsMatchesTheClassicExample() throws {
        let two = try #require(SampleSize.forProportions(baselineRate: 0.1, minimumDetectableEffect: 0.02))
        #expect(two.perVariant == 3841 && two.total == 7682 && two.adjustedAlpha == 0.05)
        // Three variants: α' = 0.025 → 4 651.42 → 4 652.
        let three = try #require(
            SampleSize.forProportions(baselineRate: 0.1, minimumDetectableEffect: 0.02, variants: 3)
        )
        #expect(three.perVariant == 4652 && three.adjustedAlpha == 0.025)
        // 5 % → 15 % at power 0.9: 187.05 → 188.
        #expect(
            SampleSize.forProportions(baselineRate: 0.05, minimumDetectableEffect: 0.1, power: 0.9)?.perVariant == 188
        )
        #expect(SampleSize.forProportions(baselineRate: 0.95, minimumDetectableEffect: 0.1) == nil)
        #expect(SampleSize.forProportions(baselineRate: 0.1, minimumDetectableEffect: 0) == nil)
        #expect(SampleSize.forProportions(baselineRate: 0.1, minimumDetectableEffect: 0.02, variants: 1) == nil)
    }

    /// σ 1, δ 0.5: 2(1.959964 + 0.841621)²/0.25 = 62.79 → 63; σ 100, δ 10, 4 variants (α' = 0.05/3), power 0.9:
    /// 2 701.91 → 2 702.
    @Test func sampleSizeForMeansMatchesHandCalculation() throws {
        #expect(SampleSize.forMeans(standardDeviation: 1, minimumDetectableEffect: 0.5)?.perVariant == 63)
        let four = try #require(
            SampleSize.forMeans(standardDeviation: 100, minimumDetectableEffect: 10, power: 0.9, variants: 4)
        )
        #expect(four.perVariant == 2702 && four.total == 4 * 2702)
        #expect(SampleSize.forMeans(standardDeviation: 0, minimumDetectableEffect: 1) == nil)
        #expect(SampleSize.forMeans(standardDeviation: 1, minimumDetectableEffect: 1, alpha: 1) == nil)
    }
}
