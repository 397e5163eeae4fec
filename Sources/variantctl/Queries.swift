import ArgumentParser
import VariantCore

/// Parses repeated `--attribute key=value` options: numbers and true/false become JSON numbers and booleans.
func attributesObject(_ pairs: [String]) throws -> JSONValue {
    var members: [(key: String, value: JSONValue)] = []
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw ValidationError("--attribute takes key=value, not '\(pair)'")
        }
        let key = String(pair[..<equals])
        let text = String(pair[pair.index(after: equals)...])
        let value: JSONValue
        if text == "true" || text == "false" {
            value = .bool(text == "true")
        } else if let number = Double(text), number.isFinite {
            value = .number(number)
        } else {
            value = .string(text)
        }
        members.append((key, value))
    }
    return .object(JSONObject(members))
}

/// `variantctl assign EXPERIMENT UNIT`: which variant and prompt version a unit gets.
struct Assign: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the daemon which variant a unit gets.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment's name.")
    var experiment: String

    @Argument(help: "The unit id (user, session or request).")
    var unit: String

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value; repeat for more.")
    var attributes: [String] = []

    func run() throws {
        let (line, answer) = try connection.send([
            ("op", .string("assign")), ("experiment", .string(experiment)), ("unit", .string(unit)),
            ("attributes", try attributesObject(attributes)),
        ])
        if connection.json { print(line) } else { printFields(answer, skipping: ["id", "ok", "metadata"]) }
    }
}

/// `variantctl prompt NAME [--version N]` or `variantctl prompt --experiment E --unit U`.
struct PromptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prompt", abstract: "Print a prompt version's template (latest, numbered, or a unit's).")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The prompt's name (optional with --experiment).")
    var name: String?

    @Option(help: "The version number (default: the latest).")
    var version: Int?

    @Option(help: "Give the version this experiment assigns to --unit.")
    var experiment: String?

    @Option(help: "The unit, with --experiment.")
    var unit: String?

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value, with --experiment.")
    var attributes: [String] = []

    func validate() throws {
        if experiment == nil, name == nil { throw ValidationError("give a prompt name, or --experiment and --unit") }
        if (experiment == nil) != (unit == nil) { throw ValidationError("--experiment and --unit go together") }
        if experiment != nil, version != nil { throw ValidationError("--version cannot be combined with --experiment") }
    }

    func run() throws {
        var fields: [(String, JSONValue)] = [("op", .string("prompt"))]
        if let name { fields.append(("prompt", .string(name))) }
        if let version { fields.append(("version", .number(Double(version)))) }
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
            printFields(answer, skipping: ["id", "ok", "template"])
            print("template:\n\(answer["template"]?.stringValue ?? "")")
        }
    }
}

/// `variantctl status`: the configuration in use, its source (and the source's own version), its age, whether it
/// is the on-disk last-known-good copy, the source's state, and the last error.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the configuration the daemon serves.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, answer) = try connection.send([("op", .string("config"))])
        guard !connection.json else { return print(line) }
        printFields(answer, skipping: ["id", "ok", "last_error"])
        if answer["from_cache"]?.boolValue == true {
            print("note: serving the last-known-good copy from disk; the source has not given a usable document yet")
        }
        if let failure = answer["last_error"]?.objectValue {
            print("last_error: \(failure["code"]?.stringValue ?? "?") at \(failure["at"]?.stringValue ?? "?"): \(failure["message"]?.stringValue ?? "")")
            for problem in failure["problems"]?.arrayValue ?? [] {
                guard let problem = problem.objectValue else { continue }
                print("  \(render(problem["path"] ?? .null)): \(render(problem["code"] ?? .null)): \(render(problem["message"] ?? .null))")
            }
        } else {
            print("last_error: -")
        }
    }
}

/// `variantctl health`: whether the daemon serves, and under which config version.
struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, answer) = try connection.send([("op", .string("health"))])
        if connection.json { print(line) } else { printFields(answer) }
    }
}
