import ArgumentParser
import VariantCore

/// `variantctl enable EXPERIMENT VARIANT`: undoes a manual or automatic disable.
struct Enable: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enable a disabled treatment again (after an operator or a guardrail disabled it).",
        discussion: "An admin op: root, the daemon's user or a member of its --admin-group.")

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment's name.")
    var experiment: String

    @Argument(help: "The treatment to enable.")
    var variant: String

    func run() throws {
        let (line, answer) = try connection.send([
            ("op", .string("enable")), ("experiment", .string(experiment)), ("variant", .string(variant)),
        ])
        if connection.json { print(line) } else { printTreatmentChange(answer, verb: "enabled") }
    }
}
