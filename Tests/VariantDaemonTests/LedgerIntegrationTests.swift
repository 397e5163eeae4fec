import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore
import VariantDaemon

/// Records, disabled treatments and events on the real binary: they survive restarts and SIGKILL, and admin
/// ops are refused to callers the kernel says are not allowed.
@Suite(.serialized) struct LedgerIntegrationTests {
    func temporaryDirectory() throws -> String {
        var template = Array(FileManager.default.temporaryDirectory.appendingPathComponent("variantd-state-XXXXXX").path.utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        return String(cString: created)
    }

    /// The ledger in a state file, or nil if there is none; a file that exists but does not restore fails the test.
    func savedLedger(in stateDirectory: String) throws -> ExperimentLedger? {
        guard let data = FileManager.default.contents(atPath: stateDirectory + "/state.json") else { return nil }
        let ledger = ExperimentLedger()
        try ledger.restore(from: Array(data))
        return ledger
    }

    func totalRecords(_ ledger: ExperimentLedger?) -> Int {
        ledger?.aggregates(experiment: "checkout-prompt").values.reduce(0) { $0 + $1.records } ?? 0
    }

    @Test func recordsDisabledTreatmentsAndEventsSurviveARestart() throws {
        let stateDirectory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        let experiment = try #require(try ConfigDocument.validate(Array(exampleConfig.utf8)).experiment(named: "checkout-prompt"))
        let concisUnit = try #require((0..<100).map { "user-\($0)" }.first {
            experiment.variants[experiment.assign(unit: $0, attributes: JSONObject(), now: SystemClock.now()).variantIndex].name == "concise"
        })

        let first = try DaemonFixture(config: exampleConfig, stateDirectory: stateDirectory)
        let connection = try first.connect()
        for index in 0..<300 {
            let variant = index % 2 == 0 ? "control" : "concise"
            let answer = try connection.request(
                #"{"id":\#(index),"op":"record","experiment":"checkout-prompt","variant":"\#(variant)","metrics":{"latency_ms":\#(100 + index),"error":\#(index % 10 == 0)}}"#)
            #expect(answer.contains(#""ok":true"#))
        }
        let disabled = try first.ask(#"{"op":"disable","experiment":"checkout-prompt","variant":"concise","reason":"rollback"}"#)
        #expect(disabled["changed"] == .bool(true))
        // The disable is on disk before its answer, whatever happens next.
        #expect(try savedLedger(in: stateDirectory)?.disabled.count == 1)
        #expect(first.stop() == 0)

        let second = try DaemonFixture(config: exampleConfig, stateDirectory: stateDirectory)
        let assignment = try second.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"\#(concisUnit)"}"#)
        #expect(assignment["variant"] == .string("control"))
        #expect(assignment["reason"] == .string("disabled"))
        let events = try #require(try second.ask(#"{"op":"events"}"#)["events"]?.arrayValue).compactMap(\.objectValue)
        #expect(events.contains { $0["kind"] == .string("disabled") && $0["message"] == .string("rollback") })
        #expect(events.filter { $0["kind"] == .string("config_applied") }.count == 2)
        #expect(second.stop() == 0)
        #expect(totalRecords(try savedLedger(in: stateDirectory)) == 300)
    }

    @Test func sigkillMidWriteNeverLeavesAnUnreadableStateAndLosesAtMostTheLastFlush() throws {
        let stateDirectory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        var previous = 0
        var generator = SystemRandomNumberGenerator()
        for round in 0..<12 {
            let daemon = try DaemonFixture(
                config: exampleConfig, arguments: ["--state-flush-interval", "0.02"], stateDirectory: stateDirectory)
            #expect(!daemon.logs.contains("state.unreadable"), "round \(round)")
            let socket = try RawSocket(path: daemon.socketPath)
            let line = #"{"op":"batch","ack":false,"records":["# + Array(
                repeating: #"{"experiment":"checkout-prompt","variant":"control","metrics":{"latency_ms":5,"error":false,"custom":{"score":0.5}}}"#,
                count: 50
            ).joined(separator: ",") + "]}\n"
            let writer = Thread {
                for _ in 0..<400 { guard (try? socket.write(line)) != nil else { return } }
            }
            writer.start()
            usleep(UInt32.random(in: 20_000...250_000, using: &generator))
            #expect(daemon.stop(signal: SIGKILL) == -SIGKILL)
            let saved = try savedLedger(in: stateDirectory)
            let total = totalRecords(saved)
            #expect(total >= previous, "round \(round): the state went back from \(previous) to \(total) records")
            #expect(total % 50 == 0, "round \(round): a batch was half applied")
            previous = total
        }

        // What was acknowledged more than one flush interval before a SIGKILL is on disk.
        let daemon = try DaemonFixture(config: exampleConfig, stateDirectory: stateDirectory)
        let connection = try daemon.connect()
        for index in 0..<100 {
            let answer = try connection.request(#"{"id":\#(index),"op":"record","experiment":"checkout-prompt","variant":"concise","metrics":{"error":true}}"#)
            #expect(answer.contains(#""ok":true"#))
        }
        // Flushed on the flush timer, with no further request: on disk before the SIGKILL.
        #expect(try eventually { totalRecords(try savedLedger(in: stateDirectory)) == previous + 100 })
        #expect(daemon.stop(signal: SIGKILL) == -SIGKILL)
        #expect(totalRecords(try savedLedger(in: stateDirectory)) == previous + 100)
    }

    @Test(
        .enabled(
            if: Requires.anotherUser, "needs root, setpriv (util-linux) and /usr/bin/python3 to connect as another user"))
    func adminOpsAreRefusedToAnotherUserUnlessInTheAdminGroup() throws {
        // The system Python, which another user can run (a per-user Python under /root is not reachable).
        let python = "/usr/bin/python3"
        let daemon = try DaemonFixture(
            config: exampleConfig, arguments: ["--socket-mode", "0666", "--admin-group", "4242"])
        chmod(daemon.directory.path, 0o755)
        func askAsNobody(_ line: String, groups: String) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = [
                "--reuid=65534", "--regid=65534", groups.isEmpty ? "--clear-groups" : "--groups=\(groups)", python, "-c",
                "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()+b'\\n'); print(s.makefile().readline(), end='')",
                daemon.socketPath, line,
            ]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            process.waitUntilExit()
            return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        let refused = try askAsNobody(#"{"id":1,"op":"disable","experiment":"checkout-prompt","variant":"concise"}"#, groups: "")
        #expect(refused.contains(#""code":"forbidden""#), "\(refused)")
        #expect(refused.contains("uid 65534"))
        #expect(try askAsNobody(#"{"id":2,"op":"reload"}"#, groups: "").contains(#""code":"forbidden""#))
        #expect(try askAsNobody(#"{"id":3,"op":"assign","experiment":"checkout-prompt","unit":"u"}"#, groups: "").contains(#""ok":true"#))
        #expect(try askAsNobody(#"{"id":4,"op":"record","experiment":"checkout-prompt","variant":"control","metrics":{"error":false}}"#, groups: "").contains(#""ok":true"#))
        let events = try daemon.ask(#"{"op":"events"}"#)["events"]?.arrayValue ?? []
        #expect(!events.contains { $0.objectValue?["kind"] == .string("disabled") })

        let allowed = try askAsNobody(#"{"id":5,"op":"disable","experiment":"checkout-prompt","variant":"concise"}"#, groups: "4242")
        #expect(allowed.contains(#""changed":true"#), "\(allowed)")
        #expect(daemon.stop() == 0)
    }
}
