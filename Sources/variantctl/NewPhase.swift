import ArgumentParser
import VariantCore

/// `variantctl new-phase EXPERIMENT`: starts the experiment's statistics afresh without changing its configuration.
struct NewPhase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new-phase",
        abstract: "Start a new phase of an experiment: its statistics, split check and guardrail evidence start afresh.",
        discussion: """
            A configuration change that alters who is enrolled or what they are served starts a new phase by \
            itself (PROTOCOL.md, "Phases"); this is for everything else (a fixed logging bug, a changed prompt \
            text under the same version). Earlier phases stay readable with `variantctl stats --phase N`. \
            An admin op: root, the daemon's user or a member of its --admin-group.
            """)

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "The experiment's name.")
    var experiment: String

    @Option(help: "Why, kept in the event log.")
    var reason: String?

    func run() throws {
        var fields: [(String, JSONValue)] = [("op", .string("new_phase")), ("experiment", .string(experiment))]
        if let reason { fields.append(("reason", .string(reason))) }
        let (line, answer) = try connection.send(fields)
        if connection.json { return print(line) }
        print("\(experiment): phase \(answer["phase"]?.integerValue.map(String.init) ?? "?") started")
    }
}
