import Testing

@testable import VariantCore

/// What a daemon exports to Prometheus (`ExperimentExposition`) and the fleet's figures rebuilt from it
/// (`FleetState`): several hosts' exports, merged, give the report of one daemon that saw every record.
@Suite struct FleetStateTests {
    /// A deterministic stream of correlated records: units with their own error propensity, spread over hosts.
    struct Traffic {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            return UnitHash.finalize(state)
        }

        mutating func uniform() -> Double { Double(next() >> 11) / 0x1p53 }
    }

    static func entries(seed: UInt64, records: Int, definition: PhaseDefinition) -> [(host: Int, entry: ExperimentLedger.Entry)] {
        var traffic = Traffic(state: seed)
        return (0..<records).map { _ in
            let unit = Int(traffic.next() % 150)
            let variant = "v\(unit % 2)"
            let propensity = Double(unit % 7) / 20
            let measurements = Measurements(
                latencyMilliseconds: 40 + traffic.uniform() * 3000, error: traffic.uniform() < propensity,
                success: traffic.uniform() < 0.3 ? 1 : 0, costUSD: traffic.uniform() / 100,
                tokens: Double(Int(traffic.uniform() * 900)),
                custom: [CustomMeasurement(name: "rating", value: traffic.uniform() * 10 - 5)])
            let entry = ExperimentLedger.Entry(
                experiment: "e", variant: variant, measurements: measurements, shadow: false,
                unitHash: UnitHash.of("unit-\(unit)"), phase: definition)
            return (Int(traffic.next() % 3), entry)
        }
    }

    /// Parses exposition text into samples (test side; in production Prometheus does this), adding host labels.
    static func samples(of text: [UInt8], instance: String) throws -> [String: [PrometheusSample]] {
        var byName: [String: [PrometheusSample]] = [:]
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            let (series, value) = try #require(line.lastIndex(of: " ").map { (line[..<$0], line[line.index(after: $0)...]) })
            var labels = ["instance": instance, "job": "variantd"]
            let name: Substring
            if let brace = series.firstIndex(of: "{") {
                name = series[..<brace]
                var rest = series[series.index(after: brace)...].dropLast()
                while !rest.isEmpty {
                    let equals = try #require(rest.firstIndex(of: "="))
                    let key = String(rest[..<equals])
                    rest = rest[rest.index(equals, offsetBy: 2)...]
                    var labelValue = ""
                    while let character = rest.first, character != "\"" {
                        rest = rest.dropFirst()
                        if character == "\\", let escaped = rest.first {
                            rest = rest.dropFirst()
                            labelValue.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            labelValue.append(character)
                        }
                    }
                    rest = rest.dropFirst()
                    if rest.first == "," { rest = rest.dropFirst() }
                    labels[key] = labelValue
                }
            } else {
                name = series
            }
            byName[String(name), default: []].append(PrometheusSample(labels: labels, value: try #require(Double(value))))
        }
        return byName
    }

    static func exposition(of ledger: ExperimentLedger, experiment: Experiment, detail: ExperimentExposition.Detail) -> [UInt8] {
        var bytes: [UInt8] = []
        ExperimentExposition.write(
            ledger.currentPhases().map {
                ExperimentExposition.ExperimentState(
                    experiment: $0.experiment, phase: $0.phase,
                    guardedMetrics: ExperimentExposition.guardedMetrics(of: experiment.guardrails))
            }, disabled: Array(ledger.disabled.values), detail: detail, into: &bytes)
        return bytes
    }

    static func close(_ a: Double?, _ b: Double?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return abs(a - b) <= 1e-9 * max(1, abs(a), abs(b))
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func threeHostsExportedAndMergedGiveTheReportOfOneDaemonThatSawEveryRecord(seed: UInt64) throws {
        let merging = try experiment(salt: "fleet", weights: [50, 50])
        let definition = PhaseDefinition(merging)
        let hosts = [ExperimentLedger(), ExperimentLedger(), ExperimentLedger()]
        let single = ExperimentLedger()
        for (host, entry) in Self.entries(seed: seed, records: 1500, definition: definition) {
            _ = hosts[host].record([entry], now: someInstant)
            _ = single.record([entry], now: someInstant)
        }
        hosts[1].add(assignmentCounts: [(key: .init(experiment: "e", variant: "v1"), count: 7)])
        single.add(assignmentCounts: [(key: .init(experiment: "e", variant: "v1"), count: 7)])

        var samples: [String: [PrometheusSample]] = [:]
        for (index, host) in hosts.enumerated() {
            let text = Self.exposition(of: host, experiment: merging, detail: .init(unitSampleSize: 4096))
            samples.merge(try Self.samples(of: text, instance: "host\(index):9464")) { $0 + $1 }
        }
        let fleet = try FleetState.assemble(experiment: merging, samples: samples)
        #expect(fleet.hosts.map(\.name) == ["host0:9464", "host1:9464", "host2:9464"])
        #expect(fleet.hosts.allSatisfy { $0.counted && $0.note == nil })

        let fleetReport = fleet.report()
        let singleReport = ExperimentReport(
            experiment: merging, phase: single.currentPhase(of: "e", definition: definition, at: someInstant),
            currentPhase: 1, disabled: [:])
        for (f, s) in zip(fleetReport.aggregates, singleReport.aggregates) {
            #expect(f.assignments == s.assignments && f.records == s.records && f.unitRecords == s.unitRecords)
            #expect(f.errors.trials == s.errors.trials && f.errors.successes == s.errors.successes)
            #expect(f.errorGroups == s.errorGroups && f.successGroups == s.successGroups)
            #expect(f.latencyGroups.counts == s.latencyGroups.counts)
            #expect(f.latencyMilliseconds.count == s.latencyMilliseconds.count)
            #expect(Self.close(f.latencyMilliseconds.mean, s.latencyMilliseconds.mean))
            #expect(Self.close(f.latencyMilliseconds.variance, s.latencyMilliseconds.variance))
            #expect(Self.close(f.custom["rating"]?.mean, s.custom["rating"]?.mean))
            #expect((f.latencyPercentile(50) == nil) == (s.latencyPercentile(50) == nil))
        }
        let fleetComparisons = fleetReport.comparisons.flatMap { $0 }
        let singleComparisons = singleReport.comparisons.flatMap { $0 }
        #expect(fleetComparisons.map(\.metric) == singleComparisons.map(\.metric))
        #expect(fleetComparisons.map(\.metric).contains("custom.rating") || fleetComparisons.count >= 5)
        for (f, s) in zip(fleetComparisons, singleComparisons) {
            #expect(Self.close(f.comparison.difference, s.comparison.difference), "\(f.metric)")
            #expect(Self.close(f.comparison.standardError, s.comparison.standardError), "\(f.metric)")
            #expect(Self.close(f.comparison.pValue, s.comparison.pValue), "\(f.metric)")
            #expect(Self.close(f.comparison.alwaysValidPValue, s.comparison.alwaysValidPValue), "\(f.metric)")
        }
        #expect(fleetReport.sampledUnits == singleReport.sampledUnits)
        #expect(fleetReport.unitsAreExact && singleReport.unitsAreExact)
        #expect(Self.close(fleetReport.sampleRatio?.pValue, singleReport.sampleRatio?.pValue))
        #expect(fleetReport.requiredPerVariant == singleReport.requiredPerVariant)
        #expect(fleetReport.verdict == singleReport.verdict)
    }

    /// Above the exported sample size, the fleet's unit sample is the smallest hashes of all hosts' units: the
    /// sample one daemon would hold with that capacity.
    @Test func theFleetsUnitSampleIsTheSmallestHashesOfAllHosts() throws {
        let merging = try experiment(salt: "fleet", weights: [50, 50])
        let definition = PhaseDefinition(merging)
        let hosts = [ExperimentLedger(), ExperimentLedger(), ExperimentLedger()]
        var expected = DistinctUnitSample(capacity: 64)
        for (host, entry) in Self.entries(seed: 9, records: 900, definition: definition) {
            _ = hosts[host].record([entry], now: someInstant)
        }
        for unit in 0..<150 {
            let hash = UnitHash.of("unit-\(unit)")
            let encoded = ExperimentExposition.decodeUnit(Double(ExperimentExposition.encodeUnit(hash: hash, variant: 0)))!
            expected.add(hash: encoded.hash, variant: unit % 2)
        }
        // Units enter a ledger's sample through assignment tallies; here records alone, so feed the samples.
        var samples: [String: [PrometheusSample]] = [:]
        for (index, host) in hosts.enumerated() {
            var phases = host.currentPhases()
            for unit in 0..<150 where unit % 3 == index || unit % 5 == 0 {
                phases[0].phase.units.add(hash: UnitHash.of("unit-\(unit)"), variant: unit % 2)
            }
            var bytes: [UInt8] = []
            ExperimentExposition.write(
                phases.map { .init(experiment: $0.experiment, phase: $0.phase, guardedMetrics: []) }, disabled: [],
                detail: .init(unitSampleSize: 64), into: &bytes)
            samples.merge(try Self.samples(of: bytes, instance: "h\(index)")) { $0 + $1 }
            #expect((samples["variantd_unit_sample"] ?? []).filter { $0.labels["instance"] == "h\(index)" }.count == 64)
        }
        let fleet = try FleetState.assemble(experiment: merging, samples: samples)
        #expect(fleet.phase.units == expected)
        #expect(!fleet.report().unitsAreExact)
    }

    @Test func aUnitHashKeepsItsTop45BitsAndItsVariantThroughADouble() {
        for unit in 0..<1000 {
            let hash = UnitHash.of("u\(unit)")
            let variant = UInt8(unit % 256)
            let encoded = ExperimentExposition.encodeUnit(hash: hash, variant: variant)
            #expect(Double(encoded) < 0x1p53)
            let decoded = ExperimentExposition.decodeUnit(Double(encoded))
            #expect(decoded?.hash == (hash >> 19) << 19 && decoded?.variant == variant)
        }
        #expect(ExperimentExposition.decodeUnit(-1) == nil)
        #expect(ExperimentExposition.decodeUnit(0.5) == nil)
        #expect(ExperimentExposition.decodeUnit(0x1p60) == nil)
    }

    /// Every sample line belongs to a family announced by `# HELP` and `# TYPE` before it, each family once.
    @Test func theExpositionAnnouncesEveryFamilyOnceBeforeItsSamples() throws {
        let merging = try experiment(salt: "fleet", weights: [50, 50])
        let ledger = ExperimentLedger()
        for (_, entry) in Self.entries(seed: 5, records: 600, definition: PhaseDefinition(merging)) {
            var guarded = entry
            guarded.guardrails = (control: "v0", settings: merging.guardrails)
            _ = ledger.record([guarded], now: someInstant)
        }
        _ = ledger.disable(
            DisabledTreatment(experiment: "e", variant: "v1", at: someInstant, automatic: false, reason: "test"),
            actor: "uid 0")
        let text = String(decoding: Self.exposition(of: ledger, experiment: merging, detail: .init()), as: UTF8.self)
        var announced: [String] = []
        var current: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let name = String(line.split(separator: " ")[2])
                #expect(!announced.contains(name), "\(name) announced twice")
                announced.append(name)
                current = name
            } else if !line.hasPrefix("#") {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let family = try #require(current)
                #expect(name == family || name == family + "_bucket" || name == family + "_sum" || name == family + "_count")
            }
        }
        #expect(text.contains(#"variantd_treatment_disabled{experiment="e",variant="v1",by="operator"} 1"#))
        #expect(text.contains(#"variantd_records_total{experiment="e",phase="1",variant="v0"} "#))
        #expect(text.contains(#"variantd_latency_seconds_bucket{experiment="e",phase="1",variant="v0",le="+Inf"} "#))
        #expect(text.contains(#"variantd_metric_group_observations_total{experiment="e",phase="1",variant="v1",metric="custom.rating",group="63"} "#))
        #expect(text.contains(#"variantd_guardrail_always_valid_p_value{experiment="e",phase="1",variant="v1",metric="error_rate"} "#), "\(text.suffix(3000))")
    }

    /// With group totals for guardrail metrics only, other metrics export no groups and are analysed by record.
    @Test func lessDetailExportsGroupTotalsOfGuardrailMetricsOnly() throws {
        let merging = try experiment(salt: "fleet", weights: [50, 50])
        let ledger = ExperimentLedger()
        for (_, entry) in Self.entries(seed: 6, records: 300, definition: PhaseDefinition(merging)) {
            _ = ledger.record([entry], now: someInstant)
        }
        let text = Self.exposition(of: ledger, experiment: merging, detail: .init(unitGroups: .guardrail))
        let samples = try Self.samples(of: text, instance: "h")
        let grouped = Set((samples["variantd_metric_group_observations_total"] ?? []).compactMap { $0.labels["metric"] })
        #expect(grouped == ["error", "latency_ms"])
        let fleet = try FleetState.assemble(experiment: merging, samples: samples)
        #expect(fleet.phase.variants["v1"]?.costGroups.isEmpty == true)
        #expect(fleet.phase.variants["v1"]?.costEstimate.varianceByUnit == nil)
        #expect(fleet.phase.variants["v1"]?.errorEstimate().varianceByUnit != nil)
        let none = try Self.samples(of: Self.exposition(of: ledger, experiment: merging, detail: .init(unitGroups: .none)), instance: "h")
        #expect(none["variantd_metric_group_observations_total"] == nil)
    }

    @Test func aHostOnAnotherConfigurationIsListedAndNotCounted() throws {
        let current = try experiment(salt: "fleet", weights: [50, 50])
        let earlier = try experiment(salt: "fleet", weights: [90, 10])
        let (onCurrent, onEarlier) = (ExperimentLedger(), ExperimentLedger())
        for (_, entry) in Self.entries(seed: 7, records: 100, definition: PhaseDefinition(current)) {
            _ = onCurrent.record([entry], now: someInstant)
            var old = entry
            old.phase = PhaseDefinition(earlier)
            _ = onEarlier.record([old], now: someInstant)
        }
        var samples = try Self.samples(of: Self.exposition(of: onCurrent, experiment: current, detail: .init()), instance: "a")
        samples.merge(try Self.samples(of: Self.exposition(of: onEarlier, experiment: earlier, detail: .init()), instance: "b")) { $0 + $1 }
        let fleet = try FleetState.assemble(experiment: current, samples: samples)
        #expect(fleet.hosts.map(\.counted) == [true, false])
        #expect(fleet.hosts[1].note?.contains("another configuration") == true)
        #expect(fleet.phase.variants["v0"]?.records == onCurrent.aggregates(experiment: "e")["v0"]?.records)

        let onlyEarlier = try Self.samples(of: Self.exposition(of: onEarlier, experiment: earlier, detail: .init()), instance: "b")
        #expect(throws: FleetError.self) { try FleetState.assemble(experiment: current, samples: onlyEarlier) }
        do {
            _ = try FleetState.assemble(experiment: current, samples: onlyEarlier)
        } catch {
            #expect(error.code == .phaseMismatch)
        }
        do {
            _ = try FleetState.assemble(experiment: current, samples: [:])
        } catch {
            #expect(error.code == .noSeries)
        }
    }

    @Test func prometheusAnswersAreReadAndNonsenseIsRefusedWithACode() throws {
        let answer = #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a","variant":"v0"},"value":[1700000000.5,"42"]},{"metric":{},"value":[1,"+Inf"]}]}}"#
        let samples = try PrometheusSample.vector(from: Array(answer.utf8))
        #expect(samples == [
            PrometheusSample(labels: ["instance": "a", "variant": "v0"], value: 42),
            PrometheusSample(labels: [:], value: .infinity),
        ])
        let cases: [(String, FleetError.Code)] = [
            ("<html>not prometheus</html>", .invalidAnswer),
            (#"{"status":"error","errorType":"bad_data","error":"parse error"}"#, .queryFailed),
            (#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, .invalidAnswer),
            (#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#, .invalidAnswer),
        ]
        for (text, code) in cases {
            do {
                _ = try PrometheusSample.vector(from: Array(text.utf8))
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.code == code, "\(text)")
            }
        }
    }
}
