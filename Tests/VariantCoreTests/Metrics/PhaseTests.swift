import Synchronization
import Testing
@testable import VariantCore

/// Phases: a change of who is enrolled or what they are served starts the statistics afresh; earlier phases stay
/// readable, survive the state file, and the sample-ratio check leaves out the time a treatment was disabled.
@Suite struct PhaseTests {
    static func document(treatmentWeight: Double = 50, treatmentVersion: Int = 2, alpha: Double = 0.05) throws
        -> ConfigDocument
    {
        try validDocument(
            documentWithExperiment(
                #""name":"e","salt":"s","status":"running","guardrails":{"alpha":\#(alpha)},"variants":[{"name":"control","control":true,"weight":\#(100 - treatmentWeight),"prompt":"p","prompt_version":1},{"name":"treatment","weight":\#(treatmentWeight),"prompt":"p","prompt_version":\#(treatmentVersion)}]"#
            ))
    }

    static func entry(_ variant: String, error: Bool, unit: Int, phase: PhaseDefinition) -> ExperimentLedger.Entry {
        ExperimentLedger.Entry(
            experiment: "e", variant: variant, measurements: Measurements(error: error), shadow: false,
            unitHash: UnitHash.of("user-\(unit)"), phase: phase)
    }

    @Test func whatStartsAPhaseAndWhatDoesNot() throws {
        let base = PhaseDefinition(try Self.document().experiments[0])
        #expect(PhaseDefinition(try Self.document(alpha: 0.01).experiments[0]) == base)  // a tolerance: no
        let reweighted = PhaseDefinition(try Self.document(treatmentWeight: 20).experiments[0])
        #expect(reweighted.fingerprint != base.fingerprint)
        #expect(reweighted.changedParts(from: base) == ["weight"])
        let newPrompt = PhaseDefinition(try Self.document(treatmentVersion: 1).experiments[0])
        #expect(newPrompt.changedParts(from: base) == ["prompt"])
        #expect(base.variantNames == ["control", "treatment"])
        #expect(PhaseDefinition(lines: base.lines) == base)
    }

    @Test func aConfigurationChangeStartsANewPhaseAndKeepsTheOldOne() throws {
        let ledger = ExperimentLedger()
        let first = PhaseDefinition(try Self.document().experiments[0])
        let second = PhaseDefinition(try Self.document(treatmentVersion: 1).experiments[0])
        _ = ledger.record((0..<10).map { Self.entry("treatment", error: true, unit: $0, phase: first) }, now: someInstant)
        _ = ledger.record([Self.entry("treatment", error: false, unit: 1, phase: second)], now: someInstant)
        #expect(ledger.phaseNumbers(of: "e") == [1, 2])
        let current = ledger.currentPhase(of: "e", definition: second, at: someInstant)
        #expect(current.number == 2 && current.variants["treatment"]?.records == 1)
        #expect(current.reason == "configuration changed: prompt")
        #expect(ledger.phase(1, of: "e")?.variants["treatment"]?.errors.successes == 10)
        let event = try #require(ledger.events(limit: 10).last)
        #expect(event.kind == .phaseStarted && event.details["phase"] == .number(2))

        // Counts of the replaced configuration still go to its own phase.
        let manual = ledger.startPhase(of: "e", definition: second, at: someInstant, actor: "uid 0", reason: "prompt fixed")
        #expect(manual.details["phase"] == .number(3) && ledger.phaseNumbers(of: "e") == [1, 2, 3])
        #expect(ledger.currentPhase(of: "e", definition: second, at: someInstant).variants.isEmpty)

        let saved = ledger.encodedState(savedAt: someInstant).bytes
        let restored = ExperimentLedger()
        try restored.restore(from: saved)
        #expect(restored.phaseNumbers(of: "e") == [1, 2, 3])
        #expect(restored.phase(1, of: "e")?.variants["treatment"]?.errorGroups == ledger.phase(1, of: "e")?.variants["treatment"]?.errorGroups)
        #expect(restored.encodedState(savedAt: someInstant).bytes == saved)
    }

    /// The bug the issue names: a treatment disabled, its prompt fixed and enabled again was disabled again on
    /// the old evidence. With phases the new prompt version starts afresh.
    @Test func aFixedPromptIsJudgedOnItsOwnRecords() throws {
        let ledger = ExperimentLedger()
        let broken = PhaseDefinition(try Self.document().experiments[0])
        let fixed = PhaseDefinition(try Self.document(treatmentVersion: 1).experiments[0])
        var settings = GuardrailSettings()
        settings.minimumSamples = 20
        func entries(_ definition: PhaseDefinition, treatmentErrors: Bool, count: Int) -> [ExperimentLedger.Entry] {
            (0..<count).flatMap { index -> [ExperimentLedger.Entry] in
                var control = Self.entry("control", error: index % 20 == 0, unit: 2 * index, phase: definition)
                var treatment = Self.entry("treatment", error: treatmentErrors && index % 2 == 0, unit: 2 * index + 1, phase: definition)
                control.guardrails = ("control", settings)
                treatment.guardrails = ("control", settings)
                return [control, treatment]
            }
        }
        #expect(ledger.record(entries(broken, treatmentErrors: true, count: 200), now: someInstant).disabled.count == 1)
        #expect(ledger.enable(experiment: "e", variant: "treatment", at: someInstant, actor: "uid 0") != nil)
        let outcome = ledger.record(entries(fixed, treatmentErrors: false, count: 200), now: someInstant)
        #expect(outcome.disabled.isEmpty)
        #expect(ledger.phaseNumbers(of: "e") == [1, 2])
    }

