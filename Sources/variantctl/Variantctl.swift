import ArgumentParser
import VariantCore

/// `variantctl`: the operator's command line for variantd.
///
/// One subcommand per file; commands that talk to the daemon share `ConnectionOptions` and `Table`.
@main
struct Variantctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantctl",
        abstract: "Validate configuration, query a running variantd and operate its experiments.",
        discussion: """
            Commands that talk to the daemon take --socket (default $VARIANTD_SOCKET, else \
            /run/variantd/variantd.sock), --json (print the daemon's answer as is) and --timeout.
            Exit codes: 0 success, 1 an error answer or an invalid document, 66 an unreadable file, \
            69 the daemon cannot be reached, 70 a nonsensical answer.
            Shell completion: variantctl --generate-completion-script bash|zsh|fish.
            """,
        groupedSubcommands: [
            CommandGroup(name: "Configuration", subcommands: [Validate.self, Status.self, Health.self, Reload.self]),
            CommandGroup(name: "Assignment", subcommands: [Assign.self, PromptCommand.self, RenderCommand.self]),
            CommandGroup(
                name: "Results",
                subcommands: [Stats.self, Watch.self, SampleSizeCommand.self, RecordCommand.self, Events.self]),
            CommandGroup(name: "Treatments", subcommands: [Disable.self, Enable.self, NewPhase.self]),
        ])

    /// Parses and runs as ArgumentParser does, after refusing an unknown command with the commands it was likely
    /// meant to be (ArgumentParser alone says only "Unexpected argument").
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let error = unknownCommand(in: arguments) { exit(withError: error) }
        await main(arguments)
    }

    /// The names of the subcommands (grouped ones included), and `help`.
    static var commandNames: [String] {
        configuration.subcommands.map { $0._commandName } + ["help"]
    }

    /// A `ValidationError` naming the near commands when the first argument is a word that names no command.
    static func unknownCommand(in arguments: [String]) -> ValidationError? {
        guard let first = arguments.first, !first.hasPrefix("-"), !commandNames.contains(first) else { return nil }
        let near = NearNames.near(first, among: commandNames)
        let hint = near.isEmpty ? "" : "; did you mean \(near.map { "'\($0)'" }.joined(separator: " or "))?"
        return ValidationError("unknown command '\(first)'\(hint) (commands: \(commandNames.joined(separator: ", ")))")
    }
}

/// Exit codes, after sysexits(3) where one fits.
enum ExitCodes {
    /// The daemon answered with an error.
    static let requestFailed: Int32 = 1
    /// The configuration file is invalid.
    static let invalidConfig: Int32 = 1
    /// A file could not be read.
    static let noInput: Int32 = 66
    /// The daemon answered nonsense.
    static let software: Int32 = 70
    /// The daemon could not be reached.
    static let unavailable: Int32 = 69
}
