import Foundation
import VariantCore

/// The `render` case: a prompt of about 2 KB with 5 variables, added to the benchmark's copy of the
/// configuration with an experiment of its own, so that `render` and `assign` on that experiment are measured
/// against the same daemon in the same run.
enum RenderBench {
    static let prompt = "bench-render"
    static let experiment = "bench-render"
    static let variableNames = ["customer", "store", "order_id", "language", "tone"]

    /// About 2 KB of prompt text around the 5 variables, with quotes and newlines to escape.
    static var template: String {
        let paragraph =
            "You are the order assistant of {{store}}. Answer \"{{customer}}\" about order {{order_id}} in {{language}}, "
            + "in a {{tone}} tone. Never invent prices, delivery dates or stock levels; when unsure, say so and offer "
            + "to hand over to a person.\n"
        let rules = (1...14).map {
            "Rule \($0): keep the answer short, quote the order's own data, and do not repeat the customer's personal details.\n"
        }
        return paragraph + rules.joined() + "Sign as the {{store}} team."
    }

    /// The variables every render request sends (each line the same length).
    static let variables =
        #"{"customer":"Ada Lovelace","store":"Acme Books","order_id":"A-1842-77","language":"English","tone":"warm"}"#

    /// Writes `base` with the render prompt and experiment added to `path`.
    static func writeConfig(from base: String, to path: String) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: base)))
        guard case .object(var root) = try JSONParser.parse(bytes),
            case .object(var prompts)? = root["prompts"], case .array(var experiments)? = root["experiments"]
        else { throw BenchError("\(base) is not a configuration document") }
        var writer = JSONWriter()
        writer.string(template)
        let templateJSON = String(decoding: writer.bytes, as: UTF8.self)
        let names = variableNames.map { "\"\($0)\"" }.joined(separator: ",")
        prompts.members.append(
            (prompt, try JSONParser.parse(Array(
                #"{"versions":[{"version":1,"template":\#(templateJSON),"variables":{"required":[\#(names)]}}]}"#.utf8))))
        experiments.append(try JSONParser.parse(Array(#"""
            {"name":"\#(experiment)","salt":"bench-render","status":"running","variants":[
              {"name":"control","control":true,"weight":50,"prompt":"\#(prompt)","prompt_version":1},
              {"name":"treatment","weight":50,"prompt":"\#(prompt)","prompt_version":1,"params":{"model":"m"}}]}
            """#.utf8)))
        for (index, member) in root.members.enumerated() {
            if member.key == "prompts" { root.members[index].value = .object(prompts) }
            if member.key == "experiments" { root.members[index].value = .array(experiments) }
        }
        writer.reset()
        writer.value(.object(root))
        guard FileManager.default.createFile(atPath: path, contents: Data(writer.bytes)) else {
            throw BenchError("cannot write \(path)")
        }
    }

    /// `assign` and `render` on the render experiment, one in flight on 1 connection and on `connections`.
    static func measure(socketPath: String, connections: Int, requests: Int, unitPrefix: String) throws -> RenderFigures {
        let assign = LoadGenerator(
            socketPath: socketPath,
            corpus: RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: 1))
        let render = LoadGenerator(
            socketPath: socketPath,
            corpus: RequestCorpus(
                experiment: experiment, unitPrefix: unitPrefix, maxBurst: 1, op: "render",
                extraMembers: #","variables":"# + variables),
            check: .render)
        try render.verify()
        _ = try render.oneInFlight(connections: 1, requestsPerConnection: 5000)
        // Pairs of an assign and a render on one connection (LoadGenerator.paired): in alternating blocks, each on a
        // connection of its own, the daemon's round-robin put every assign block on one event-loop thread and every
        // render block on the other, and the ratio was where the scheduler had put those two threads (render 1.96x
        // assign in one run, 0.97x with 8 connections).
        let (assignTrips, renderTrips) = try assign.paired(with: render, pairs: requests)
        let concurrentAssign = try assign.oneInFlight(connections: connections, requestsPerConnection: requests / connections)
        let concurrentRender = try render.oneInFlight(connections: connections, requestsPerConnection: requests / connections)
        func figures(_ trips: [UInt64]) -> LatencyFigures {
            LatencyFigures(PhaseOutcome(roundTrips: trips, requests: trips.count, elapsed: trips.reduce(0, +)))
        }
        func mean(_ trips: [UInt64]) -> Double { Double(trips.reduce(0, +)) / Double(trips.count) / 1000 }
        return RenderFigures(
            templateBytes: template.utf8.count, variables: variableNames.count,
            assign: figures(assignTrips), render: figures(renderTrips),
            assignMeanMicros: mean(assignTrips), renderMeanMicros: mean(renderTrips),
            concurrentAssign: LatencyFigures(concurrentAssign), concurrentRender: LatencyFigures(concurrentRender))
    }

    /// The core's cost per `render` request of this case, as `CoreCost` measures `assign`.
    static func coreCost(configPath: String, unitPrefix: String, requests: Int) throws -> CoreCost {
        try CoreCost.measure(
            configPath: configPath, experiment: experiment, unitPrefix: unitPrefix, requests: requests, op: "render",
            extraMembers: #","variables":"# + variables)
    }
}

/// `render` against `assign` on the same experiment and daemon.
struct RenderFigures: Encodable {
    var templateBytes: Int
    var variables: Int
    /// One in flight, 1 connection.
    var assign: LatencyFigures
    var render: LatencyFigures
    var assignMeanMicros: Double
    var renderMeanMicros: Double
    /// One in flight on each of `connections` connections.
    var concurrentAssign: LatencyFigures
    var concurrentRender: LatencyFigures

    /// How much longer a render round trip takes than an assign one, at the median, in percent.
    var addedAtMedianPercent: Double { 100 * (render.p50Micros / assign.p50Micros - 1) }
    var addedOnAveragePercent: Double { 100 * (renderMeanMicros / assignMeanMicros - 1) }
}
