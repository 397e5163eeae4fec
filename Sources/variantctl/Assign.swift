import ArgumentParser
import VariantCore

/// `variantctl assign EXPERIMENT UNIT` or `variantctl assign --experiment E --unit U` (as `prompt` and `render`
/// take them): which variant and prompt version a unit gets.
struct Assign: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Ask the daemon which variant a unit gets.")

    @OptionGroup var connection: ConnectionOptions

    @OptionGroup var subject: ExperimentAndUnit

    @Option(name: .customLong("attribute"), help: "A request attribute as key=value; repeat for more.")
    var attributes: [String] = []

    func validate() throws {
        _ = try subject.resolved()
    }

    func run() throws {
        let (experiment, unit) = try subject.resolved()
        let (line, answer) = try connection.send([
            ("op", .string("assign")), ("experiment", .string(experiment)), ("unit", .string(unit)),
            ("attributes", try attributesObject(attributes)),
        ])
        if connection.json { print(line) } else { printFields(answer, skipping: ["id", "ok", "metadata"]) }
    }
}
