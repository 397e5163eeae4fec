import ArgumentParser
import VariantCore

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

