import Foundation
import Testing
import VariantCore

/// The analysis by unit through the real daemon: clustered A/A and A/B traffic sent as records with their units,
/// judged by the daemon after every record.
@Suite struct AnalysisByUnitIntegrationTests {
    static let healthy = ClusteredGuardrailSimulation.Arm(errorRate: 0.05)
    static let harmful = ClusteredGuardrailSimulation.Arm(errorRate: 0.05, errorRateIncrease: 0.10)

    /// Twelve A/A experiments with strongly correlated records (ρ = 0.3, 30 units per arm, up to 50 records each)
    /// and three with +10 points of errors for every treatment unit. The workload is seeded, so the daemon's
    /// decisions are deterministic; they must be those of the core's simulation on the same records, the A/A
    /// experiments must keep their treatment (≤ 2 of 12 disabled: more than that has a chance below 2 % at
    /// α = 5 %, where the analysis per record disables about 12 % of them), and every harmful one is disabled.
    @Test func theDaemonJudgesClusteredTrafficByUnit() throws {
        let aa = (0..<12).map { index in
            (
                name: "aa-\(index)", seed: UInt64(1400 + index),
                simulation: ClusteredGuardrailSimulation(
                    control: Self.healthy, treatment: Self.healthy, unitsPerArm: 30, maximumRecordsPerUnit: 50,
                    correlation: 0.3)
            )
        }
        let ab = (0..<3).map { index in
            (
                name: "ab-\(index)", seed: UInt64(1500 + index),
                simulation: ClusteredGuardrailSimulation(
                    control: Self.healthy, treatment: Self.harmful, unitsPerArm: 150, maximumRecordsPerUnit: 50,
                    correlation: 0.3)
            )
        }
        let experiments = aa + ab
        let config = Self.config(experiments: experiments.map(\.name))
        let daemon = try DaemonFixture(config: config)
        defer { _ = daemon.stop() }
        let socket = try RawSocket(path: daemon.socketPath, timeoutSeconds: 120)
        for experiment in experiments {
            var lines = ""
            for record in experiment.simulation.records(seed: experiment.seed) {
                let variant = record.arm == 0 ? "control" : "treatment"
                let unit = ClusteredGuardrailSimulation.unitName(record.unit)
                lines += #"{"op":"record","ack":false,"experiment":"\#(experiment.name)","variant":"\#(variant)","unit":"\#(unit)","metrics":{"error":\#(record.error),"latency_ms":\#(record.latencyMilliseconds)}}"#
                lines += "\n"
            }
            try socket.write(lines)
        }
        // Answers come in request order: once `stats` of the last experiment answers, every record was judged.
        var disabled: [String: Bool] = [:]
        for experiment in experiments {
            try socket.write(#"{"id":"\#(experiment.name)","op":"stats","experiment":"\#(experiment.name)"}"# + "\n")
            let answer = try #require(socket.readLines(1).first.flatMap(parseObject))
            #expect(answer["id"] == .string(experiment.name), "\(answer)")
            let variants = try #require(answer["variants"]?.arrayValue).compactMap(\.objectValue)
            #expect(variants.allSatisfy { $0["analysis"] == .string("unit") })
            disabled[experiment.name] = variants[1]["disabled"] != .null
            let errorRate = try #require(
                answer["comparisons"]?.arrayValue?.first?.objectValue?["metrics"]?.arrayValue?.compactMap(\.objectValue)
                    .first { $0["metric"] == .string("error_rate") })
            #expect(errorRate["analysis"] == .string("unit"))
            #expect((errorRate["design_effect"]?.numberValue ?? 0) > 1)
        }
        for experiment in experiments {
            let outcome = experiment.simulation.run(seed: experiment.seed)
            #expect(disabled[experiment.name] == (outcome.disabledAt != nil), "\(experiment.name): \(outcome)")
        }
        let falseDisables = aa.count { disabled[$0.name] == true }
        #expect(falseDisables <= 2)
        #expect(ab.allSatisfy { disabled[$0.name] == true })
        // The same records judged per record (the rule before the analysis by unit) disable more healthy ones.
        let perRecord = aa.count { $0.simulation.run(seed: $0.seed).perRecordDisabledAt != nil }
        #expect(perRecord > falseDisables, "per record \(perRecord), by unit \(falseDisables)")
    }

    static func config(experiments: [String]) -> String {
        let entries = experiments.map { name in
            #"{"name":"\#(name)","salt":"\#(name)","status":"running","variants":[{"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"treatment","weight":50,"prompt":"p","prompt_version":1}]}"#
        }
        return #"{"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"hello"}]}},"experiments":[\#(entries.joined(separator: ","))]}"#
    }
}
