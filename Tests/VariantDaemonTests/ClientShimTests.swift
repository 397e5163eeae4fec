import Foundation
import Glibc
import Synchronization
import Testing
import VariantClient
import VariantCore

/// The Swift shim's contract: `assign` and `prompt` never throw, a missing, hung or erring daemon gives the
/// fallback's control, and `record` never blocks.
@Suite struct ClientFallbackTests {
    static let fallback = Fallback(experiments: [
        "checkout-prompt": .init(
            variant: "control", prompt: "checkout", promptVersion: 1, template: "You are a friendly checkout assistant.",
            params: JSONObject([("model", .string("local-default"))]))
    ])

    static func expectFallback(_ answer: VariantClient.Assignment, error: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.reason == "fallback", sourceLocation: sourceLocation)
        #expect(answer.error == error, sourceLocation: sourceLocation)
        #expect(answer.variant == "control", sourceLocation: sourceLocation)
        #expect(answer.prompt == "checkout" && answer.promptVersion == 1, sourceLocation: sourceLocation)
        #expect(answer.template == "You are a friendly checkout assistant.", sourceLocation: sourceLocation)
        #expect(answer.params == JSONObject([("model", .string("local-default"))]), sourceLocation: sourceLocation)
        #expect(!answer.enrolled && answer.configVersion == nil, sourceLocation: sourceLocation)
    }

    @Test func missingSocketGivesTheFallbackAtOnce() throws {
        let directory = try TemporaryDirectory()
        // A timeout far longer than the test: "at once" is "without waiting for it", whatever the machine's load.
        let client = VariantClient(socketPath: directory.path + "/none.sock", timeout: 30, fallback: Self.fallback)
        defer { client.close() }
        let started = monotonicNow()
        Self.expectFallback(client.assign("checkout-prompt", unit: "user-42"), error: "unreachable")
        Self.expectFallback(client.prompt("checkout-prompt", unit: "user-42"), error: "unreachable")
        #expect(monotonicNow() - started < 30)
        #expect(client.counters.fallbacks == 2)
    }

    @Test func anExperimentTheFallbackDoesNotNameGetsABareControl() throws {
        let directory = try TemporaryDirectory()
        let client = VariantClient(socketPath: directory.path + "/none.sock")
        defer { client.close() }
        let answer = client.assign("unknown", unit: "u")
        #expect(answer.variant == "control" && answer.prompt == nil && answer.template == nil && answer.isFallback)
    }

    @Test func hungDaemonGivesTheFallbackWithinTheTimeout() throws {
        let server = try LineServer { _ in nil }
        var configuration = VariantClient.Configuration(socketPath: server.path)
        configuration.timeout = 0.05
        configuration.retryAfter = 0
        let client = VariantClient(configuration: configuration, fallback: Self.fallback)
        defer { client.close() }
        for _ in 0..<3 {
            let started = monotonicNow()
            Self.expectFallback(client.assign("checkout-prompt", unit: "user-42"), error: "timeout")
            // Gives up on its 50 ms timeout rather than waiting for the hung daemon (slack for a loaded machine).
            #expect(monotonicNow() - started < 5)
        }
        #expect(eventually { server.received.count == 3 })
    }

    @Test func afterATimeoutCallsFallBackAtOnceDuringRetryAfter() throws {
        let server = try LineServer { _ in nil }
        var configuration = VariantClient.Configuration(socketPath: server.path)
        configuration.timeout = 0.2
        configuration.retryAfter = 30
        let client = VariantClient(configuration: configuration, fallback: Self.fallback)
        defer { client.close() }
        Self.expectFallback(client.assign("checkout-prompt", unit: "u"), error: "timeout")
        Self.expectFallback(client.assign("checkout-prompt", unit: "u"), error: "unreachable")
        // The daemon was not asked again: one request, the first.
        #expect(server.received.count == 1)
    }

    @Test func errorAnswerGivesTheFallbackWithTheCode() throws {
        let server = try LineServer { line in
            let id = parseObject(line)?["id"].map(render) ?? "null"
            return #"{"id":\#(id),"ok":false,"error":{"code":"internal","message":"boom"}}"#
        }
        let client = VariantClient(socketPath: server.path, timeout: 1, fallback: Self.fallback)
        defer { client.close() }
        Self.expectFallback(client.assign("checkout-prompt", unit: "user-42"), error: "internal")
        Self.expectFallback(client.prompt("checkout-prompt", unit: "user-42"), error: "internal")
    }

    @Test func garbageAnswerGivesTheFallback() throws {
        let server = try LineServer { _ in "<html>not json</html>" }
        let client = VariantClient(socketPath: server.path, timeout: 1, fallback: Self.fallback)
        defer { client.close() }
        Self.expectFallback(client.assign("checkout-prompt", unit: "user-42"), error: "invalid_answer")
    }

    @Test func fallbackFromAConfigDocumentServesEachControlWithItsTemplate() throws {
        let fallback = try Fallback(json: Array(exampleConfig.utf8))
        let directory = try TemporaryDirectory()
        let client = VariantClient(socketPath: directory.path + "/none.sock", fallback: fallback)
        defer { client.close() }
        let answer = client.prompt("support-reply", unit: "ticket-1")
        #expect(answer.variant == "control" && answer.prompt == "support-reply" && answer.promptVersion == 1)
        #expect(answer.template == "Draft a reply to this support ticket:\n{{ticket}}")
        #expect(answer.variables == .init(required: ["ticket"], optional: []))
        #expect(client.template("checkout")?.version == 2)
        #expect(client.template("checkout", version: 7) == nil)
    }

    @Test func aDownDaemonRendersTheFallbacksControlHereWithTheDaemonsCode() throws {
        let fallback = try Fallback(json: Array(exampleConfig.utf8))
        let directory = try TemporaryDirectory()
        let client = VariantClient(socketPath: directory.path + "/none.sock", fallback: fallback)
        defer { client.close() }
        let variables = JSONObject([("store_name", .string("Acme")), ("customer_name", .string("Ada"))])
        let rendered = client.render("checkout-prompt", unit: "user-42", variables: variables)
        #expect(rendered.isRendered && rendered.isFallback && rendered.error == "unreachable")
        #expect(rendered.kind == .text && rendered.promptVersion == 1)
        #expect(rendered.text?.hasPrefix("You are a friendly checkout assistant for Acme. Help Ada finish") == true)

        let chat = client.renderPrompt(
            "ticket-triage",
            variables: JSONObject([("product", .string("Widgets")), ("ticket", .string("Help")), ("language", .string("de"))]))
        #expect(chat.kind == .chat && chat.error == "unreachable")
        #expect(chat.messages?.last == PromptMessage(role: "user", content: "Help"))
        #expect(chat.messages?.first?.content.hasSuffix("The ticket is in de.") == true)
        // The version's prompt rules apply here too: the fallback never serves what the daemon would block.
        let blocked = client.renderPrompt(
            "ticket-triage",
            variables: JSONObject([("product", .string("W")), ("ticket", .string("card 4111 1111 1111 1111"))]))
        #expect(!blocked.isRendered && blocked.error == "rule_blocked")
        let missing = client.render("checkout-prompt", unit: "user-42", variables: JSONObject())
        #expect(!missing.isRendered && missing.error == "missing_variable")

        // A fallback written in code renders its template, whose variables are all optional.
        let coded = VariantClient(socketPath: directory.path + "/none.sock", fallback: Fallback(experiments: [
            "checkout-prompt": .init(prompt: "checkout", promptVersion: 1, template: "Hi {{name}}{{#vip}}, VIP{{/vip}}.")
        ]))
        defer { coded.close() }
        #expect(coded.render("checkout-prompt", unit: "u", variables: JSONObject([("name", .string("Ada")), ("vip", .bool(true))])).text == "Hi Ada, VIP.")
        #expect(coded.render("checkout-prompt", unit: "u").text == "Hi .")
        #expect(!coded.render("other", unit: "u").isRendered)
    }

    @Test func fallbackFileInTheExperimentsShapeAndItsTypos() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/fallback.json"
        try Data(#"{"checkout-prompt":{"prompt":"checkout","prompt_version":1,"template":"You are a friendly checkout assistant.","params":{"model":"local-default"}}}"#.utf8).write(to: URL(fileURLWithPath: path))
        let client = VariantClient(socketPath: directory.path + "/none.sock", fallback: try Fallback(contentsOfFile: path))
        defer { client.close() }
        Self.expectFallback(client.assign("checkout-prompt", unit: "user-42"), error: "unreachable")
        #expect(throws: Fallback.LoadError.self) { try Fallback(json: Array(#"{"checkout-prompt":{"templat":"x"}}"#.utf8)) }
        #expect(throws: Fallback.LoadError.self) { try Fallback(json: Array(#"{"schema_version":1,"prompts":{}}"#.utf8)) }
    }

    @Test func metadataForLangfuseAndOpenTelemetry() throws {
        let answer = Self.fallback.assignment(for: "checkout-prompt")
        #expect(answer.traceMetadata.keys == ["experiment", "variant", "prompt", "prompt_version", "config_version", "reason", "enrolled"])
        #expect(answer.traceMetadata["reason"] == .string("fallback"))
        let attributes = answer.traceAttributes()
        #expect(attributes.map(\.key) == [
            "variantd.experiment", "variantd.variant", "variantd.prompt", "variantd.prompt_version", "variantd.reason",
            "variantd.enrolled",
        ])
        #expect(attributes[3].value == .number(1))
    }

    @Test func recordNeverBlocksAndCountsDropsWhenTheDaemonIsDown() throws {
        let directory = try TemporaryDirectory()
        var configuration = VariantClient.Configuration(socketPath: directory.path + "/none.sock")
        configuration.recordBufferCapacity = 100
        configuration.flushInterval = 0.01
        let client = VariantClient(configuration: configuration)
        defer { client.close() }
        let started = monotonicNow()
        var accepted = 0
        for _ in 0..<1000 where client.record(experiment: "checkout-prompt", variant: "concise", Measurements(latencyMilliseconds: 5)) {
            accepted += 1
        }
        // No record waited on the missing daemon (each would cost a connection attempt; slack for a loaded machine).
        #expect(monotonicNow() - started < 5)
        // At least the buffer's capacity is accepted; how many more depends on how often the sender thread drained
        // the buffer (and dropped what it took) while this loop ran, which is the scheduler's business. Either way
        // every record is accounted for as dropped. (The bound itself, without a sender: RecordBufferTests.)
        #expect((100...1000).contains(accepted))
        #expect(client.flush(timeout: 2))
        #expect(client.counters.dropped == 1000)
        #expect(client.counters.sent == 0)
    }

    @Test func operatorCallsThrowAClearError() throws {
        let directory = try TemporaryDirectory()
        let client = VariantClient(socketPath: directory.path + "/none.sock")
        defer { client.close() }
        do {
            _ = try client.events()
            Issue.record("events() on a missing socket did not throw")
        } catch {
            #expect(error.code == "unreachable")
            #expect(error.message.contains("none.sock"))
        }
    }
}

