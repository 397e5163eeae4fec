import Foundation
import Glibc
import VariantCore

/// `Tests/Fixtures/config_server.py`, a real HTTP server on loopback that serves a config document and
/// misbehaves on command (500, 404, hang, stall, truncated, not JSON, oversized, redirect loop, refused), and
/// emulates the AppConfig Data API, checking each request's SigV4 signature with botocore.
///
/// Controlled through files in its own directory; stopped (SIGKILL) on deinit.
final class ConfigServerFixture {
    private let server: FixtureServerProcess

    init(document: String?, tls: (certificate: String, key: String)? = nil) throws {
        server = try FixtureServerProcess(
            script: "config_server.py", arguments: tls.map { ["--tls", $0.certificate, $0.key] } ?? []
        ) { directory in
            if let document { try Data(document.utf8).write(to: directory.appendingPathComponent("doc")) }
        }
    }

    var directory: URL { server.directory }
    var port: Int { server.port }
    var url: String { "http://127.0.0.1:\(port)/config.json" }

    /// Serves `document` from now on.
    func publish(_ document: String) throws {
        try server.write(document, to: "doc")
    }

    func setMode(_ mode: String) throws {
        try server.write(mode, to: "mode")
    }

    func set(_ name: String, _ value: String) throws {
        try server.write(value, to: name)
    }

    /// Every request so far: `METHOD PATH STATUS BODY_BYTES if-none-match=... signature=...`.
    var requests: [String] { server.requests }
}

/// The example config with one experiment's status changed: another valid document, another version.
func exampleConfig(status: String) -> String {
    exampleConfig.replacingOccurrences(of: #""status": "running""#, with: #""status": "\#(status)""#)
}

/// Valid JSON that fails validation (weights that do not sum to 100).
let invalidConfig =
    #"{"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"t"}]}},"experiments":[{"name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":40,"prompt":"p","prompt_version":1}]}]}"#

func configVersion(_ text: String) -> String {
    LoadedConfig.version(of: Array(text.utf8))
}

/// Makes a fresh temporary directory.
func temporaryDirectory(_ prefix: String) throws -> String {
    let template = FileManager.default.temporaryDirectory.appendingPathComponent(prefix + "-XXXXXX").path
    var buffer = Array(template.utf8CString)
    guard let created = mkdtemp(&buffer) else { throw FixtureError("mkdtemp failed") }
    return String(cString: created)
}
