import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOHTTPCompression
import VariantCore

/// Reads an experiment's exported state from Prometheus with instant queries and rebuilds the fleet's phase
/// (`FleetState`); docs/fleet.md, "The queries".
///
/// 1. Which hosts ever exported the experiment, and when each was last scraped: `timestamp(INFO) or
///    max_over_time(timestamp(INFO)[1h:1s]) or max_over_time(timestamp(INFO)[LOOKBACK:1m])`, INFO being
///    `variantd_experiment_phase_info{experiment="E"}`.
/// 2. For each host, the last value of every exported series, evaluated where that host was last seen:
///    `last_over_time(NAME{experiment="E"}[3m])` at now for the hosts scraped in the last two minutes (one query
///    per name for all of them), and at its last scrape plus two minutes for a host that went away (its last totals
///    keep counting until the experiment's phase ends, or the lookback forgets it).
///
/// Last values, never `rate()` or `increase()`: a restarted daemon continues its totals from its state file, so its
/// last value is all it counted, with nothing counted twice.
public struct FleetQuery: Sendable {
    public struct Configuration: Sendable {
        /// Prometheus' base URL (`http://prometheus:9090`).
        public var baseURL: String
        /// How long each query may take, answer included.
        public var timeout: Duration = .seconds(10)
        /// How far back hosts that went away are looked for.
        public var lookback: Duration = .seconds(30 * 86_400)
        /// The largest answer read.
        public var maximumBytes = 256 << 20

