import Testing
@testable import VariantCore

/// The `stats` op: summaries, comparisons with intervals and p-values, the split check and the recommendation.
@Suite struct StatsOpTests {
    func stats(_ ledger: ExperimentLedger, _ extra: String = "") throws -> JSONObject {
        let line = #"{"id":"s","op":"stats","experiment":"e"\#(extra)}"#
        let text = Responder.respond(to: line, snapshot: try RecordTests.snapshot(), now: someInstant, context: .detached(ledger: ledger))
        return try #require(try parseJSON(text).objectValue, "\(text)")
    }

    /// Control converts 10%, treatment 15%, `n` records each (per record: no units), assignments in the given
    /// counts, each from a distinct unit.
    func ledger(n: Int, assignments: (Int, Int) = (1000, 1000)) throws -> ExperimentLedger {
        let ledger = ExperimentLedger()
        var entries: [ExperimentLedger.Entry] = []
        for index in 0..<n {
            entries.append(.init(experiment: "e", variant: "control", measurements: Measurements(latencyMilliseconds: Double(400 + index % 50), success: index % 10 == 0 ? 1 : 0), shadow: false))
            entries.append(.init(experiment: "e", variant: "treatment", measurements: Measurements(latencyMilliseconds: Double(420 + index % 50), success: index % 20 < 3 ? 1 : 0), shadow: false))
        }
        #expect(ledger.record(entries).failures.allSatisfy { $0 == nil })
        var units = DistinctUnitSample()
        for unit in 0..<(assignments.0 + assignments.1) {
            units.add(hash: UnitHash.of("user-\(unit)"), variant: unit < assignments.0 ? 0 : 1)
        }
        let document = try ConfigDocument.validate(Array(RecordTests.document.utf8))
        ledger.add(
            [
                AssignmentTally.Gathered(
                    experiment: "e", definition: PhaseDefinition(document.experiments[0]),
                    counts: [("control", assignments.0), ("treatment", assignments.1)], units: units)
            ], at: someInstant)
        return ledger
    }

    @Test func comparesEachTreatmentWithTheControlAsTheStatisticsModuleDoes() throws {
        let answer = try stats(try ledger(n: 5000), #","minimum_detectable_effect":0.05"#)
        let variants = try #require(answer["variants"]?.arrayValue).compactMap(\.objectValue)
        #expect(variants.map { $0["name"] } == [.string("control"), .string("treatment")])
        #expect(variants[0]["success"]?.objectValue?["rate"] == .number(0.1))
        #expect(variants[1]["success"]?.objectValue?["rate"] == .number(0.15))
        #expect(variants[0]["latency_ms"]?.objectValue?["p50"] != .null)

        let comparison = try #require(answer["comparisons"]?.arrayValue?.first?.objectValue)
        #expect(comparison["variant"] == .string("treatment"))
        let success = try #require(comparison["metrics"]?.arrayValue?.compactMap(\.objectValue).first { $0["metric"] == .string("success") })
        let expected = try #require(ProportionComparison.compare(
            control: ProportionCounts(trials: 5000, successes: 500), treatment: ProportionCounts(trials: 5000, successes: 750)))
        // Records without units are analysed per record: the fixed-horizon figures are the classical test's.
        #expect(success["analysis"] == .string("record"))
        #expect(success["fixed_horizon_p_value"] == .number(expected.pValue))
        #expect(success["fixed_horizon_interval"] == .array([.number(expected.absoluteDifferenceInterval!.lower), .number(expected.absoluteDifferenceInterval!.upper)]))
        // The anytime-valid interval is wider, and contains the fixed-horizon one.
        let bounds = success["interval"]?.arrayValue ?? []
        let anytime = bounds.compactMap(\.numberValue)
        #expect(anytime.count == 2 && anytime[0] < expected.absoluteDifferenceInterval!.lower && anytime[1] > expected.absoluteDifferenceInterval!.upper)
        #expect(anytime[0] > 0)
        #expect(success["verdict"] == .string("better"))
        #expect(variants[0]["units"] == .number(1000) && variants[0]["assignments"] == .number(1000))
        let latency = try #require(comparison["metrics"]?.arrayValue?.compactMap(\.objectValue).first { $0["metric"] == .string("latency_ms") })
        #expect(latency["test"] == .string("welch_t") && latency["verdict"] == .string("worse"))

        #expect(answer["sample_ratio"]?.objectValue?["mismatch"] == .bool(false))
        let recommendation = try #require(answer["recommendation"]?.objectValue)
        #expect(recommendation["verdict"] == .string("winner"))
        #expect(recommendation["variant"] == .string("treatment"))
    }

    @Test func aSmallSampleNeedsMoreAndSaysHowMany() throws {
        let answer = try stats(try ledger(n: 200))
        let size = try #require(answer["sample_size"]?.objectValue)
        #expect(size["metric"] == .string("success"))
        #expect(size["reached"] == .bool(false))
        let required = try #require(size["required_per_variant"]?.integerValue)
        #expect(required > 200)
        let recommendation = try #require(answer["recommendation"]?.objectValue)
        #expect(recommendation["verdict"] == .string("needs_more_samples"))
        #expect(recommendation["reason"]?.stringValue?.hasPrefix("\(required - 200) more samples") == true)
    }

    /// The issue's case: the control had 0 records, and the recommendation said `no_difference` "with the sample
    /// reached". No verdict without data in every variant.
    @Test(arguments: ["control", "treatment"])
    func aVariantWithoutRecordsGetsNoVerdict(silent: String) throws {
        let ledger = ExperimentLedger()
        let measured = silent == "control" ? "treatment" : "control"
        let entries = (0..<5000).map { index in
            ExperimentLedger.Entry(
                experiment: "e", variant: measured, measurements: Measurements(success: index % 10 == 0 ? 1 : 0), shadow: false)
        }
        #expect(ledger.record(entries).failures.allSatisfy { $0 == nil })
        let recommendation = try #require(try stats(ledger)["recommendation"]?.objectValue)
        #expect(recommendation["verdict"] == .string("needs_more_samples"))
        #expect(recommendation["reason"] == .string("'\(silent)' has no success records yet; every variant needs some before any verdict"))
    }

    @Test func aBrokenSplitIsFlaggedBeforeAnyWinner() throws {
        let answer = try stats(try ledger(n: 5000, assignments: (1000, 800)), #","minimum_detectable_effect":0.05"#)
        #expect(answer["sample_ratio"]?.objectValue?["mismatch"] == .bool(true))
        #expect(answer["sample_ratio"]?.objectValue?["on"] == .string("units"))
        #expect(answer["recommendation"]?.objectValue?["verdict"] == .string("sample_ratio_mismatch"))
    }

    @Test func aDisabledTreatmentIsReportedFirstAndNoDataIsSaid() throws {
        let ledger = try ledger(n: 1000)
        _ = ledger.disable(DisabledTreatment(experiment: "e", variant: "treatment", at: someInstant, automatic: false, reason: "incident"), actor: "uid 0")
        let answer = try stats(ledger)
        #expect(answer["recommendation"]?.objectValue?["verdict"] == .string("guardrail_breached"))
        #expect(answer["variants"]?.arrayValue?[1].objectValue?["disabled"]?.objectValue?["reason"] == .string("incident"))
        #expect(try stats(ExperimentLedger())["recommendation"]?.objectValue?["verdict"] == .string("no_data"))
        let unknown = Responder.respond(to: #"{"op":"stats","experiment":"nope"}"#, snapshot: try RecordTests.snapshot(), now: someInstant, context: .detached())
        #expect(unknown.contains("unknown_experiment"))
    }
}
