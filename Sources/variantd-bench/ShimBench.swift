import Foundation
import VariantClient
import VariantCore

/// A shim's cost over a raw round trip to the same daemon, measured in the same run: each measurement's median
/// round trip per round, and each shim call's ratio to its raw round trip taken round by round.
struct ShimFigures: Encodable {
    struct Figure: Encodable {
        var name: String
        var value: Spread
    }

    /// How the figures were measured, in a line.
    var method: String
    /// Each measurement's median round trip in microseconds.
    var figures: [Figure]
    /// Each shim call over its raw round trip (`shim assign / raw assign`, ...).
    var ratios: [Figure]

    init(method: String, figures: [Figure], ratios: [Figure]) {
        self.method = method
        self.figures = figures
        self.ratios = ratios
    }

    /// The figures of `medians` (each measurement's median of every round, in microseconds), with the ratios of
    /// `pairs` (shim measurement, raw measurement).
    init(method: String, medians: [(name: String, values: [Double])], pairs: [(String, String)]) {
        self.method = method
        figures = medians.map { Figure(name: $0.name, value: Spread($0.values)) }
        let byName = Dictionary(medians.map { ($0.name, $0.values) }, uniquingKeysWith: { first, _ in first })
        ratios = pairs.compactMap { shim, raw in
            guard let shimValues = byName[shim], let rawValues = byName[raw] else { return nil }
            return Figure(name: "\(shim) / \(raw)", value: Spread(shimValues, over: rawValues))
        }
    }
}

/// The Swift shim (`VariantClient`, blocking, one kept connection) against a raw Swift round trip to the same
/// daemon: the benchmark's client (a request line made in advance, one write, one read, the answer checked but not
/// decoded) on one connection, one request in flight, for the same units.
///
/// A round runs `raw assign`, `shim assign`, `shim prompt` (against raw assign: a cached template costs no round
/// trip), `raw render` and `shim render`, `calls` sequential calls each, in an order that rotates from round to
/// round so that drift falls on all alike. Every shim answer is checked: the daemon's (not the fallback's), the
/// variant the core decides for the unit, a template for `prompt`, a rendered text for `render`.
struct SwiftShimBench {
    static let measurements = ["raw assign", "shim assign", "shim prompt", "raw render", "shim render"]
    static let pairs = [
        ("shim assign", "raw assign"), ("shim prompt", "raw assign"), ("shim render", "raw render"),
    ]

    let calls: Int
    let experiment: String
    let client: VariantClient
    let rawAssign: LoadGenerator
    let rawRender: LoadGenerator
    let units: [String]
    /// The variant the core assigns to each unit, in `experiment` and in the render experiment.
    let expected: [String]
    let expectedRendered: [String]
    let variables: JSONObject

    init(socketPath: String, configPath: String, experiment: String, unitPrefix: String, calls: Int) throws {
        self.calls = calls
        self.experiment = experiment
        var configuration = VariantClient.Configuration(socketPath: socketPath)
        // Every answer must be the daemon's: a timeout that a loaded machine cannot reach.
        configuration.timeout = 1
        client = VariantClient(configuration: configuration)
        rawAssign = LoadGenerator(
            socketPath: socketPath, corpus: RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: 1))
        rawRender = LoadGenerator(
            socketPath: socketPath,
            corpus: RequestCorpus(
                experiment: RenderBench.experiment, unitPrefix: unitPrefix, maxBurst: 1, op: "render",
                extraMembers: #","variables":"# + RenderBench.variables),
            check: .render)
        let units = (0..<calls).map { index in
            let digits = String(index)
            return unitPrefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
        }
        self.units = units
        let document = try ConfigDocument.validate(Array(try Data(contentsOf: URL(fileURLWithPath: configPath))))
        func decisions(_ name: String) throws -> [String] {
            guard let found = document.experiment(named: name) else { throw BenchError("no experiment \(name)") }
            return units.map { found.variants[found.hashedVariantIndex(unit: $0)].name }
        }
        expected = try decisions(experiment)
        expectedRendered = try decisions(RenderBench.experiment)
        guard case .object(let variables) = try JSONParser.parse(Array(RenderBench.variables.utf8)) else {
            throw BenchError("the render variables are not an object")
        }
        self.variables = variables
    }

