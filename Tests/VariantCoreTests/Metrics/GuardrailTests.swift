import Glibc
import Synchronization
import Testing
@testable import VariantCore

/// Guardrails: sound under continuous monitoring, quick on a real regression, configured per experiment.
@Suite struct GuardrailTests {
    func aggregates(control controlErrors: Int, treatment treatmentErrors: Int, of count: Int) -> (VariantAggregate, VariantAggregate) {
        var control = VariantAggregate()
        var treatment = VariantAggregate()
        for index in 0..<count {
            control.add(Measurements(error: index < controlErrors), shadow: false)
            treatment.add(Measurements(error: index < treatmentErrors), shadow: false)
        }
        return (control, treatment)
    }

    @Test func nothingIsDecidedBeforeTheMinimumSampleAndTheEvidenceIsKept() {
        var states = GuardrailCheck.States()
        let (smallControl, smallTreatment) = aggregates(control: 5, treatment: 60, of: 99)
        #expect(GuardrailCheck.breach(of: smallTreatment, against: smallControl, policy: GuardrailPolicy(), states: &states) == nil)
        let (control, treatment) = aggregates(control: 5, treatment: 60, of: 100)
        let breach = GuardrailCheck.breach(of: treatment, against: control, policy: GuardrailPolicy(), states: &states)
        #expect(breach?.metric == .errorRate)
        #expect(breach?.treatmentCount == 100)
        #expect((breach?.alwaysValidPValue ?? 1) <= 0.05)
        #expect((states["error_rate"]?.alwaysValidPValue ?? 1) <= 0.05)
        #expect(breach?.details["metric"] == .string("error_rate"))
    }

    @Test func aWorseButToleratedTreatmentIsNotDisabled() {
        var states = GuardrailCheck.States()
        // 3 points worse on 4000 records each: clearly worse, but within the 5-point tolerance.
        let (control, treatment) = aggregates(control: 200, treatment: 320, of: 4000)
        #expect(GuardrailCheck.breach(of: treatment, against: control, policy: GuardrailPolicy(), states: &states) == nil)
    }

    @Test func aCustomMetricGuardrailWatchesItsDirection() {
        var settings = GuardrailSettings()
        settings.metrics = [CustomMetricGuardrail(name: "rating", direction: .higherIsBetter, tolerance: 0.2)]
        var control = VariantAggregate()
        var better = VariantAggregate()
        var worse = VariantAggregate()
        for index in 0..<300 {
            let noise = Double(index % 5) * 0.1
            control.add(Measurements(custom: [CustomMeasurement(name: "rating", value: 4 + noise)]), shadow: false)
            better.add(Measurements(custom: [CustomMeasurement(name: "rating", value: 4.8 + noise)]), shadow: false)
            worse.add(Measurements(custom: [CustomMeasurement(name: "rating", value: 3.2 + noise)]), shadow: false)
        }
        var states = GuardrailCheck.States()
        #expect(GuardrailCheck.breach(of: better, against: control, policy: settings.policy, states: &states) == nil)
        var otherStates = GuardrailCheck.States()
        #expect(GuardrailCheck.breach(of: worse, against: control, policy: settings.policy, states: &otherStates)?.metric == .custom("rating"))
    }

    @Test func theSequentialEvidenceSurvivesTheStateFileAndAnEnableStartsAfresh() throws {
        let ledger = ExperimentLedger()
        var settings = GuardrailSettings()
        settings.maximumErrorRateIncrease = 0.5  // never reached: only the evidence accumulates
        var entries: [ExperimentLedger.Entry] = []
        for index in 0..<200 {
            entries.append(.init(experiment: "e", variant: "control", measurements: Measurements(error: index % 20 == 0), shadow: false, guardrails: ("control", settings)))
            entries.append(.init(experiment: "e", variant: "treatment", measurements: Measurements(error: index % 3 == 0), shadow: false, guardrails: ("control", settings)))
        }
        #expect(ledger.record(entries).disabled.isEmpty)
        let saved = ledger.encodedState(savedAt: someInstant).bytes
        #expect(String(decoding: saved, as: UTF8.self).contains(#""metric":"error_rate""#))
        let restored = ExperimentLedger()
        try restored.restore(from: saved)
        #expect(restored.encodedState(savedAt: someInstant).bytes == saved)
        #expect(restored.phase(1, of: "e")?.sequential["treatment"]?["error_rate"] != nil)

        // A person disables and enables the treatment: its guardrail starts gathering evidence afresh.
        _ = restored.disable(
            DisabledTreatment(experiment: "e", variant: "treatment", at: someInstant, automatic: false, reason: "check"),
            actor: "uid 0")
        #expect(restored.enable(experiment: "e", variant: "treatment", at: someInstant, actor: "uid 0") != nil)
        #expect(restored.phase(1, of: "e")?.sequential["treatment"] == nil)
    }

