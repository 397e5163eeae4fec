import Foundation
import Glibc
import VariantCore

/// `--metrics`: the cost of the metrics endpoint. Starts variantd with `--metrics-address` on a config of
/// `experiments` experiments of 3 variants each, sends every variant records of 10 metrics (the 5 built-ins and 5
/// custom) with units, then measures (a) scrapes of `/metrics` back to back: latency percentiles and body size;
/// (b) `assign` round trips (one in flight, 1 connection) in interleaved rounds, unscraped and with `/metrics`
/// scraped every second, and the ratio of their medians.
enum MetricsBench {
    static let experiments = 20
    static let variants = ["control", "treatment-a", "treatment-b"]
    static let customMetrics = ["quality", "groundedness", "turns", "retries", "rating"]
    static let experimentPrefix = "metrics-bench-"

    /// Adds `experiments` experiments of 3 variants, all serving the example's first prompt, to the config at
    /// `base`, and writes the result to `path`.
    static func writeConfig(from base: String, to path: String) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: base)))
        guard case .object(var root) = try JSONParser.parse(bytes),
            case .object(let prompts)? = root["prompts"], case .array(var list)? = root["experiments"],
            let prompt = prompts.members.first?.key
        else { throw BenchError("\(base) is not a configuration document with a prompt") }
        for index in 0..<experiments {
            let variantsJSON = variants.enumerated().map { position, name in
                #"{"name":"\#(name)"\#(position == 0 ? #","control":true"# : ""),"weight":\#(position == 0 ? 34 : 33),"prompt":"\#(prompt)","prompt_version":1,"params":{"n":\#(position)}}"#
            }.joined(separator: ",")
            list.append(try JSONParser.parse(Array(#"""
                {"name":"\#(experimentPrefix)\#(index)","salt":"metrics-bench-\#(index)","status":"running","variants":[\#(variantsJSON)]}
                """#.utf8)))
        }
        for (index, member) in root.members.enumerated() where member.key == "experiments" {
            root.members[index].value = .array(list)
        }
        var writer = JSONWriter()
        writer.value(.object(root))
        guard FileManager.default.createFile(atPath: path, contents: Data(writer.bytes)) else {
            throw BenchError("cannot write \(path)")
        }
    }

    /// Sends `recordsPerVariant` records to every variant of every generated experiment, in batches.
    static func sendRecords(socketPath: String, recordsPerVariant: Int) throws {
        let connection = try BenchConnection(socketPath: socketPath)
        for experiment in 0..<experiments {
            for (position, variant) in variants.enumerated() {
                var entries: [String] = []
                for index in 0..<recordsPerVariant {
                    let custom = customMetrics.enumerated().map { "\"\($1)\":\(Double(index % 7 + $0) / 2)" }
                        .joined(separator: ",")
                    entries.append(
                        #"{"experiment":"\#(experimentPrefix)\#(experiment)","variant":"\#(variant)","unit":"u-\#(index % 97)","metrics":{"latency_ms":\#(100 + index % 50 + position),"error":\#(index % 20 == 0),"success":\#(index % 3 == 0 ? 0 : 1),"cost_usd":0.00\#(index % 9 + 1),"tokens":\#(200 + index % 40),"custom":{\#(custom)}}}"#
                    )
                }
                for chunk in stride(from: 0, to: entries.count, by: 500) {
                    let line = Array(
                        (#"{"op":"batch","ack":true,"records":["# + entries[chunk..<min(chunk + 500, entries.count)]
                            .joined(separator: ",") + "]}\n").utf8)
                    try line.withUnsafeBytes { try connection.send($0.baseAddress!, count: $0.count) }
                    let answer = try connection.receiveLine()
                    guard answer.contains(#""rejected":[]"#) else {
                        throw BenchError("records were refused:\n\(answer.prefix(600))")
                    }
                }
            }
        }
    }

    /// One scrape: the round trip in nanoseconds and the body size in bytes.
    static func scrape(_ client: HTTPScrapeClient) throws -> (nanoseconds: UInt64, bytes: Int) {
        let start = monotonicNanoseconds()
        let bytes = try client.get("/metrics")
        return (monotonicNanoseconds() - start, bytes)
    }
}

/// A keep-alive HTTP/1.1 client over loopback TCP that reads each response's head and `Content-Length` body.
final class HTTPScrapeClient {
    private let descriptor: Int32
    private let port: Int
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(port: Int) throws {
        self.port = port
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw BenchError.system("connect", "127.0.0.1:\(port)")
        }
    }

    deinit { close(descriptor) }

    /// A free TCP port of 127.0.0.1 (bound, read and released: another process could take it, not likely here).
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw BenchError.system("bind", "127.0.0.1:0") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// GETs `path` and returns the body's size; fails unless the status is 200. The body is read and counted,
    /// not kept (a full-detail body is 10 MB).
    func get(_ path: String) throws -> Int {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
        else { throw BenchError.system("send", "127.0.0.1:\(port)") }
        var head: [UInt8] = []
        var bodyLength = 0
        var bodyReceived = 0
        var headDone = false
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw BenchError("the metrics endpoint closed the connection") }
            if headDone {
                bodyReceived += count
            } else {
                head += buffer[..<count]
                if let end = Self.headEnd(head) {
                    let text = String(decoding: head[..<end], as: UTF8.self)
                    guard text.hasPrefix("HTTP/1.1 200") else { throw BenchError("GET \(path): \(text)") }
                    for line in text.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                        bodyLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                    }
                    headDone = true
                    bodyReceived = head.count - (end + 4)
                }
            }
            if headDone && bodyReceived >= bodyLength { return bodyLength }
        }
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }
}

extension VariantdBench {
    /// `--metrics`: see `MetricsBench`.
    func measureMetrics(in workDirectory: String) throws {
        if let unitGroups = ExperimentExposition.Detail.UnitGroups(rawValue: metricsUnitGroups) {
            progress("rendering the experiments' samples in this process (--metrics-unit-groups \(unitGroups.rawValue))")
            let (renders, bytes) = MetricsBench.renderInProcess(
                detail: ExperimentExposition.Detail(unitGroups: unitGroups), recordsPerVariant: metricsRecords,
                renders: metricsScrapes)
            print(
                "(c) experiments rendered in process, unit groups \(unitGroups.rawValue): p50 "
                    + String(format: "%.0f", Double(renders[renders.count / 2]) / 1000) + " µs, p99 "
                    + String(format: "%.0f", Double(renders[renders.count * 99 / 100]) / 1000) + " µs, \(bytes) bytes")
        }
        let benchConfig = workDirectory + "/config.json"
        try MetricsBench.writeConfig(from: config, to: benchConfig)
        let socketPath = workDirectory + "/variantd.sock"
        let port = try HTTPScrapeClient.freePort()
        progress("starting \(daemon) with \(MetricsBench.experiments) more experiments and --metrics-address 127.0.0.1:\(port)")
        let daemonProcess = try DaemonProcess(
            name: "variantd", executable: daemon,
            arguments: [
                "--config", benchConfig, "--socket", socketPath, "--state-dir", workDirectory + "/state",
                "--metrics-address", "127.0.0.1:\(port)", "--metrics-unit-groups", metricsUnitGroups,
            ],
            logPath: workDirectory + "/variantd.log", role: .daemon)
        defer { daemonProcess.stop() }
        do {
            try daemonProcess.waitUntilAccepting(socketPath: socketPath)
            progress("recording \(metricsRecords) records of 10 metrics for each of \(MetricsBench.experiments * 3) variants")
            try MetricsBench.sendRecords(socketPath: socketPath, recordsPerVariant: metricsRecords)

            // (a) Scrapes back to back, in rounds interleaved with the transfer floor: a C server answering every
            // GET with a body of the same size (httpfloor), in its own process, read by the same client.
            let scraper = try HTTPScrapeClient(port: port)
            var bodyBytes = 0
            for _ in 0..<20 { bodyBytes = try MetricsBench.scrape(scraper).bytes }
            let floorPort = try HTTPScrapeClient.freePort()
            let floorProcess = try MetricsBench.startTransferFloor(
                in: workDirectory, port: floorPort, bodyBytes: bodyBytes)
            defer { floorProcess.stop() }
            let floorClient = try MetricsBench.connect(port: floorPort, process: floorProcess)
            for _ in 0..<20 { _ = try MetricsBench.scrape(floorClient) }
            let perRound = max(1, metricsScrapes / metricsRounds)
            progress("scraping /metrics and the transfer floor \(perRound) times each in \(metricsRounds) interleaved rounds")
            var scrapes: [UInt64] = []
            var floorScrapes: [UInt64] = []
            var roundRatios: [Double] = []
            for _ in 0..<metricsRounds {
                var floorRound: [UInt64] = []
                var round: [UInt64] = []
                for _ in 0..<perRound { floorRound.append(try MetricsBench.scrape(floorClient).nanoseconds) }
                for _ in 0..<perRound { round.append(try MetricsBench.scrape(scraper).nanoseconds) }
                roundRatios.append(Double(round.sorted()[perRound / 2]) / Double(floorRound.sorted()[perRound / 2]))
                scrapes += round
                floorScrapes += floorRound
            }
            scrapes.sort()
            floorScrapes.sort()
            func micros(_ sorted: [UInt64], _ fraction: Double) -> Double {
                Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]) / 1000
            }

            // (b) assign round trips, rounds interleaved: unscraped, scraped every second, ...
            let load = LoadGenerator(
                socketPath: socketPath,
                corpus: RequestCorpus(experiment: MetricsBench.experimentPrefix + "0", unitPrefix: unitPrefix, maxBurst: 1))
            try load.verify()
            _ = try load.oneInFlight(connections: 1, requestsPerConnection: Self.warmUpRequests)
            var unscraped: [Double] = []
            var scraped: [Double] = []
            var scrapesDuringRounds = 0
            for round in 0..<(2 * metricsRounds) {
                let scrapeEverySecond = round % 2 == 1
                progress("round \(round + 1) of \(2 * metricsRounds): \(latencyRequests) assign round trips, \(scrapeEverySecond ? "scraped every second" : "unscraped")")
                let stop = StopFlag()
                let requests = latencyRequests
                let results = try runOnThreads(count: scrapeEverySecond ? 2 : 1) { index -> (PhaseOutcome?, Int) in
                    if index == 1 { return (nil, try Self.scrapeEverySecond(port: port, until: stop)) }
                    defer { stop.set() }
                    return (try load.oneInFlight(connections: 1, requestsPerConnection: requests), 0)
                }
                guard let outcome = results[0].0 else { throw BenchError("no round trips measured") }
                scrapesDuringRounds += results.dropFirst().reduce(0) { $0 + $1.1 }
                let p50 = LatencyFigures(outcome).p50Micros
                if scrapeEverySecond { scraped.append(p50) } else { unscraped.append(p50) }
            }
            func median(_ values: [Double]) -> Double {
                let sorted = values.sorted()
                return sorted.count % 2 == 1
                    ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            }
            func spread(_ values: [Double]) -> String {
                String(format: "%.1f–%.1f", values.min() ?? 0, values.max() ?? 0)
            }
            print(
                """
                metrics endpoint, \(MetricsBench.experiments) experiments × 3 variants, \(metricsRecords) records of 10 metrics per variant
                (a) body \(bodyBytes) bytes, \(metricsRounds) interleaved rounds of \(perRound) back-to-back scrapes each:
                    /metrics                  p50 \(String(format: "%.0f", micros(scrapes, 0.5))) µs, p99 \(String(format: "%.0f", micros(scrapes, 0.99))) µs
                    transfer floor (C, same size) p50 \(String(format: "%.0f", micros(floorScrapes, 0.5))) µs, p99 \(String(format: "%.0f", micros(floorScrapes, 0.99))) µs
                    ratio of round medians    \(String(format: "%.2f", median(roundRatios))) (rounds \(String(format: "%.2f–%.2f", roundRatios.min() ?? 0, roundRatios.max() ?? 0)))
                (b) assign round trip p50, one in flight, 1 connection, \(metricsRounds) rounds of \(latencyRequests) each:
                    unscraped                  median \(String(format: "%.1f", median(unscraped))) µs (rounds \(spread(unscraped)))
                    /metrics scraped every 1 s median \(String(format: "%.1f", median(scraped))) µs (rounds \(spread(scraped))), \(scrapesDuringRounds) scrapes
                    ratio scraped/unscraped    \(String(format: "%.3f", median(scraped) / median(unscraped)))
                """)
        } catch {
            if let exit = daemonProcess.unexpectedExit() { throw BenchError("\(error)\n\(exit)") }
            throw error
        }
    }

    /// Scrapes `/metrics` at once and then every second until `stop` is set; returns how many scrapes it made.
    private static func scrapeEverySecond(port: Int, until stop: StopFlag) throws -> Int {
        let client = try HTTPScrapeClient(port: port)
        var count = 0
        var next = monotonicNanoseconds()
        while !stop.isSet {
            if monotonicNanoseconds() >= next {
                _ = try MetricsBench.scrape(client)
                count += 1
                next += 1_000_000_000
            }
            usleep(5_000)
        }
        return count
    }
}

/// A flag one thread sets and another reads.
final class StopFlag: @unchecked Sendable {
    // Guarded by `lock`.
    private var value = false
    private var lock = pthread_mutex_t()

    init() {
        pthread_mutex_init(&lock, nil)
    }

    func set() {
        pthread_mutex_lock(&lock)
        value = true
        pthread_mutex_unlock(&lock)
    }

    var isSet: Bool {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return value
    }
}

extension MetricsBench {
    /// The experiments' part of the body rendered in this process, `renders` times, from a ledger given the same
    /// records as the daemon: how much of a scrape is rendering, apart from HTTP and the copy over loopback.
    /// Returns the render times in nanoseconds, sorted, and the body's size.
    static func renderInProcess(
        detail: ExperimentExposition.Detail, recordsPerVariant: Int, renders: Int
    ) -> (nanoseconds: [UInt64], bytes: Int) {
        let ledger = ExperimentLedger()
        for experiment in 0..<experiments {
            for (position, variant) in variants.enumerated() {
                let entries = (0..<recordsPerVariant).map { index in
                    ExperimentLedger.Entry(
                        experiment: experimentPrefix + String(experiment), variant: variant,
                        measurements: Measurements(
                            latencyMilliseconds: Double(100 + index % 50 + position), error: index % 20 == 0,
                            success: index % 3 == 0 ? 0 : 1, costUSD: Double(index % 9 + 1) / 1000,
                            tokens: Double(200 + index % 40),
                            custom: customMetrics.enumerated().map {
                                CustomMeasurement(name: $1, value: Double(index % 7 + $0) / 2)
                            }),
                        shadow: false, unitHash: UnitHash.of("u-\(index % 97)"))
                }
                _ = ledger.record(entries)
            }
        }
        let guarded = ExperimentExposition.guardedMetrics(of: GuardrailSettings())
        var body: [UInt8] = []
        var times: [UInt64] = []
        for _ in 0..<renders {
            body.removeAll(keepingCapacity: true)
            let start = monotonicNanoseconds()
            let states = ledger.currentPhases().map {
                ExperimentExposition.ExperimentState(experiment: $0.experiment, phase: $0.phase, guardedMetrics: guarded)
            }
            ExperimentExposition.write(states, disabled: [], detail: detail, into: &body)
            times.append(monotonicNanoseconds() - start)
        }
        return (times.sorted(), body.count)
    }
}

extension MetricsBench {
    /// httpfloor: the least a scrape of this size can cost here. A C server on 127.0.0.1 answering every HTTP/1.1
    /// request on a kept-alive connection with a body of the given size, already in memory (`writev` of head and
    /// body).
    static let transferFloorSource = #"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        #include <arpa/inet.h>
        #include <sys/socket.h>
        #include <sys/uio.h>
        int main(int argc, char **argv) {
            if (argc != 3) { fprintf(stderr, "usage: httpfloor PORT BODY_BYTES\n"); return 2; }
            int port = atoi(argv[1]); size_t size = strtoul(argv[2], 0, 10);
            char *body = malloc(size);
            const char *line = "variantd_metric_group_sum_of_values{experiment=\"e\",variant=\"v\",group=\"1\"} 1.5\n";
            for (size_t i = 0; i < size; i++) body[i] = line[i % strlen(line)];
            char head[256];
            int headLength = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %zu\r\n\r\n", size);
            int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_in address = {0};
            address.sin_family = AF_INET; address.sin_port = htons(port); address.sin_addr.s_addr = htonl(0x7f000001);
            if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 16) != 0) { perror("bind"); return 1; }
            for (;;) {
                int connection = accept(listener, 0, 0);
                if (connection < 0) continue;
                char request[4096]; size_t have = 0;
                for (;;) {
                    ssize_t count = read(connection, request + have, sizeof request - have - 1);
                    if (count <= 0) break;
                    have += count; request[have] = 0;
                    char *end = strstr(request, "\r\n\r\n");
                    if (!end) { if (have >= sizeof request - 1) break; continue; }
                    size_t used = end + 4 - request;
                    memmove(request, request + used, have - used); have -= used;
                    struct iovec parts[2] = {{head, headLength}, {body, size}};
                    size_t total = headLength + size, sent = 0; int failed = 0;
                    while (sent < total) {
                        struct iovec rest[2]; int n = 0;
                        if (sent < (size_t)headLength) { rest[n++] = (struct iovec){head + sent, headLength - sent}; rest[n++] = parts[1]; }
                        else rest[n++] = (struct iovec){body + (sent - headLength), total - sent};
                        ssize_t written = writev(connection, rest, n);
                        if (written <= 0) { failed = 1; break; }
                        sent += written;
                    }
                    if (failed) break;
                }
                close(connection);
            }
        }
        """#

    /// Compiles httpfloor (`gcc -O2`) into `directory` and starts it on `port`.
    static func startTransferFloor(in directory: String, port: Int, bodyBytes: Int) throws -> DaemonProcess {
        let source = directory + "/httpfloor.c"
        let executable = directory + "/httpfloor"
        guard FileManager.default.createFile(atPath: source, contents: Data(transferFloorSource.utf8)) else {
            throw BenchError("cannot write \(source)")
        }
        let result = try runToCompletion("gcc", ["-O2", "-o", executable, source])
        guard result.status == 0 else {
            throw BenchError("compiling \(source) failed (gcc exit status \(result.status)):\n\(result.output)")
        }
        return try DaemonProcess(
            name: "httpfloor", executable: executable, arguments: [String(port), String(bodyBytes)],
            logPath: directory + "/httpfloor.log", role: .helper)
    }

    /// A scrape client of `port`, once the process behind it accepts connections (within 10 s).
    static func connect(port: Int, process: DaemonProcess) throws -> HTTPScrapeClient {
        let deadline = monotonicNanoseconds() + 10_000_000_000
        while true {
            if let client = try? HTTPScrapeClient(port: port) { return client }
            if let exit = process.unexpectedExit() { throw BenchError(exit) }
            guard monotonicNanoseconds() < deadline else {
                throw BenchError("nothing accepted connections on 127.0.0.1:\(port) within 10 s")
            }
            usleep(10_000)
        }
    }
}
