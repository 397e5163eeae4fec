import Foundation

/// Round-trip latency percentiles, in microseconds, and the request rate of the run they come from.
struct LatencyFigures: Encodable {
    var p50Micros: Double
    var p99Micros: Double
    var p999Micros: Double
    var requestsPerSecond: Double

    init(p50Micros: Double, p99Micros: Double, p999Micros: Double, requestsPerSecond: Double) {
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.p999Micros = p999Micros
        self.requestsPerSecond = requestsPerSecond
    }

    /// The percentiles of `outcome`'s round trips, picked as udsfloor picks them (the sorted samples at indices
    /// n/2, n·0.99 and n·0.999).
    init(_ outcome: PhaseOutcome) {
        let sorted = outcome.roundTrips.sorted()
        func micros(at fraction: Double) -> Double {
            Double(sorted[Int(Double(sorted.count) * fraction)]) / 1000
        }
        self.init(
            p50Micros: micros(at: 0.5), p99Micros: micros(at: 0.99), p999Micros: micros(at: 0.999),
            requestsPerSecond: outcome.requestsPerSecond)
    }
}

/// variantd's figures, measured with the benchmark's own client.
struct DaemonFigures: Encodable {
    /// One connection, one request in flight.
    var oneInFlight: LatencyFigures
    /// `connections` connections at once, each with one request in flight; percentiles over all round trips.
    var concurrentOneInFlight: LatencyFigures
    /// `connections` connections, pipelined with depth `depth`.
    var pipelinedRequestsPerSecond: Double
}

/// One run's settings, figures, comparisons to the floor and targets; printed as a table or as JSON.
struct BenchReport: Encodable {
    /// The settings the figures were measured with.
    struct Settings: Encodable {
        var connections: Int
        var requests: Int
        var depth: Int
        var latencyRequests: Int
        var experiment: String
        var unitPrefix: String
        /// How variantd was reached: the executable started, or the socket given.
        var variantd: String
    }

    /// One figure of variantd next to the floor's: a latency (compared as variantd/floor) or a rate (compared as
    /// variantd/floor in percent).
    struct Comparison: Encodable {
        var measurement: String
        var metric: String
        var floor: Double?
        var variantd: Double
        /// variantd/floor, for latencies.
        var ratio: Double?
        /// 100 · variantd/floor, for rates.
        var percentOfFloor: Double?
    }

    /// A goal for variantd relative to the floor.
    struct Target: Encodable {
        var name: String
        /// The ratio (for a latency, `unit` "x") or percentage (for a rate, `unit` "%") the target is about; nil
        /// without a floor.
        var value: Double?
        var unit: String
        /// Whether the target is met; nil without a floor.
        var pass: Bool?
    }

    var date: String
    var cores: Int
    var settings: Settings
    var floor: FloorFigures?
    /// Why the floor was not measured, if it was not.
    var floorSkipped: String?
    var variantd: DaemonFigures
    /// The NIO reference server, one in flight on 1 connection (NIOReferenceServer).
    var nioReference: LatencyFigures
    var core: CoreCost
    var comparisons: [Comparison]
    var targets: [Target]
    /// `render` against `assign` (nil when the benchmark did not start the daemon).
    var render: RenderFigures?
    /// The core's cost per `render` of the render case.
    var renderCore: CoreCost?

    init(
        settings: Settings, floor: FloorFigures?, floorSkipped: String?, variantd: DaemonFigures,
        nioReference: LatencyFigures, core: CoreCost, render: RenderFigures? = nil, renderCore: CoreCost? = nil
    ) {
        self.nioReference = nioReference
        self.core = core
        self.render = render
        self.renderCore = renderCore
        self.date = Date().ISO8601Format()
        self.cores = ProcessInfo.processInfo.activeProcessorCount
        self.settings = settings
        self.floor = floor
        self.floorSkipped = floorSkipped
        self.variantd = variantd

        let single = "one-in-flight, 1 connection"
        let concurrent = "one-in-flight, \(settings.connections) connections"
        let pipelined = "pipelined, \(settings.connections) connections, depth \(settings.depth)"
        func latency(_ measurement: String, _ metric: String, _ floor: Double?, _ variantd: Double) -> Comparison {
            Comparison(
                measurement: measurement, metric: metric, floor: floor, variantd: variantd,
                ratio: floor.map { variantd / $0 })
        }
        func rate(_ measurement: String, _ floor: Double?, _ variantd: Double) -> Comparison {
            Comparison(
                measurement: measurement, metric: "req/s", floor: floor, variantd: variantd,
                percentOfFloor: floor.map { 100 * variantd / $0 })
        }
        let singleP50 = latency(single, "p50 us", floor?.oneInFlight.p50Micros, variantd.oneInFlight.p50Micros)
        let pipelinedRate = rate(pipelined, floor?.pipelinedRequestsPerSecond, variantd.pipelinedRequestsPerSecond)
        comparisons = [
            singleP50,
            latency(single, "p99 us", floor?.oneInFlight.p99Micros, variantd.oneInFlight.p99Micros),
            latency(single, "p99.9 us", floor?.oneInFlight.p999Micros, variantd.oneInFlight.p999Micros),
            rate(single, floor?.oneInFlight.requestsPerSecond, variantd.oneInFlight.requestsPerSecond),
            // udsfloor reports no percentiles for concurrent connections, only their rate (its depth-1 run).
            latency(concurrent, "p50 us", nil, variantd.concurrentOneInFlight.p50Micros),
            latency(concurrent, "p99 us", nil, variantd.concurrentOneInFlight.p99Micros),
            latency(concurrent, "p99.9 us", nil, variantd.concurrentOneInFlight.p999Micros),
            rate(
                concurrent, floor?.concurrentOneInFlightRequestsPerSecond,
                variantd.concurrentOneInFlight.requestsPerSecond),
            pipelinedRate,
        ]
        targets = [
            Target(
                name: "one-in-flight p50 within 1.5x floor",
                value: singleP50.ratio, unit: "x", pass: singleP50.ratio.map { $0 <= 1.5 }),
            Target(
                name: "pipelined throughput with \(settings.connections) connections >= 15% of floor",
                value: pipelinedRate.percentOfFloor, unit: "%", pass: pipelinedRate.percentOfFloor.map { $0 >= 15 }),
        ]
        if let render {
            targets.append(
                Target(
                    name: "render adds <= 20% to an assign round trip (p50, 1 connection)",
                    value: render.addedAtMedianPercent, unit: "%", pass: render.addedAtMedianPercent <= 20))
            targets.append(
                Target(
                    name: "render p99 with \(settings.connections) connections < 1000 us",
                    value: render.concurrentRender.p99Micros, unit: " us", pass: render.concurrentRender.p99Micros < 1000))
        }
    }

