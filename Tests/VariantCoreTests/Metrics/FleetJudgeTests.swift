import Foundation
import Testing

@testable import VariantCore

/// The fleet's guardrail: the daemon's evaluation on the fleet's merged phase, once per treatment and
/// configuration, with its state kept across restarts.
@Suite struct FleetJudgeTests {
    /// Three hosts' exports of `records` records per variant, the treatment failing `treatmentErrorRate` of calls.
    static func fleet(records: Int, treatmentErrorRate: Double, seed: UInt64) throws -> FleetState {
        let experiment = try experiment(salt: "judge", weights: [50, 50])
        let definition = PhaseDefinition(experiment)
        let hosts = [ExperimentLedger(), ExperimentLedger(), ExperimentLedger()]
        var traffic = FleetStateTests.Traffic(state: seed)
        for index in 0..<(2 * records) {
            let variant = index % 2 == 0 ? "v0" : "v1"
            let unit = "u\(index % 400)-\(variant)"
            let rate = variant == "v0" ? 0.05 : treatmentErrorRate
            let entry = ExperimentLedger.Entry(
                experiment: "e", variant: variant,
                measurements: Measurements(latencyMilliseconds: 500 + traffic.uniform() * 100, error: traffic.uniform() < rate),
                shadow: false, unitHash: UnitHash.of(unit), phase: definition)
            _ = hosts[index % 3].record([entry], now: someInstant)
        }
        var samples: [String: [PrometheusSample]] = [:]
        for (index, host) in hosts.enumerated() {
            let text = FleetStateTests.exposition(of: host, experiment: experiment, detail: .init())
            samples.merge(try FleetStateTests.samples(of: text, instance: "h\(index)")) { $0 + $1 }
        }
        return try FleetState.assemble(experiment: experiment, samples: samples)
    }

    @Test func aHarmfulTreatmentIsDecidedOnceAndTheDecisionSurvivesARestart() throws {
        var judge = FleetJudge()
        let harmful = try Self.fleet(records: 1500, treatmentErrorRate: 0.20, seed: 1)
        let decisions = judge.judge(harmful, at: someInstant)
        let decision = try #require(decisions.first)
        #expect(decisions.count == 1 && decision.variant == "v1" && !decision.published)
        #expect(decision.reason.hasPrefix("fleet: "))
        let evidence = try #require(try JSONParser.parse(Array(decision.evidence.utf8)).objectValue)
        #expect(evidence["hosts_counted"] == .number(3))
        #expect(evidence["metric"] == .string("error_rate"))
        #expect(judge.unpublished == [decision])

        // Published, then restarted from its saved state: not decided or published again.
        judge.markPublished(decision)
        let restored = try JSONDecoder().decode(FleetJudge.self, from: JSONEncoder().encode(judge))
        #expect(restored == judge)
        var again = restored
        #expect(again.judge(harmful, at: someInstant).isEmpty)
        #expect(again.unpublished.isEmpty)
        // A treatment the document already disables is not judged.
        var fresh = FleetJudge()
        #expect(fresh.judge(harmful, alreadyDisabled: ["v1"], at: someInstant).isEmpty)
    }

    @Test func anAATreatmentIsNotDisabledAcrossManyLooks() throws {
        var judge = FleetJudge()
        for (look, records) in [300, 600, 900, 1200, 1500].enumerated() {
            let fleet = try Self.fleet(records: records, treatmentErrorRate: 0.05, seed: UInt64(10 + look))
            #expect(judge.judge(fleet, at: someInstant).isEmpty, "look \(look)")
        }
        #expect(judge.decisions.isEmpty)
        #expect(judge.tests.values.first?["v1"]?["error_rate"]?.evaluations ?? 0 > 0)
    }

    /// Below the guardrails' minimum samples nothing is decided, however bad the treatment looks; with no records
    /// at all the fleet has no series (an error for the caller, never a decision).
    @Test func nothingIsDecidedWithoutEnoughData() throws {
        var judge = FleetJudge()
        let few = try Self.fleet(records: 40, treatmentErrorRate: 0.9, seed: 3)
        #expect(judge.judge(few, at: someInstant).isEmpty)
        #expect(throws: FleetError.self) { try Self.fleet(records: 0, treatmentErrorRate: 0.9, seed: 3) }
    }
}
