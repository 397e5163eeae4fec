import ArgumentParser
import Foundation
import Glibc
import VariantCore

/// An error that ends the benchmark, with a message for the operator.
struct BenchError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }

    /// The failure of the system call `call` on `path`, described by the current `errno`.
    static func system(_ call: String, _ path: String) -> BenchError {
        BenchError("\(call) on \(path) failed: \(String(cString: strerror(errno)))")
    }
}

/// Measures variantd over its Unix socket and, in the same run, the floor of the machine (udsfloor.c), and
/// prints variantd's figures as ratios to the floor.
@main
struct VariantdBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd-bench",
        abstract: "Measure variantd against the Unix-socket floor of this machine.",
        discussion: """
            Absolute times on shared machines vary from run to run, so every run also measures the floor: \
            udsfloor.c, a C epoll server answering each line with a fixed line, driven by a C client. variantd \
            is driven by a client as lean as that one (raw sockets, one thread per connection, no JSON \
            parsing), and its figures are printed next to the floor's: latencies as variantd/floor, rates as a \
            percentage of the floor.

            Phases: a correctness check, 5000 warm-up round trips, one-in-flight round trips on 1 connection and \
            on --connections connections at once, then pipelined requests on --connections connections with \
            --depth requests in flight each. Then the same one-in-flight run on 1 connection against the NIO \
            reference server (this executable, serving variantd's connection pipeline with udsfloor's fixed \
            answer), which shows how much of the distance to the floor any SwiftNIO server has. Progress goes to \
            standard error.
            """)

    @Option(help: ArgumentHelp("The variantd executable to start.", valueName: "path"))
    var daemon = ".build/release/variantd"

    @Option(help: ArgumentHelp("The configuration document the started variantd loads.", valueName: "path"))
    var config = "examples/variantd.json"

    @Option(
        help: ArgumentHelp(
            "The socket of a variantd that is already running; if given, none is started.",
            valueName: "path"))
    var socket: String?

    @Option(help: ArgumentHelp("The C source of the floor; if it is missing, the floor is skipped.", valueName: "path"))
    var floorSource = "../shared/bench/udsfloor.c"

    @Flag(help: "Measure only the core's cost per assign, render and record (--latency-requests each), in process.")
    var coreOnly = false

    @Option(help: ArgumentHelp("Only this --core-only case (\(coreCases.joined(separator: ", "))).", valueName: "case"))
    var coreOnlyCase: String?

    @Option(help: ArgumentHelp("The variant named by --core-only's records by variant.", valueName: "name"))
    var variant = "concise"

    @Option(help: ArgumentHelp("Connections of the concurrent one-in-flight and the pipelined runs.", valueName: "n"))
    var connections = 8

    @Option(help: ArgumentHelp("Requests of the pipelined run, over all connections.", valueName: "n"))
    var requests = 400_000

    @Option(help: ArgumentHelp("Requests in flight per connection in the pipelined run.", valueName: "d"))
    var depth = 64

    @Option(
        help: ArgumentHelp(
            "Round trips of each one-in-flight run (on 1 connection, and over all connections).",
            valueName: "n"))
    var latencyRequests = 50_000

    @Option(help: ArgumentHelp("The experiment the assign requests name.", valueName: "name"))
    var experiment = "checkout-prompt"

    @Option(
        help: ArgumentHelp(
            "The start of the unit ids; requests cycle through <prefix>000000 to <prefix>099999.",
            valueName: "prefix"))
    var unitPrefix = "user-"

    @Flag(help: "Print the results as one JSON object instead of a table.")
    var json = false

    @Flag(
        help: """
            Measure the metrics endpoint instead: 20 more experiments of 3 variants with records of 10 metrics; \
            the body rendered in process; /metrics scraped back to back (--metrics-scrapes in all) in \
            --metrics-rounds rounds interleaved with a C server sending a body of the same size (the transfer \
            floor); then assign round trips (--latency-requests per round) unscraped and scraped every second, in \
            --metrics-rounds interleaved rounds of each.
            """)
    var metrics = false

    @Option(
        help: ArgumentHelp(
            "The started variantd's --metrics-unit-groups in --metrics (all, guardrail, none).", valueName: "which"))
    var metricsUnitGroups = "all"

    @Option(help: ArgumentHelp("Records per variant sent before --metrics measures.", valueName: "n"))
    var metricsRecords = 200

    @Option(help: ArgumentHelp("Scrapes of /metrics (and of the transfer floor) in --metrics.", valueName: "n"))
    var metricsScrapes = 500

    @Option(help: ArgumentHelp("Rounds of each kind (unscraped, scraped) in --metrics.", valueName: "n"))
    var metricsRounds = 5

    /// Set when the benchmark starts itself as the NIO reference server (NIOReferenceServer) on this socket.
    @Option(help: .hidden)
    var nioReferenceServer: String?

    /// Round trips before the measured ones, to warm up variantd and the client.
    static let warmUpRequests = 5000
    /// The deepest pipeline udsfloor can drive.
    private static let maximumDepth = 800

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1.") }
        if let coreOnlyCase, !Self.coreCases.contains(coreOnlyCase) {
            throw ValidationError("--core-only-case must be one of \(Self.coreCases.joined(separator: ", ")).")
        }
        guard ExperimentExposition.Detail.UnitGroups(rawValue: metricsUnitGroups) != nil else {
            throw ValidationError("--metrics-unit-groups must be all, guardrail or none.")
        }
        // udsfloor writes each burst from a 64 KiB buffer, which holds 862 of its requests.
        guard depth >= 1, depth <= Self.maximumDepth else {
            throw ValidationError("--depth must be between 1 and \(Self.maximumDepth).")
        }
        guard requests >= connections else { throw ValidationError("--requests must be at least --connections.") }
        guard latencyRequests >= connections else {
            throw ValidationError("--latency-requests must be at least --connections.")
        }
        for (name, value) in [("--experiment", experiment), ("--unit-prefix", unitPrefix)] {
            guard !value.unicodeScalars.contains(where: { $0 == "\"" || $0 == "\\" || $0.value < 0x20 }) else {
                throw ValidationError("\(name) must not contain quotes, backslashes or control characters.")
            }
        }
    }

    func run() throws {
        if let nioReferenceServer { try NIOReferenceServer.serve(at: nioReferenceServer) }
        // A daemon that goes away must fail a write, not kill the benchmark before it stops the daemon.
        signal(SIGPIPE, SIG_IGN)
        ChildProcesses.terminateOnInterrupt()
        let workDirectory = try makeWorkDirectory()
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        if coreOnly { return try measureCoreOnly(in: workDirectory) }
        if metrics { return try measureMetrics(in: workDirectory) }

        let socketPath = socket ?? workDirectory + "/variantd.sock"
        var daemonProcess: DaemonProcess?
        defer { daemonProcess?.stop() }
        // The started daemon serves the configuration with the render case added (RenderBench).
        let benchConfig = workDirectory + "/config.json"
        if socket == nil {
            try RenderBench.writeConfig(from: config, to: benchConfig)
            progress("starting \(daemon) --config \(config) (with the render case added)")
            let started = try DaemonProcess(
                executable: daemon, config: benchConfig, socketPath: socketPath,
                logPath: workDirectory + "/variantd.log")
            daemonProcess = started
            try started.waitUntilAccepting(socketPath: socketPath)
        }

        do {
            let load = LoadGenerator(
                socketPath: socketPath,
                corpus: RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: depth))
            try load.verify()
            let (floor, floorSkipped) = try measureFloor(in: workDirectory)
            let figures = try measureVariantd(with: load)
            let nioReference = try measureNIOReference(in: workDirectory)
            var render: RenderFigures?
            var renderCore: CoreCost?
            if socket == nil {
                progress("measuring render against assign (\(RenderBench.experiment), \(latencyRequests) round trips each)")
                render = try RenderBench.measure(
                    socketPath: socketPath, connections: connections, requests: latencyRequests, unitPrefix: unitPrefix)
            }
            progress("measuring the core alone (Responder, in process)")
            let core = try CoreCost.measure(
                configPath: config, experiment: experiment, unitPrefix: unitPrefix, requests: 200_000)
            if socket == nil {
                renderCore = try RenderBench.coreCost(configPath: benchConfig, unitPrefix: unitPrefix, requests: 200_000)
            }
            let report = BenchReport(
                settings: BenchReport.Settings(
                    connections: connections, requests: requests, depth: depth, latencyRequests: latencyRequests,
                    experiment: experiment, unitPrefix: unitPrefix,
                    variantd: socket.map { "running at \($0)" } ?? "started \(daemon) --config \(config)"),
                floor: floor, floorSkipped: floorSkipped, variantd: figures, nioReference: nioReference, core: core,
                render: render, renderCore: renderCore)
            print(try json ? report.json() : report.table())
        } catch {
            if let exit = daemonProcess?.unexpectedExit() {
                throw BenchError("\(error)\n\(exit)")
            }
            throw error
        }
    }

    /// The requests `--core-only` measures, by name (`--core-only-case`).
    static let coreCases = ["assign", "render", "record-by-unit", "record-by-variant-and-unit", "record-by-variant"]

    /// `--core-only`: the core's cost per `assign`, `render` and `record` (records judged by the guardrails after
    /// each), in process (no daemon, no floor): quick and steady enough to compare two builds of the core, and
    /// what `valgrind --tool=callgrind` should run, one `--core-only-case` at a time.
    private func measureCoreOnly(in workDirectory: String) throws {
        let benchConfig = workDirectory + "/config.json"
        try RenderBench.writeConfig(from: config, to: benchConfig)
        let metrics = #","metrics":{"latency_ms":120.5,"error":false}"#
        var figures: [String] = []
        for name in Self.coreCases where coreOnlyCase == nil || coreOnlyCase == name {
            let cost: CoreCost
            switch name {
            case "assign":
                cost = try CoreCost.measure(
                    configPath: config, experiment: experiment, unitPrefix: unitPrefix, requests: latencyRequests)
            case "render":
                cost = try RenderBench.coreCost(
                    configPath: benchConfig, unitPrefix: unitPrefix, requests: latencyRequests)
            default:
                let variantMember = name == "record-by-unit" ? "" : #","variant":"\#(variant)""#
                cost = try CoreCost.measure(
                    configPath: config, experiment: experiment, unitPrefix: unitPrefix, requests: latencyRequests,
                    op: "record", extraMembers: variantMember + metrics, withUnit: name != "record-by-variant")
            }
            figures.append("\(name) \(Int(cost.nanosecondsPerRequest)) ns")
        }
        print("core alone, \(latencyRequests) requests each: " + figures.joined(separator: ", ") + " per request")
    }

    /// Compiles and runs udsfloor.c, or returns why the floor is skipped.
    private func measureFloor(in workDirectory: String) throws -> (FloorFigures?, skipped: String?) {
        guard FileManager.default.fileExists(atPath: floorSource) else {
            let reason = "no floor source at \(floorSource)"
            progress("skipping the floor: \(reason)")
            return (nil, reason)
        }
        progress("compiling \(floorSource)")
        let program = try FloorProgram.compile(source: floorSource, into: workDirectory)
        progress("measuring the floor")
        let figures = try program.measure(
            socketPath: workDirectory + "/floor.sock", connections: connections, requests: requests, depth: depth,
            latencyRequests: latencyRequests)
        return (figures, nil)
    }

    /// Runs the warm-up and the three measured phases against variantd.
    private func measureVariantd(with load: LoadGenerator) throws -> DaemonFigures {
        progress("warming up variantd (\(Self.warmUpRequests) round trips)")
        _ = try load.oneInFlight(connections: 1, requestsPerConnection: Self.warmUpRequests)
        progress("measuring variantd: one in flight, 1 connection")
        let single = try load.oneInFlight(connections: 1, requestsPerConnection: latencyRequests)
        progress("measuring variantd: one in flight, \(connections) connections")
        let concurrent = try load.oneInFlight(
            connections: connections, requestsPerConnection: latencyRequests / connections)
        progress("measuring variantd: pipelined, \(connections) connections, depth \(depth)")
        let pipelined = try load.pipelined(connections: connections, totalRequests: requests, depth: depth)
        return DaemonFigures(
            oneInFlight: LatencyFigures(single), concurrentOneInFlight: LatencyFigures(concurrent),
            pipelinedRequestsPerSecond: pipelined.requestsPerSecond)
    }

    /// Starts this executable as the NIO reference server and measures it as variantd's one-in-flight phase on 1
    /// connection is measured: warm-up, then `latencyRequests` round trips.
    private func measureNIOReference(in workDirectory: String) throws -> LatencyFigures {
        let socketPath = workDirectory + "/nio-reference.sock"
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        progress("starting the NIO reference server")
        let server = try DaemonProcess(
            name: "the NIO reference server", executable: executable, arguments: ["--nio-reference-server", socketPath],
            logPath: workDirectory + "/nio-reference.log", role: .helper)
        defer { server.stop() }
        try server.waitUntilAccepting(socketPath: socketPath)
        let load = LoadGenerator(
            socketPath: socketPath, corpus: RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: 1))
        try load.verify()
        _ = try load.oneInFlight(connections: 1, requestsPerConnection: Self.warmUpRequests)
        progress("measuring the NIO reference server: one in flight, 1 connection")
        return LatencyFigures(try load.oneInFlight(connections: 1, requestsPerConnection: latencyRequests))
    }

    /// Creates a fresh directory under `$TMPDIR` (or /tmp) for the floor's executable, the sockets and the log.
    private func makeWorkDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array((base + "/variantd-bench.XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw BenchError.system("mkdtemp", base) }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Reports progress on standard error, keeping standard output for the results.
    func progress(_ message: String) {
        FileHandle.standardError.write(Data("variantd-bench: \(message)\n".utf8))
    }
}