/// The Swift shim against the real `variantd` binary.
@Suite(.serialized) struct ClientEndToEndTests {
    @Test func assignPromptRecordAndEventsAgainstTheDaemon() throws {
        let stateDirectory = try TemporaryDirectory()
        let daemon = try DaemonFixture(config: exampleConfig, stateDirectory: stateDirectory.path)
        var configuration = VariantClient.Configuration(socketPath: daemon.socketPath)
        configuration.timeout = 2
        configuration.flushInterval = 0.01
        let client = VariantClient(configuration: configuration)
        let document = try ConfigDocument.validate(Array(exampleConfig.utf8))
        let experiment = try #require(document.experiment(named: "checkout-prompt"))

        let answers = (0..<40).map { client.assign("checkout-prompt", unit: "user-\($0)") }
        for (index, answer) in answers.enumerated() {
            #expect(answer.reason == "assigned" && answer.enrolled && answer.error == nil)
            #expect(answer.variant == experiment.variants[experiment.hashedVariantIndex(unit: "user-\(index)")].name)
            #expect(answer.metadata["variant"] == answer.variant.map(JSONValue.string))
            #expect(answer.configVersion?.hasPrefix("sha256:") == true)
        }
        #expect(Set(answers.compactMap(\.variant)) == ["control", "concise"])

        let conciseUnit = "user-\(try #require(answers.firstIndex { $0.variant == "concise" }))"
        let prompted = client.prompt("checkout-prompt", unit: conciseUnit)
        #expect(prompted.template?.hasPrefix("You help {{customer_name}}") == true)
        #expect(prompted.params["model"] == .string("gpt-4o-mini"))
        #expect(prompted.traceMetadata["prompt_version"] == .number(2))

        let pipelined = client.assignMany((0..<40).map { (experiment: "checkout-prompt", unit: "user-\($0)", attributes: JSONObject()) })
        #expect(pipelined.map(\.variant) == answers.map(\.variant))

        let targeted = client.assign(
            "support-reply", unit: "ticket-1", attributes: JSONObject([("language", .string("de")), ("plan", .string("free"))]))
        #expect(targeted.reason == "not_targeted" && targeted.variant == "control")
        #expect(client.template("support-reply", version: 3)?.fromFallback == false)

        for answer in answers {
            #expect(client.record(answer, Measurements(latencyMilliseconds: 100, error: false, success: answer.variant == "concise" ? 1 : 0)))
        }
        #expect(client.record(experiment: "checkout-prompt", variant: "nope", Measurements(error: true)))
        // By unit: the daemon recomputes the variant, and refuses a unit the experiment did not enroll.
        for unit in 0..<10 {
            #expect(client.record(experiment: "checkout-prompt", unit: "user-\(unit)", Measurements(latencyMilliseconds: 50)))
        }
        #expect(client.record(
            experiment: "support-reply", unit: "ticket-1",
            attributes: JSONObject([("language", .string("de")), ("plan", .string("free"))]), Measurements(error: false)))
        #expect(client.flush(timeout: 5))
        #expect(eventually { client.counters.rejected == 2 })
        #expect(client.counters.sent == 52 && client.counters.dropped == 0)
        let stats = try client.stats("checkout-prompt")
        let variantStats = (stats["variants"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(variantStats.compactMap { $0["records"]?.integerValue }.reduce(0, +) == 50)
        let conciseRecords = variantStats.first { $0["name"] == .string("concise") }?["records"]?.integerValue
        let conciseAnswers = answers.filter { $0.variant == "concise" }.count
        let conciseUnitsRecordedByUnit = answers.prefix(10).filter { $0.variant == "concise" }.count
        #expect(conciseRecords == conciseAnswers + conciseUnitsRecordedByUnit)

        #expect(try client.disable("checkout-prompt", variant: "concise", reason: "swift shim test")["changed"] == .bool(true))
        #expect(client.assign("checkout-prompt", unit: conciseUnit).reason == "disabled")
        #expect(try client.events(limit: 1).first?["message"] == .string("swift shim test"))
        let health = try client.health()
        #expect(health["status"] == .string("serving") && health["state_error"] == .null, "\(health)")
        _ = try client.enable("checkout-prompt", variant: "concise")
        do {
            _ = try client.disable("checkout-prompt", variant: "control")
            Issue.record("the control was disabled")
        } catch {
            #expect(error.code == "control_cannot_be_disabled")
        }
        client.close()

        #expect(daemon.stop() == 0)
        let state = try #require(parseObject(try String(contentsOfFile: stateDirectory.path + "/state.json", encoding: .utf8)))
        // The experiment's phases, the current (and here only) one last.
        let variants = try #require(
            state["experiments"]?.objectValue?["checkout-prompt"]?.arrayValue?.last?.objectValue?["variants"]?.objectValue)
        let recorded = variants.members.map { $0.value.objectValue?["records"]?.integerValue ?? 0 }.reduce(0, +)
        #expect(recorded == 50)
        #expect(variants["concise"]?.objectValue?["records"]?.integerValue == conciseRecords)
    }

    @Test func renderTextAndChatThroughTheDaemonAndItsRefusals() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let client = VariantClient(socketPath: daemon.socketPath, timeout: 2, fallback: try Fallback(json: Array(exampleConfig.utf8)))
        defer { client.close() }
        let variables = JSONObject([("store_name", .string("Acme")), ("customer_name", .string("Ada")), ("unused", .number(1))])
        var variantsSeen: Set<String> = []
        for unit in (0..<20).map({ "user-\($0)" }) {
            let rendered = client.render("checkout-prompt", unit: unit, variables: variables)
            let assigned = client.assign("checkout-prompt", unit: unit)
            #expect(rendered.isRendered && !rendered.isFallback && rendered.kind == .text)
            #expect(rendered.assignment?.variant == assigned.variant && rendered.promptVersion == assigned.promptVersion)
            #expect(rendered.text?.contains("Acme") == true && rendered.text?.contains("{{") == false)
            #expect(rendered.warnings.contains(JSONObject([("code", .string("extra_variable")), ("variable", .string("unused"))])))
            variantsSeen.insert(rendered.assignment?.variant ?? "")
        }
        #expect(variantsSeen == ["control", "concise"])

        let chatVariables = JSONObject([("product", .string("Widgets")), ("ticket", .string("It broke."))])
        let chat = client.renderPrompt("ticket-triage", variables: chatVariables)
        #expect(chat.kind == .chat && chat.messages?.map(\.role) == ["system", "user"])
        // The daemon and the fallback render the same version with the same code.
        let directory = try TemporaryDirectory()
        let offline = VariantClient(socketPath: directory.path + "/none.sock", fallback: try Fallback(json: Array(exampleConfig.utf8)))
        defer { offline.close() }
        let local = offline.renderPrompt("ticket-triage", variables: chatVariables)
        #expect(local.error == "unreachable" && local.messages == chat.messages)
        #expect(client.template("ticket-triage")?.messages?.count == 2)

        let blocked = client.renderPrompt(
            "ticket-triage",
            variables: JSONObject([("product", .string("W")), ("ticket", .string("card 4111 1111 1111 1111"))]))
        #expect(!blocked.isRendered && blocked.error == "rule_blocked" && blocked.message?.contains("no-card-numbers") == true)
        let missing = client.render("checkout-prompt", unit: "user-1", variables: JSONObject([("store_name", .string("Acme"))]))
        #expect(!missing.isRendered && missing.error == "missing_variable")
        #expect(client.counters.fallbacks == 0)
    }

    @Test func noConfigServesTheFallbackControlWithTheDaemonsReason() throws {
        let daemon = try DaemonFixture(config: nil)
        let client = VariantClient(socketPath: daemon.socketPath, timeout: 2, fallback: ClientFallbackTests.fallback)
        defer { client.close() }
        let answer = client.prompt("checkout-prompt", unit: "user-42")
        #expect(answer.reason == "no_config")
        #expect(answer.template == "You are a friendly checkout assistant.")
        #expect(!client.record(answer, Measurements(latencyMilliseconds: 1)))
    }

    @Test func errorFromTheRealDaemonGivesTheFallbackAndKeepsTheConnection() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let client = VariantClient(socketPath: daemon.socketPath, timeout: 2, fallback: ClientFallbackTests.fallback)
        defer { client.close() }
        #expect(client.assign("no-such-experiment", unit: "u").error == "unknown_experiment")
        ClientFallbackTests.expectFallback(client.assign("checkout-prompt", unit: ""), error: "invalid_field")
        #expect(client.assign("checkout-prompt", unit: "user-1").reason == "assigned")
    }

    @Test func reconnectsAfterTheDaemonRestarts() throws {
        let state = try TemporaryDirectory()
        let first = try DaemonFixture(config: exampleConfig, stateDirectory: state.path)
        var configuration = VariantClient.Configuration(socketPath: first.socketPath)
        configuration.timeout = 2
        configuration.retryAfter = 0
        let client = VariantClient(configuration: configuration)
        defer { client.close() }
        #expect(client.assign("checkout-prompt", unit: "user-1").reason == "assigned")
        first.stop()
        #expect(client.assign("checkout-prompt", unit: "user-1").reason == "fallback")
        // A second daemon on the same socket path (the last --socket wins).
        let second = try DaemonFixture(
            config: exampleConfig, arguments: ["--socket", first.socketPath], stateDirectory: state.path, waitForSocket: false)
        defer { second.stop() }
        #expect(eventually { (try? VariantConnection(socketPath: first.socketPath, timeoutSeconds: 1)) != nil })
        #expect(client.assign("checkout-prompt", unit: "user-1").reason == "assigned")
    }

    @Test func theExampleServiceRunsWithAndWithoutTheDaemon() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let output = try runCommand("variantd-example", [daemon.socketPath, "30"])
        #expect(output.status == 0)
        #expect(output.stdout.contains("sent 30 records, dropped 0, rejected 0, fallbacks 0"), "\(output.stdout)")
        let down = try runCommand("variantd-example", [daemon.directory.path + "/none.sock", "5"])
        #expect(down.status == 0)
        #expect(down.stdout.contains("(fallback, prompt v1)"), "\(down.stdout)")
        #expect(down.stdout.contains("fallbacks 5"))
    }
}

