import ArgumentParser
import VariantCore

/// A/A and A/B simulations of the guardrail rule: how often a healthy treatment is disabled (must stay ≤ α however
/// often the daemon evaluates), and how fast a harmful one is.
@main
struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd-simulate",
        abstract: "Simulate guardrail decisions after every record: A/A false-disable rate, A/B detection."
    )

    @Option(help: "A/A runs (both arms healthy).") var aaRuns = 2000
    @Option(help: "A/B runs (treatment harmful).") var abRuns = 1000
    @Option(help: "Records per arm in each run (on average; assignment is 50/50 at random).") var recordsPerArm = 5000
    @Option(help: "The control's error rate.") var baselineErrorRate = 0.05
    @Option(help: "The harmful treatment's error rate.") var harmfulErrorRate = 0.15
    @Option(help: "Base seed of the runs.") var seed: UInt64 = 20_170_601
    @Option(help: "The guardrails' alpha.") var alpha = 0.05
    @Option(help: "Clustered traffic: A/A and A/B runs for each intra-unit correlation.") var clusteredRuns = 1000
    @Option(help: "Clustered traffic: units randomized per arm (on average).") var unitsPerArm = 200
    @Option(help: "Clustered traffic: each unit sends 1 to this many records (uniformly).") var maxRecordsPerUnit = 50
    @Option(
        help: "Clustered traffic: intra-unit correlations of errors and log-latency, comma-separated.",
        transform: { text in
            try text.split(separator: ",").map { part in
                guard let value = Double(part), value >= 0, value < 1 else {
                    throw ValidationError("each correlation must be a number in [0, 1), found '\(part)'")
                }
                return value
            }
        })
    var correlations: [Double] = [0.1, 0.2, 0.3]
    @Flag(help: "Run only the clustered-traffic simulation.") var clusteredOnly = false

    func run() {
        if !clusteredOnly { runIndependent() }
        runClustered()
    }

    /// Independent records (each record its own unit): the figures of protocol/STATISTICS.md, section 4.
    func runIndependent() {
        let policy = GuardrailPolicy(alpha: alpha)
        let healthy = GuardrailSimulation.Arm(errorRate: baselineErrorRate)
        let harmful = GuardrailSimulation.Arm(errorRate: harmfulErrorRate)
        let aa = GuardrailSimulation(control: healthy, treatment: healthy, recordsPerArm: recordsPerArm, policy: policy)
            .summarize(runs: aaRuns, seed: seed)
        let ab = GuardrailSimulation(control: healthy, treatment: harmful, recordsPerArm: recordsPerArm, policy: policy)
            .summarize(runs: abRuns, seed: seed &+ 1)
        print(
            "A/A: \(aa.runs) runs, up to \(recordsPerArm) records per arm, error rate \(baselineErrorRate) in both arms"
        )
        print(
            "  daemon rule (always-valid mSPRT + tolerance) disabled a healthy treatment: \(percent(aa.disabledShare))"
        )
        print(
            "  always-valid mSPRT alone ever significant:                       \(percent(aa.sequentialSignificantShare))"
        )
        print(
            "  naive rule (one-sided p < \(alpha) checked every record) significant:   \(percent(aa.naiveSignificantShare))"
        )
        print("  naive rule + tolerance disabled a healthy treatment:             \(percent(aa.naiveDisabledShare))")
        print("A/B: \(ab.runs) runs, error rate \(baselineErrorRate) → \(harmfulErrorRate)")
        print("  daemon rule detection rate: \(percent(ab.disabledShare))")
        print(
            "  records (both arms) until disable: median \(ab.medianRecordsToDisable.map(String.init) ?? "-"), "
                + "p90 \(ab.p90RecordsToDisable.map(String.init) ?? "-")"
        )
    }

    /// Units with many correlated records: the rule by unit beside the rule per record, on the same records
    /// (protocol/STATISTICS.md, "Analysis by unit").
    func runClustered() {
        let policy = GuardrailPolicy(alpha: alpha)
        let healthy = ClusteredGuardrailSimulation.Arm(errorRate: baselineErrorRate)
        let harmful = ClusteredGuardrailSimulation.Arm(
            errorRate: baselineErrorRate, errorRateIncrease: harmfulErrorRate - baselineErrorRate)
        print(
            "Clustered traffic: \(clusteredRuns) runs per row, \(unitsPerArm) units per arm, 1 to \(maxRecordsPerUnit) "
                + "records per unit, error rate \(baselineErrorRate), checked after every record")
        print("| ρ | A/A disabled by unit (errors, latency) | A/A disabled per record (errors, latency) | A/B detected by unit | A/B records per arm until disable (median, p90) | units per arm (median) |")
        print("|---|---|---|---|---|---|")
        for (index, correlation) in correlations.enumerated() {
            func simulation(_ treatment: ClusteredGuardrailSimulation.Arm) -> ClusteredGuardrailSimulation {
                ClusteredGuardrailSimulation(
                    control: healthy, treatment: treatment, unitsPerArm: unitsPerArm,
                    maximumRecordsPerUnit: maxRecordsPerUnit, correlation: correlation, policy: policy)
            }
            let aa = simulation(healthy).summarize(runs: clusteredRuns, seed: seed &+ 2 &+ UInt64(2 * index))
            let ab = simulation(harmful).summarize(runs: clusteredRuns, seed: seed &+ 3 &+ UInt64(2 * index))
            func half(_ value: Int?) -> String { value.map { String(($0 + 1) / 2) } ?? "-" }
            print(
                "| \(correlation) | \(percent(aa.disabledShare)) (\(percent(aa.disabledOnErrorRateShare)), \(percent(aa.disabledOnLatencyShare))) "
                    + "| \(percent(aa.perRecordDisabledShare)) (\(percent(aa.perRecordDisabledOnErrorRateShare)), \(percent(aa.perRecordDisabledOnLatencyShare))) "
                    + "| \(percent(ab.disabledShare)) | \(half(ab.medianRecordsToDisable)), \(half(ab.p90RecordsToDisable)) "
                    + "| \(half(ab.medianUnitsToDisable)) |")
        }
    }

    func percent(_ share: Double) -> String {
        "\((share * 10000).rounded() / 100) %"
    }
}
