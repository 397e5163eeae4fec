import Testing
@testable import VariantCore

/// The state file: what is written comes back exactly, and a damaged file is refused, never half-applied.
@Suite struct LedgerPersistenceTests {
    func filledLedger() throws -> ExperimentLedger {
        let ledger = ExperimentLedger()
        for index in 0..<500 {
            try ledger.record(
                experiment: "e", variant: index % 2 == 0 ? "control" : "treatment",
                measurements: Measurements(
                    latencyMilliseconds: Double(index % 97) * 3.7 + 0.1, error: index % 13 == 0, success: index % 3 == 0 ? 1 : 0.5,
                    costUSD: 0.001 * Double(index % 7), tokens: Double(index), custom: [CustomMeasurement(name: "rating", value: Double(index % 5))]),
                shadow: false)
            ledger.add(assignmentCounts: [(.init(experiment: "e", variant: index % 3 == 0 ? "control" : "treatment"), 1)])
        }
        _ = ledger.disable(
            DisabledTreatment(experiment: "e", variant: "treatment", at: someInstant, automatic: true, reason: "errors up"),
            actor: "guardrail", details: JSONObject([("p_value", .number(0.001))]))
        ledger.log(LedgerEvent(at: someInstant, kind: .configApplied, actor: "config source", message: "applied \"x\"\n"))
        return ledger
    }

    @Test func aRestoredLedgerWritesTheSameStateAndAnswersTheSame() throws {
        let original = try filledLedger()
        let saved = original.encodedState(savedAt: someInstant).bytes
        let restored = ExperimentLedger()
        try restored.restore(from: saved)
        #expect(restored.encodedState(savedAt: someInstant).bytes == saved)
        let before = try #require(original.aggregates(experiment: "e")["treatment"])
        let after = try #require(restored.aggregates(experiment: "e")["treatment"])
        #expect(after.latencyMilliseconds == before.latencyMilliseconds)
        #expect(after.custom == before.custom)
        #expect(after.errors == before.errors && after.assignments == before.assignments)
        for percentile in [50.0, 95, 99] {
            #expect(after.latencyPercentile(percentile) == before.latencyPercentile(percentile))
        }
        #expect(restored.disabled == original.disabled)
        #expect(restored.events(limit: 10) == original.events(limit: 10))
        // Sequence numbers go on from where they were.
        #expect(restored.log(LedgerEvent(at: someInstant, kind: .enabled, actor: "t", message: "m")).sequence == 3)
    }

    @Test(arguments: [
        "", "{", "[]", #"{"format":"other","version":1}"#, #"{"format":"variantd-state","version":2}"#,
        #"{"format":"variantd-state","version":1,"next_sequence":1,"experiments":{"e":{"v":{"assignments":-1}}}}"#,
        #"{"format":"variantd-state","version":1,"next_sequence":1,"experiments":{},"events":[{"kind":"nope"}]}"#,
    ])
    func aDamagedFileIsRefusedAndTheLedgerKeepsWhatItHad(text: String) throws {
        let ledger = try filledLedger()
        let before = ledger.encodedState(savedAt: someInstant).bytes
        #expect(throws: ExperimentLedger.RestoreError.self) { try ledger.restore(from: Array(text.utf8)) }
        #expect(ledger.encodedState(savedAt: someInstant).bytes == before)
    }
}
