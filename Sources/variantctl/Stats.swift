import ArgumentParser
import Glibc
import VariantClient
import VariantCore
import VariantFleet

/// `variantctl stats EXPERIMENT`: one table per metric (variant, n, rate or mean, difference with its interval,
/// p-value, verdict), the split check, the sample size and the recommendation. With `--prometheus`, the same report
/// for the whole fleet, from what every daemon exported to Prometheus (docs/fleet.md).
struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an experiment's statistics: each treatment against the control, per metric, and a recommendation.",
        discussion: """
            With --prometheus URL, the statistics of every host that exports the experiment to that Prometheus \
            (variantd --metrics-address), computed by the same code from each host's last totals; --config names the \
            document the fleet serves (default: $VARIANTD_CONFIG, else /etc/variantd/config.json). Hosts on another \
            configuration of the experiment are listed and not counted.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment.")
    var experiment: String

    @Option(help: "The absolute change of the primary rate the sample size is computed for (default: a tenth of the control's rate).")
    var minimumDetectableEffect: Double?

    @Option(help: "An earlier phase of the experiment (default: the current one).")
    var phase: Int?

    @Option(help: "Fleet statistics from this Prometheus (its base URL, e.g. http://127.0.0.1:9090).")
    var prometheus: String?

    @Option(help: "With --prometheus: the configuration document the fleet serves (default: $VARIANTD_CONFIG, else /etc/variantd/config.json).")
    var config: String?

    @Option(help: "With --prometheus: days back to look for hosts that went away (their last totals still count).")
    var lookbackDays: Double = 30

    func validate() throws {
        if let phase, phase < 1 { throw ValidationError("--phase must be 1 or more") }
        if prometheus != nil, phase != nil {
            throw ValidationError("--phase is for one daemon's earlier phases; with --prometheus the fleet's current phase is reported")
        }
        if let prometheus, !(prometheus.hasPrefix("http://") || prometheus.hasPrefix("https://")) {
            throw ValidationError("--prometheus must be an http:// or https:// URL, not '\(prometheus)'")
        }
        if prometheus == nil, config != nil { throw ValidationError("--config is used only with --prometheus") }
        guard lookbackDays > 0, lookbackDays <= 3650 else { throw ValidationError("--lookback-days must be from 0 to 3650") }
        if let minimumDetectableEffect, !(minimumDetectableEffect > 0 && minimumDetectableEffect < 1) {
            throw ValidationError("--minimum-detectable-effect must be between 0 and 1")
        }
    }

    func run() async throws {
        if let prometheus { return try await runOnFleet(prometheus: prometheus) }
        let (line, answer) = try connection.send(
            Self.request(experiment: experiment, effect: minimumDetectableEffect, phase: phase))
        guard !connection.json else { return print(line) }
        print(Self.rendered(answer))
    }

    /// The fleet's report: the document's experiment, each host's last totals from Prometheus, merged.
    private func runOnFleet(prometheus: String) async throws {
        let path = config ?? Environment.configPath
        let document: ConfigDocument
        let version: String
        do {
            let bytes = try LocalFile.bytes(atPath: path)
            version = LoadedConfig.version(of: bytes)
            document = try ConfigDocument.validate(bytes)
        } catch let error as ConfigValidationError {
            printError("variantctl: \(path) is not a valid configuration (\(error.issues.count) problems; `variantctl validate \(path)` lists them)")
            throw ExitCode(ExitCodes.invalidConfig)
        } catch {
            printError("variantctl: cannot read \(path): \(error); give the document the fleet serves with --config")
            throw ExitCode(ExitCodes.noInput)
        }
        guard let experiment = document.experiments.first(where: { $0.name == self.experiment }) else {
            let near = NearNames.near(self.experiment, among: document.experiments.map(\.name))
            printError("variantctl: \(path) has no experiment '\(self.experiment)'\(near.isEmpty ? "" : "; did you mean \(near.map { "'\($0)'" }.joined(separator: " or "))?")")
            throw ExitCode(ExitCodes.requestFailed)
        }
        var configuration = FleetQuery.Configuration(baseURL: prometheus)
        configuration.timeout = .milliseconds(Int(connection.timeout * 1000))
        configuration.lookback = .seconds(Int(lookbackDays * 86_400))
        let fleet: FleetState
        do {
            fleet = try await FleetQuery(configuration: configuration).state(of: experiment)
        } catch {
            printError("variantctl: \(error.code.rawValue): \(error.message)")
            throw ExitCode(error.code == .unreachable || error.code == .timeout ? ExitCodes.unavailable : ExitCodes.requestFailed)
        }
        let answer = fleet.report(minimumDetectableEffect: minimumDetectableEffect).fleetAnswer(fleet, configVersion: version)
        let line = String(decoding: answer.dropLast(), as: UTF8.self)
        guard !connection.json else { return print(line) }
        guard case .object(let object)? = try? JSONParser.parse(answer) else { return print(line) }
        print(Self.renderedHosts(object) + "\n\n" + Self.rendered(object))
    }

    /// The fleet's hosts: counted or not, and why.
    static func renderedHosts(_ answer: JSONObject) -> String {
        let hosts = (answer["fleet"]?.objectValue?["hosts"]?.arrayValue ?? []).compactMap(\.objectValue)
        let counted = hosts.filter { $0["counted"] == .bool(true) }.count
        var table = Table("HOST", "PHASE", "CONFIG", "COUNTED", "NOTE")
        for host in hosts {
            table.add([
                render(host["name"] ?? .null), render(host["phase"] ?? .null), render(host["config_version"] ?? .null),
                host["counted"] == .bool(true) ? "yes" : "no", host["note"]?.stringValue ?? "",
            ])
        }
        return "fleet: \(counted) of \(hosts.count) hosts counted\n" + table.rendered()
    }

    static func request(experiment: String, effect: Double?, phase: Int? = nil) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("op", .string("stats")), ("experiment", .string(experiment))]
        if let effect { fields.append(("minimum_detectable_effect", .number(effect))) }
        if let phase { fields.append(("phase", .number(Double(phase)))) }
        return fields
    }

    /// The whole answer for a terminal.
    static func rendered(_ answer: JSONObject) -> String {
        var sections: [String] = []
        let variants = (answer["variants"]?.arrayValue ?? []).compactMap(\.objectValue)
        let control = variants.first { $0["control"] == .bool(true) }
        sections.append(
            "\(render(answer["experiment"] ?? .null)) (\(render(answer["status"] ?? .null)), \(render(answer["mode"] ?? .null)), config \(render(answer["config_version"] ?? .null)))")
        if let phase = answer["phase"]?.objectValue {
            let number = render(phase["number"] ?? .null)
            let current = phase["number"] == phase["current"] ? "current" : "current is \(render(phase["current"] ?? .null))"
            sections[0] += "\nphase \(number) (\(current)), since \(render(phase["started_at"] ?? .null)): \(render(phase["reason"] ?? .null))"
        }

        var overview = Table("VARIANT", "WEIGHT", "ASSIGNED", "UNITS", "RECORDS", "ANALYSIS", "STATE")
        for variant in variants {
            let disabled = variant["disabled"]?.objectValue
            overview.add([
                name(variant), render(variant["weight"] ?? .null), render(variant["assignments"] ?? .null),
                render(variant["units"] ?? .null), render(variant["records"] ?? .null),
                "by " + render(variant["analysis"] ?? .null),
                disabled.map { "disabled (\($0["automatic"] == .bool(true) ? "guardrail" : "operator")): \(render($0["reason"] ?? .null))" } ?? "serving",
            ])
        }
        sections.append(overview.rendered())

        let comparisons = (answer["comparisons"]?.arrayValue ?? []).compactMap(\.objectValue)
        var metricNames: [String] = []
        for comparison in comparisons {
            for metric in (comparison["metrics"]?.arrayValue ?? []).compactMap(\.objectValue) {
                if let name = metric["metric"]?.stringValue, !metricNames.contains(name) { metricNames.append(name) }
            }
        }
        for metricName in metricNames {
            var table = Table(
                "VARIANT", "N", metricName == "error_rate" || metricName == "success" ? "RATE" : "MEAN", "DIFF",
                "95% ANYTIME INTERVAL", "ANYTIME P", "FIXED-HORIZON P", "VERDICT")
            if let control {
                table.add([name(control), count(control, metricName), value(control, metricName), "", "", "", "", "control"])
            }
            for comparison in comparisons {
                guard let metric = (comparison["metrics"]?.arrayValue ?? []).compactMap(\.objectValue).first(where: { $0["metric"] == .string(metricName) }),
                    let variant = variants.first(where: { $0["name"] == comparison["variant"] })
                else { continue }
                table.add([
                    name(variant), count(variant, metricName), number(metric["treatment"]), signed(metric["difference"]),
                    interval(metric["interval"]), number(metric["always_valid_p_value"]),
                    number(metric["fixed_horizon_p_value"]), render(metric["verdict"] ?? .null),
                ])
            }
            sections.append("\(metricName)\n" + table.rendered())
        }

        if let latencyRows = Optional(variants.compactMap { variant -> [String]? in
            guard let latency = variant["latency_ms"]?.objectValue, latency["n"] != .number(0) else { return nil }
            return [name(variant), number(latency["p50"]), number(latency["p95"]), number(latency["p99"])]
        }), !latencyRows.isEmpty {
            var table = Table("VARIANT", "P50 MS", "P95 MS", "P99 MS")
            latencyRows.forEach { table.add($0) }
            sections.append("latency percentiles\n" + table.rendered())
        }

        let promptRules = (answer["prompt_rules"]?.arrayValue ?? []).compactMap(\.objectValue)
        if !promptRules.isEmpty {
            var table = Table("PROMPT", "VERSION", "RULE", "ACTION", "TRIGGERED")
            for rule in promptRules {
                table.add(["prompt", "prompt_version", "rule", "action", "triggered"].map { render(rule[$0] ?? .null) })
            }
            sections.append("prompt rules\n" + table.rendered())
        }

        var checks: [String] = []
        if let ratio = answer["sample_ratio"]?.objectValue {
            let sampled = (ratio["sampled_units"]?.arrayValue ?? []).map { render($0) }.joined(separator: "/")
            let scope = ratio["exact"] == .bool(true) ? "all units" : "a uniform sample of units"
            checks.append("sample ratio on units: \(ratio["mismatch"] == .bool(true) ? "MISMATCH" : "ok") (\(sampled), \(scope); chi-square \(number(ratio["statistic"])), p \(number(ratio["p_value"])))")
        }
        if let size = answer["sample_size"]?.objectValue, size["required_per_variant"] != .null {
            checks.append("sample size on \(render(size["metric"] ?? .null)): \(render(size["smallest_variant"] ?? .null)) of \(render(size["required_per_variant"] ?? .null)) records per variant to detect \(number(size["minimum_detectable_effect"])) (design effect \(number(size["design_effect"])))")
        }
        if let recommendation = answer["recommendation"]?.objectValue {
            checks.append("recommendation: \(render(recommendation["verdict"] ?? .null)) — \(render(recommendation["reason"] ?? .null))")
        }
        checks.append("intervals are anytime-valid (refreshing does not inflate errors); fixed-horizon p-values are valid only when looked at once")
        sections.append(checks.joined(separator: "\n"))
        return sections.joined(separator: "\n\n")
    }

    private static func name(_ variant: JSONObject) -> String { render(variant["name"] ?? .null) }

    private static func summary(_ variant: JSONObject, _ metric: String) -> JSONObject? {
        variant[metric]?.objectValue ?? variant["custom"]?.objectValue?[metric]?.objectValue
    }

    private static func count(_ variant: JSONObject, _ metric: String) -> String {
        render(summary(variant, metric)?["n"] ?? .null)
    }

    private static func value(_ variant: JSONObject, _ metric: String) -> String {
        let summary = summary(variant, metric)
        return number(summary?["rate"] ?? summary?["mean"])
    }

    static func number(_ value: JSONValue?) -> String {
        guard let value = value?.numberValue else { return "-" }
        return Readable.fourSignificantDigits(value)
    }

    private static func signed(_ value: JSONValue?) -> String {
        guard let number = value?.numberValue else { return "-" }
        return (number > 0 ? "+" : "") + Readable.fourSignificantDigits(number)
    }

    private static func interval(_ value: JSONValue?) -> String {
        guard let bounds = value?.arrayValue, bounds.count == 2 else { return "-" }
        return "[\(signed(bounds[0])), \(signed(bounds[1]))]"
    }
}

/// `variantctl watch EXPERIMENT`: the `stats` tables, refreshed in place until interrupted.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Refresh an experiment's statistics in place until interrupted.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment.")
    var experiment: String

    @Option(help: "Seconds between refreshes.")
    var interval: Double = 2

    @Option(help: "Stop after this many refreshes (default: until interrupted).")
    var count: Int?

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 seconds") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        var refreshes = 0
        while count.map({ refreshes < $0 }) ?? true {
            let (line, answer) = try connection.send(Stats.request(experiment: experiment, effect: nil))
            // On a terminal: clear the screen and go home, then draw; elsewhere, one plain snapshot after another.
            if connection.json {
                print(line)
            } else if isatty(STDOUT_FILENO) == 1 {
                print("\u{1B}[2J\u{1B}[H" + Stats.rendered(answer))
            } else {
                print(Stats.rendered(answer) + "\n")
            }
            fflush(nil)  // every output stream: the snapshot reaches a pipe at once
            refreshes += 1
            if count.map({ refreshes >= $0 }) ?? false { break }
            usleep(useconds_t(interval * 1_000_000))
        }
    }
}

/// The variables variantctl shares with variantd.
enum Environment {
    /// The daemon's configuration document: `$VARIANTD_CONFIG`, else the daemon's default.
    static var configPath: String {
        guard let path = getenv("VARIANTD_CONFIG").map({ String(cString: $0) }), !path.isEmpty else {
            return "/etc/variantd/config.json"
        }
        return path
    }
}
