import ArgumentParser
import VariantCore

/// `variantctl health`: whether the daemon serves, and under which config version.
struct Health: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, answer) = try connection.send([("op", .string("health"))])
        if connection.json { print(line) } else { printFields(answer) }
    }
}