    /// Runs every measurement once (`calls` each) in the order given by `round`; returns each one's median round
    /// trip in microseconds.
    func round(_ round: Int) throws -> [String: Double] {
        let order = Self.measurements.indices.map { Self.measurements[($0 + round) % Self.measurements.count] }
        var medians: [String: Double] = [:]
        for name in order {
            medians[name] = try measure(name)
        }
        return medians
    }

    private func measure(_ name: String) throws -> Double {
        switch name {
        case "raw assign":
            return LatencyFigures(try rawAssign.oneInFlight(connections: 1, requestsPerConnection: calls)).p50Micros
        case "raw render":
            return LatencyFigures(try rawRender.oneInFlight(connections: 1, requestsPerConnection: calls)).p50Micros
        case "shim assign":
            return try timed(name) { client.assign(experiment, unit: units[$0]) } check: { index, answer in
                answer.reason == "assigned" && answer.variant == expected[index] && answer.unit == units[index]
            }
        case "shim prompt":
            return try timed(name) { client.prompt(experiment, unit: units[$0]) } check: { index, answer in
                answer.reason == "assigned" && answer.variant == expected[index] && answer.template?.isEmpty == false
            }
        default:
            return try timed(name) {
                client.render(RenderBench.experiment, unit: units[$0], variables: variables)
            } check: { index, rendered in
                rendered.kind == .text && rendered.text?.contains("Acme Books") == true && rendered.error == nil
                    && rendered.assignment?.reason == "assigned" && rendered.assignment?.variant == expectedRendered[index]
            }
        }
    }

    /// Times `call` for each unit and returns the median in microseconds; checks every answer after the clock
    /// stops.
    private func timed<Answer>(
        _ name: String, _ call: (Int) -> Answer, check: (Int, Answer) -> Bool
    ) throws -> Double {
        var durations = [UInt64](repeating: 0, count: calls)
        var answers: [Answer] = []
        answers.reserveCapacity(calls)
        for index in 0..<calls {
            let started = monotonicNanoseconds()
            answers.append(call(index))
            durations[index] = monotonicNanoseconds() - started
        }
        for (index, answer) in answers.enumerated() where !check(index, answer) {
            throw BenchError("\(name): a wrong answer for \(units[index]): \(answer)")
        }
        durations.sort()
        return Double(durations[durations.count / 2]) / 1000
    }
}

/// The Python shim's figures, from `clients/python/bench/roundtrip.py --json` (which starts a daemon of its own on
/// the same executable and measures, in interleaved rounds, a raw Python round trip and the shim's calls).
enum PythonShimBench {
    /// Runs `script` with `python` against `daemon`; the figures, or why there are none.
    static func measure(python: String, script: String, daemon: String, rounds: Int) throws -> ShimFigures {
        let result = try runToCompletion(
            python, [script, "--json", "--binary", daemon, "--rounds", String(rounds)], separateErrors: true)
        guard result.status == 0 else {
            throw BenchError("\(script) failed (exit status \(result.status)):\n\(result.output)")
        }
        guard case .object(let report) = try JSONParser.parse(Array(result.output.utf8)),
            let figures = report["us"]?.objectValue, let ratios = report["ratio"]?.objectValue
        else { throw BenchError("cannot read \(script)'s report:\n\(result.output)") }
        func spreads(_ object: JSONObject) -> [ShimFigures.Figure] {
            object.members.compactMap { member in
                guard let value = member.value.objectValue, let median = value["median"]?.numberValue,
                    let low = value["low"]?.numberValue, let high = value["high"]?.numberValue
                else { return nil }
                var spread = Spread([median])
                spread.low = low
                spread.high = high
                return ShimFigures.Figure(name: member.key, value: spread)
            }
        }
        let calls = report["calls"]?.integerValue ?? 0
        let version = report["python"]?.stringValue ?? "?"
        return ShimFigures(
            method: "\(script), Python \(version), \(rounds) rounds of \(calls) sequential calls each",
            figures: spreads(figures), ratios: spreads(ratios))
    }
}
