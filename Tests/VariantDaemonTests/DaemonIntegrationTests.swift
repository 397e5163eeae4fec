import Foundation
import Glibc
import Synchronization
import Testing
import VariantClient
import VariantCore
import VariantDaemon

/// The real `variantd` binary on a temporary socket, spoken to over the socket.
@Suite(.serialized) struct DaemonIntegrationTests {
    @Test func answersAssignmentsAsTheCoreDecidesThem() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let document = try ConfigDocument.validate(Array(exampleConfig.utf8))
        let experiment = try #require(document.experiment(named: "checkout-prompt"))
        let connection = try daemon.connect()
        for index in 0..<200 {
            let unit = "user-\(index)"
            let answer = try #require(parseObject(try connection.request(
                #"{"id":\#(index),"op":"assign","experiment":"checkout-prompt","unit":"\#(unit)"}"#)))
            let expected = experiment.variants[experiment.assign(unit: unit, attributes: JSONObject(), now: SystemClock.now()).variantIndex]
            #expect(answer["id"] == .number(Double(index)))
            #expect(answer["variant"] == .string(expected.name))
            #expect(answer["prompt_version"] == .number(Double(expected.promptVersion)))
            #expect(answer["config_version"] == .string(LoadedConfig.version(of: Array(exampleConfig.utf8))))
        }
        #expect(daemon.stop() == 0)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = try RawSocket(path: daemon.socketPath)
        let count = 5000
        var batch = ""
        for index in 0..<count {
            batch += #"{"id":\#(index),"op":"assign","experiment":"support-reply","unit":"t-\#(index)","attributes":{"language":"en","plan":"pro"}}"# + "\n"
        }
        // Write from another thread while reading, as a pipelining client must: the daemon stops reading while
        // its answers are not being read (back-pressure), so writing everything first would deadlock.
        let requests = batch
        let writer = Thread { try? socket.write(requests) }
        writer.start()
        let lines = socket.readLines(count)
        #expect(lines.count == count)
        for (index, line) in lines.enumerated() {
            let answer = try #require(parseObject(line))
            #expect(answer["id"] == .number(Double(index)))
            #expect(answer["ok"] == .bool(true))
        }
    }

    @Test func aClientThatStopsReadingIsNotReadFromUntilItReadsAgainAndLosesNoAnswer() throws {
        // Back-pressure: once a client's answers pile up unread, the daemon stops reading its requests, so the
        // socket's buffers fill and the client's writes would block, instead of the daemon queueing answers
        // without bound. When the client reads again, every request it wrote is answered, in order.
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = try RawSocket(path: daemon.socketPath)
        let line = Array(#"{"id":1,"op":"assign","experiment":"checkout-prompt","unit":"u"}"#.utf8) + [UInt8(ascii: "\n")]
        let chunk = Array([[UInt8]](repeating: line, count: 1000).joined())
        let flags = fcntl(socket.descriptor, F_GETFL)
        #expect(fcntl(socket.descriptor, F_SETFL, flags | O_NONBLOCK) == 0)
        // Without back-pressure the daemon drains whatever is written, so the writes would never stall for good.
        let limit = 32 << 20
        var written = 0
        var offsetInChunk = 0
        var stalled = false
        /// Sends what fits of the rest of the chunk without blocking; whether anything was sent (if not, `errno`
        /// says why).
        func sendWhatFits() -> Bool {
            let result = chunk[offsetInChunk...].withUnsafeBytes {
                Glibc.send(socket.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard result > 0 else { return false }
            written += result
            offsetInChunk = (offsetInChunk + result) % chunk.count
            return true
        }
        while written < limit {
            if sendWhatFits() { continue }
            #expect(errno == EAGAIN || errno == EWOULDBLOCK, "send: \(String(cString: strerror(errno)))")
            // Full now; still full after half a second means the daemon is not reading.
            Thread.sleep(forTimeInterval: 0.5)
            if sendWhatFits() { continue }
            stalled = true
            break
        }
        #expect(stalled, "wrote \(written) bytes without the daemon ever stopping to read")
        #expect(written < 4 << 20, "the daemon took \(written) bytes of requests before it stopped reading")
        // Another client is served meanwhile.
        #expect(try daemon.ask(#"{"id":2,"op":"health"}"#)["ok"] == .bool(true))
        // Finish the line cut off by the last write, then read every answer.
        #expect(fcntl(socket.descriptor, F_SETFL, flags) == 0)
        let cut = written % line.count
        let rest = cut == 0 ? [] : Array(line[cut...])
        let expected = (written + rest.count) / line.count
        let writer = socket
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? writer.write(rest)
            finished.signal()
        }
        let answers = socket.readLines(expected)
        finished.wait()
        #expect(answers.count == expected)
        #expect(answers.allSatisfy { parseObject($0)?["ok"] == .bool(true) })
        #expect(daemon.stop() == 0)
    }

    @Test func servesManyConcurrentClients() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let clients = 32
        let requestsEach = 100
        let failures = Mutex(0)
        let socketPath = daemon.socketPath
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            do {
                let connection = try VariantConnection(socketPath: socketPath)
                for index in 0..<requestsEach {
                    let line = try connection.request(
                        #"{"id":"\#(client)-\#(index)","op":"assign","experiment":"checkout-prompt","unit":"c\#(client)-\#(index)"}"#)
                    if parseObject(line)?["id"] != .string("\(client)-\(index)") { failures.withLock { $0 += 1 } }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test func badLinesGetErrorsAndTheConnectionSurvives() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = try RawSocket(path: daemon.socketPath)
        try socket.write("not json\n{\"id\":1,\"op\":\"frobnicate\"}\n[]\r\n\u{0}\u{ff}\n{\"id\":2,\"op\":\"health\"}\r\n")
        let lines = socket.readLines(5).map { parseObject($0) }
        #expect(lines.count == 5)
        #expect(lines[0]?["error"]?.objectValue?["code"] == .string("invalid_json"))
        #expect(lines[1]?["error"]?.objectValue?["code"] == .string("unknown_op"))
        #expect(lines[2]?["error"]?.objectValue?["code"] == .string("invalid_request"))
        #expect(lines[3]?["error"]?.objectValue?["code"] == .string("invalid_json"))
        #expect(lines[4]?["status"] == .string("serving"))
        #expect(lines[4]?["id"] == .number(2))
    }

    @Test func anOversizedLineIsAnsweredAndClosedWhileOthersAreServed() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--max-line-bytes", "4096"])
        let bystander = try daemon.connect()
        let socket = try RawSocket(path: daemon.socketPath)
        try socket.write(#"{"id":1,"op":"health"}"# + "\n" + String(repeating: "x", count: 10_000))
        let lines = socket.readLines(3)
        #expect(lines.count == 2)
        #expect(parseObject(lines[0])?["ok"] == .bool(true))
        #expect(parseObject(lines[1])?["error"]?.objectValue?["code"] == .string("line_too_long"))
        #expect(socket.peerClosed())
        #expect(parseObject(try bystander.request(#"{"op":"health"}"#))?["ok"] == .bool(true))
        #expect(daemon.stop() == 0)
    }

    @Test func anOversizedLineBehindAnswersTheClientHasNotReadLosesNoneOfThem() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--max-line-bytes", "4096"])
        let socket = try RawSocket(path: daemon.socketPath)
        let count = 3000
        let requests = (0..<count).map {
            #"{"id":\#($0),"op":"assign","experiment":"checkout-prompt","unit":"u\#($0)"}"# + "\n"
        }.joined()
        // Written from another thread while this one waits before reading: about 1 MB of answers backs up, so the
        // oversized line arrives while answers are still queued for a client that is not reading yet.
        let writer = socket
        let written = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            try? writer.write(requests + String(repeating: "x", count: 10_000))
            written.signal()
        }
        Thread.sleep(forTimeInterval: 0.5)
        let lines = socket.readLines(count + 2)
        #expect(lines.count == count + 1)
        let ids = lines.prefix(count).map { parseObject($0)?["id"] }
        #expect(ids == (0..<count).map { .number(Double($0)) })
        #expect(parseObject(lines.last ?? "")?["error"]?.objectValue?["code"] == .string("line_too_long"))
        #expect(socket.peerClosed())
        written.wait()
        #expect(daemon.stop() == 0)
    }

    @Test func connectionsOverTheLimitAreRefusedWithAnAnswer() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--max-connections", "2"], waitForSocket: false)
        // Not the fixture's probe connection, which could still count against the limit when the test connects;
        // not the socket file either, which exists from bind() on, a moment before listen() (seen failing in CI
        // with "connection refused"). The daemon logs server.listening once it listens.
        #expect(eventually { daemon.logs.contains("server.listening") })
        // The test runs as the daemon's user, an admin peer: it holds the two slots and the admin slot.
        var held = (0..<3).compactMap { _ in try? RawSocket(path: daemon.socketPath) }
        for socket in held {
            try socket.write(#"{"op":"health"}"# + "\n")
            #expect(socket.readLines(1).count == 1)
        }
        let refused = try RawSocket(path: daemon.socketPath)
        let refusal = refused.readLines(1)
        #expect(parseObject(refusal.first ?? "")?["error"]?.objectValue?["code"] == .string("too_many_connections"))
        #expect(refused.peerClosed())
        held.removeLast()
        #expect(
            eventually {
                guard let socket = try? RawSocket(path: daemon.socketPath, timeoutSeconds: 2),
                    (try? socket.write(#"{"op":"health"}"# + "\n")) != nil
                else { return false }
                return parseObject(socket.readLines(1).first ?? "")?["ok"] == .bool(true)
            })
    }

    @Test(arguments: [("0660", 0o660), ("0600", 0o600), ("0666", 0o666)])
    func theSocketFileGetsTheConfiguredMode(flag: String, mode: Int) throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--socket-mode", flag])
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(Int(info.st_mode) & 0o777 == mode)
        #expect(Int(info.st_mode) & Int(S_IFMT) == Int(S_IFSOCK))
    }

    @Test func aChangedFileIsAppliedAndAnInvalidOneIsRejectedKeepingTheLastGood() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let firstVersion = LoadedConfig.version(of: Array(exampleConfig.utf8))
        let allConcise = exampleConfig.replacingOccurrences(
            of: #""name": "control", "control": true, "weight": 50"#, with: #""name": "control", "control": true, "weight": 0"#
        ).replacingOccurrences(of: #""name": "concise",\#n          "weight": 50"#, with: #""name": "concise",\#n          "weight": 100"#)
        #expect(allConcise != exampleConfig)
        let secondVersion = LoadedConfig.version(of: Array(allConcise.utf8))
        try daemon.writeConfig(allConcise)
        #expect(try eventually { try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(secondVersion) })
        #expect(try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"anyone"}"#)["variant"] == .string("concise"))
        #expect(firstVersion != secondVersion)

        try daemon.writeConfig(allConcise.replacingOccurrences(of: #""weight": 100"#, with: #""weight": 90"#))
        #expect(try eventually { try daemon.ask(#"{"op":"config"}"#)["last_error"] != .null })
        let status = try daemon.ask(#"{"op":"config"}"#)
        #expect(status["config_version"] == .string(secondVersion))
        let failure = try #require(status["last_error"]?.objectValue)
        #expect(failure["code"] == .string("invalid_config"))
        let problems = try #require(failure["problems"]?.arrayValue)
        #expect(problems.first?.objectValue?["code"] == .string("weights_sum"))
        #expect(problems.first?.objectValue?["path"] == .string("$.experiments[0].variants"))
        #expect(try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"anyone"}"#)["config_version"] == .string(secondVersion))
        #expect(daemon.logs.contains("config.rejected"))
        #expect(daemon.logs.contains("weights_sum"))

        try daemon.writeConfig("{ this is not json")
        #expect(try eventually {
            try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["problems"]?.arrayValue?.first?.objectValue?["code"] == .string("invalid_json")
        })
        #expect(try daemon.ask(#"{"op":"health"}"#)["config_version"] == .string(secondVersion))
    }

    @Test func sighupReloadsAtOnce() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--poll-interval", "3600"])
        let paused = exampleConfig.replacingOccurrences(of: #""status": "running""#, with: #""status": "paused""#)
        try daemon.writeConfig(paused)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(LoadedConfig.version(of: Array(exampleConfig.utf8))))
        daemon.send(signal: SIGHUP)
        #expect(try eventually {
            try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(LoadedConfig.version(of: Array(paused.utf8)))
        })
        #expect(try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)["reason"] == .string("paused"))
        #expect(daemon.logs.contains("config.reload"))
    }

    @Test func startsWithoutAConfigAndPicksItUpWhenItAppears() throws {
        let daemon = try DaemonFixture(config: nil)
        #expect(try daemon.ask(#"{"op":"health"}"#)["status"] == .string("no_config"))
        let unconfigured = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)
        #expect(unconfigured["reason"] == .string("no_config"))
        #expect(unconfigured["variant"] == .null)
        #expect(try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["code"] == .string("read_failed"))
        try daemon.writeConfig(exampleConfig)
        #expect(try eventually { try daemon.ask(#"{"op":"health"}"#)["status"] == .string("serving") })
        #expect(try daemon.ask(#"{"op":"config"}"#)["last_error"] == .null)
    }

    @Test func sigtermStopsGracefullyWithExitZeroAndRemovesTheSocket() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let connection = try daemon.connect()
        #expect(parseObject(try connection.request(#"{"op":"health"}"#))?["ok"] == .bool(true))
        #expect(daemon.stop(signal: SIGTERM) == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(daemon.logs.contains("server.stopped"))
    }

    @Test func variantctlValidatesFilesAndQueriesTheDaemon() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let good = try runProduct("variantctl", ["validate", daemon.configPath])
        #expect(good.status == 0)
        #expect(good.output.contains("valid"))

        let badPath = daemon.directory.appendingPathComponent("bad.json").path
        try Data(#"{"schema_version":1,"prompts":{},"experiments":[{"name":"x","salt":"s","status":"running","variants":[]}],"extra":1}"#.utf8)
            .write(to: URL(fileURLWithPath: badPath))
        let bad = try runProduct("variantctl", ["validate", badPath])
        #expect(bad.status == 1)
        #expect(bad.output.contains("$.extra: unknown_field"))
        #expect(bad.output.contains("$.experiments[0].variants: too_few_variants"))

        let assign = try runProduct(
            "variantctl", ["assign", "--socket", daemon.socketPath, "--json", "checkout-prompt", "user-1"])
        #expect(assign.status == 0)
        #expect(parseObject(assign.output.trimmingCharacters(in: .newlines))?["experiment"] == .string("checkout-prompt"))

        let missing = try runProduct("variantctl", ["health", "--socket", daemon.directory.appendingPathComponent("nope.sock").path])
        #expect(missing.status == 69)
        #expect(missing.output.contains("no variantd socket at"))
    }
}


/// Runs a built product to completion, returning its exit status and its standard output and error together.
/// `environment` is added to the test's own.
func runProduct(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> (status: Int32, output: String)
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: DaemonFixture.product(name))
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
