import PropertyBased
import Testing
@testable import VariantCore

/// Analysis by unit: group totals, their variance, mergeability across daemons, the distinct-unit sample, and the
/// guardrail's error rates on clustered traffic.
@Suite struct AnalysisByUnitTests {
    /// The unit hash is part of the contract between hosts (a unit must fall in the same group everywhere); these
    /// values come from an independent Python implementation of FNV-1a 64 and SplitMix64's finalizer.
    @Test(arguments: [
        ("user-42", UInt64(8_797_103_408_588_478_355), 19), ("", 17_665_956_581_633_026_203, 27),
        ("ticket-1881", 11_440_605_674_804_294_306, 34), ("ü", 8_587_625_607_863_007_258, 26),
    ])
    func theUnitHashMatchesTheReference(unit: String, hash: UInt64, group: Int) {
        #expect(UnitHash.of(unit) == hash)
        #expect(UnitHash.group(of: hash) == group)
    }

    @Test func theGroupVarianceIsTheClusterRobustDeltaMethod() throws {
        var totals = UnitGroupTotals()
        // Group 0: 3 records summing to 3; group 1: 1 record of 0; group 5: 4 records summing to 1.
        for value in [1.0, 1, 1] { totals.add(value, group: 0) }
        totals.add(0, group: 1)
        for value in [0.0, 0, 0, 1] { totals.add(value, group: 5) }
        let mean = 4.0 / 8
        let residuals = [3 - mean * 3, 0 - mean * 1, 1 - mean * 4]
        let expected = 3.0 / 2 * residuals.map { $0 * $0 }.reduce(0, +) / 64
        #expect(totals.occupiedGroups == 3)
        #expect(abs(try #require(totals.varianceOfMean(about: mean)) - expected) < 1e-15)
        var single = UnitGroupTotals()
        single.add(1, group: 3)
        #expect(single.varianceOfMean(about: 1) == nil)
        #expect(UnitGroupTotals(counts: [1], sums: [1]) == nil)
        #expect(UnitGroupTotals(counts: totals.counts, sums: totals.sums) == totals)
    }

    /// Correlated records of one unit: the variance by unit sees what the variance by record misses.
    @Test func correlatedRecordsRaiseTheVarianceAboveTheRecordVariance() {
        var aggregate = VariantAggregate()
        var random = SplitMix64(seed: 7)
        for unit in 0..<200 {
            // Each unit either always errs or never does: the design effect is about the records per unit.
            let errs = random.nextUnit() < 0.1
            for _ in 0..<20 {
                aggregate.add(Measurements(error: errs), shadow: false, unitHash: UnitHash.of("unit-\(unit)"))
            }
        }
        let estimate = aggregate.errorEstimate()
        #expect(estimate.isByUnit)
        #expect(estimate.designEffect > 8 && estimate.designEffect < 40)
        var perRecord = VariantAggregate()
        for record in 0..<4000 { perRecord.add(Measurements(error: record % 10 == 0), shadow: false) }
        #expect(!perRecord.errorEstimate().isByUnit && perRecord.errorEstimate().designEffect == 1)
    }

    /// One record of a random workload: a unit (one of 30), a variant, and dyadic values, whose sums are exact in
    /// any order, so that counts and sums can be compared exactly.
    struct Record: Sendable, CustomStringConvertible {
        var unit: Int
        var variant: Int
        var error: Bool
        var latencyQuarterMilliseconds: Int
        var rating: Int
        var toFirstDaemon: Bool
        var description: String { "u\(unit) v\(variant) e\(error) l\(latencyQuarterMilliseconds) r\(rating) \(toFirstDaemon)" }
    }

    static let records = zip(
        Gen.int(in: 0...29), Gen.int(in: 0...1), Gen.bool, Gen.int(in: 1...4000), Gen.int(in: 1...5), Gen.bool
    ).map { Record(unit: $0, variant: $1, error: $2, latencyQuarterMilliseconds: $3, rating: $4, toFirstDaemon: $5) }
        .array(of: 0...400)

