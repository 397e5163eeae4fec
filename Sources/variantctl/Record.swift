import ArgumentParser
import VariantCore

/// `variantctl record EXPERIMENT [VARIANT] [--unit U] --latency-ms X ...`: one result, by hand (demos, checks).
struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record one result for a variant (or for the variant a unit gets), as an app would.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment's name.")
    var experiment: String

    @Argument(help: "The variant the result belongs to (or give --unit).")
    var variant: String?

    @Option(help: "The unit: the daemon recomputes its variant (give the same --attribute as the assign).")
    var unit: String?

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value, with --unit.")
    var attributes: [String] = []

    @Option(help: "The call's latency in milliseconds.")
    var latencyMs: Double?

    @Option(help: "Whether the call failed (true or false).")
    var error: Bool?

    @Option(help: "Whether it succeeded: true, false, or a score from 0 to 1.")
    var success: String?

    @Option(help: "What the call cost, in US dollars.")
    var costUsd: Double?

    @Option(help: "Tokens used.")
    var tokens: Int?

    @Option(name: .customLong("custom"), help: "A custom metric as name=number; repeat for more.")
    var custom: [String] = []

    @Flag(help: "The result comes from running the shadow variant (shadow mode).")
    var shadow = false

    func validate() throws {
        if (variant == nil) == (unit == nil) { throw ValidationError("give either a VARIANT or --unit") }
        if !attributes.isEmpty, unit == nil { throw ValidationError("--attribute goes with --unit") }
        if latencyMs == nil, error == nil, success == nil, costUsd == nil, tokens == nil, custom.isEmpty {
            throw ValidationError("give at least one measurement (--latency-ms, --error, --success, --cost-usd, --tokens, --custom)")
        }
        if let success, successValue(success) == nil {
            throw ValidationError("--success takes true, false or a number from 0 to 1, not '\(success)'")
        }
    }

    private func successValue(_ text: String) -> JSONValue? {
        if text == "true" || text == "false" { return .bool(text == "true") }
        if let number = Double(text), number.isFinite { return .number(number) }
        return nil
    }

    func run() throws {
        var metrics: [(key: String, value: JSONValue)] = []
        if let latencyMs { metrics.append(("latency_ms", .number(latencyMs))) }
        if let error { metrics.append(("error", .bool(error))) }
        if let success, let value = successValue(success) { metrics.append(("success", value)) }
        if let costUsd { metrics.append(("cost_usd", .number(costUsd))) }
        if let tokens { metrics.append(("tokens", .number(Double(tokens)))) }
        if !custom.isEmpty {
            var members: [(key: String, value: JSONValue)] = []
            for pair in custom {
                guard let equals = pair.firstIndex(of: "="), let number = Double(pair[pair.index(after: equals)...]) else {
                    throw ValidationError("--custom takes name=number, not '\(pair)'")
                }
                members.append((String(pair[..<equals]), .number(number)))
            }
            metrics.append(("custom", .object(JSONObject(members))))
        }
        var fields: [(String, JSONValue)] = [("op", .string("record")), ("experiment", .string(experiment))]
        if let variant { fields.append(("variant", .string(variant))) }
        if let unit {
            fields.append(("unit", .string(unit)))
            if !attributes.isEmpty { fields.append(("attributes", try attributesObject(attributes))) }
        }
        if shadow { fields.append(("shadow", .bool(true))) }
        fields.append(("metrics", .object(JSONObject(metrics))))
        let (line, answer) = try connection.send(fields)
        if connection.json {
            print(line)
        } else {
            print("recorded \(render(answer["recorded"] ?? .null)) for \(experiment)/\(render(answer["variant"] ?? .null))")
        }
    }
}
