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

/// A loopback TCP port that was free a moment ago (bound to port 0, then closed).
func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw FixtureError("socket: \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            bind(descriptor, address, length) == 0 && getsockname(descriptor, address, &length) == 0
        }
    }
    guard bound else { throw FixtureError("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// One HTTP/1.1 request on loopback with a fresh connection: the status and the body (read to the close).
func httpGet(port: Int, path: String, method: String = "GET") throws -> (status: Int, headers: String, body: String) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw FixtureError("socket: \(errno)") }
    defer { close(descriptor) }
    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let connected = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
    guard connected else { throw FixtureError("connect to port \(port): \(errno)") }
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    guard write(descriptor, request, request.count) == request.count else { throw FixtureError("write: \(errno)") }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(descriptor, &chunk, chunk.count)
        if count <= 0 { break }
        response += chunk[..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n"), let status = Int(text.split(separator: " ").dropFirst().first ?? "")
    else { throw FixtureError("not an HTTP answer from port \(port): \(text.prefix(200))") }
    var body = String(text[split.upperBound...])
    let headers = String(text[..<split.lowerBound])
    if headers.lowercased().contains("transfer-encoding: chunked") { body = dechunked(body) }
    return (status, headers, body)
}

/// The body of a chunked HTTP answer.
private func dechunked(_ text: String) -> String {
    var rest = Substring(text)
    var body = ""
    while let lineEnd = rest.range(of: "\r\n"), let size = Int(rest[..<lineEnd.lowerBound], radix: 16), size > 0 {
        let start = lineEnd.upperBound
        let utf8 = rest.utf8
        let end = utf8.index(start, offsetBy: size)
        body += String(rest[start..<end])
        rest = rest[end...].dropFirst(2)
    }
    return body
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