    /// Two daemons that each saw part of the records, merged, give the figures of one daemon that saw all of
    /// them: counts and sums exactly, derived figures to 1e-12.
    @Test func mergedLedgersGiveTheFiguresOfOneLedgerThatSawEveryRecord() async throws {
        let merging = try experiment(salt: "merge", weights: [50, 50])
        let definition = PhaseDefinition(merging)
        await propertyCheck(count: 100, input: Self.records) { records in
            let (first, second, all) = (ExperimentLedger(), ExperimentLedger(), ExperimentLedger())
            for record in records {
                let entry = ExperimentLedger.Entry(
                    experiment: "e", variant: "v\(record.variant)",
                    measurements: Measurements(
                        latencyMilliseconds: Double(record.latencyQuarterMilliseconds) / 4, error: record.error,
                        custom: [CustomMeasurement(name: "rating", value: Double(record.rating) / 2)]),
                    shadow: false, unitHash: UnitHash.of("unit-\(record.unit)"), phase: definition)
                _ = (record.toFirstDaemon ? first : second).record([entry])
                _ = all.record([entry])
            }
            var merged = first.currentPhase(of: "e", definition: definition, at: someInstant)
            merged.merge(second.currentPhase(of: "e", definition: definition, at: someInstant))
            let single = all.currentPhase(of: "e", definition: definition, at: someInstant)
            for name in ["v0", "v1"] {
                let m = merged.variants[name] ?? VariantAggregate()
                let s = single.variants[name] ?? VariantAggregate()
                #expect(m.records == s.records && m.unitRecords == s.unitRecords)
                #expect(m.errors == s.errors)
                #expect(m.errorGroups == s.errorGroups && m.latencyGroups == s.latencyGroups)
                #expect(m.customGroups == s.customGroups)
                #expect(m.latencyMilliseconds.count == s.latencyMilliseconds.count)
                #expect(m.latencyMilliseconds.sum == s.latencyMilliseconds.sum || Self.close(m.latencyMilliseconds.sum, s.latencyMilliseconds.sum))
                #expect(Self.close(m.latencyMilliseconds.m2, s.latencyMilliseconds.m2))
                #expect(m.latencyPercentile(95) == s.latencyPercentile(95))
            }
            let mergedReport = ExperimentReport(experiment: merging, phase: merged, currentPhase: 1, disabled: [:])
            let singleReport = ExperimentReport(experiment: merging, phase: single, currentPhase: 1, disabled: [:])
            for (m, s) in zip(mergedReport.comparisons.flatMap { $0 }, singleReport.comparisons.flatMap { $0 }) {
                #expect(m.metric == s.metric)
                #expect(Self.close(m.comparison.difference, s.comparison.difference))
                #expect(Self.close(m.comparison.standardError, s.comparison.standardError))
                #expect(Self.close(m.comparison.pValue, s.comparison.pValue))
                #expect(Self.close(m.comparison.alwaysValidPValue, s.comparison.alwaysValidPValue))
                #expect(Self.close(m.comparison.interval?.lower ?? 0, s.comparison.interval?.lower ?? 0))
            }
            #expect(mergedReport.verdict == singleReport.verdict)
        }
    }

    static func close(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) <= 1e-12 * max(1, abs(a), abs(b))
    }

    /// The union of two samples is the sample of the union, below and above capacity.
    @Test func unitSamplesMergeIntoTheSampleOfAllUnits() async {
        let units = zip(Gen.int(in: 0...500), Gen.bool).array(of: 0...300)
        await propertyCheck(count: 200, input: units) { units in
            var first = DistinctUnitSample(capacity: 64)
            var second = DistinctUnitSample(capacity: 64)
            var all = DistinctUnitSample(capacity: 64)
            for (unit, toFirst) in units {
                let hash = UnitHash.of("u\(unit)")
                let variant = unit % 3
                if toFirst { first.add(hash: hash, variant: variant) } else { second.add(hash: hash, variant: variant) }
                all.add(hash: hash, variant: variant)
            }
            first.merge(second)
            #expect(first == all)
            let distinct = Set(units.map(\.0)).count
            if distinct < 64 {
                #expect(all.isExact && Int(all.estimatedDistinctUnits) == distinct)
            }
        }
    }

    @Test func theDistinctUnitEstimateIsCloseAboveCapacity() {
        var sample = DistinctUnitSample()
        for unit in 0..<100_000 {
            sample.add(hash: UnitHash.of("user-\(unit)"), variant: unit % 2)
            sample.add(hash: UnitHash.of("user-\(unit)"), variant: unit % 2)  // asked twice, counted once
        }
        #expect(!sample.isExact)
        #expect(abs(sample.estimatedDistinctUnits / 100_000 - 1) < 0.05)
        let counts = sample.sampledCounts(variantCount: 2)
        #expect(counts.reduce(0, +) == DistinctUnitSample.defaultCapacity)
        let ratio = SampleRatioMismatch.test(observed: counts, expectedWeights: [50, 50])
        #expect(ratio?.mismatch == false)
    }

    /// Today's figures on the traffic: the rule by unit keeps false disables at or below α on each metric;
    /// the rule per record, on the same records, does not. Fixed seeds, so the figures repeat.
    @Test(arguments: [0.1, 0.3])
    func clusteredTrafficKeepsFalseDisablesUnderAlpha(correlation: Double) {
        let healthy = ClusteredGuardrailSimulation.Arm(errorRate: 0.05)
        let aa = ClusteredGuardrailSimulation(
            control: healthy, treatment: healthy, unitsPerArm: 40, maximumRecordsPerUnit: 50, correlation: correlation
        ).summarize(runs: 120, seed: 14)
        #expect(aa.disabledOnErrorRateShare <= 0.05 + 0.03)
        #expect(aa.disabledOnLatencyShare <= 0.05 + 0.03)
        #expect(aa.perRecordDisabledShare > aa.disabledShare)
        let harmful = ClusteredGuardrailSimulation.Arm(errorRate: 0.05, errorRateIncrease: 0.10)
        let ab = ClusteredGuardrailSimulation(
            control: healthy, treatment: harmful, unitsPerArm: 150, maximumRecordsPerUnit: 50, correlation: correlation
        ).summarize(runs: 40, seed: 15)
        #expect(ab.disabledShare >= 0.9)
    }
}
