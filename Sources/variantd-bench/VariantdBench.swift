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

/// Measures variantd over its Unix socket and, in the same run and with the same client, the floor of the machine
/// (udsfloor.c's server) and the NIO reference server, and prints their figures as ratios to the floor.
@main
struct VariantdBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd-bench",
        abstract: "Measure variantd against the Unix-socket floor of this machine.",
        discussion: """
            Absolute times on shared machines vary from run to run, so every run also measures the floor: \
            udsfloor.c's C epoll server, answering each line with a fixed line and parsing nothing, and the NIO \
            reference server (this executable, serving variantd's connection pipeline with the same fixed \
            answer), which shows how much of the distance to the floor any SwiftNIO server has. The floor, the \
            reference and variantd each run in a process of their own and are measured by the same client (raw \
            sockets, one thread per connection, every answer checked: its id, "ok":true, a variant), after the \
            same warm-up, in --rounds rounds: within a round, each measurement runs on each server in turn \
            (floor, reference, variantd). The report gives each figure as the median over the rounds with the \
            lowest and highest round, and ratios to the floor taken round by round.

            Measurements: one request in flight on 1 connection and on --connections connections \
            (--latency-requests round trips per round), pipelined requests on --connections connections with \
            --depth requests in flight each (--requests per round). Then, on the started variantd: the Swift \
            shim against a raw Swift round trip in the same rounds, in pairs on one connection (--shim-calls), \
            render against assign (in pairs too), the core alone in process, and the Python shim against a raw \
            Python round trip (clients/python/bench/roundtrip.py, --python-shim-bench). Progress goes to standard \
            error.
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

    @Option(
        help: ArgumentHelp(
            """
            Run the benchmark and every server and client it starts on this one CPU (taskset). Left to the \
            scheduler (the default), a server's thread runs on the client's core or on another, and a one-in-flight \
            round trip takes about twice as long on another; on one CPU the ratios show CPU cost alone.
            """,
            valueName: "n"))
    var cpu: Int?

    @Flag(
        help: """
            Measure only the Swift shim against a raw Swift round trip (--shim-calls, --rounds), on a variantd started \
            here or on --socket's, whose --config must then have the render case (--write-render-config writes one).
            """)
    var shimOnly = false

    @Option(help: ArgumentHelp("Write --config with the render case added to this path, and exit.", valueName: "path"))
    var writeRenderConfig: String?

    @Flag(help: "Measure only the core's cost per assign, render and record (--latency-requests each), in process.")
    var coreOnly = false

    @Option(help: ArgumentHelp("Only this --core-only case (\(coreCases.joined(separator: ", "))).", valueName: "case"))
    var coreOnlyCase: String?

    @Option(help: ArgumentHelp("The variant named by --core-only's records by variant.", valueName: "name"))
    var variant = "concise"

    @Option(help: ArgumentHelp("Connections of the concurrent one-in-flight and the pipelined runs.", valueName: "n"))
    var connections = 8

    @Option(help: ArgumentHelp("Rounds of every measurement, interleaved.", valueName: "n"))
    var rounds = 5

    @Option(help: ArgumentHelp("Requests of each pipelined run (per round), over all connections.", valueName: "n"))
    var requests = 200_000

    @Option(help: ArgumentHelp("Requests in flight per connection in the pipelined run.", valueName: "d"))
    var depth = 64

    @Option(
        help: ArgumentHelp(
            "Round trips of each one-in-flight run (per round; on 1 connection, and over all connections).",
            valueName: "n"))
    var latencyRequests = 20_000

    @Option(
        help: ArgumentHelp(
            "Pairs of calls (a raw round trip and a shim call on the shim's connection) of each Swift shim measurement per round (0 skips the shim).",
            valueName: "n"))
    var shimCalls = 5000

    @Option(
        help: ArgumentHelp(
            "Microseconds of sleep before each call of the shims' measurements (Swift and Python), raw and shim alike, as a service's calls are spaced (0: back to back, the target's measure).",
            valueName: "us"))
    var shimGapUs: UInt32 = 0

    @Option(
        help: ArgumentHelp(
            "The Python shim's benchmark, run with python3 against --daemon; skipped if missing or empty.",
            valueName: "path"))
    var pythonShimBench = "clients/python/bench/roundtrip.py"

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

    /// Round trips (and as many pipelined requests) before the measured ones, to warm up each server and the client.
    static let warmUpRequests = 5000
    /// The deepest pipeline measured: its requests must fit one read of the floor server (64 KiB, 862 requests).
    private static let maximumDepth = 800

    func validate() throws {
        guard connections >= 1 else { throw ValidationError("--connections must be at least 1.") }
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1.") }
        if let cpu, cpu < 0 { throw ValidationError("--cpu must be a CPU number, 0 or more.") }
        guard shimCalls >= 0, shimCalls <= RequestCorpus.unitCount else {
            throw ValidationError("--shim-calls must be between 0 and \(RequestCorpus.unitCount).")
        }
        if let coreOnlyCase, !Self.coreCases.contains(coreOnlyCase) {
            throw ValidationError("--core-only-case must be one of \(Self.coreCases.joined(separator: ", ")).")
        }
        guard ExperimentExposition.Detail.UnitGroups(rawValue: metricsUnitGroups) != nil else {
            throw ValidationError("--metrics-unit-groups must be all, guardrail or none.")
        }
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
        if let cpu { try Self.runOnlyOn(cpu: cpu) }
        let workDirectory = try makeWorkDirectory()
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        if let writeRenderConfig { return try RenderBench.writeConfig(from: config, to: writeRenderConfig) }
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
            if shimOnly { return try measureShimOnly(socketPath: socketPath, benchConfig: socket == nil ? benchConfig : config) }
            let report = try measure(socketPath: socketPath, benchConfig: benchConfig, in: workDirectory)
            print(try json ? report.json() : report.table())
        } catch {
            if let exit = daemonProcess?.unexpectedExit() {
                throw BenchError("\(error)\n\(exit)")
            }
            throw error
        }
    }

    /// Starts the floor and the reference, warms up every server, runs the rounds, then the variantd-only
    /// measurements.
    private func measure(socketPath: String, benchConfig: String, in workDirectory: String) throws -> BenchReport {
        var servers: [(name: String, load: LoadGenerator)] = []
        var helpers: [DaemonProcess] = []
        defer { for helper in helpers { helper.stop() } }
        func corpus(_ maxBurst: Int) -> RequestCorpus {
            RequestCorpus(experiment: experiment, unitPrefix: unitPrefix, maxBurst: maxBurst)
        }
        let fixedAnswers = corpus(depth)
        var floorSkipped: String?
        if FileManager.default.fileExists(atPath: floorSource) {
            progress("compiling the floor server from \(floorSource)")
            let executable = try FloorServer.compile(source: floorSource, into: workDirectory)
            let floorSocket = workDirectory + "/floor.sock"
            let floor = try DaemonProcess(
                name: "the floor server", executable: executable, arguments: [floorSocket],
                logPath: workDirectory + "/floor.log", role: .floor)
            helpers.append(floor)
            try floor.waitUntilAccepting(socketPath: floorSocket)
            servers.append((BenchReport.floorName, LoadGenerator(socketPath: floorSocket, corpus: fixedAnswers, check: .fixedAnswer)))
        } else {
            floorSkipped = "no floor source at \(floorSource)"
            progress("skipping the floor: \(floorSkipped!)")
        }
        progress("starting the NIO reference server")
        let referenceSocket = workDirectory + "/nio-reference.sock"
        let reference = try DaemonProcess(
            name: "the NIO reference server",
            executable: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            arguments: ["--nio-reference-server", referenceSocket], logPath: workDirectory + "/nio-reference.log",
            role: .reference)
        helpers.append(reference)
        try reference.waitUntilAccepting(socketPath: referenceSocket)
        servers.append(
            (BenchReport.referenceName, LoadGenerator(socketPath: referenceSocket, corpus: fixedAnswers, check: .fixedAnswer)))
        servers.append((BenchReport.variantdName, LoadGenerator(socketPath: socketPath, corpus: corpus(depth))))

        for server in servers {
            progress("checking and warming up \(server.name) (\(Self.warmUpRequests) round trips, as many pipelined)")
            try server.load.verify()
            _ = try server.load.oneInFlight(connections: 1, requestsPerConnection: Self.warmUpRequests)
            _ = try server.load.pipelined(
                connections: connections, totalRequests: max(Self.warmUpRequests, connections), depth: depth)
        }
        // The shims need the render case, which only a daemon started here has.
        let swiftShim =
            socket == nil && shimCalls > 0
            ? try SwiftShimBench(
                socketPath: socketPath, configPath: benchConfig, experiment: experiment, unitPrefix: unitPrefix,
                calls: shimCalls, gapMicroseconds: shimGapUs)
            : nil
        if let swiftShim {
            progress("warming up the Swift shim")
            var warmUp: [String: ShimFigures.PairRounds] = [:]
            try swiftShim.round(0, into: &warmUp)
        }

        var measured = servers.map { (name: $0.name, rounds: ServerRounds()) }
        var shimRounds: [String: ShimFigures.PairRounds] = [:]
        for round in 0..<rounds {
            progress("round \(round + 1) of \(rounds): one in flight on 1 and \(connections) connections, pipelined")
            for (index, server) in servers.enumerated() {
                measured[index].rounds.single.append(
                    LatencyFigures(try server.load.oneInFlight(connections: 1, requestsPerConnection: latencyRequests)))
            }
            for (index, server) in servers.enumerated() {
                measured[index].rounds.concurrent.append(
                    LatencyFigures(
                        try server.load.oneInFlight(
                            connections: connections, requestsPerConnection: latencyRequests / connections)))
            }
            for (index, server) in servers.enumerated() {
                measured[index].rounds.pipelined.append(
                    try server.load.pipelined(connections: connections, totalRequests: requests, depth: depth)
                        .requestsPerSecond)
            }
            if let swiftShim {
                progress("round \(round + 1) of \(rounds): the Swift shim against a raw round trip")
                try swiftShim.round(round, into: &shimRounds)
            }
        }
        for helper in helpers { helper.stop() }
        helpers.removeAll()

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
        var pythonShim: ShimFigures?
        var pythonShimSkipped: String?
        if pythonShimBench.isEmpty || !FileManager.default.fileExists(atPath: pythonShimBench) {
            pythonShimSkipped = pythonShimBench.isEmpty ? "--python-shim-bench is empty" : "no \(pythonShimBench)"
        } else {
            progress("measuring the Python shim (\(pythonShimBench), a daemon of its own)")
            do {
                pythonShim = try PythonShimBench.measure(
                    python: "python3", script: pythonShimBench, daemon: daemon, rounds: rounds, gapMicroseconds: shimGapUs)
            } catch {
                pythonShimSkipped = "\(error)"
            }
        }

        return BenchReport(
            settings: BenchReport.Settings(
                rounds: rounds, connections: connections, requests: requests, depth: depth,
                latencyRequests: latencyRequests, warmUpRequests: Self.warmUpRequests, experiment: experiment,
                unitPrefix: unitPrefix,
                variantd: socket.map { "running at \($0)" } ?? "started \(daemon) --config \(config)",
                placement: cpu.map { "everything on CPU \($0)" } ?? "left to the scheduler"),
            floorSkipped: floorSkipped, servers: measured, core: core, render: render, renderCore: renderCore,
            swiftShim: swiftShim.map { _ in SwiftShimBench.figures(method: Self.swiftShimMethod(rounds, shimCalls, shimGapUs), shimRounds) },
            pythonShim: pythonShim, pythonShimSkipped: pythonShimSkipped)
    }

    /// `--shim-only`: the Swift shim against a raw round trip and nothing else; with `--socket`, what
    /// `valgrind --tool=callgrind` should run to count the shim's instructions per call (a daemon this benchmark
    /// starts cannot be started under valgrind).
    private func measureShimOnly(socketPath: String, benchConfig: String) throws {
        let shim = try SwiftShimBench(
            socketPath: socketPath, configPath: benchConfig, experiment: experiment, unitPrefix: unitPrefix,
            calls: max(shimCalls, 1), gapMicroseconds: shimGapUs)
        progress("warming up the Swift shim")
        var warmUp: [String: ShimFigures.PairRounds] = [:]
        try shim.round(0, into: &warmUp)
        var rounds: [String: ShimFigures.PairRounds] = [:]
        for round in 0..<self.rounds {
            progress("round \(round + 1) of \(self.rounds): the Swift shim against a raw round trip")
            try shim.round(round, into: &rounds)
        }
        let figures = SwiftShimBench.figures(method: Self.swiftShimMethod(self.rounds, max(shimCalls, 1), shimGapUs), rounds)
        if json {
            print(String(decoding: try JSONEncoder().encode(figures), as: UTF8.self))
            return
        }
        print("Swift shim against a raw Swift round trip: \(figures.method)")
        for pair in figures.pairs {
            func text(_ value: Spread, _ decimals: Int) -> String {
                let format = "%.\(decimals)f (%.\(decimals)f - %.\(decimals)f)"
                return String(format: format, value.median, value.low, value.high)
            }
            print(
                "\(pair.name): raw \(text(pair.raw, 1)) us, shim \(text(pair.shim, 1)) us, added \(text(pair.added, 1)) us, ratio \(text(pair.ratio, 3))"
            )
        }
    }

    /// Binds every thread of this process, and so every thread and process it starts later, to `cpu`, with
    /// util-linux's `taskset` (Swift's Glibc module does not import `sched_setaffinity`).
    static func runOnlyOn(cpu: Int) throws {
        let result = try runToCompletion("taskset", ["--all-tasks", "--pid", "--cpu-list", String(cpu), String(getpid())])
        guard result.status == 0 else {
            throw BenchError("cannot run on CPU \(cpu) (taskset exit status \(result.status)): \(result.output)")
        }
    }

    /// How the Swift shim was measured, in a line.
    static func swiftShimMethod(_ rounds: Int, _ calls: Int, _ gapMicroseconds: UInt32) -> String {
        "\(rounds) rounds of \(calls) pairs of calls (raw round trip and shim call, alternating which goes first) on the shim's connection, pairs in rotating order, "
            + (gapMicroseconds > 0 ? "a sleep of \(gapMicroseconds) us before each call" : "back to back")
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
