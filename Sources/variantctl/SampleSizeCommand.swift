import ArgumentParser
import VariantCore

/// `variantctl sample-size`: how many samples each variant needs, computed locally (no daemon).
struct SampleSizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-size",
        abstract: "Compute the samples each variant needs to detect an effect (two-sided test, Bonferroni over treatments).",
        discussion: """
            For a rate: --baseline-rate 0.10 --minimum-detectable-effect 0.02 (absolute, so 10% → 12%).
            For a mean: --standard-deviation 250 --minimum-detectable-effect 25 (in the metric's unit).
            """)

    @Option(help: "The control's rate (0 to 1), for a binary metric.")
    var baselineRate: Double?

    @Option(help: "The metric's standard deviation, for a continuous metric.")
    var standardDeviation: Double?

    @Option(help: "The smallest absolute difference worth detecting.")
    var minimumDetectableEffect: Double

    @Option(help: "Significance level, two-sided.")
    var alpha: Double = 0.05

    @Option(help: "Power: the chance of detecting the effect if it is real.")
    var power: Double = 0.8

    @Option(help: "Number of variants, the control included.")
    var variants: Int = 2

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (baselineRate == nil) != (standardDeviation == nil) else {
            throw ValidationError("give exactly one of --baseline-rate (a rate) and --standard-deviation (a mean)")
        }
        guard alpha > 0, alpha < 1, power > 0, power < 1 else { throw ValidationError("--alpha and --power must be between 0 and 1") }
        guard variants >= 2 else { throw ValidationError("--variants must be at least 2") }
        if let baselineRate {
            guard baselineRate > 0, baselineRate < 1, baselineRate + minimumDetectableEffect > 0, baselineRate + minimumDetectableEffect < 1,
                minimumDetectableEffect != 0
            else { throw ValidationError("--baseline-rate and --baseline-rate + --minimum-detectable-effect must both be between 0 and 1, and the effect not 0") }
        }
        if let standardDeviation, !(standardDeviation > 0) || minimumDetectableEffect == 0 {
            throw ValidationError("--standard-deviation must be positive and --minimum-detectable-effect not 0")
        }
    }

    func run() throws {
        let estimate =
            if let baselineRate {
                SampleSize.forProportions(
                    baselineRate: baselineRate, minimumDetectableEffect: minimumDetectableEffect, alpha: alpha, power: power,
                    variants: variants)
            } else {
                SampleSize.forMeans(
                    standardDeviation: standardDeviation ?? 1, minimumDetectableEffect: minimumDetectableEffect, alpha: alpha,
                    power: power, variants: variants)
            }
        guard let estimate else {
            printError("variantctl: no sample size for these inputs")
            throw ExitCode(ExitCodes.requestFailed)
        }
        if json {
            print(#"{"per_variant":\#(estimate.perVariant),"total":\#(estimate.total),"adjusted_alpha":\#(estimate.adjustedAlpha)}"#)
        } else {
            print("per variant: \(estimate.perVariant)")
            print("total:       \(estimate.total) (\(variants) variants)")
            print("alpha:       \(estimate.adjustedAlpha)\(variants > 2 ? " per comparison (Bonferroni over \(variants - 1) treatments)" : "")")
        }
    }
}
