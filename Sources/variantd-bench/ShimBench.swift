import Foundation
import VariantClient
import VariantCore

/// A shim's cost over a raw round trip to the same daemon: pairs of calls, a raw round trip and a shim call, on the
/// shim's own connection, one after the other (which of the two goes first alternates from pair to pair).
///
/// Why pairs on one connection: on these machines a round trip takes about 17-25 us when the daemon's event-loop
/// thread runs on the client's core and 45-55 us when it runs on the other one, and the scheduler moves between the
/// two from time to time. Blocks of calls of one kind (the method before this one) each fell in one mode or the
/// other, so one round's ratio of a shim block to a raw block ranged from 0.4 to 3.4 in one run. Both calls of a
/// pair go through the same socket to the same event-loop thread at the same moment, so they share the mode, and
/// the shim's cost is what remains.
struct ShimFigures: Encodable {
    /// One shim call against its raw round trip, each figure the median over the rounds of a round's median, with
    /// the lowest and highest round.
    struct Pair: Encodable {
        /// `shim assign / raw assign`, ...
        var name: String
        /// The raw round trips' median, in microseconds.
        var raw: Spread
        /// The shim calls' median, in microseconds.
        var shim: Spread
        /// What the shim adds, `shim - raw`, round by round, in microseconds.
        var added: Spread
        /// `shim / raw`, round by round.
        var ratio: Spread

        init(name: String, raw: Spread, shim: Spread, added: Spread, ratio: Spread) {
            self.name = name
            self.raw = raw
            self.shim = shim
            self.added = added
            self.ratio = ratio
        }

        /// From each round's medians.
        init(name: String, rounds: PairRounds) {
            self.init(
                name: name, raw: Spread(rounds.raw), shim: Spread(rounds.shim),
                added: Spread(zip(rounds.shim, rounds.raw).map { $0 - $1 }), ratio: Spread(rounds.shim, over: rounds.raw))
        }
    }

    /// Each round's medians of one pair's raw round trips and shim calls, in microseconds.
    struct PairRounds {
        var raw: [Double] = []
        var shim: [Double] = []
    }

    /// How the figures were measured, in a line.
    var method: String
    var pairs: [Pair]
}

/// The Swift shim (`VariantClient`, blocking, one kept connection) against a raw Swift round trip to the same
/// daemon on the same connection: the benchmark's client (a request line made in advance, one write, one read,
/// the answer checked but not decoded), as for the floor.
///
/// A round measures each pair (`shim assign` and `shim prompt` against `raw assign`: a cached template costs no
/// round trip; `shim render` against `raw render`), in an order that rotates from round to round, `calls` pairs
/// each (see `ShimFigures` for why pairs). Every answer is checked: a raw one as the floor's are, a shim one for
/// the daemon's decision (not the fallback's), the variant the core decides for the unit, a template for `prompt`,
/// a rendered text for `render`.
struct SwiftShimBench {
    /// The pairs, shim call and raw round trip, by name.
    static let pairs: [(name: String, shim: String, raw: String)] = [
        ("shim assign / raw assign", "shim assign", "raw assign"),
        ("shim prompt / raw assign", "shim prompt", "raw assign"),
        ("shim render / raw render", "shim render", "raw render"),
    ]

    let calls: Int
    /// Microseconds of sleep before each call, raw and shim alike (0: back to back).
    let gapMicroseconds: UInt32
    let experiment: String
    let client: VariantClient
    let rawAssign: RequestCorpus
    let rawRender: RequestCorpus
    let socketPath: String
    let units: [String]
    /// The variant the core assigns to each unit, in `experiment` and in the render experiment.
    let expected: [String]
    let expectedRendered: [String]
    let variables: JSONObject

