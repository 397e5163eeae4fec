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

/// A figure measured once per round: the median of the rounds' values, and their spread (lowest to highest).
struct Spread: Encodable {
    var median: Double
    var low: Double
    var high: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        low = sorted.first ?? .nan
        high = sorted.last ?? .nan
    }

    /// The value of every round divided by the `reference`'s value in the same round, times `scale`.
    init(_ values: [Double], over reference: [Double], scale: Double = 1) {
        self.init(zip(values, reference).map { scale * $0 / $1 })
    }
}

/// One server's figures, round by round.
struct ServerRounds {
    /// One in flight on 1 connection.
    var single: [LatencyFigures] = []
    /// One in flight on each of `connections` connections; percentiles over all their round trips.
    var concurrent: [LatencyFigures] = []
    /// Pipelined on `connections` connections, requests per second.
    var pipelined: [Double] = []
}

/// One run's settings, figures, comparisons to the floor and targets; printed as a table or as JSON.
struct BenchReport: Encodable {
    /// The settings the figures were measured with.
    struct Settings: Encodable {
        var rounds: Int
        var connections: Int
        var requests: Int
        var depth: Int
        var latencyRequests: Int
        var warmUpRequests: Int
        var experiment: String
        var unitPrefix: String
        /// How variantd was reached: the executable started, or the socket given.
        var variantd: String
        /// Where the processes ran (`--cpu`).
        var placement: String
    }

    /// One server's figure in a comparison: its median over the rounds with their spread, and its ratio to the
    /// floor taken round by round (server/floor for a latency, 100·server/floor for a rate).
    struct ServerFigure: Encodable {
        var server: String
        var value: Spread
        var toFloor: Spread?
    }

    /// One figure of every server.
    struct Comparison: Encodable {
        var measurement: String
        var metric: String
        var isRate: Bool
        var servers: [ServerFigure]
    }

    /// A goal and whether this run met it (on the median over the rounds; nil without what it is measured against).
    struct Target: Encodable {
        var name: String
        var value: Spread?
        var unit: String
        var pass: Bool?
    }

    var date: String
    var cores: Int
    var settings: Settings
    /// Why the floor was not measured, if it was not.
    var floorSkipped: String?
    var comparisons: [Comparison]
    var core: CoreCost
    /// `render` against `assign` (nil when the benchmark did not start the daemon).
    var render: RenderFigures?
    /// The core's cost per `render` of the render case.
    var renderCore: CoreCost?
    /// The Swift shim against a raw Swift round trip (nil when the benchmark did not start the daemon).
    var swiftShim: ShimFigures?
    /// The Python shim against a raw Python round trip (clients/python/bench/roundtrip.py), or why it was skipped.
    var pythonShim: ShimFigures?
    var pythonShimSkipped: String?
    var targets: [Target]

    /// The shim pairs held to the 1.25x target.
    static let shimTargetPairs: Set<String> = [
        "shim assign / raw assign", "shim prompt / raw assign", "shim render / raw render",
    ]

    /// The server names, in the order the rounds measure them.
    static let floorName = "floor"
    static let referenceName = "NIO reference"
    static let variantdName = "variantd"

