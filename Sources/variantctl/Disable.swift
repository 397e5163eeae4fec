import ArgumentParser
import VariantCore

/// `variantctl disable EXPERIMENT VARIANT [--reason TEXT]`: sends every unit of a treatment to the control.
struct Disable: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Disable a treatment: its units get the control (reason: disabled) until it is enabled again.",
        discussion: "An admin op: root, the daemon's user or a member of its --admin-group.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment's name.")
    var experiment: String

    @Argument(help: "The treatment to disable (not the control: pause the experiment instead).")
    var variant: String

    @Option(help: "Why, for the event log (an incident number, a guardrail you trust more than the daemon's).")
    var reason: String?

    func run() throws {
        var fields: [(String, JSONValue)] = [
            ("op", .string("disable")), ("experiment", .string(experiment)), ("variant", .string(variant)),
        ]
        if let reason { fields.append(("reason", .string(reason))) }
        let (line, answer) = try connection.send(fields)
        if connection.json { print(line) } else { printTreatmentChange(answer, verb: "disabled") }
    }
}

/// Prints `EXPERIMENT/VARIANT: disabled` (or `already disabled`) from a `disable` or `enable` answer.
func printTreatmentChange(_ answer: JSONObject, verb: String) {
    let name = "\(render(answer["experiment"] ?? .null))/\(render(answer["variant"] ?? .null))"
    print(answer["changed"] == .bool(false) ? "\(name): already \(verb)" : "\(name): \(verb)")
}