        public init(baseURL: String) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        }
    }

    /// The series names read for an experiment (each queried on its own: `last_over_time` drops the name).
    public static let experimentSeries = [
        "variantd_experiment_phase_info", "variantd_experiment_phase_start_timestamp_seconds",
        "variantd_treatment_disabled", "variantd_assignments_total", "variantd_records_total",
        "variantd_shadow_records_total", "variantd_unit_records_total", "variantd_out_of_range_records_total",
        "variantd_metric_observations_total", "variantd_metric_sum_of_values", "variantd_metric_sum_of_squares",
        "variantd_metric_group_observations_total", "variantd_metric_group_sum_of_values",
        "variantd_latency_seconds_bucket", "variantd_unit_sample",
    ]

    /// A host seen within this of the query's time counts as present; older ones are read where they were last seen.
    static let presentWithin = 120.0
    /// The window `last_over_time` looks back over: longer than a scrape interval and than `presentWithin`'s slack.
    static let lastValueWindow = "3m"

    public let configuration: Configuration
    let client: HTTPClient

    /// The client for Prometheus: its answers (JSON of many similar series) compress far beyond the decompression
    /// ratio `HTTPClient.shared` accepts, so they are decompressed up to a size instead. Like `.shared`, never shut
    /// down.
    public static let prometheusClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.decompression = .enabled(limit: .size(256 << 20))
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    public init(configuration: Configuration, client: HTTPClient = FleetQuery.prometheusClient) {
        self.configuration = configuration
        self.client = client
    }

    /// The fleet's state of `experiment` now.
    /// - Throws: `FleetError`: `prometheus_unreachable`, `prometheus_timeout`, `prometheus_invalid_answer`,
    ///   `prometheus_query_failed`, `no_series`, `phase_mismatch`.
    public func state(of experiment: Experiment, at now: Double = Date().timeIntervalSince1970) async throws(FleetError)
        -> FleetState
    {
        let selector = "{experiment=\(Self.quoted(experiment.name))}"
        let lookback = Int(configuration.lookback.components.seconds)
        // The latest sample of present hosts; else the last one on a one-second grid over the last hour; else on a
        // one-minute grid over the lookback. (A subquery's steps are aligned to its resolution, so a host that
        // exported for less than a minute shows only on the finer grid.)
        let info = "variantd_experiment_phase_info" + selector
        let seen = try await query(
            "timestamp(\(info)) or max_over_time(timestamp(\(info))[1h:1s]) or max_over_time(timestamp(\(info))[\(lookback)s:1m])",
            at: now)
        guard !seen.isEmpty else {
            throw FleetError(
                .noSeries,
                "no host exported experiment '\(experiment.name)' in the last \(lookback / 86_400) days (no variantd_experiment_phase_info series): is Prometheus scraping the daemons' --metrics-address, and has the experiment any records?")
        }
        // Each host's last scrape, and the time to read it at.
        var lastSeen: [String: (labels: [(String, String)], at: Double)] = [:]
        for sample in seen {
            let labels = FleetState.hostLabels(of: sample)
            let key = FleetState.hostKey(labels)
            if (lastSeen[key]?.at ?? -.infinity) < sample.value { lastSeen[key] = (labels, sample.value) }
        }
        var readings: [Double: [[(String, String)]]] = [:]
        for (_, host) in lastSeen {
            let at = host.at >= now - Self.presentWithin ? now : host.at + Self.presentWithin
            readings[at, default: []].append(host.labels)
        }

        var samples: [String: [PrometheusSample]] = [:]
        var configInfo: [PrometheusSample] = []
        for (at, hosts) in readings.sorted(by: { $0.key < $1.key }) {
            // Present hosts share one query per name; a host that went away gets its own, narrowed to its labels.
            let reads: [(selector: String, hostSelector: String, keys: Set<String>)] =
                at == now
                ? [(selector, "", Set(hosts.map(FleetState.hostKey)))]
                : hosts.map { host in
                    (Self.selector(host, experiment: experiment.name), Self.selector(host), [FleetState.hostKey(host)])
                }
            for read in reads {
                let found = try await readAll(selector: read.selector, hostSelector: read.hostSelector, at: at)
                func ofTheseHosts(_ list: [PrometheusSample]) -> [PrometheusSample] {
                    list.filter { read.keys.contains(FleetState.hostKey(FleetState.hostLabels(of: $0))) }
                }
                for (name, list) in found.series { samples[name, default: []] += ofTheseHosts(list) }
                configInfo += ofTheseHosts(found.configInfo)
            }
        }
        return try FleetState.assemble(experiment: experiment, samples: samples, configInfo: configInfo)
    }

    /// Every experiment series and the hosts' `variantd_config_info`, concurrently.
    private func readAll(selector: String, hostSelector: String, at time: Double) async throws(FleetError) -> (
        series: [String: [PrometheusSample]], configInfo: [PrometheusSample]
    ) {
        do {
            return try await withThrowingTaskGroup(of: (String, [PrometheusSample]).self) { group in
                for name in Self.experimentSeries {
                    group.addTask {
                        (name, try await query("last_over_time(\(name)\(selector)[\(Self.lastValueWindow)])", at: time))
                    }
                }
                group.addTask {
                    ("variantd_config_info", try await query("last_over_time(variantd_config_info\(hostSelector)[\(Self.lastValueWindow)])", at: time))
                }
                var series: [String: [PrometheusSample]] = [:]
                var configInfo: [PrometheusSample] = []
                for try await (name, list) in group {
                    if name == "variantd_config_info" { configInfo = list } else { series[name] = list }
                }
                return (series, configInfo)
            }
        } catch let error as FleetError {
            throw error
        } catch {
            throw FleetError(.unreachable, "\(configuration.baseURL): \(error)")
        }
    }

    /// One instant query (`POST /api/v1/query`), its vector's series.
    func query(_ expression: String, at time: Double) async throws(FleetError) -> [PrometheusSample] {
        let url = configuration.baseURL + "/api/v1/query"
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        let form = "query=\(Self.formEncoded(expression))&time=\(String(format: "%.3f", time))&timeout=\(configuration.timeout.components.seconds)s"
        request.body = .bytes(ByteBuffer(string: form))
        let bytes: [UInt8]
        do {
            let response = try await client.execute(request, deadline: .now() + TimeAmount(configuration.timeout))
            let body = try await response.body.collect(upTo: configuration.maximumBytes)
            bytes = Array(body.readableBytesView)
            // Prometheus answers a refused query with 400 or 422 and its JSON error; anything else is not Prometheus.
            if response.status != .ok, ![400, 422, 503].contains(response.status.code) {
                throw FleetError(
                    .invalidAnswer,
                    "\(url) answered \(response.status.code) \(response.status.reasonPhrase): is it Prometheus? (\(String(decoding: bytes.prefix(120), as: UTF8.self)))")
            }
        } catch let error as FleetError {
            throw error
        } catch let error as HTTPClientError
            where [.deadlineExceeded, .readTimeout, .connectTimeout, .getConnectionFromPoolTimeout].contains(error)
        {
            throw FleetError(.timeout, "\(url) did not answer within \(configuration.timeout) (\(error.shortDescription))")
        } catch is NIOTooManyBytesError {
            throw FleetError(.invalidAnswer, "\(url) answered more than \(configuration.maximumBytes) bytes")
        } catch {
            throw FleetError(.unreachable, "cannot reach Prometheus at \(configuration.baseURL): \(error)")
        }
        return try PrometheusSample.vector(from: bytes)
    }

    /// `{experiment="E",instance="...",job="..."}`: the series of a host, by all its labels (and of an experiment).
    static func selector(_ host: [(String, String)], experiment: String? = nil) -> String {
        let matchers = (experiment.map { [("experiment", $0)] } ?? []) + host
        return "{" + matchers.map { "\($0.0)=\(quoted($0.1))" }.joined(separator: ",") + "}"
    }

    /// A PromQL string literal.
    static func quoted(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }

    static func formEncoded(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }
}
