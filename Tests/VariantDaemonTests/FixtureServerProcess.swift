import Foundation
import Glibc

/// A Python fixture server from `Tests/Fixtures/` (`python3 SCRIPT DIRECTORY ARGS...`), controlled through files in
/// its own directory: it writes the port it listens on to `port` and logs every request to `requests.log`.
/// Stopped (SIGKILL) and its directory removed on deinit.
final class FixtureServerProcess {
    let directory: URL
    let port: Int
    private let process = Process()

    /// Starts `script` (a file name in `Tests/Fixtures/`) after `prepare` has written its first control files.
    init(script: String, arguments: [String] = [], prepare: (URL) throws -> Void = { _ in }) throws {
        directory = URL(fileURLWithPath: try temporaryDirectory("variantd-fixture"))
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/" + script).path
        try prepare(directory)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", path, directory.path] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
        try process.run()
        let portPath = directory.appendingPathComponent("port").path
        var found: Int?
        _ = eventually {
            found = (try? String(contentsOfFile: portPath, encoding: .utf8)).flatMap { Int($0) }
            return found != nil
        }
        guard let found else {
            process.terminate()
            throw FixtureError("\(script) did not start within \(patience)")
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

    /// Every line of `requests.log` so far.
    var requests: [String] {
        ((try? String(contentsOf: directory.appendingPathComponent("requests.log"), encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// Replaces a control file atomically, so the server never reads half of it.
    func write(_ text: String, to name: String) throws {
        let staging = directory.appendingPathComponent(name + ".tmp").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: staging))
        guard rename(staging, directory.appendingPathComponent(name).path) == 0 else { throw FixtureError("rename") }
    }
}
