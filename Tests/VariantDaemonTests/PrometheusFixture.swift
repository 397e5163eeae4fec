import Foundation
import Glibc
import VariantCore

/// A real Prometheus server (Debian's `prometheus`, installed by scripts/bootstrap) on a loopback port, with a
/// temporary data directory, scraping `targets` every second. Its configuration passes `promtool check config`.
/// Stopped (SIGKILL) and its directory removed on deinit.
final class PrometheusFixture {
    static let binary = "/usr/bin/prometheus"
    static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    let directory: String
    let port: Int
    let configPath: String
    private let process = Process()

    var baseURL: String { "http://127.0.0.1:\(port)" }

    init(targets: [String]) throws {
        directory = try temporaryDirectory("variantd-prometheus")
        port = try freeLoopbackPort()
        configPath = directory + "/prometheus.yml"
        let config = """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: variantd
                static_configs:
                  - targets: [\(targets.map { "'\($0)'" }.joined(separator: ", "))]

            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: configPath))
        let check = try runProgram("/usr/bin/promtool", ["check", "config", configPath])
        guard check.status == 0 else { throw FixtureError("promtool check config: \(check.stdout) \(check.stderr)") }
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = [
            "--config.file=\(configPath)", "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: "/dev/null"))
        try process.run()
        guard eventually({ (try? httpGet(port: port, path: "/-/ready").status) == 200 }) else {
            throw FixtureError("prometheus did not become ready on port \(port)")
        }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The value of an instant query that returns one series (such as a `sum(...)`), nil when it returns none.
    func scalar(_ expression: String) -> Double? {
        guard let answer = try? query(expression), let samples = try? PrometheusSample.vector(from: Array(answer.utf8))
        else { return nil }
        return samples.first?.value
    }

    /// The series an instant query returns, as the raw JSON answer.
    func query(_ expression: String) throws -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? expression
        return try httpGet(port: port, path: "/api/v1/query?query=\(encoded)").body
    }
}

/// A loopback TCP port that was free a moment ago (listened on, then closed).
func freeLoopbackPort() throws -> Int {
    let (descriptor, port) = try HTTPExchange.listener()
    close(descriptor)
    return port
}

/// One HTTP/1.1 request on loopback with a fresh connection (`HTTPExchange`): its status, headers and body.
func httpGet(port: Int, path: String, method: String = "GET") throws -> HTTPExchange.Response {
    try HTTPExchange.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n", port: port)
}

/// Runs a program to its end: its exit status and output.
func runProgram(_ path: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = input == nil ? FileHandle.nullDevice : stdin
    try process.run()
    if let input {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
    }
    let stdout = output.fileHandleForReading.readDataToEndOfFile()
    let stderr = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}
