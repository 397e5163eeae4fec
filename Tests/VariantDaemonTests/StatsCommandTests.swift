import Foundation
import Testing
import VariantCore

/// `variantctl stats`, `watch` and `sample-size` against the real daemon and core.
@Suite(.serialized) struct StatsCommandTests {
    @Test func statsShowsATablePerMetricAndTheRecommendation() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        var records: [String] = []
        for index in 0..<400 {
            records.append(#"{"experiment":"checkout-prompt","variant":"control","metrics":{"error":\#(index % 10 == 0),"latency_ms":\#(500 + index % 40)}}"#)
            records.append(#"{"experiment":"checkout-prompt","variant":"concise","metrics":{"error":\#(index % 10 == 0),"latency_ms":\#(450 + index % 40)}}"#)
        }
        // Two lines of 400 records: one of 800 (88 KB) would be over the 64 KiB line limit.
        for half in [records[..<400], records[400...]] {
            let batch = try daemon.ask(#"{"op":"batch","records":[\#(half.joined(separator: ","))]}"#)
            #expect(batch["recorded"] == .number(400))
        }
        for unit in 0..<50 { _ = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u\#(unit)","attributes":{"country":"US"}}"#) }

        let socket = ["--socket", daemon.socketPath]
        let table = try runCommand("variantctl", ["stats", "checkout-prompt"] + socket)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.hasPrefix("checkout-prompt (running, live, config sha256:"), "\(table.stdout)")
        #expect(table.stdout.contains("\nerror_rate\nVARIANT  N    RATE"), "\(table.stdout)")
        #expect(table.stdout.contains("\nlatency_ms\n"))
        #expect(table.stdout.contains("latency percentiles"))
        #expect(table.stdout.contains("recommendation: "))
        // Latency is 50 ms lower on concise: a significant improvement.
        let latencyRows = table.stdout.components(separatedBy: "\nlatency_ms\n")[1].split(separator: "\n")
        #expect(latencyRows.contains { $0.hasPrefix("concise") && $0.contains("-50") && $0.hasSuffix("better") }, "\(table.stdout)")

        let json = try runCommand("variantctl", ["stats", "checkout-prompt", "--json"] + socket)
        let answer = try #require(try JSONParser.parse(Array(json.stdout.utf8)).objectValue)
        #expect(answer["ok"] == .bool(true))
        #expect(answer["variants"]?.arrayValue?.count == 2)

        let watched = try runCommand("variantctl", ["watch", "checkout-prompt", "--count", "2", "--interval", "0.1"] + socket)
        #expect(watched.status == 0)
        #expect(watched.stdout.components(separatedBy: "recommendation: ").count == 3)

        _ = try daemon.ask(#"{"op":"disable","experiment":"checkout-prompt","variant":"concise"}"#)
        let status = try runCommand("variantctl", ["status"] + socket)
        #expect(status.stdout.contains("\ncheckout-prompt  running  live  true"), "\(status.stdout)")
        #expect(status.stdout.contains("disabled treatments: checkout-prompt/concise"), "\(status.stdout)")

        let unknown = try runCommand("variantctl", ["stats", "nope"] + socket)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("unknown_experiment"))
        #expect(daemon.stop() == 0)
    }

    @Test func sampleSizeMatchesTheTextbookFigure() throws {
        let rate = try runCommand("variantctl", ["sample-size", "--baseline-rate", "0.1", "--minimum-detectable-effect", "0.02"])
        #expect(rate.stdout.hasPrefix("per variant: 3841\n"), "\(rate.stdout)")
        let json = try runCommand("variantctl", ["sample-size", "--standard-deviation", "10", "--minimum-detectable-effect", "2", "--variants", "3", "--json"])
        let object = try #require(try JSONParser.parse(Array(json.stdout.utf8)).objectValue)
        let expected = try #require(SampleSize.forMeans(standardDeviation: 10, minimumDetectableEffect: 2, variants: 3))
        #expect(object["per_variant"] == .number(Double(expected.perVariant)))
        #expect(object["adjusted_alpha"] == .number(0.025))
        let wrong = try runCommand("variantctl", ["sample-size", "--minimum-detectable-effect", "0.02"])
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("exactly one of --baseline-rate"))
    }
}
