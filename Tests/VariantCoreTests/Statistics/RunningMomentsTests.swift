import Foundation
import PropertyBased
import Testing

@testable import VariantCore

@Suite struct RunningMomentsTests {
    /// The two-pass variance, the textbook reference the streaming update must match.
    static func twoPassVariance(_ values: [Double]) -> Double {
        let mean = values.reduce(0, +) / Double(values.count)
        return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
    }

    @Test func smallSampleMatchesHandComputedValues() {
        let moments = RunningMoments([2, 4, 4, 4, 5, 5, 7, 9])
        #expect(moments.count == 8)
        #expect(moments.mean == 5)
        #expect(moments.sum == 40)
        #expect(moments.m2 == 32)
        #expect(abs(moments.variance - 32.0 / 7) < 1e-15)
        #expect(abs(moments.standardDeviation - (32.0 / 7).squareRoot()) < 1e-15)
        #expect(abs(moments.standardErrorOfMean - (32.0 / 7 / 8).squareRoot()) < 1e-15)
        #expect(moments.min == 2)
        #expect(moments.max == 9)
    }

    @Test func emptyAndSingleValueSummariesReportZeroSpread() {
        let empty = RunningMoments()
        #expect(empty.isEmpty)
        #expect(empty.mean == 0 && empty.variance == 0 && empty.standardErrorOfMean == 0 && empty.sum == 0)
        let single = RunningMoments([3.5])
        #expect(single.mean == 3.5 && single.variance == 0 && single.min == 3.5 && single.max == 3.5)
    }

    @Test func nonFiniteValuesAreRefusedAndLeaveTheSummaryUnchanged() {
        var moments = RunningMoments([1, 2, 3])
        let before = moments
        let accepted = [moments.add(.nan), moments.add(.infinity), moments.add(-.infinity)]
        #expect(accepted == [false, false, false])
        #expect(moments == before)
    }

    /// Values of 10⁹ plus noise of order 1: the naive Σx² − n·x̄² formula loses every significant digit here
    /// (10¹⁸-sized terms against a difference of order 10³), while Welford's update keeps the variance to ~1e-9.
    @Test func varianceStaysAccurateFarFromZero() {
        let noise: [Double] = (0..<1000).map { index in Double((index * 7919) % 1000) / 1000 - 0.5 }
        let shifted = noise.map { 1e9 + $0 }
        let moments = RunningMoments(shifted)
        let reference = Self.twoPassVariance(noise)
        #expect(abs(moments.variance - reference) / reference < 1e-6)
        #expect(abs(moments.mean - 1e9) < 1e-3)

        var naiveSum = 0.0
        var naiveSquares = 0.0
        for value in shifted {
            naiveSum += value
            naiveSquares += value * value
        }
        let naive = (naiveSquares - naiveSum * naiveSum / 1000) / 999
        #expect(abs(naive - reference) / reference > 1e-2, "the naive formula should fail here, or this test is moot")
    }

    @Test func mergingIntoEmptyOrWithEmptyIsIdentity() {
        let moments = RunningMoments([1, 5, 9])
        #expect(RunningMoments().merging(moments) == moments)
        #expect(moments.merging(RunningMoments()) == moments)
    }

    @Test func restoringFromStoredFieldsRoundTrips() throws {
        let moments = RunningMoments([0.5, 7.25, 3, 12])
        let restored = RunningMoments(
            count: moments.count,
            mean: moments.mean,
            m2: moments.m2,
            min: moments.min,
            max: moments.max
        )
        #expect(restored == moments)
        let decoded = try JSONDecoder().decode(RunningMoments.self, from: JSONEncoder().encode(moments))
        #expect(decoded == moments)
    }

    @Test func restoringImpossibleFieldsGivesAnEmptySummary() {
        #expect(RunningMoments(count: -1, mean: 1, m2: 1, min: 0, max: 2).isEmpty)
        #expect(RunningMoments(count: 3, mean: .nan, m2: 1, min: 0, max: 2).isEmpty)
        #expect(RunningMoments(count: 3, mean: 1, m2: -4, min: 0, max: 2).m2 == 0)
    }

    /// Merging two summaries equals adding the second one's values one by one, for any split of any data.
    @Test func mergeEqualsSequentialAdding() async {
        let values = Gen.double(in: -1e6...1e6).array(of: 0...60)
        await propertyCheck(count: 300, input: values, values) { first, second in
            var sequential = RunningMoments(first)
            for value in second { sequential.add(value) }
            let merged = RunningMoments(first).merging(RunningMoments(second))
            #expect(merged.count == sequential.count)
            #expect(merged.min == sequential.min && merged.max == sequential.max)
            let scale = Swift.max(1, abs(sequential.mean))
            #expect(abs(merged.mean - sequential.mean) <= 1e-9 * scale)
            let spread = Swift.max(1, sequential.m2)
            #expect(abs(merged.m2 - sequential.m2) <= 1e-9 * spread)
            if sequential.count > 1 {
                let all = first + second
                #expect(
                    abs(sequential.variance - Self.twoPassVariance(all)) <= 1e-9 * Swift.max(1, sequential.variance)
                )
            }
        }
    }
}

@Suite struct ProportionCountsTests {
    @Test func rateCountsFractionalSuccesses() {
        var counts = ProportionCounts()
        #expect(counts.rate == 0)
        counts.add(true)
        counts.add(false)
        let accepted = [counts.add(fraction: 0.5), counts.add(fraction: 1.5), counts.add(fraction: .nan)]
        #expect(accepted == [true, false, false])
        #expect(counts.trials == 3)
        #expect(counts.successes == 1.5)
        #expect(counts.rate == 0.5)
        #expect(counts.failures == 1.5)
    }

    @Test func impossibleTotalsAreClamped() {
        #expect(ProportionCounts(trials: 10, successes: 12).successes == 10)
        #expect(ProportionCounts(trials: -3, successes: 1) == ProportionCounts(trials: 0, successes: 0))
        #expect(ProportionCounts(trials: 4, successes: .nan).successes == 0)
    }

    @Test func mergeAddsTotals() {
        var counts = ProportionCounts(trials: 10, successes: 3)
        counts.merge(ProportionCounts(trials: 5, successes: 2.5))
        #expect(counts == ProportionCounts(trials: 15, successes: 5.5))
    }
}
