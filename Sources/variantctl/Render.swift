import ArgumentParser
import VariantCore

/// `variantctl render NAME [--version N] --var k=v ...`, `variantctl render EXPERIMENT UNIT --var k=v ...` or
/// `variantctl render --experiment E --unit U --var k=v ...`.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render a prompt version with variables (latest, numbered, or a unit's), checked by its guardrails.")

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var subject: ExperimentAndUnit

    @Option(help: "The version number (default: the latest).")
    var version: Int?

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value, with --experiment.")
    var attributes: [String] = []

    @Option(
        name: .customLong("var"),
        help: "A template variable as name=value; true and false are booleans, anything else is text.")
    var variables: [String] = []

    func validate() throws {
        let (name, experiment, unit) = try subject.promptSubject()
        if experiment == nil, name == nil { throw ValidationError("give a prompt name, or --experiment and --unit") }
        if experiment != nil, name != nil { throw ValidationError("give a prompt name or --experiment, not both") }
        if (experiment == nil) != (unit == nil) { throw ValidationError("--experiment and --unit go together") }
        if experiment != nil, version != nil { throw ValidationError("--version cannot be combined with --experiment") }
        if experiment == nil, !attributes.isEmpty { throw ValidationError("--attribute goes with --experiment") }
        _ = try Self.variablesObject(variables)
    }

    /// `--var` options as the `variables` object: `true`/`false` become booleans (so that sections see them),
    /// everything else stays text, as typed.
    static func variablesObject(_ pairs: [String]) throws -> JSONValue {
        var members: [(key: String, value: JSONValue)] = []
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ValidationError("--var takes name=value, not '\(pair)'")
            }
            let text = String(pair[pair.index(after: equals)...])
            members.append((String(pair[..<equals]), text == "true" || text == "false" ? .bool(text == "true") : .string(text)))
        }
        return .object(JSONObject(members))
    }

    func run() throws {
        let (name, experiment, unit) = try subject.promptSubject()
        var fields: [(String, JSONValue)] = [("op", .string("render"))]
        if let experiment, let unit {
            fields += [
                ("experiment", .string(experiment)), ("unit", .string(unit)),
                ("attributes", try attributesObject(attributes)),
            ]
        }
        if let name { fields.append(("prompt", .string(name))) }
        if let version { fields.append(("prompt_version", .number(Double(version)))) }
        fields.append(("variables", try Self.variablesObject(variables)))
        let (line, answer) = try connection.send(fields)
        guard !connection.json else { return print(line) }
        printFields(answer, skipping: ["id", "ok", "type", "text", "messages", "warnings", "metadata"])
        for warning in (answer["warnings"]?.arrayValue ?? []).compactMap(\.objectValue) {
            let subject = warning["variable"] ?? warning["rule"] ?? .null
            let message = warning["message"].map { ": \(render($0))" } ?? ""
            print("warning: \(render(warning["code"] ?? .null)) \(render(subject))\(message)")
        }
        if answer["type"] == .string("chat") {
            for message in (answer["messages"]?.arrayValue ?? []).compactMap(\.objectValue) {
                print("[\(render(message["role"] ?? .null))]\n\(render(message["content"] ?? .null))")
            }
        } else {
            print("text:\n\(answer["text"]?.stringValue ?? "")")
        }
    }
}
