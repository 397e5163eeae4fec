import ArgumentParser
import Glibc
import VariantClient
import VariantCore

/// `variantctl validate FILE`: every problem of a configuration document, each with its path and code.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a configuration document and print every problem (exit 1 when there is one).")

    @Argument(help: "The configuration document (JSON).")
    var file: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        let bytes: [UInt8]
        do {
            bytes = try LocalFile.bytes(atPath: file)
        } catch {
            printError("variantctl: cannot read \(file): \(error)")
            throw ExitCode(ExitCodes.noInput)
        }
        let version = LoadedConfig.version(of: bytes)
        do {
            // Langfuse prompts are checked offline: their shape and everything else; their contents are not fetched.
            let references = try PromptReferences.parse(bytes)
            let experiments = references.root.objectValue?["experiments"]?.arrayValue?.count ?? 0
            let prompts = references.root.objectValue?["prompts"]?.objectValue?.count ?? 0
            let unfetched = references.uses.map { "\($0.prompt): \($0.reference)" }
            if json {
                var writer = JSONWriter()
                writer.raw(#"{"valid":true,"config_version":"#)
                writer.string(version)
                writer.raw(#","experiments":"#)
                writer.integer(experiments)
                writer.raw(#","prompts":"#)
                writer.integer(prompts)
                writer.raw(#","problems":[],"unfetched":"#)
                writer.strings(unfetched)
                writer.raw("}")
                print(String(decoding: writer.bytes, as: UTF8.self))
            } else {
                print("\(file): valid (\(version), \(experiments) experiments, \(prompts) prompts)")
                if !unfetched.isEmpty {
                    print(
                        "  \(unfetched.count) Langfuse prompt version\(unfetched.count == 1 ? "" : "s") not fetched (checked offline; the daemon fetches them and applies the document only once all resolve):"
                    )
                    for line in unfetched { print("    " + line) }
                }
            }
        } catch {
            if json {
                var writer = JSONWriter()
                let problems: [JSONValue] = error.issues.map { issue in
                    .object(JSONObject([
                        (key: "path", value: .string(issue.path)), (key: "code", value: .string(issue.code.rawValue)),
                        (key: "message", value: .string(issue.message)),
                    ]))
                }
                writer.value(.object(JSONObject([
                    (key: "valid", value: .bool(false)), (key: "config_version", value: .string(version)),
                    (key: "problems", value: .array(problems)),
                ])))
                print(String(decoding: writer.bytes, as: UTF8.self))
            } else {
                print("\(file): \(error.issues.count) problem\(error.issues.count == 1 ? "" : "s")")
                for issue in error.issues { print("  \(issue.path): \(issue.code): \(issue.message)") }
            }
            throw ExitCode(ExitCodes.invalidConfig)
        }
    }
}