    /// The other bug: one disable and enable left an A/A experiment at sample_ratio_mismatch for good.
    @Test func aDisableAndEnableLeaveNoSampleRatioMismatch() throws {
        let harness = try TreatmentControlTests.Harness()
        let admin = harness.context(mayAdminister: true)
        func assign(_ units: Range<Int>) {
            for unit in units {
                _ = Responder.respond(
                    to: #"{"op":"assign","experiment":"e","unit":"user-\#(unit)"}"#, snapshot: harness.current,
                    now: someInstant, context: admin)
            }
        }
        assign(0..<2000)
        _ = Responder.respond(
            to: #"{"op":"disable","experiment":"e","variant":"treatment"}"#, snapshot: harness.current, now: someInstant,
            context: admin)
        assign(2000..<6000)
        _ = Responder.respond(
            to: #"{"op":"enable","experiment":"e","variant":"treatment"}"#, snapshot: harness.current, now: someInstant,
            context: admin)
        assign(6000..<7000)
        _ = Responder.respond(
            to: #"{"op":"record","experiment":"e","variant":"control","metrics":{"error":false}}"#,
            snapshot: harness.current, now: someInstant, context: admin)
        let stats = try #require(
            try parseJSON(
                Responder.respond(
                    to: #"{"op":"stats","experiment":"e"}"#, snapshot: harness.current, now: someInstant, context: admin)
            ).objectValue)
        let ratio = try #require(stats["sample_ratio"]?.objectValue)
        #expect(ratio["mismatch"] == .bool(false), "\(ratio)")
        #expect(ratio["on"] == .string("units"))
        let variants = try #require(stats["variants"]?.arrayValue).compactMap(\.objectValue)
        // Units seen while the treatment was disabled are left out of both arms; requests are all counted.
        let units = variants.compactMap { $0["units"]?.integerValue }
        #expect(units.reduce(0, +) == 3000, "\(units)")
        #expect(variants.compactMap { $0["assignments"]?.integerValue }.reduce(0, +) > 3000)
    }

    /// Assignments folded in by a read that knows no time (the state flush's `generation`) start the phase when
    /// the configuration was loaded, not at the epoch.
    @Test func aPhaseStartedByCountsBeginsWhenItsConfigurationWasLoaded() throws {
        let ledger = ExperimentLedger()
        let snapshot = try RecordTests.snapshot()
        let config = try #require(snapshot.config)
        config.assignmentTally.countAssignment(experimentIndex: 0, variantIndex: 1, unitHash: 7, for: ledger)
        _ = ledger.generation
        let phase = ledger.currentPhase(of: "e", definition: config.assignmentTally.definitions[0], at: someInstant)
        #expect(phase.startedAt == config.loadedAt)
        #expect(phase.variants["treatment"]?.assignments == 1)
    }

    @Test func aStateFileWithoutPhasesBecomesPhaseOneOfTheFirstConfiguration() throws {
        let version1 = #"""
            {"format":"variantd-state","version":1,"saved_at":"2026-11-23T12:00:00Z","next_sequence":1,
             "experiments":{"e":{"treatment":{"assignments":5,"records":2,"shadow_records":0,"errors":{"trials":2,"successes":1},
             "success":{"trials":0,"successes":0},"latency_ms":{"count":0,"mean":0,"m2":0,"min":0,"max":0},"latency_histogram_us":[],
             "cost_usd":{"count":0,"mean":0,"m2":0,"min":0,"max":0},"tokens":{"count":0,"mean":0,"m2":0,"min":0,"max":0},"custom":{}}}},
             "disabled":[],"sequential":[{"experiment":"e","variant":"treatment","metric":"error_rate","p_value":0.5,"evaluations":3}],
             "events":[]}
            """#
        let ledger = ExperimentLedger()
        try ledger.restore(from: Array(version1.utf8))
        let definition = PhaseDefinition(try Self.document().experiments[0])
        let phase = ledger.currentPhase(of: "e", definition: definition, at: someInstant)
        #expect(phase.number == 1 && phase.definition == definition)
        #expect(phase.variants["treatment"]?.errors.trials == 2 && phase.variants["treatment"]?.isAnalysedByUnit == false)
        #expect(phase.sequential["treatment"]?["error_rate"]?.alwaysValidPValue == 0.5)
    }
}
