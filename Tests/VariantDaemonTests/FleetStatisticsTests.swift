import Foundation
import Glibc
import Testing
import VariantCore

/// `variantctl stats --prometheus`: fleet statistics from a real Prometheus scraping real daemons, and a clear
/// error with a stable code for every way Prometheus can fail.
@Suite(.serialized) struct FleetStatisticsTests {
    static let configFile: String = {
        let path = (try? temporaryDirectory("variantd-fleet-config")).map { $0 + "/config.json" } ?? "/tmp/variantd-fleet-config.json"
        try? Data(exampleConfig.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }()

    func fleetStats(_ url: String, _ extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("variantctl", ["stats", "checkout-prompt", "--prometheus", url, "--config", Self.configFile] + extra)
    }

    @Test func prometheusUnreachableIsReportedWithItsCodeAndExit69() throws {
        let port = try freeLoopbackPort()
        let result = try fleetStats("http://127.0.0.1:\(port)")
        #expect(result.status == 69)
        #expect(result.stderr.hasPrefix("variantctl: prometheus_unreachable: cannot reach Prometheus at http://127.0.0.1:\(port)"), "\(result.stderr)")
    }

    @Test func anAnswerThatIsNotPrometheusIsRefused() throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        try server.setMode("nonjson")
        let html = try fleetStats("http://127.0.0.1:\(server.port)")
        #expect(html.status == 1)
        #expect(html.stderr.contains("prometheus_invalid_answer: the answer is not from Prometheus' query API"), "\(html.stderr)")
        try server.setMode("404")
        let missing = try fleetStats("http://127.0.0.1:\(server.port)")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("prometheus_invalid_answer: http://127.0.0.1:\(server.port)/api/v1/query answered 404"), "\(missing.stderr)")
    }

    @Test func aPrometheusSlowerThanTheDeadlineTimesOut() throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        try server.setMode("hang")
        let result = try fleetStats("http://127.0.0.1:\(server.port)", ["--timeout", "1"])
        #expect(result.status == 69)
        #expect(result.stderr.contains("prometheus_timeout: "), "\(result.stderr)")
    }

    @Test(.enabled(if: PrometheusFixture.isInstalled, "Debian's prometheus package (scripts/bootstrap installs it)"))
    func aPrometheusWithoutTheExperimentSaysNoSeries() throws {
        let prometheus = try PrometheusFixture(targets: ["127.0.0.1:\(try freeLoopbackPort())"])
        let result = try fleetStats(prometheus.baseURL)
        #expect(result.status == 1)
        #expect(result.stderr.contains("no_series: no host exported experiment 'checkout-prompt'"), "\(result.stderr)")
    }

    @Test func optionsThatDoNotGoTogetherAreRefused() throws {
        let phase = try runCommand("variantctl", ["stats", "checkout-prompt", "--prometheus", "http://127.0.0.1:9", "--phase", "2"])
        #expect(phase.status == 64)
        #expect(phase.stderr.contains("--phase is for one daemon's earlier phases"), "\(phase.stderr)")
        let scheme = try runCommand("variantctl", ["stats", "checkout-prompt", "--prometheus", "127.0.0.1:9090"])
        #expect(scheme.stderr.contains("--prometheus must be an http:// or https:// URL"), "\(scheme.stderr)")
        let config = try runCommand("variantctl", ["stats", "checkout-prompt", "--config", Self.configFile])
        #expect(config.stderr.contains("--config is used only with --prometheus"), "\(config.stderr)")
    }
}
