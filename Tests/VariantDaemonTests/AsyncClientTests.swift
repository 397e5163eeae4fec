import Foundation
import Glibc
import Synchronization
import Testing
import VariantClient
import VariantCore

/// The async Swift shim (`AsyncVariantClient`): many tasks over one connection, each answer matched to its own
/// request; the fallback when the daemon dies, then recovery, with nothing escaping to the caller; cancellation
/// that leaves the client usable.
@Suite(.serialized) struct AsyncClientTests {
    static func expectedVariant(_ unit: String) throws -> String {
        let document = try ConfigDocument.validate(Array(exampleConfig.utf8))
        let experiment = try #require(document.experiment(named: "checkout-prompt"))
        return experiment.variants[experiment.hashedVariantIndex(unit: unit)].name
    }

    @Test func assignManyAnswersEveryRequestInItsOrder() async throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let client = AsyncVariantClient(
            socketPath: daemon.socketPath, timeout: 60, fallback: try Fallback(json: Array(exampleConfig.utf8)))
        let units = (0..<200).map { "user-\($0)" }
        let answers = await client.assignMany(units.map { (experiment: "checkout-prompt", unit: $0, attributes: JSONObject()) })
        #expect(answers.map(\.unit) == units)
        for answer in answers {
            let expected = try Self.expectedVariant(answer.unit ?? "")
            #expect(answer.reason == "assigned" && answer.variant == expected, "\(answer)")
        }
        #expect(client.counters.fallbacks == 0)
        await client.close()
    }

    @Test func aThousandTasksAtOnceEachGetTheAnswerToTheirOwnRequest() async throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        // A timeout far longer than the test: every answer must come from the daemon, however loaded the machine.
        let client = AsyncVariantClient(
            socketPath: daemon.socketPath, timeout: 60, fallback: try Fallback(json: Array(exampleConfig.utf8)))
        let units = (0..<1000).map { "user-\($0)" }
        let expected = try Dictionary(uniqueKeysWithValues: units.map { ($0, try Self.expectedVariant($0)) })

        let answers = await withTaskGroup(of: (Int, VariantClient.Assignment, VariantClient.Rendering?).self) { group in
            for (index, unit) in units.enumerated() {
                group.addTask {
                    // Every third task renders with its own unit as a variable, so the text names whose request it
                    // answers; the others assign (or prompt).
                    if index % 3 == 0 {
                        let variables = JSONObject([("store_name", .string("Acme")), ("customer_name", .string(unit))])
                        let rendered = await client.render("checkout-prompt", unit: unit, variables: variables)
                        return (index, rendered.assignment ?? client.fallback.assignment(for: "none"), rendered)
                    }
                    let answer =
                        index % 3 == 1
                        ? await client.assign("checkout-prompt", unit: unit)
                        : await client.prompt("checkout-prompt", unit: unit)
                    return (index, answer, nil)
                }
            }
            var collected: [(Int, VariantClient.Assignment, VariantClient.Rendering?)] = []
            for await answer in group { collected.append(answer) }
            return collected
        }

        #expect(answers.count == 1000)
        for (index, answer, rendered) in answers {
            let unit = units[index]
            #expect(answer.reason == "assigned" && answer.error == nil, "\(unit): \(answer)")
            #expect(answer.unit == unit && answer.variant == expected[unit], "\(unit): \(answer)")
            if let rendered {
                #expect(rendered.kind == .text && rendered.text?.contains(" \(unit) ") == true, "\(rendered)")
            } else if index % 3 == 2 {
                #expect(answer.template?.contains("{{customer_name}}") == true, "\(answer)")
            }
        }
        #expect(Set(answers.compactMap { $0.1.variant }) == ["control", "concise"])
        #expect(client.counters.fallbacks == 0)
        await client.close()
    }

    @Test func theDaemonKilledMidRunGivesFallbacksThenRecoveryAndNothingEscapes() async throws {
        let state = try TemporaryDirectory()
        let first = try DaemonFixture(config: exampleConfig, stateDirectory: state.path)
        var configuration = VariantClient.Configuration(socketPath: first.socketPath)
        configuration.timeout = 30
        configuration.retryAfter = 0.01
        let client = AsyncVariantClient(configuration: configuration, fallback: ClientFallbackTests.fallback)
        /// 0 while the first daemon runs, 1 once it was killed, 2 once the second one accepts; 3 ends the run.
        let stage = Locked(0)
        let seen = Locked<[(stage: Int, unit: String, answer: VariantClient.Assignment)]>([])
        func count(_ stage: Int, assigned: Bool) -> Int {
            seen.withLock { $0.filter { $0.stage == stage && ($0.answer.reason == "assigned") == assigned }.count }
        }

        var second: DaemonFixture?
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var call = 0
                    while stage.value < 3 {
                        let before = stage.value
                        let unit = "user-\(worker)-\(call)"
                        let answer = await client.assign("checkout-prompt", unit: unit)
                        seen.withLock { $0.append((before, unit, answer)) }
                        call += 1
                        // Fallbacks come at once while the daemon is down: yield so the test can restart it.
                        if answer.reason == "fallback" { try? await Task.sleep(for: .milliseconds(1)) }
                    }
                }
            }
            #expect(await eventually { count(0, assigned: true) >= 200 })
            first.stop(signal: SIGKILL)
            stage.withLock { $0 = 1 }
            #expect(await eventually { count(1, assigned: false) >= 50 })
            // A second daemon on the same socket path (the last --socket wins).
            second = try? DaemonFixture(
                config: exampleConfig, arguments: ["--socket", first.socketPath], stateDirectory: state.path,
                waitForSocket: false)
            #expect(await eventually { (try? VariantConnection(socketPath: first.socketPath, timeoutSeconds: 1)) != nil })
            stage.withLock { $0 = 2 }
            #expect(await eventually { count(2, assigned: true) >= 200 })
            stage.withLock { $0 = 3 }
        }
        defer { second?.stop() }

        let answers = seen.withLock { $0 }
        var fallbacks = 0
        for (_, unit, answer) in answers {
            if answer.reason == "fallback" {
                fallbacks += 1
                #expect(["closed", "unreachable"].contains(answer.error ?? ""), "\(answer)")
                #expect(answer.variant == "control" && answer.template == "You are a friendly checkout assistant.")
            } else {
                let expected = try Self.expectedVariant(unit)
                #expect(answer.reason == "assigned" && answer.variant == expected, "\(answer)")
            }
        }
        #expect(fallbacks >= 50)
        #expect(client.counters.fallbacks == fallbacks)
        // Recovered: the last call of the run, on the second daemon, is answered by it.
        #expect(await client.assign("checkout-prompt", unit: "user-1").reason == "assigned")
        await client.close()
    }

    @Test func aCancelledCallFallsBackAtOnceAndTheConnectionStaysInUse() async throws {
        // Answers every request at once except for units starting "slow-", which it never answers; the answer to
        // the next request is preceded by a late answer to the last unanswered one, which the client must drop.
        let unanswered = Locked<String?>(nil)
        let server = try LineServer { line in
            guard let request = parseObject(line), let id = request["id"]?.integerValue,
                let unit = request["unit"]?.stringValue
            else { return nil }
            if unit.hasPrefix("slow-") {
                unanswered.withLock { $0 = String(id) }
                return nil
            }
            let answer = #"{"id":\#(id),"ok":true,"experiment":"checkout-prompt","variant":"concise","enrolled":true,"reason":"assigned"}"#
            guard let late = unanswered.withLock({ $0.take() }) else { return answer }
            return #"{"id":\#(late),"ok":true,"experiment":"checkout-prompt","variant":"control","enrolled":true,"reason":"assigned"}"#
                + "\n" + answer
        }
        let client = AsyncVariantClient(socketPath: server.path, timeout: 60, fallback: ClientFallbackTests.fallback)

        let waiting = Task { await client.assign("checkout-prompt", unit: "slow-1") }
        #expect(await eventually { server.received.count == 1 })
        waiting.cancel()
        // Returns on cancellation, not at the 60-second timeout.
        ClientFallbackTests.expectFallback(await waiting.value, error: "cancelled")

        // The same connection goes on: the late answer to the cancelled call is dropped, not taken for this one.
        let next = await client.assign("checkout-prompt", unit: "user-1")
        #expect(next.reason == "assigned" && next.variant == "concise" && next.unit == "user-1", "\(next)")
        #expect(await client.assign("checkout-prompt", unit: "user-2").variant == "concise")
        #expect(server.received.count == 3)
        #expect(server.connectionCount == 1)

        // A task cancelled before it calls falls back without asking the daemon.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await client.assign("checkout-prompt", unit: "user-3")
        }
        ClientFallbackTests.expectFallback(await early.value, error: "cancelled")
        #expect(await client.assign("checkout-prompt", unit: "user-4").variant == "concise")
        await client.close()
    }

    @Test func aHungDaemonGivesTheFallbackAtTheDeadlineAndBacksOff() async throws {
        let server = try LineServer { _ in nil }
        var configuration = VariantClient.Configuration(socketPath: server.path)
        configuration.timeout = 0.05
        configuration.retryAfter = 30
        let client = AsyncVariantClient(configuration: configuration, fallback: ClientFallbackTests.fallback)
        ClientFallbackTests.expectFallback(await client.assign("checkout-prompt", unit: "u"), error: "timeout")
        // Within retryAfter the daemon is not asked again.
        ClientFallbackTests.expectFallback(await client.prompt("checkout-prompt", unit: "u"), error: "unreachable")
        #expect(server.received.count == 1)
        await client.close()
    }

    @Test func aMissingDaemonGivesTheFallbackAndRendersItsControlHere() async throws {
        let directory = try TemporaryDirectory()
        let client = AsyncVariantClient(
            socketPath: directory.path + "/none.sock", timeout: 30, fallback: try Fallback(json: Array(exampleConfig.utf8)))
        let rendered = await client.render(
            "checkout-prompt", unit: "user-42",
            variables: JSONObject([("store_name", .string("Acme")), ("customer_name", .string("Ada"))]))
        #expect(rendered.isRendered && rendered.isFallback && rendered.error == "unreachable")
        #expect(rendered.text?.hasPrefix("You are a friendly checkout assistant for Acme. Help Ada finish") == true)
        #expect(await client.template("checkout")?.version == 2)
        #expect(!client.record(await client.assign("checkout-prompt", unit: "u"), Measurements(latencyMilliseconds: 1)))
        await client.close()
    }
}

/// A value that a test's tasks and threads share, under a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    var value: Value { mutex.withLock { $0 } }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }
}
