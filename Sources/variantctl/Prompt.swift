import ArgumentParser
import VariantCore

/// `variantctl prompt NAME [--version N]`, `variantctl prompt EXPERIMENT UNIT` or
/// `variantctl prompt --experiment E --unit U`.
struct PromptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prompt", abstract: "Print a prompt version's template (latest, numbered, or a unit's).")

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var subject: ExperimentAndUnit

    @Option(help: "The version number (default: the latest).")
    var version: Int?

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value, with --experiment.")
    var attributes: [String] = []

    func validate() throws {
        let (name, experiment, unit) = try subject.promptSubject()
        if experiment == nil, name == nil { throw ValidationError("give a prompt name, or --experiment and --unit") }
        if (experiment == nil) != (unit == nil) { throw ValidationError("--experiment and --unit go together") }
        if experiment != nil, version != nil { throw ValidationError("--version cannot be combined with --experiment") }
    }

    func run() throws {
        let (name, experiment, unit) = try subject.promptSubject()
        var fields: [(String, JSONValue)] = [("op", .string("prompt"))]
        if let name { fields.append(("prompt", .string(name))) }
        if let version { fields.append(("prompt_version", .number(Double(version)))) }
        if let experiment, let unit {
            fields += [
                ("experiment", .string(experiment)), ("unit", .string(unit)),
                ("attributes", try attributesObject(attributes)),
            ]
        }
        let (line, answer) = try connection.send(fields)
        if connection.json {
            print(line)
        } else {
            printFields(answer, skipping: ["id", "ok", "template", "messages"])
            if let messages = answer["messages"]?.arrayValue {
                for message in messages.compactMap(\.objectValue) {
                    print("[\(render(message["role"] ?? .null))]\n\(render(message["content"] ?? .null))")
                }
            } else {
                print("template:\n\(answer["template"]?.stringValue ?? "")")
            }
        }
    }
}
