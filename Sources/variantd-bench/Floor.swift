import Foundation

/// The physical floor on this machine, as measured by udsfloor.c (a C epoll server answering each line with a
/// fixed ~150-byte line, and a C client).
struct FloorFigures: Encodable {
    /// One connection, one request in flight.
    var oneInFlight: LatencyFigures
    /// `connections` connections, each with one request in flight (udsfloor run with depth 1).
    var concurrentOneInFlightRequestsPerSecond: Double
    /// `connections` connections, pipelined with depth `depth`.
    var pipelinedRequestsPerSecond: Double
}

/// The udsfloor program, compiled from its C source.
struct FloorProgram {
    let executablePath: String

    /// Compiles `source` with `gcc -O2 -pthread` into `directory`.
    static func compile(source: String, into directory: String) throws -> FloorProgram {
        let executablePath = directory + "/udsfloor"
        let result = try runToCompletion("gcc", ["-O2", "-pthread", "-o", executablePath, source])
        guard result.status == 0 else {
            throw BenchError("compiling \(source) failed (gcc exit status \(result.status)):\n\(result.output)")
        }
        return FloorProgram(executablePath: executablePath)
    }

    /// Measures the floor with the benchmark's connection count, pipelined request total and depth, plus a
    /// second run with depth 1 and `latencyRequests` requests for the concurrent one-in-flight rate.
    func measure(socketPath: String, connections: Int, requests: Int, depth: Int, latencyRequests: Int) throws
        -> FloorFigures
    {
        let pipelinedRun = try run(socketPath: socketPath, connections: connections, requests: requests, depth: depth)
        let concurrentRun = try run(
            socketPath: socketPath, connections: connections, requests: latencyRequests, depth: 1)
        return FloorFigures(
            oneInFlight: pipelinedRun.oneInFlight,
            concurrentOneInFlightRequestsPerSecond: concurrentRun.throughput,
            pipelinedRequestsPerSecond: pipelinedRun.throughput)
    }

    /// Runs udsfloor once and parses its two result lines.
    private func run(socketPath: String, connections: Int, requests: Int, depth: Int) throws
        -> (oneInFlight: LatencyFigures, throughput: Double)
    {
        let arguments = [socketPath, String(connections), String(requests), String(depth)]
        let result = try runToCompletion(executablePath, arguments)
        guard result.status == 0 else {
            throw BenchError("udsfloor failed (exit status \(result.status)):\n\(result.output)")
        }
        return try Self.parse(result.output)
    }

    /// Parses udsfloor's output:
    ///
    ///     floor round-trip (1 conn, 1 in flight): p50 12.3 us  p99 20.1 us  p99.9 45.0 us  (75000 req/s)
    ///     floor throughput (8 conns, depth 64): 900000 req/s
    static func parse(_ output: String) throws -> (oneInFlight: LatencyFigures, throughput: Double) {
        let lines = output.split(separator: "\n")
        guard
            let roundTrip = lines.first(where: { $0.hasPrefix("floor round-trip") }),
            let throughputLine = lines.first(where: { $0.hasPrefix("floor throughput") }),
            let p50 = number(after: ": p50 ", in: roundTrip),
            let p99 = number(after: " p99 ", in: roundTrip),
            let p999 = number(after: " p99.9 ", in: roundTrip),
            let rate = number(after: " us  (", in: roundTrip),
            let throughput = number(after: "): ", in: throughputLine)
        else {
            throw BenchError("cannot parse udsfloor's output:\n\(output)")
        }
        return (LatencyFigures(p50Micros: p50, p99Micros: p99, p999Micros: p999, requestsPerSecond: rate), throughput)
    }

    /// The decimal number that follows the first occurrence of `marker` in `line`.
    private static func number(after marker: String, in line: Substring) -> Double? {
        guard let range = line.range(of: marker) else { return nil }
        let digits = line[range.upperBound...].prefix(while: { $0.isNumber || $0 == "." })
        return Double(digits)
    }
}

/// Runs `executable` (looked up on `PATH` if it has no slash) to completion and returns its exit status and its
/// standard output and standard error, interleaved.
func runToCompletion(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    if executable.contains("/") {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    ChildProcesses.record(process.processIdentifier, as: .helper)
    defer { ChildProcesses.record(0, as: .helper) }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
