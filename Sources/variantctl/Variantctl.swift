import ArgumentParser
import Glibc
import VariantClient
import VariantCore

/// `variantctl`: the operator's command line for variantd.
@main
struct Variantctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantctl",
        abstract: "Validate configuration and query a running variantd.",
        subcommands: [Validate.self, Assign.self, PromptCommand.self, Status.self, Health.self])
}

/// Options shared by every command that talks to the daemon.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The daemon's socket (default: $VARIANTD_SOCKET, else /run/variantd/variantd.sock).")
    var socket: String = VariantConnection.defaultSocketPath

    @Flag(help: "Print the daemon's JSON answer as is.")
    var json = false

    @Option(help: "Seconds to wait for the daemon.")
    var timeout: Double = 5

    /// Sends one request and returns the parsed answer, or exits with the daemon's error code.
    func send(_ fields: [(String, JSONValue)]) throws -> (line: String, answer: JSONObject) {
        let line: String
        do {
            let connection = try VariantConnection(socketPath: socket, timeoutSeconds: timeout)
            line = try connection.request(VariantConnection.requestLine(fields))
        } catch {
            printError("variantctl: \(error.description)")
            throw ExitCode(ExitCodes.unavailable)
        }
        guard case .object(let answer)? = try? JSONParser.parse(Array(line.utf8)) else {
            printError("variantctl: the daemon answered something that is not a JSON object: \(line)")
            throw ExitCode(ExitCodes.software)
        }
        if answer["ok"] != .bool(true) {
            if json {
                print(line)
            } else {
                let error = answer["error"]?.objectValue
                let code = error?["code"]?.stringValue ?? "unknown"
                printError("variantctl: \(code): \(error?["message"]?.stringValue ?? line)")
            }
            throw ExitCode(ExitCodes.requestFailed)
        }
        return (line, answer)
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

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        let bytes = Array(string.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

/// Renders an answer's fields as `key: value` lines for people.
func printFields(_ object: JSONObject, skipping skipped: Set<String> = ["id", "ok"]) {
    for member in object.members where !skipped.contains(member.key) {
        print("\(member.key): \(render(member.value))")
    }
}

func render(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): return text
    case .null: return "-"
    default:
        var writer = JSONWriter()
        writer.value(value)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}
