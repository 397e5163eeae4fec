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

    func run() {
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

    func percent(_ share: Double) -> String {
        "\((share * 10000).rounded() / 100) %"
    }
}
