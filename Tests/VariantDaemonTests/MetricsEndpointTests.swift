import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The metrics endpoint (`--metrics-address`) of the real binary, over real loopback HTTP: what it counts, how it
/// answers other paths and methods, that Prometheus' own checker accepts its body, and how it starts and stops.
@Suite(.serialized) struct MetricsEndpointTests {
    /// Starts a daemon with the metrics endpoint on a free port of 127.0.0.1 and returns it with that port, read
    /// from its `metrics.listening` log line.
    func startDaemon(
        arguments: [String] = ["--metrics-address", "127.0.0.1:0"], environment: [String: String] = [:]
    ) throws -> (DaemonFixture, port: Int) {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: arguments, environment: environment)
        var port: Int?
        _ = eventually {
            port = Self.listeningPort(in: daemon.logs)
            return port != nil || !daemon.isRunning
        }
        guard let port else { throw FixtureError("no metrics.listening line:\n\(daemon.logs)") }
        return (daemon, port)
    }

    static func listeningPort(in logs: String) -> Int? {
        guard let line = logs.split(separator: "\n").first(where: { $0.contains("metrics.listening") }),
            let range = line.range(of: #"metrics\.address=127\.0\.0\.1:[0-9]+"#, options: .regularExpression)
        else { return nil }
        return Int(line[range].split(separator: ":").last ?? "")
    }

    /// The value of the one series `series` (name and labels, exactly as exposed) in `body`, if present.
    static func value(of series: String, in body: String) -> Double? {
        body.split(separator: "\n").lazy.compactMap { line -> Double? in
            guard line.hasPrefix(series + " ") else { return nil }
            return Double(line.dropFirst(series.count + 1))
        }.first
    }

    @Test func countersHoldTheRequestsAnsweredByOpAndCode() throws {
        let (daemon, port) = try startDaemon()
        let connection = try daemon.connect()
        for unit in ["u1", "u2", "u3"] {
            #expect(try connection.request(#"{"op":"assign","experiment":"checkout-prompt","unit":"\#(unit)"}"#).contains(#""ok":true"#))
        }
        #expect(try connection.request(#"{"op":"assign","experiment":"nope","unit":"u1"}"#).contains("unknown_experiment"))
        #expect(try connection.request(#"{"op":"assign","experiment":"checkout-prompt"}"#).contains("missing_field"))
        #expect(try connection.request(#"not json"#).contains("invalid_json"))
        #expect(try connection.request(#"{"op":"fly"}"#).contains("unknown_op"))
        #expect(try connection.request(#"{"op":"record","experiment":"checkout-prompt","variant":"control","metrics":{"latency_ms":120}}"#).contains(#""ok":true"#))
        #expect(try connection.request(#"{"op":"record","experiment":"checkout-prompt","variant":"nope","metrics":{"latency_ms":120}}"#).contains("unknown_variant"))
        let batch = try connection.request(
            #"{"op":"batch","records":[{"experiment":"checkout-prompt","variant":"control","metrics":{"error":false}},{"experiment":"checkout-prompt","variant":"nope","metrics":{"error":true}},{"experiment":"nope","variant":"control","metrics":{"error":true}}]}"#)
        #expect(batch.contains(#""recorded":1"#))
        #expect(try connection.request(#"{"op":"disable","experiment":"checkout-prompt","variant":"concise"}"#).contains(#""changed":true"#))

        let response = try HTTPExchange.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", port: port)
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        let body = response.body
        let expected: [(String, Double?)] = [
            (#"variantd_requests_total{op="assign",code="ok"}"#, 3),
            (#"variantd_requests_total{op="assign",code="unknown_experiment"}"#, 1),
            (#"variantd_requests_total{op="assign",code="missing_field"}"#, 1),
            (#"variantd_requests_total{op="unknown",code="invalid_json"}"#, 1),
            (#"variantd_requests_total{op="unknown",code="unknown_op"}"#, 1),
            (#"variantd_requests_total{op="record",code="ok"}"#, 1),
            (#"variantd_requests_total{op="record",code="unknown_variant"}"#, 1),
            (#"variantd_requests_total{op="batch",code="ok"}"#, 1),
            (#"variantd_requests_total{op="disable",code="ok"}"#, 1),
            (#"variantd_requests_total{op="stats",code="ok"}"#, 0),
            (#"variantd_requests_total{op="unknown",code="ok"}"#, nil),
            (#"variantd_request_duration_seconds_count{op="assign"}"#, 5),
            (#"variantd_request_duration_seconds_bucket{op="assign",le="+Inf"}"#, 5),
            (#"variantd_records_refused_total{code="unknown_variant"}"#, 2),
            (#"variantd_records_refused_total{code="unknown_experiment"}"#, 1),
            (#"variantd_connections_open"#, 1),
            (#"variantd_connections_refused_total"#, 0),
            (#"variantd_treatments_disabled"#, 1),
            (#"variantd_state_write_failures_total"#, 0),
            (#"variantd_build_info{version="0.1.0"}"#, 1),
        ]
        for (series, value) in expected {
            #expect(Self.value(of: series, in: body) == value, "\(series) in:\n\(body)")
        }
        let version = try #require(try daemon.ask(#"{"op":"config"}"#)["config_version"]?.stringValue)
        #expect(Self.value(of: #"variantd_config_info{config_version="\#(version)",source="file:\#(daemon.configPath)"}"#, in: body) == 1)
        #expect(body.split(separator: "\n").filter { $0.hasPrefix("variantd_config_info{") }.count == 1)
        #expect((Self.value(of: "variantd_config_polls_total", in: body) ?? 0) >= 1)
        let age = try #require(Self.value(of: "variantd_config_last_success_age_seconds", in: body))
        #expect(age >= 0 && age < 60)
        // Every metric family says what it is.
        for name in ["variantd_requests_total", "variantd_request_duration_seconds", "variantd_connections_open",
                     "variantd_config_info", "variantd_treatments_disabled", "variantd_build_info"] {
            #expect(body.contains("# HELP \(name) "), "no help for \(name)")
        }
        #expect(daemon.stop() == 0)
    }

    @Test func otherPathsAre404AndOtherMethods405() throws {
        // Set through the environment this time.
        let (daemon, port) = try startDaemon(arguments: [], environment: ["VARIANTD_METRICS_ADDRESS": "127.0.0.1:0"])
        let notFound = try HTTPExchange.send("GET /stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", port: port)
        #expect(notFound.status == 404)
        let post = try HTTPExchange.send(
            "POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", port: port)
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        let head = try HTTPExchange.send("HEAD /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", port: port)
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
        #expect(Int(head.headers["content-length"] ?? "") ?? 0 > 0)
        #expect(daemon.stop() == 0)
    }

    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: MetricsEndpointTests.promtool != nil, "promtool is not installed (scripts/bootstrap installs it)"))
    func promtoolFindsNothingToSayAboutTheBody() throws {
        let (daemon, port) = try startDaemon()
        let connection = try daemon.connect()
        _ = try connection.request(#"{"op":"assign","experiment":"checkout-prompt","unit":"u1"}"#)
        _ = try connection.request(#"{"op":"fly"}"#)
        _ = try connection.request(#"{"op":"record","experiment":"checkout-prompt","variant":"nope","metrics":{}}"#)
        let body = try HTTPExchange.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", port: port).body
        let lint = try runProgram(try #require(Self.promtool), ["check", "metrics"], input: body)
        let said = lint.stdout + lint.stderr
        #expect(said.isEmpty, "promtool: \(said)")
        #expect(lint.status == 0)
        #expect(daemon.stop() == 0)
    }

    @Test func gracefulStopWithAScrapeConnectionOpenExitsZero() throws {
        let (daemon, port) = try startDaemon()
        // A keep-alive connection that has been answered once and stays open, as Prometheus keeps it.
        let scraper = try HTTPExchange(port: port)
        try scraper.write("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(try scraper.readResponse().status == 200)
        #expect(daemon.stop() == 0)
        #expect(daemon.logs.contains("metrics.stopped"))
        #expect(scraper.peerClosed())
    }

    @Test(arguments: [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:99999", "no valid port"),
        ("no-such-host.invalid:9464", "cannot resolve"),
    ])
    func anInvalidAddressFailsAtStartNamingTheFlag(address: String, reason: String) throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--metrics-address", address], waitForSocket: false)
        #expect(eventually { !daemon.isRunning })
        #expect(daemon.stop() != 0)
        #expect(daemon.logs.contains("--metrics-address"), "\(daemon.logs)")
        #expect(daemon.logs.contains(reason), "\(daemon.logs)")
    }

    @Test func aPortInUseFailsAtStartNamingTheFlag() throws {
        let holder = try HTTPExchange.listener()
        defer { close(holder.descriptor) }
        let daemon = try DaemonFixture(
            config: exampleConfig, arguments: ["--metrics-address", "127.0.0.1:\(holder.port)"], waitForSocket: false)
        #expect(eventually { !daemon.isRunning })
        #expect(daemon.stop() != 0)
        #expect(daemon.logs.contains("--metrics-address: cannot listen on 127.0.0.1:\(holder.port)"), "\(daemon.logs)")
    }
}

/// A raw HTTP/1.1 client over a loopback TCP socket: what is sent is exactly what the test wrote.
final class HTTPExchange {
    struct Response {
        var status: Int
        /// Header names lowercased.
        var headers: [String: String]
        var body: String
    }

    let descriptor: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = Self.loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw FixtureError("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        return address
    }

    /// A listening socket on a free port of 127.0.0.1, to hold that port.
    static func listener() throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(descriptor, $0, length) == 0 && listen(descriptor, 1) == 0
                    && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw FixtureError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Sends `request` on a new connection and reads the one response.
    static func send(_ request: String, port: Int) throws -> Response {
        let exchange = try HTTPExchange(port: port)
        try exchange.write(request)
        return try exchange.readResponse(bodyExpected: !request.hasPrefix("HEAD "))
    }

    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw FixtureError("send: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    /// Reads one response: the head, then `Content-Length` bytes of body (none for a HEAD request).
    func readResponse(bodyExpected: Bool = true) throws -> Response {
        let separator = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while headEnd == nil {
            headEnd = pending.indices.dropLast(3).first { Array(pending[$0..<$0 + 4]) == separator }
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: pending[..<headEnd!], as: UTF8.self)
        pending.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw FixtureError("bad status line: \(head)") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if bodyExpected, headers["transfer-encoding"]?.lowercased() == "chunked" {
            return Response(status: status, headers: headers, body: try readChunkedBody())
        }
        let length = bodyExpected ? Int(headers["content-length"] ?? "0") ?? 0 : 0
        while pending.count < length { try fill() }
        let body = String(decoding: pending[..<length], as: UTF8.self)
        pending.removeFirst(length)
        return Response(status: status, headers: headers, body: body)
    }

    /// A chunked body (Prometheus' larger answers): `SIZE\r\nBYTES\r\n` until a chunk of size 0.
    private func readChunkedBody() throws -> String {
        var body: [UInt8] = []
        while true {
            var lineEnd: Int?
            while lineEnd == nil {
                lineEnd = pending.indices.dropLast().first { pending[$0] == 13 && pending[$0 + 1] == 10 }
                if lineEnd == nil { try fill() }
            }
            let sizeText = String(decoding: pending[..<lineEnd!], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                throw FixtureError("bad chunk size line: \(sizeText)")
            }
            pending.removeFirst(lineEnd! + 2)
            while pending.count < size + 2 { try fill() }
            body += pending[..<size]
            pending.removeFirst(size + 2)
            if size == 0 { return String(decoding: body, as: UTF8.self) }
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard received > 0 else { throw FixtureError("connection closed before the response was complete") }
        pending.append(contentsOf: chunk[..<received])
    }

    /// Whether the server has closed the connection (a read returns end of file).
    func peerClosed() -> Bool {
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) == 0
    }
}
