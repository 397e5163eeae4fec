import Foundation
import Glibc
import Testing
import VariantCore
import VariantFleet

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

    // MARK: - A real fleet

    /// A deterministic load with known totals: 300 units, half in each variant, each with its own error
    /// propensity, several records per unit spread over the hosts (so one unit is seen by several daemons).
    static func records(_ range: Range<Int>, variants: [String: String]) -> [String] {
        range.map { index in
            let unit = "u\(index % 300)"
            let propensity = Double(index % 300 % 7) / 20
            let error = Double((index * 7919) % 1000) / 1000 < propensity
            let latency = 300 + (index * 104_729) % 2500
            let success = (index * 31) % 10 < 3 ? 1 : 0
            return #"{"experiment":"checkout-prompt","variant":"\#(variants[unit]!)","unit":"\#(unit)","metrics":{"error":\#(error),"latency_ms":\#(latency),"success":\#(success),"cost_usd":0.00\#(index % 9 + 1)}}"#
        }
    }

    /// Sends records in batches of 200 and expects every one recorded.
    static func send(_ records: [String], to daemon: DaemonFixture) throws {
        for start in stride(from: 0, to: records.count, by: 200) {
            let batch = records[start..<min(start + 200, records.count)]
            let answer = try daemon.ask(#"{"op":"batch","records":[\#(batch.joined(separator: ","))]}"#)
            #expect(answer["recorded"] == .number(Double(batch.count)), "\(answer)")
        }
    }

    /// The records of the experiment's current phase in a daemon's state file (what survives a SIGKILL).
    static func persistedRecords(stateDirectory: String) -> Int {
        guard let bytes = FileManager.default.contents(atPath: stateDirectory + "/state.json"),
            let root = try? JSONParser.parse(Array(bytes)).objectValue,
            let phase = root["experiments"]?.objectValue?["checkout-prompt"]?.arrayValue?.last?.objectValue,
            let variants = phase["variants"]?.objectValue
        else { return 0 }
        return variants.members.reduce(0) { $0 + ($1.value.objectValue?["records"]?.integerValue ?? 0) }
    }

    static func daemon(metricsPort: Int, state: String, config: String = exampleConfig) throws -> DaemonFixture {
        try DaemonFixture(
            config: config,
            arguments: [
                "--metrics-address", "127.0.0.1:\(metricsPort)", "--metrics-unit-sample", "4096",
                "--state-flush-interval", "0.1",
            ], stateDirectory: state)
    }

    static func close(_ a: JSONValue?, _ b: JSONValue?) -> Bool {
        switch (a, b) {
        case (.number(let x)?, .number(let y)?): abs(x - y) <= 1e-9 * max(1, abs(x), abs(y))
        case (.array(let x)?, .array(let y)?): x.count == y.count && zip(x, y).allSatisfy { close($0, $1) }
        default: a == b
        }
    }

    /// The figures of a fleet answer against one daemon's, member by member: counts exactly, the rest to 1e-9.
    static func expectSameFigures(fleet: JSONObject, single: JSONObject) {
        let fleetVariants = (fleet["variants"]?.arrayValue ?? []).compactMap(\.objectValue)
        let singleVariants = (single["variants"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(fleetVariants.count == 2 && singleVariants.count == 2)
        for (f, s) in zip(fleetVariants, singleVariants) {
            for key in ["name", "assignments", "units", "records", "analysis", "disabled"] {
                #expect(f[key] == s[key], "variant \(key): fleet \(f[key] ?? .null), one daemon \(s[key] ?? .null)")
            }
            for metric in ["error_rate", "success", "cost_usd"] {
                for (key, value) in f[metric]?.objectValue?.members ?? [] {
                    #expect(close(value, s[metric]?.objectValue?[key]), "\(metric).\(key): \(value) vs \(s[metric]?.objectValue?[key] ?? .null)")
                }
            }
            #expect(f["latency_ms"]?.objectValue?["n"] == s["latency_ms"]?.objectValue?["n"])
            #expect(close(f["latency_ms"]?.objectValue?["mean"], s["latency_ms"]?.objectValue?["mean"]))
        }
        let fleetMetrics = (fleet["comparisons"]?.arrayValue?.first?.objectValue?["metrics"]?.arrayValue ?? []).compactMap(\.objectValue)
        let singleMetrics = (single["comparisons"]?.arrayValue?.first?.objectValue?["metrics"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(fleetMetrics.count == singleMetrics.count && fleetMetrics.count >= 4)
        for (f, s) in zip(fleetMetrics, singleMetrics) {
            for (key, value) in f.members {
                #expect(close(value, s[key]), "\(f["metric"] ?? .null).\(key): fleet \(value), one daemon \(s[key] ?? .null)")
            }
        }
        for key in ["sample_ratio", "sample_size", "recommendation", "chi_square"] {
            let f = fleet[key]?.objectValue?.members ?? []
            let s = single[key]?.objectValue
            for (member, value) in f { #expect(close(value, s?[member]), "\(key).\(member): \(value) vs \(s?[member] ?? .null)") }
        }
    }

    /// Three daemons share a load; one is SIGKILLed and restarted mid-load, one stops for good; a fourth serves
    /// another configuration. Fleet statistics from the real Prometheus equal those of one daemon that got every
    /// record, at present and read where each host was last seen.
    @Test(.enabled(if: PrometheusFixture.isInstalled, "Debian's prometheus package (scripts/bootstrap installs it)"))
    func fleetStatisticsFromPrometheusEqualOneDaemonThatSawEveryRecord() async throws {
        let ports = try (0..<4).map { _ in try freeLoopbackPort() }
        let states = try (0..<4).map { _ in try temporaryDirectory("variantd-fleet-state") }
        defer { for state in states { try? FileManager.default.removeItem(atPath: state) } }
        var hosts = try (0..<3).map { try Self.daemon(metricsPort: ports[$0], state: states[$0]) }
        let otherConfiguration = exampleConfig.replacingOccurrences(of: "checkout-prompt-2026-11", with: "checkout-prompt-2026-12")
        let other = try Self.daemon(metricsPort: ports[3], state: states[3], config: otherConfiguration)
        let single = try DaemonFixture(config: exampleConfig)
        let prometheus = try PrometheusFixture(targets: ports.map { "127.0.0.1:\($0)" })

        // Every unit asks for its variant on every host (and on the daemon that sees everything).
        var variants: [String: String] = [:]
        for unit in 0..<300 {
            let line = #"{"op":"assign","experiment":"checkout-prompt","unit":"u\#(unit)"}"#
            variants["u\(unit)"] = try #require(single.ask(line)["variant"]?.stringValue)
            _ = try hosts[unit % 3].ask(line)
        }
        let first = Self.records(0..<1800, variants: variants)
        for host in 0..<3 { try Self.send(first.enumerated().filter { $0.offset % 3 == host }.map(\.element), to: hosts[host]) }
        try Self.send(first, to: single)
        try Self.send(Self.records(0..<90, variants: variants), to: other)

        // Host 1 is killed once its state holds what it was sent, and restarted on the same state and port.
        #expect(await eventually { Self.persistedRecords(stateDirectory: states[1]) == 600 })
        _ = hosts[1].stop(signal: SIGKILL)
        hosts[1] = try Self.daemon(metricsPort: ports[1], state: states[1])
        // Host 2 stops for good once Prometheus has scraped its totals (what was never scraped cannot count); they
        // must keep counting.
        let scrapedHost2 = await eventually {
            prometheus.scalar(#"sum(variantd_records_total{instance="127.0.0.1:\#(ports[2])"})"#) == 600
        }
        #expect(scrapedHost2)
        #expect(hosts[2].stop() == 0)
        let second = Self.records(1800..<3000, variants: variants)
        for host in 0..<2 { try Self.send(second.enumerated().filter { $0.offset % 2 == host }.map(\.element), to: hosts[host]) }
        try Self.send(second, to: single)

        let singleAnswer = try single.ask(#"{"op":"stats","experiment":"checkout-prompt"}"#)
        var fleetAnswer: JSONObject?
        let scraped = await eventually {
            let result = try? fleetStats(prometheus.baseURL, ["--json"])
            guard let result, result.status == 0, let answer = try? JSONParser.parse(Array(result.stdout.utf8)).objectValue
            else { return false }
            fleetAnswer = answer
            let records = (answer["variants"]?.arrayValue ?? []).compactMap { $0.objectValue?["records"]?.numberValue }
            // Every host scraped too, the one that does not count included (the records alone can be complete first).
            let hosts = answer["fleet"]?.objectValue?["hosts"]?.arrayValue ?? []
            return records.reduce(0, +) == 3000 && hosts.count == ports.count
        }
        #expect(scraped, "the fleet never reached 3000 records: \(fleetAnswer.map { String(describing: $0["fleet"]) } ?? "no answer")")
        let fleet = try #require(fleetAnswer)
        Self.expectSameFigures(fleet: fleet, single: singleAnswer)
        let fleetHosts = (fleet["fleet"]?.objectValue?["hosts"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(fleetHosts.map { $0["name"]?.stringValue ?? "" } == ports.map { "127.0.0.1:\($0)" }.sorted())
        #expect(fleetHosts.filter { $0["counted"] == .bool(true) }.count == 3)
        let notCounted = try #require(fleetHosts.first { $0["counted"] == .bool(false) })
        #expect(notCounted["name"] == .string("127.0.0.1:\(ports[3])"))
        #expect(notCounted["note"]?.stringValue?.hasPrefix("on another configuration of the experiment") == true)

        // Read ten minutes from now, every host is one that went away: each is read where it was last seen.
        let document = try ConfigDocument.validate(Array(exampleConfig.utf8))
        let experiment = try #require(document.experiments.first { $0.name == "checkout-prompt" })
        let later = try await FleetQuery(configuration: .init(baseURL: prometheus.baseURL))
            .state(of: experiment, at: Date().timeIntervalSince1970 + 600)
        #expect(later.hosts.filter(\.counted).count == 3)
        let laterAnswer = try #require(try JSONParser.parse(later.report().fleetAnswer(later, configVersion: "")).objectValue)
        Self.expectSameFigures(fleet: laterAnswer, single: singleAnswer)

        // The text report names the hosts first, then the same tables as one daemon's.
        let text = try fleetStats(prometheus.baseURL)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.hasPrefix("fleet: 3 of 4 hosts counted\nHOST"), "\(text.stdout)")
        #expect(text.stdout.contains("\nerror_rate\nVARIANT"))

        // What a daemon exports passes promtool's checks.
        let exposition = try httpGet(port: ports[0], path: "/metrics")
        #expect(exposition.body.contains("variantd_metric_group_observations_total{experiment=\"checkout-prompt\""))
        let lint = try runProgram("/usr/bin/promtool", ["check", "metrics"], input: exposition.body)
        #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "promtool: \(lint.stdout) \(lint.stderr)")
        for host in hosts { #expect(host.stop() == 0) }
        _ = other.stop()
        _ = single.stop()
    }
}
