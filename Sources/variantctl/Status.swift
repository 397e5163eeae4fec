import ArgumentParser
import VariantCore

/// `variantctl status`: the configuration in use, its source and age, and the last load error.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the configuration the daemon serves.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, answer) = try connection.send([("op", .string("config"))])
        guard !connection.json else { return print(line) }
        printFields(answer, skipping: ["id", "ok", "last_error"])
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

