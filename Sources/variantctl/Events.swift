import ArgumentParser
import VariantCore

/// `variantctl events [--limit N]`: guardrail and operator decisions and config loads, oldest first.
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the daemon's latest events: treatments disabled and enabled, configurations applied or rejected.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "How many of the latest events to list (1-1000; default: all the daemon keeps).")
    var limit: Int?

    func validate() throws {
        if let limit, !(1...1000).contains(limit) { throw ValidationError("--limit must be from 1 to 1000") }
    }

    func run() throws {
        var fields: [(String, JSONValue)] = [("op", .string("events"))]
        if let limit { fields.append(("limit", .number(Double(limit)))) }
        let (line, answer) = try connection.send(fields)
        guard !connection.json else { return print(line) }
        let events = answer["events"]?.arrayValue ?? []
        guard !events.isEmpty else { return print("no events") }
        var table = Table("SEQ", "AT", "KIND", "EXPERIMENT", "VARIANT", "ACTOR", "MESSAGE")
        for event in events {
            guard let event = event.objectValue else { continue }
            table.add(
                ["sequence", "at", "kind", "experiment", "variant", "actor", "message"].map { render(event[$0] ?? .null) })
        }
        print(table.rendered())
    }
}