    @Test func guardrailsAreReadFromTheDocumentWithDefaults() throws {
        let defaults = try #require(try validDocument(documentWithExperiment(
            #""name":"e","salt":"s","status":"running","variants":[{"name":"c","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"t","weight":50,"prompt":"p","prompt_version":2}]"#
        )).experiments.first).guardrails
        #expect(defaults == GuardrailSettings())
        let custom = try #require(try validDocument(documentWithExperiment(
            #""name":"e","salt":"s","status":"running","guardrails":{"auto_disable":false,"alpha":0.01,"min_samples":500,"max_error_rate_increase":0.02,"max_latency_increase":0.25,"metrics":[{"name":"rating","direction":"higher_is_better","tolerance":0.3}]},"variants":[{"name":"c","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"t","weight":50,"prompt":"p","prompt_version":2}]"#
        )).experiments.first).guardrails
        #expect(!custom.autoDisable && custom.alpha == 0.01 && custom.minimumSamples == 500)
        #expect(custom.maximumErrorRateIncrease == 0.02 && custom.maximumLatencyIncrease == 0.25)
        #expect(custom.metrics == [CustomMetricGuardrail(name: "rating", direction: .higherIsBetter, tolerance: 0.3)])
        #expect(custom.policy.minimumSamplesPerVariant == 500 && custom.policy.alpha == 0.01)

        let problems = issues(of: documentWithExperiment(
            #""name":"e","salt":"s","status":"running","guardrails":{"alpha":0.9,"min_samples":2,"bogus":1,"metrics":[{"name":"bad name","direction":"up","tolerance":-1}]},"variants":[{"name":"c","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"t","weight":50,"prompt":"p","prompt_version":2}]"#))
        #expect(Set(problems.map(\.path)) == [
            "$.experiments[0].guardrails.alpha", "$.experiments[0].guardrails.min_samples", "$.experiments[0].guardrails.bogus",
            "$.experiments[0].guardrails.metrics[0].name", "$.experiments[0].guardrails.metrics[0].direction",
            "$.experiments[0].guardrails.metrics[0].tolerance",
        ])
    }

    @Test func aBreachingRecordDisablesTheTreatmentThroughTheProtocol() throws {
        let harness = try TreatmentControlTests.Harness()
        let app = harness.context(mayAdminister: false)
        var records: [String] = []
        for index in 0..<150 {
            records.append(#"{"experiment":"e","variant":"control","metrics":{"error":\#(index % 20 == 0)}}"#)
            records.append(#"{"experiment":"e","variant":"treatment","metrics":{"error":\#(index % 2 == 0)}}"#)
        }
        let reply = Responder.respond(
            to: #"{"op":"batch","records":[\#(records.joined(separator: ","))]}"#, snapshot: harness.current, now: someInstant, context: app)
        #expect(reply.contains(#""recorded":300"#))
        let event = try #require(harness.changes.withLock { $0.first })
        #expect(event.kind == .autoDisabled && event.variant == "treatment" && event.actor == "guardrail")
        #expect(event.details["metric"] == .string("error_rate"))
        #expect(harness.ledger.disabled[.init(experiment: "e", variant: "treatment")]?.automatic == true)
        let assignment = Responder.respond(
            to: #"{"op":"assign","experiment":"e","unit":"user-1"}"#, snapshot: harness.current, now: someInstant, context: app)
        #expect(assignment.contains(#""variant":"control""#))
    }
}