    init(
        socketPath: String, configPath: String, experiment: String, unitPrefix: String, calls: Int,
        gapMicroseconds: UInt32 = 0
    ) throws {
        guard calls <= RequestCorpus.unitCount else {
            throw BenchError("at most \(RequestCorpus.unitCount) shim calls per measurement (the raw lines name as many units)")
        }
        self.calls = calls
        self.gapMicroseconds = gapMicroseconds
        self.experiment = experiment
        self.socketPath = socketPath
        var configuration = VariantClient.Configuration(socketPath: socketPath)
        // Every answer must be the daemon's: a timeout that a loaded machine cannot reach.
        configuration.timeout = 1
        client = VariantClient(configuration: configuration)
        rawAssign = RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: 1)
        rawRender = RequestCorpus(
            experiment: RenderBench.experiment, unitPrefix: unitPrefix, maxBurst: 1, op: "render",
            extraMembers: #","variables":"# + RenderBench.variables)
        // The units of the raw lines: line i names unit i.
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

    /// Runs every pair once (`calls` pairs of calls each) in the order given by `round`; adds each pair's medians
    /// of the round to `rounds`.
    func round(_ round: Int, into rounds: inout [String: ShimFigures.PairRounds]) throws {
        for offset in Self.pairs.indices {
            let pair = Self.pairs[(offset + round) % Self.pairs.count]
            let (raw, shim) = try measure(pair.shim, round: round)
            rounds[pair.name, default: ShimFigures.PairRounds()].raw.append(raw)
            rounds[pair.name, default: ShimFigures.PairRounds()].shim.append(shim)
        }
    }

    /// The pairs' figures from every round's medians.
    static func figures(method: String, _ rounds: [String: ShimFigures.PairRounds]) -> ShimFigures {
        ShimFigures(
            method: method,
            pairs: pairs.map { ShimFigures.Pair(name: $0.name, rounds: rounds[$0.name] ?? ShimFigures.PairRounds()) })
    }

    /// The medians, raw and shim, of `calls` pairs of `name`'s shim call and its raw round trip, in microseconds.
    private func measure(_ name: String, round: Int) throws -> (raw: Double, shim: Double) {
        switch name {
        case "shim assign":
            return try paired(name, round: round, raw: rawAssign, check: .assign) { client.assign(experiment, unit: units[$0]) }
                check: { index, answer in
                    answer.reason == "assigned" && answer.variant == expected[index] && answer.unit == units[index]
                }
        case "shim prompt":
            return try paired(name, round: round, raw: rawAssign, check: .assign) { client.prompt(experiment, unit: units[$0]) }
                check: { index, answer in
                    answer.reason == "assigned" && answer.variant == expected[index] && answer.template?.isEmpty == false
                }
        default:
            return try paired(name, round: round, raw: rawRender, check: .render) {
                client.render(RenderBench.experiment, unit: units[$0], variables: variables)
            } check: { index, rendered in
                rendered.kind == .text && rendered.text?.contains("Acme Books") == true && rendered.error == nil
                    && rendered.assignment?.reason == "assigned" && rendered.assignment?.variant == expectedRendered[index]
            }
        }
    }

    /// Times `calls` pairs: line `index` of `raw` sent on the shim's connection and its answer read (checked with
    /// `check` as it arrives), and `call(index)`; the raw round trip first in every other pair. Returns the medians
    /// in microseconds; checks every shim answer after the clock stops.
    private func paired<Answer>(
        _ name: String, round: Int, raw: RequestCorpus, check rawCheck: AnswerCheck, _ call: (Int) -> Answer,
        check: (Int, Answer) -> Bool
    ) throws -> (raw: Double, shim: Double) {
        // The kept connection exists after a first call; the raw lines use ids of their own (7 digits, from
        // RequestCorpus.firstID), and each raw answer is read whole before the shim's next call.
        _ = client.assign(experiment, unit: units[0])
        guard let descriptor = client.requestConnectionDescriptor() else {
            throw BenchError("\(name): the shim has no connection to \(socketPath)")
        }
        let connection = BenchConnection(adopting: descriptor, socketPath: socketPath)
        var rawDurations = [UInt64](repeating: 0, count: calls)
        var shimDurations = [UInt64](repeating: 0, count: calls)
        var answers: [Answer] = []
        answers.reserveCapacity(calls)
        try raw.bytes.withUnsafeBytes { bytes in
            let base = bytes.baseAddress!
            func pause() {
                if gapMicroseconds > 0 { usleep(gapMicroseconds) }
            }
            func rawRoundTrip(_ index: Int) throws {
                pause()
                rawDurations[index] = try connection.roundTrip(base, of: raw, line: index, check: rawCheck)
            }
            for index in 0..<calls {
                let rawFirst = (index + round) % 2 == 0
                if rawFirst { try rawRoundTrip(index) }
                pause()
                let started = monotonicNanoseconds()
                answers.append(call(index))
                shimDurations[index] = monotonicNanoseconds() - started
                if !rawFirst { try rawRoundTrip(index) }
            }
        }
        guard client.requestConnectionDescriptor() == descriptor else {
            throw BenchError("\(name): the shim's connection changed during the measurement")
        }
        for (index, answer) in answers.enumerated() where !check(index, answer) {
            throw BenchError("\(name): a wrong answer for \(units[index]): \(answer)")
        }
        func median(_ durations: [UInt64]) -> Double { Double(durations.sorted()[durations.count / 2]) / 1000 }
        return (median(rawDurations), median(shimDurations))
    }
}

/// The Python shim's figures, from `clients/python/bench/roundtrip.py --json` (which starts a daemon of its own on
/// the same executable and measures, in the same way, pairs of a raw Python round trip and a shim call).
enum PythonShimBench {
    /// Runs `script` with `python` against `daemon`; the figures, or why there are none.
    static func measure(python: String, script: String, daemon: String, rounds: Int, gapMicroseconds: UInt32) throws -> ShimFigures {
        let result = try runToCompletion(
            python,
            [script, "--json", "--binary", daemon, "--rounds", String(rounds), "--gap-us", String(gapMicroseconds)],
            separateErrors: true)
        guard result.status == 0 else {
            throw BenchError("\(script) failed (exit status \(result.status)):\n\(result.output)")
        }
        guard case .object(let report) = try JSONParser.parse(Array(result.output.utf8)),
            case .array(let pairs)? = report["pairs"]
        else { throw BenchError("cannot read \(script)'s report:\n\(result.output)") }
        func spread(_ value: JSONValue?) -> Spread? {
            guard let value = value?.objectValue, let median = value["median"]?.numberValue,
                let low = value["low"]?.numberValue, let high = value["high"]?.numberValue
            else { return nil }
            var spread = Spread([median])
            spread.low = low
            spread.high = high
            return spread
        }
        let read = try pairs.map { item -> ShimFigures.Pair in
            guard let pair = item.objectValue, let name = pair["name"]?.stringValue, let raw = spread(pair["raw"]),
                let shim = spread(pair["shim"]), let added = spread(pair["added"]), let ratio = spread(pair["ratio"])
            else { throw BenchError("cannot read a pair in \(script)'s report: \(item)") }
            return ShimFigures.Pair(name: name, raw: raw, shim: shim, added: added, ratio: ratio)
        }
        let method = report["method"]?.stringValue ?? script
        return ShimFigures(method: "\(script): \(method)", pairs: read)
    }
}
