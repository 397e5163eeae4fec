import Histogram
import PropertyBased
import Testing

@testable import VariantCore

/// The metrics endpoint's experiment samples (`ExperimentExposition`): the latency buckets an aggregate keeps for
/// it, and the writer's chunks and number formats.
@Suite struct ExpositionTests {
    /// The latency buckets as first defined: each recorded histogram bucket counted under the first bound at or
    /// above its highest value, read by walking the histogram.
    static func bucketsFromHistogram(_ aggregate: VariantAggregate) -> [UInt64] {
        let bounds = VariantAggregate.fixedLatencyBoundsSeconds.map { UInt64(($0 * 1_000_000).rounded()) }
        var counts = [UInt64](repeating: 0, count: bounds.count)
        for bucket in aggregate.latencyHistogram.recordedValues() {
            if let index = bounds.firstIndex(where: { bucket.value <= $0 }) { counts[index] += UInt64(bucket.count) }
        }
        return counts
    }

    /// Latencies in milliseconds near every bound (at it, just below, just above), and spread over the range.
    static let latencyGenerator = Gen.oneOf(
        // A bound and an offset of ±0.6 ms (±600 µs) in 1 µs steps: bucket edges around each bound.
        Gen.int(in: 0...(VariantAggregate.fixedLatencyBoundsSeconds.count * 1201 - 1)).map { choice in
            let bound = VariantAggregate.fixedLatencyBoundsSeconds[choice / 1201]
            return max(0.001, bound * 1000 + Double(choice % 1201 - 600) / 1000)
        },
        Gen.double(in: 0...200_000)
    ).array(of: 1...300)

    @Test func theBucketsKeptWhileRecordingEqualTheHistogramsBucketsCountedUnderTheirBounds() async {
        await propertyCheck(count: 100, input: Self.latencyGenerator, Self.latencyGenerator) { first, second in
            var one = VariantAggregate()
            var other = VariantAggregate()
            var both = VariantAggregate()
            for latency in first {
                one.add(Measurements(latencyMilliseconds: latency), shadow: false)
                both.add(Measurements(latencyMilliseconds: latency), shadow: false)
            }
            for latency in second {
                other.add(Measurements(latencyMilliseconds: latency), shadow: false)
                both.add(Measurements(latencyMilliseconds: latency), shadow: false)
            }
            #expect(one.fixedLatencyBuckets == Self.bucketsFromHistogram(one))
            var merged = one
            merged.merge(other)
            #expect(merged.fixedLatencyBuckets == Self.bucketsFromHistogram(both))
            #expect(merged.fixedLatencyBuckets == both.fixedLatencyBuckets)
        }
    }

    /// Found by the property above (CI, 2026-12-07): every latency beyond the last bound left the buckets unmade,
    /// while counting the histogram's gives zeros.
    @Test func latenciesBeyondTheLastBoundMakeZeroBuckets() {
        var aggregate = VariantAggregate()
        aggregate.add(Measurements(latencyMilliseconds: 150_000), shadow: false)
        #expect(aggregate.fixedLatencyBuckets == Self.bucketsFromHistogram(aggregate))
        #expect(aggregate.fixedLatencyBuckets == [UInt64](repeating: 0, count: VariantAggregate.fixedLatencyBoundsSeconds.count))
        #expect(VariantAggregate().fixedLatencyBuckets.isEmpty)
    }

    @Test func theBucketsAreRebuiltWhenTheStateFileIsRestored() throws {
        let ledger = ExperimentLedger()
        let latencies: [Double] = [0.5, 24.9, 25, 25.1, 99.8, 100, 100.4, 250, 999, 1000, 119_999, 120_000, 4e6]
        _ = ledger.record(
            latencies.map {
                ExperimentLedger.Entry(
                    experiment: "e", variant: "a", measurements: Measurements(latencyMilliseconds: $0), shadow: false)
            })
        let restored = ExperimentLedger()
        _ = try restored.restore(from: ledger.encodedState(savedAt: someInstant).bytes)
        let before = try #require(ledger.aggregates(experiment: "e")["a"])
        let after = try #require(restored.aggregates(experiment: "e")["a"])
        #expect(after.fixedLatencyBuckets == before.fixedLatencyBuckets)
        #expect(after.fixedLatencyBuckets == Self.bucketsFromHistogram(after))
        // Near 120 s the histogram's buckets are 0.52 s wide: 119.999 s and 120 s share one that ends above the last
        // bound, so they and 4,000 s count in +Inf only.
        #expect(before.fixedLatencyBuckets.reduce(0, +) == UInt64(latencies.count - 3))
    }

