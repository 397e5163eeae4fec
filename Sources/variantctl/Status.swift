import ArgumentParser
import VariantCore

/// `variantctl status`: the configuration in use, its source (and the source's own version), its age, whether it
/// is the on-disk last-known-good copy, the source's state, and the last error.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the configuration the daemon serves.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, answer) = try connection.send([("op", .string("config"))])
        guard !connection.json else { return print(line) }
        printFields(
            answer, skipping: ["id", "ok", "last_error", "experiment_states", "disabled_treatments", "prompt_sources", "state_error"])
        let experiments = (answer["experiment_states"]?.arrayValue ?? []).compactMap(\.objectValue)
        if !experiments.isEmpty {
            var table = Table("EXPERIMENT", "STATUS", "MODE", "ENROLLING")
            for experiment in experiments {
                table.add(["name", "status", "mode", "enrolling"].map { render(experiment[$0] ?? .null) })
            }
            print(table.rendered())
        }
        let sources = (answer["prompt_sources"]?.arrayValue ?? []).compactMap(\.objectValue)
        if !sources.isEmpty {
            var table = Table("PROMPT", "LANGFUSE", "WANTS", "RESOLVED", "FROM", "FETCHED_AT", "LAST_ERROR")
            for source in sources {
                let wants = source["label"]?.stringValue.map { "label " + $0 } ?? "version " + render(source["version"] ?? .null)
                let error = source["last_error"]?.objectValue.map {
                    "\(render($0["code"] ?? .null)): \(render($0["message"] ?? .null))"
                } ?? "-"
                table.add(
                    ["prompt", "langfuse_name"].map { render(source[$0] ?? .null) } + [wants]
                        + ["resolved_version", "from", "fetched_at"].map { render(source[$0] ?? .null) } + [error])
            }
            print(table.rendered())
        }
        let disabled = (answer["disabled_treatments"]?.arrayValue ?? []).compactMap(\.objectValue)
        print("disabled treatments: " + (disabled.isEmpty ? "-" : disabled.map { "\(render($0["experiment"] ?? .null))/\(render($0["variant"] ?? .null))" }.joined(separator: ", ")))
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
        if let failure = answer["state_error"]?.objectValue {
            print(
                "state_error: the state file cannot be written since \(failure["since"]?.stringValue ?? "?"): \(failure["message"]?.stringValue ?? "") (disables and statistics since then are lost at a restart)")
        }
    }
}

