import ArgumentParser
import Glibc
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
            bytes = try readFile(file)
        } catch {
            printError("variantctl: cannot read \(file): \(error)")
            throw ExitCode(ExitCodes.noInput)
        }
        let version = LoadedConfig.version(of: bytes)
        do {
            let document = try ConfigDocument.validate(bytes)
            if json {
                print(#"{"valid":true,"version":"\#(version)","experiments":\#(document.experiments.count),"prompts":\#(document.prompts.count),"problems":[]}"#)
            } else {
                print("\(file): valid (\(version), \(document.experiments.count) experiments, \(document.prompts.count) prompts)")
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
                    (key: "valid", value: .bool(false)), (key: "version", value: .string(version)),
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

struct FileReadError: Error, CustomStringConvertible {
    var description: String
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let file = fopen(path, "rb") else { throw FileReadError(description: String(cString: strerror(errno))) }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    if ferror(file) != 0 { throw FileReadError(description: String(cString: strerror(errno))) }
    return bytes
}
