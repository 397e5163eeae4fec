import Foundation
import Glibc

/// `Tests/Fixtures/langfuse_server.py`, a fake Langfuse on loopback: the public API's
/// `GET /api/public/v2/prompts/{name}?version=N|label=L` with basic auth, text and chat prompts, and on command
/// 500, a hang, a garbage body or a refused connection. Counts requests; stopped (SIGKILL) on deinit.
final class LangfuseServerFixture {
    private let server: FixtureServerProcess

    static let publicKey = "pk-lf-test"
    static let secretKey = "sk-lf-test"

    init(prompts: [String] = []) throws {
        server = try FixtureServerProcess(script: "langfuse_server.py") { directory in
            try Data(("[" + prompts.joined(separator: ",") + "]").utf8)
                .write(to: directory.appendingPathComponent("prompts.json"))
        }
    }

    var directory: URL { server.directory }
    var port: Int { server.port }
    var url: String { "http://127.0.0.1:\(port)" }

    /// The environment a daemon needs to use this server with the right keys.
    var environment: [String: String] {
        ["LANGFUSE_PUBLIC_KEY": Self.publicKey, "LANGFUSE_SECRET_KEY": Self.secretKey, "LANGFUSE_HOST": url]
    }

    /// Every prompt version the server knows from now on (JSON objects in Langfuse's shape).
    func setPrompts(_ prompts: [String]) throws {
        try server.write("[" + prompts.joined(separator: ",") + "]", to: "prompts.json")
    }

    /// `ok`, `500`, `hang`, `garbage` or `refuse`.
    func setMode(_ mode: String) throws {
        try server.write(mode, to: "mode")
    }

    /// Every request so far: `GET NAME version=N|label=L STATUS`.
    var requests: [String] { server.requests }
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
