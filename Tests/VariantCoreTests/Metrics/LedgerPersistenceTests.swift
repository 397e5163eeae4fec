import Foundation
import Testing
@testable import VariantCore

/// The state file: what is written comes back exactly; a file that is not a state file is refused, and a file
/// damaged in part gives back every sound part, disabled treatments above all (issue 16, item 1).
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
        "", "{", "[]", #"{"format":"other","version":1}"#, #"{"format":"variantd-state","version":3}"#,
        #"{"format":"variantd-state"}"#,
    ])
    func aFileThatIsNoStateFileIsRefusedAndTheLedgerKeepsWhatItHad(text: String) throws {
        let ledger = try filledLedger()
        let before = ledger.encodedState(savedAt: someInstant).bytes
        #expect(throws: ExperimentLedger.RestoreError.self) { try ledger.restore(from: Array(text.utf8)) }
        #expect(ledger.encodedState(savedAt: someInstant).bytes == before)
    }

    /// The saved state of `filledLedger` with the first occurrence of `original` replaced.
    func damaged(_ original: String, _ replacement: String) throws -> [UInt8] {
        let saved = String(decoding: try filledLedger().encodedState(savedAt: someInstant).bytes, as: UTF8.self)
        #expect(saved.contains(original), "the substitution must apply")
        guard let range = saved.range(of: original) else { return Array(saved.utf8) }
        return Array(saved.replacingCharacters(in: range, with: replacement).utf8)
    }

    @Test func aNonFiniteMomentResetsThatMetricAloneAndTheRestIsRestored() throws {
        let original = try filledLedger()
        // What a daemon before plausible ranges wrote after cost_usd 1e200 then 0: m2 overflowed to null.
        let cost = try #require(original.aggregates(experiment: "e")["treatment"]).costUSD
        func text(_ number: Double) -> String {
            var writer = JSONWriter()
            writer.number(number)
            return String(decoding: writer.bytes, as: UTF8.self)
        }
        let prefix = #""cost_usd":{"count":\#(cost.count),"mean":\#(text(cost.mean)),"m2":"#
        let bytes = try damaged(prefix + text(cost.m2), prefix + "null")
        let ledger = ExperimentLedger()
        let problems = try ledger.restore(from: bytes)
        #expect(problems.map(\.path) == ["experiments.e[0].variants.treatment.cost_usd"], "\(problems)")
        #expect(problems.first?.message.contains("the metric starts afresh") == true)
        let before = try #require(original.aggregates(experiment: "e")["treatment"])
        let after = try #require(ledger.aggregates(experiment: "e")["treatment"])
        #expect(after.costUSD.isEmpty && after.costGroups.isEmpty)
        #expect(after.latencyMilliseconds == before.latencyMilliseconds && after.tokens == before.tokens)
        #expect(after.custom == before.custom && after.errors == before.errors && after.records == before.records)
        #expect(ledger.aggregates(experiment: "e")["control"]?.costUSD == original.aggregates(experiment: "e")["control"]?.costUSD)
        #expect(ledger.disabled == original.disabled)
        // The damage is told in the event log, not only to whoever restored.
        let event = try #require(ledger.events(limit: 1).first)
        #expect(event.kind == .stateDamaged && event.at == someInstant)
        #expect(event.details["problems"] == .array(problems.map { .string($0.description) }))
    }

    @Test(arguments: [
        (#""automatic":true,"reason":"errors up""#, #""automatic":"yes""#),
        (#""at":"2026-11-23T12:00:00Z","automatic":true"#, #""at":12,"automatic":true"#),
    ])
    func aDisabledTreatmentSurvivesADamagedEntry(original: String, replacement: String) throws {
        let ledger = ExperimentLedger()
        let problems = try ledger.restore(from: try damaged(original, replacement))
        #expect(problems.map(\.path) == ["disabled[0]"])
        #expect(problems.first?.message == "is malformed; 'treatment' of 'e' stays disabled")
        #expect(ledger.disabled[.init(experiment: "e", variant: "treatment")] != nil)
        #expect(ledger.aggregates(experiment: "e")["treatment"]?.records == 250)
    }

    @Test func damagedVariantsPhasesAndEventsAreLeftOutAndEverythingElseIsKept() throws {
        let text = String(decoding: try damaged(#""records":250"#, #""records":-1"#), as: UTF8.self)
        let twiceDamaged = Array(text.replacingOccurrences(of: #""kind":"config_applied""#, with: #""kind":"nope""#).utf8)
        let ledger = ExperimentLedger()
        let problems = try ledger.restore(from: twiceDamaged)
        #expect(problems.map(\.path) == ["experiments.e[0].variants.control", "events[1]"], "\(problems)")
        let control = try #require(ledger.aggregates(experiment: "e")["control"])
        #expect(control.records == 0 && control.assignments == 0 && control.latencyMilliseconds.isEmpty)
        #expect(ledger.aggregates(experiment: "e")["treatment"]?.records == 250)
        #expect(ledger.disabled.count == 1)
        #expect(ledger.events(limit: 10).map(\.kind) == [.autoDisabled, .stateDamaged])
        // A file with no experiments at all still gives back its disabled treatments.
        let bare = ExperimentLedger()
        let bareProblems = try bare.restore(
            from: Array(#"{"format":"variantd-state","version":2,"disabled":[{"experiment":"e","variant":"t"}]}"#.utf8))
        #expect(bareProblems.map(\.path) == ["next_sequence", "experiments", "disabled[0]"])
        #expect(bare.disabled[.init(experiment: "e", variant: "t")]?.automatic == false)
    }
}
