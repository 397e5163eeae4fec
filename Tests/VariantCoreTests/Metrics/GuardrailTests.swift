import Glibc
import Synchronization
import Testing
@testable import VariantCore

/// Guardrails: sound under continuous monitoring, quick on a real regression, configured per experiment.
@Suite struct GuardrailTests {
    @Test func underContinuousMonitoringAHealthyTreatmentIsRarelyDisabledAndTheNaiveRuleCriesWolf() {
        let healthy = GuardrailSimulation(
            arms: .init(controlErrorRate: 0.05, treatmentErrorRate: 0.05), recordsPerArm: 1500)
        let sequential = healthy.run(runs: 300, seed: 1)
        let naive = healthy.runNaive(runs: 300, seed: 1)
        #expect(sequential.disabledShare <= 0.05, "mSPRT false-disable rate \(sequential.disabledShare)")
        // The naive rule looked at after every record disables a healthy treatment far more often than 5%.
        #expect(naive.disabledShare > 0.2, "naive false-disable rate \(naive.disabledShare)")
    }

    @Test func aTreatmentTenPointsWorseIsDisabledWithinAFewHundredRecords() {
        let broken = GuardrailSimulation(
            arms: .init(controlErrorRate: 0.05, treatmentErrorRate: 0.15), recordsPerArm: 1500)
        let summary = broken.run(runs: 300, seed: 2)
        #expect(summary.disabledShare >= 0.95, "detection rate \(summary.disabledShare)")
        let median = try? #require(summary.recordsToDisable(atQuantile: 0.5))
        #expect((median ?? .max) <= 800, "median records to disable \(String(describing: median))")
    }

    @Test func aLatencyRegressionIsCaughtAndAToleratedOneIsNot() {
        // +100% mean latency against a +50% tolerance: disabled.
        let slow = GuardrailSimulation(
            arms: .init(controlErrorRate: 0.05, treatmentErrorRate: 0.05, treatmentLatencyLogMean: log(1600)),
            recordsPerArm: 1000)
        #expect(slow.run(runs: 100, seed: 3).disabledShare >= 0.95)
        // +20%: a real difference within the tolerance. It is disabled only when noise pushes the estimate past
        // +50% while the test also rejects "no worse", which must stay rare.
        let bitSlower = GuardrailSimulation(
            arms: .init(controlErrorRate: 0.05, treatmentErrorRate: 0.05, treatmentLatencyLogMean: log(960)),
            recordsPerArm: 1000)
        #expect(bitSlower.run(runs: 100, seed: 4).disabledShare <= 0.05)
    }

    @Test func nothingIsDecidedBeforeTheMinimumSample() {
        var control = VariantAggregate()
        var treatment = VariantAggregate()
        for _ in 0..<99 {
            control.add(Measurements(error: false), shadow: false)
            treatment.add(Measurements(error: true), shadow: false)
        }
        #expect(GuardrailCheck.breach(of: treatment, against: control, settings: GuardrailSettings()) == nil)
        control.add(Measurements(error: false), shadow: false)
        treatment.add(Measurements(error: true), shadow: false)
        let breach = GuardrailCheck.breach(of: treatment, against: control, settings: GuardrailSettings())
        #expect(breach?.metric == "error_rate")
        #expect(breach?.treatmentCount == 100)
        #expect((breach?.alwaysValidPValue ?? 1) <= 0.05)
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
        #expect(GuardrailCheck.breach(of: better, against: control, settings: settings) == nil)
        #expect(GuardrailCheck.breach(of: worse, against: control, settings: settings)?.metric == "rating")
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