    /// A body larger than one chunk, handed out in chunks, is the same bytes as written whole, and every line is
    /// whole: `name{labels} value`.
    @Test func aBodyOfManyChunksIsWholeLines() throws {
        let ledger = ExperimentLedger()
        for experiment in 0..<30 {
            let entries = (0..<200).map { index -> ExperimentLedger.Entry in
                let value = Double(index)
                let measurements = Measurements(
                    latencyMilliseconds: value * 1.25, error: index % 9 == 0, costUSD: value / 30_000,
                    custom: [CustomMeasurement(name: "score", value: -value / 7)])
                return ExperimentLedger.Entry(
                    experiment: "experiment-\(experiment)", variant: index % 2 == 0 ? "control" : "treatment",
                    measurements: measurements, shadow: false, unitHash: UnitHash.of("unit-\(index % 83)"))
            }
            _ = ledger.record(entries)
        }
        let states = ledger.currentPhases().map {
            ExperimentExposition.ExperimentState(experiment: $0.experiment, phase: $0.phase, guardedMetrics: [])
        }
        var chunks: [[UInt8]] = []
        ExperimentExposition.write(states, disabled: [], detail: .init()) { chunks.append(Array($0)) }
        var whole: [UInt8] = []
        ExperimentExposition.write(states, disabled: [], detail: .init(), into: &whole)

        #expect(chunks.count > 10)
        #expect(chunks.allSatisfy { $0.count <= ExpositionWriter.chunkSize })
        #expect(Array(chunks.joined()) == whole)
        let lines = String(decoding: whole, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "")
        for line in lines.dropLast() where !line.hasPrefix("# ") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "\(line)")
            #expect(parts.first?.hasPrefix("variantd_") == true, "\(line)")
            #expect(parts.last.flatMap { Double($0) } != nil, "\(line)")
        }
        // 30 experiments × 2 variants × 4 metrics (error, latency_ms, cost_usd, custom.score) × 64 groups × 2.
        #expect(lines.count { $0.contains(#",group=""#) } == 30 * 2 * 4 * 64 * 2)
    }

    /// Values as Prometheus reads them: whole numbers without a fraction, others shortest round-tripping,
    /// non-finite ones as `NaN`, `+Inf` and `-Inf` (never JSON's `null`).
    @Test(arguments: [
        (0.0, "0"), (-0.0, "0"), (3.0, "3"), (-42.0, "-42"), (0.1, "0.1"), (-2.5, "-2.5"),
        (9_007_199_254_740_991.0, "9007199254740991"), (1e16, "1e+16"), (1.5e-7, "1.5e-07"),
        (Double.nan, "NaN"), (Double.infinity, "+Inf"), (-Double.infinity, "-Inf"),
    ] as [(Double, String)])
    func sampleValuesAreWrittenAsPrometheusReadsThem(value: Double, text: String) {
        var bytes: [UInt8] = []
        withoutActuallyEscaping({ (chunk: UnsafeRawBufferPointer) in bytes.append(contentsOf: chunk) }) { emit in
            var writer = ExpositionWriter(emit: emit)
            writer.sample("variantd_x", ExpositionWriter.labels([("a", "b")]), value: value)
            writer.sample("variantd_y", [], integer: Int.min + 1)
            writer.flush()
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "variantd_x{a=\"b\"} \(text)\nvariantd_y -9223372036854775807\n")
    }
}