// MARK: Helpers

func monotonicNow() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

func render(_ value: JSONValue) -> String {
    var writer = JSONWriter()
    writer.value(value)
    return String(decoding: writer.bytes, as: UTF8.self)
}

/// A temporary folder with a short path (socket paths are limited to 107 bytes), removed on deinit.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/vc-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        path = String(cString: created)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs a built product and returns its exit status, standard output and standard error.
func runCommand(_ name: String, _ arguments: [String], asNobody: Bool = false) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    if asNobody {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", DaemonFixture.product(name)] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: DaemonFixture.product(name))
        process.arguments = arguments
    }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let stdout = output.fileHandleForReading.readDataToEndOfFile()
    let stderr = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
}

/// A real Unix-socket server on a thread: each request line gets `answer(line)` (nil: never answered).
final class LineServer: Sendable {
    let path: String
    private let directory: String
    private let listener: Int32
    private let state = Mutex<(received: [String], connections: [Int32], stopped: Bool)>(([], [], false))
    private let answer: @Sendable (String) -> String?

    init(answer: @escaping @Sendable (String) -> String?) throws {
        var template = Array("/tmp/vs-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        directory = String(cString: created)
        path = directory + "/fake.sock"
        self.answer = answer
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 16) == 0 else { throw FixtureError("bind/listen: \(String(cString: strerror(errno)))") }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit {
        state.withLock { state in
            state.stopped = true
            for connection in state.connections { shutdown(connection, Int32(SHUT_RDWR)) }
        }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        try? FileManager.default.removeItem(atPath: directory)
    }

    var received: [String] { state.withLock { $0.received } }
    /// Connections accepted so far.
    var connectionCount: Int { state.withLock { $0.connections.count } }

    private func acceptLoop() {
        while true {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            let stopped = state.withLock { state in
                state.connections.append(connection)
                return state.stopped
            }
            if stopped { return }
            let thread = Thread { [self] in serve(connection) }
            thread.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            pending.append(contentsOf: chunk[0..<count])
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                state.withLock { $0.received.append(line) }
                if let reply = answer(line) {
                    let bytes = Array((reply + "\n").utf8)
                    _ = bytes.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
            }
        }
    }
}