    /// The report as one line of JSON.
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The report as a readable table.
    func table() -> String {
        var lines = [
            "variantd-bench  \(date)  \(cores) cores",
            "variantd: \(settings.variantd)",
            "floor: " + (floorSkipped.map { "skipped (\($0))" } ?? "udsfloor.c (C epoll server and client)"),
            "requests: \(settings.latencyRequests) one-in-flight on 1 and on \(settings.connections) connections; "
                + "\(settings.requests) pipelined on \(settings.connections) connections, depth \(settings.depth)",
            "",
        ]
        var rows = [["measurement", "metric", "floor", "variantd", "variantd/floor"]]
        var previousMeasurement = ""
        for comparison in comparisons {
            let decimals = comparison.metric == "req/s" ? 0 : 1
            let ratio =
                comparison.ratio.map { format($0, decimals: 2) + "x" }
                ?? comparison.percentOfFloor.map { format($0, decimals: 1) + "%" } ?? "-"
            rows.append([
                comparison.measurement == previousMeasurement ? "" : comparison.measurement,
                comparison.metric,
                comparison.floor.map { format($0, decimals: decimals) } ?? "-",
                format(comparison.variantd, decimals: decimals),
                ratio,
            ])
            previousMeasurement = comparison.measurement
        }
        lines += aligned(rows, rightAlignedFrom: 2)
        lines.append("")
        var referenceRows = [["NIO reference server (one in flight, 1 connection)", "metric", "NIO", "NIO/floor", "variantd/NIO"]]
        for (metric, reference, floor, variantd) in [
            ("p50 us", nioReference.p50Micros, self.floor?.oneInFlight.p50Micros, variantd.oneInFlight.p50Micros),
            ("p99 us", nioReference.p99Micros, self.floor?.oneInFlight.p99Micros, variantd.oneInFlight.p99Micros),
        ] {
            referenceRows.append([
                referenceRows.count == 1 ? "fixed answer, no parsing" : "", metric, format(reference, decimals: 1),
                floor.map { format(reference / $0, decimals: 2) + "x" } ?? "-",
                format(variantd / reference, decimals: 2) + "x",
            ])
        }
        lines += aligned(referenceRows, rightAlignedFrom: 2)
        lines.append("")
        lines.append(
            "core alone (parse, assign, write; no socket): \(format(core.nanosecondsPerRequest, decimals: 0)) ns/request, "
                + "\(format(core.requestsPerSecondPerCore, decimals: 0)) req/s per core")
        if let renderCore {
            lines.append(
                "core alone, render (\(render?.templateBytes ?? 0)-byte prompt, \(render?.variables ?? 0) variables): "
                    + "\(format(renderCore.nanosecondsPerRequest, decimals: 0)) ns/request")
        }
        if let render {
            lines.append("")
            var rows = [["render case (one in flight)", "metric", "assign", "render", "render/assign"]]
            func row(_ label: String, _ metric: String, _ assign: Double, _ render: Double) {
                rows.append([label, metric, format(assign, decimals: 1), format(render, decimals: 1), format(render / assign, decimals: 2) + "x"])
            }
            row("1 connection", "p50 us", render.assign.p50Micros, render.render.p50Micros)
            row("", "mean us", render.assignMeanMicros, render.renderMeanMicros)
            row("", "p99 us", render.assign.p99Micros, render.render.p99Micros)
            row("\(settings.connections) connections", "p50 us", render.concurrentAssign.p50Micros, render.concurrentRender.p50Micros)
            row("", "p99 us", render.concurrentAssign.p99Micros, render.concurrentRender.p99Micros)
            row("", "req/s", render.concurrentAssign.requestsPerSecond, render.concurrentRender.requestsPerSecond)
            lines += aligned(rows, rightAlignedFrom: 2)
        }
        lines.append("")
        var targetRows = [["target", "value", "result"]]
        for target in targets {
            let value = target.value.map { format($0, decimals: target.unit == "%" ? 1 : 2) + target.unit }
            targetRows.append([
                target.name, value ?? "-", target.pass.map { $0 ? "PASS" : "FAIL" } ?? "n/a (no floor)",
            ])
        }
        lines += aligned(targetRows, rightAlignedFrom: 1)
        return lines.joined(separator: "\n")
    }

    private func format(_ value: Double, decimals: Int) -> String {
        String(format: "%.\(decimals)f", value)
    }

    /// Pads `rows` into columns two spaces apart; columns from `rightAlignedFrom` on are right-aligned.
    private func aligned(_ rows: [[String]], rightAlignedFrom firstRightColumn: Int) -> [String] {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - row[column].count)
                return column >= firstRightColumn ? padding + row[column] : row[column] + padding
            }
            .joined(separator: "  ")
        }
    }
}
