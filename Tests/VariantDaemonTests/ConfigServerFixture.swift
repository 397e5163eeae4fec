import Foundation
import Glibc
import VariantCore

/// `Tests/Fixtures/config_server.py`, a real HTTP server on loopback that serves a config document and
/// misbehaves on command (500, 404, hang, stall, truncated, not JSON, oversized, redirect loop, refused), and
/// emulates the AppConfig Data API, checking each request's SigV4 signature with botocore.
///
/// Controlled through files in its own directory; stopped (SIGKILL) on deinit.
final class ConfigServerFixture {
    let directory: URL
    let port: Int
    private let process = Process()

    static let script: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/config_server.py").path
    }()

    init(document: String?, tls: (certificate: String, key: String)? = nil) throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("variantd-server-XXXXXX").path
        var buffer = Array(template.utf8CString)
        guard let created = mkdtemp(&buffer) else { throw FixtureError("mkdtemp failed") }
        directory = URL(fileURLWithPath: String(cString: created))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments =
            ["python3", Self.script, directory.path] + (tls.map { ["--tls", $0.certificate, $0.key] } ?? [])
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
        if let document {
            try Data(document.utf8).write(to: directory.appendingPathComponent("doc"))
        }
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
            throw FixtureError("config_server.py did not start within 15 s")
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

    var url: String { "http://127.0.0.1:\(port)/config.json" }

    /// Serves `document` from now on.
    func publish(_ document: String) throws {
        try write(document, to: "doc")
    }

    func setMode(_ mode: String) throws {
        try write(mode, to: "mode")
    }

    func set(_ name: String, _ value: String) throws {
        try write(value, to: name)
    }

    /// Every request so far: `METHOD PATH STATUS BODY_BYTES if-none-match=... signature=...`.
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