    init(
        settings: Settings, floorSkipped: String?, servers: [(name: String, rounds: ServerRounds)], core: CoreCost,
        render: RenderFigures?, renderCore: CoreCost?, swiftShim: ShimFigures?, pythonShim: ShimFigures?,
        pythonShimSkipped: String?
    ) {
        self.date = Date().ISO8601Format()
        self.cores = ProcessInfo.processInfo.activeProcessorCount
        self.settings = settings
        self.floorSkipped = floorSkipped
        self.core = core
        self.render = render
        self.renderCore = renderCore
        self.swiftShim = swiftShim
        self.pythonShim = pythonShim
        self.pythonShimSkipped = pythonShimSkipped

        let floor = servers.first { $0.name == Self.floorName }?.rounds
        func comparison(
            _ measurement: String, _ metric: String, isRate: Bool, _ values: (ServerRounds) -> [Double]
        ) -> Comparison {
            Comparison(
                measurement: measurement, metric: metric, isRate: isRate,
                servers: servers.map { server in
                    ServerFigure(
                        server: server.name, value: Spread(values(server.rounds)),
                        toFloor: floor.map { Spread(values(server.rounds), over: values($0), scale: isRate ? 100 : 1) })
                })
        }
        let single = "one in flight, 1 connection"
        let concurrent = "one in flight, \(settings.connections) connections"
        let pipelined = "pipelined, \(settings.connections) connections, depth \(settings.depth)"
        let comparisons = [
            comparison(single, "p50 us", isRate: false) { $0.single.map(\.p50Micros) },
            comparison(single, "p99 us", isRate: false) { $0.single.map(\.p99Micros) },
            comparison(single, "p99.9 us", isRate: false) { $0.single.map(\.p999Micros) },
            comparison(single, "req/s", isRate: true) { $0.single.map(\.requestsPerSecond) },
            comparison(concurrent, "p50 us", isRate: false) { $0.concurrent.map(\.p50Micros) },
            comparison(concurrent, "p99 us", isRate: false) { $0.concurrent.map(\.p99Micros) },
            comparison(concurrent, "req/s", isRate: true) { $0.concurrent.map(\.requestsPerSecond) },
            comparison(pipelined, "req/s", isRate: true) { $0.pipelined },
        ]
        self.comparisons = comparisons

        func toFloor(_ index: Int) -> Spread? {
            comparisons[index].servers.first { $0.server == Self.variantdName }?.toFloor
        }
        let singleP50 = toFloor(0)
        let pipelinedRate = toFloor(7)
        targets = [
            Target(
                name: "assign round trip p50 (1 connection) <= 2.0x the floor",
                value: singleP50, unit: "x", pass: singleP50.map { $0.median <= 2.0 }),
            Target(
                name: "pipelined throughput (\(settings.connections) connections) >= 25% of the floor",
                value: pipelinedRate, unit: "%", pass: pipelinedRate.map { $0.median >= 25 }),
        ]
        if let render {
            targets.append(
                Target(
                    name: "render adds <= 20% to an assign round trip (p50, 1 connection)",
                    value: Spread([render.addedAtMedianPercent]), unit: "%", pass: render.addedAtMedianPercent <= 20))
            targets.append(
                Target(
                    name: "render p99 with \(settings.connections) connections < 1000 us",
                    value: Spread([render.concurrentRender.p99Micros]), unit: " us",
                    pass: render.concurrentRender.p99Micros < 1000))
        }
        for (language, shim) in [("Swift", swiftShim), ("Python", pythonShim)] {
            guard let shim else { continue }
            // The shims' calls as a service makes them (the Python benchmark's async figure is for information).
            // The calls with a target (issue 17): assign, prompt and render. Renders whose every answer differs and
            // the asyncio client are reported beside them, for information.
            for pair in shim.pairs where Self.shimTargetPairs.contains(pair.name) {
                targets.append(
                    Target(
                        name: "\(language) \(pair.name) <= 1.25x", value: pair.ratio, unit: "x",
                        pass: pair.ratio.median <= 1.25))
            }
        }
    }

