import Foundation
import Glibc

/// `Tests/Fixtures/langfuse_server.py`, a fake Langfuse on loopback: the public API's
/// `GET /api/public/v2/prompts/{name}?version=N|label=L` with basic auth, text and chat prompts, and on command
/// 500, a hang, a garbage body or a refused connection. Counts requests; stopped (SIGKILL) on deinit.
final class LangfuseServerFixture {
    let directory: URL
    let port: Int
    private let process = Process()

    static let publicKey = "pk-lf-test"
    static let secretKey = "sk-lf-test"

    static let script: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/langfuse_server.py").path
    }()

    init(prompts: [String] = []) throws {
        directory = URL(fileURLWithPath: try temporaryDirectory("variantd-langfuse"))
        try Data(("[" + prompts.joined(separator: ",") + "]").utf8).write(to: directory.appendingPathComponent("prompts.json"))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, directory.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
        try process.run()
        let portPath = directory.appendingPathComponent("port").path
        let deadline = Date().addingTimeInterval(15)
        var found: Int?
        while found == nil, Date() < deadline {
            found = (try? String(contentsOfFile: portPath, encoding: .utf8)).flatMap { Int($0) }
            if found == nil { usleep(20_000) }
        }
        guard let found else {
            process.terminate()
            throw FixtureError("langfuse_server.py did not start within 15 s")
        }
        port = found
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// The environment a daemon needs to use this server with the right keys.
    var environment: [String: String] {
        ["LANGFUSE_PUBLIC_KEY": Self.publicKey, "LANGFUSE_SECRET_KEY": Self.secretKey, "LANGFUSE_HOST": url]
    }

    /// Every prompt version the server knows from now on (JSON objects in Langfuse's shape).
    func setPrompts(_ prompts: [String]) throws {
        try write("[" + prompts.joined(separator: ",") + "]", to: "prompts.json")
    }

    /// `ok`, `500`, `hang`, `garbage` or `refuse`.
    func setMode(_ mode: String) throws {
        try write(mode, to: "mode")
    }

    /// Every request so far: `GET NAME version=N|label=L STATUS`.
    var requests: [String] {
        ((try? String(contentsOf: directory.appendingPathComponent("requests.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    private func write(_ text: String, to name: String) throws {
        let staging = directory.appendingPathComponent(name + ".tmp").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: staging))
        guard rename(staging, directory.appendingPathComponent(name).path) == 0 else { throw FixtureError("rename") }
    }
}

/// A text prompt version in Langfuse's API shape.
func langfuseText(
    _ name: String, version: Int, _ template: String, labels: [String] = [], config: String = "{}"
) -> String {
    let labelList = labels.map { "\"\($0)\"" }.joined(separator: ",")
    let text = String(decoding: try! JSONSerialization.data(withJSONObject: [template], options: [.fragmentsAllowed]), as: UTF8.self).dropFirst().dropLast()
    return #"{"name":"\#(name)","version":\#(version),"type":"text","prompt":\#(text),"config":\#(config),"labels":[\#(labelList)],"tags":["test"],"commitMessage":null}"#
}

/// A document with one experiment whose two variants use a Langfuse prompt, by the given selectors (JSON members
/// such as `"prompt_version":1` or `"prompt_label":"production"`).
func langfuseDocument(control: String, treatment: String, langfuseName: String = "movie-critic", status: String = "running")
    -> String
{
    """
    {"schema_version":1,
     "prompts":{"critic":{"description":"kept in Langfuse","langfuse":{"name":"\(langfuseName)"}}},
     "experiments":[{"name":"critic-test","salt":"critic-1","status":"\(status)","variants":[
       {"name":"control","control":true,"weight":50,"prompt":"critic",\(control)},
       {"name":"treatment","weight":50,"prompt":"critic",\(treatment)}]}]}
    """
}