    /// The report as one line of JSON.
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// The report as a readable table: each figure as the median over the rounds, with the lowest and highest
    /// round in brackets.
    func table() -> String {
        var lines = [
            "variantd-bench  \(date)  \(cores) cores",
            "variantd: \(settings.variantd)",
            "placement: \(settings.placement)",
            "floor: "
                + (floorSkipped.map { "skipped (\($0))" } ?? "udsfloor.c's epoll server, in a process of its own"),
            "each server in its own process, measured by this benchmark's client (every answer checked); "
                + "\(settings.rounds) rounds, each server in turn within each measurement; warm-up "
                + "\(settings.warmUpRequests) round trips and as many pipelined requests, for each server",
            "per round: \(settings.latencyRequests) one-in-flight round trips on 1 and on \(settings.connections) "
                + "connections; \(settings.requests) pipelined requests on \(settings.connections) connections, depth "
                + "\(settings.depth)",
            "figures: median over the rounds (lowest - highest round); ratios to the floor taken round by round",
            "",
        ]
        let names = comparisons.first?.servers.map(\.server) ?? []
        let others = names.filter { $0 != Self.floorName }
        var rows = [["measurement", "metric"] + names + (floorSkipped == nil ? others.map { "\($0)/floor" } : [])]
        var previousMeasurement = ""
        for comparison in comparisons {
            let decimals = comparison.isRate ? 0 : 1
            var row = [comparison.measurement == previousMeasurement ? "" : comparison.measurement, comparison.metric]
            row += comparison.servers.map { spread($0.value, decimals: decimals) }
            if floorSkipped == nil {
                row += comparison.servers.filter { $0.server != Self.floorName }.map { figure in
                    figure.toFloor.map { spread($0, decimals: comparison.isRate ? 1 : 2, unit: comparison.isRate ? "%" : "x") }
                        ?? "-"
                }
            }
            rows.append(row)
            previousMeasurement = comparison.measurement
        }
        lines += aligned(rows, rightAlignedFrom: 2)
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
            var rows = [["render case (one in flight, variantd)", "metric", "assign", "render", "render/assign"]]
            func row(_ label: String, _ metric: String, _ assign: Double, _ render: Double) {
                rows.append([
                    label, metric, format(assign, decimals: 1), format(render, decimals: 1),
                    format(render / assign, decimals: 2) + "x",
                ])
            }
            row("1 connection, in pairs", "p50 us", render.assign.p50Micros, render.render.p50Micros)
            row("", "mean us", render.assignMeanMicros, render.renderMeanMicros)
            row("", "p99 us", render.assign.p99Micros, render.render.p99Micros)
            row("\(settings.connections) connections", "p50 us", render.concurrentAssign.p50Micros, render.concurrentRender.p50Micros)
            row("", "p99 us", render.concurrentAssign.p99Micros, render.concurrentRender.p99Micros)
            row("", "req/s", render.concurrentAssign.requestsPerSecond, render.concurrentRender.requestsPerSecond)
            lines += aligned(rows, rightAlignedFrom: 2)
        }
        for (language, shim) in [("Swift", swiftShim), ("Python", pythonShim)] {
            guard let shim else { continue }
            lines.append("")
            lines.append("\(language) shim against a raw \(language) round trip to variantd, same run: \(shim.method)")
            // Every pair; only `shimTargetPairs` have a target.
            var rows = [["pair", "raw p50 us", "shim p50 us", "added us", "shim / raw"]]
            for pair in shim.pairs {
                rows.append([
                    pair.name, spread(pair.raw, decimals: 1), spread(pair.shim, decimals: 1),
                    spread(pair.added, decimals: 1), spread(pair.ratio, decimals: 2, unit: "x"),
                ])
            }
            lines += aligned(rows, rightAlignedFrom: 1)
        }
        if let pythonShimSkipped { lines += ["", "Python shim: skipped (\(pythonShimSkipped))"] }
        lines.append("")
        var targetRows = [["target", "median (lowest - highest)", "result"]]
        for target in targets {
            let value = target.value.map { spread($0, decimals: target.unit == "x" ? 2 : 1, unit: target.unit) }
            targetRows.append([target.name, value ?? "-", target.pass.map { $0 ? "PASS" : "FAIL" } ?? "n/a (no floor)"])
        }
        lines += aligned(targetRows, rightAlignedFrom: 1)
        return lines.joined(separator: "\n")
    }

    private func spread(_ spread: Spread, decimals: Int, unit: String = "") -> String {
        let median = format(spread.median, decimals: decimals) + unit
        guard spread.low != spread.high else { return median }
        return median + " (" + format(spread.low, decimals: decimals) + " - " + format(spread.high, decimals: decimals) + ")"
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
