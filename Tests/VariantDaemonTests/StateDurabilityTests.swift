import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// Issue 16, item 2: a state that cannot be written is never reported as saved. Through the real daemon, with the
/// state file made unwritable in a way that holds for root too (a non-empty directory where `state.json` must be
/// renamed into place: `rename` fails with EISDIR whoever asks, where a read-only mode would not stop root).
@Suite struct StateDurabilityTests {
    /// Makes `STATE_DIR/state.json` unwritable, and returns how to make it writable again.
    static func blockStateFile(in stateDirectory: String) throws -> () -> Void {
        let blocker = stateDirectory + "/state.json"
        try? FileManager.default.removeItem(atPath: blocker)
        try FileManager.default.createDirectory(atPath: blocker + "/not-a-file", withIntermediateDirectories: true)
        return { try? FileManager.default.removeItem(atPath: blocker) }
    }

    static let disable = #"{"id":1,"op":"disable","experiment":"checkout-prompt","variant":"concise","reason":"incident 77"}"#

    /// `disable` answered ok:true though nothing was written. Now: `state_not_durable` naming the reason, the
    /// disable in effect in memory, `health` and `config` show `state_error` until a write succeeds, the failure is
    /// logged once and the recovery once, and then the disable is on disk.
    @Test func aDisableThatCannotBeWrittenAnswersStateNotDurableUntilTheStateIsWritable() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--state-flush-interval", "0.05"])
        let stateDirectory = daemon.directory.path + "/state"
        #expect(eventually { FileManager.default.fileExists(atPath: stateDirectory) })
        #expect(try daemon.ask(#"{"op":"health"}"#)["state_error"] == .null)
        let unblock = try Self.blockStateFile(in: stateDirectory)

        let refused = try daemon.ask(Self.disable)
        let error = try #require(refused["error"]?.objectValue, "\(refused)")
        #expect(error["code"] == .string("state_not_durable"))
        let message = error["message"]?.stringValue ?? ""
        #expect(message.contains("state.json") && message.contains("a restart would serve it again"), "\(message)")
        // In effect in memory all the same: its units get the control.
        #expect(
            try daemon.ask(#"{"op":"events","limit":5}"#)["events"]?.arrayValue?.contains {
                $0.objectValue?["kind"] == .string("disabled")
            } == true)
        let health = try daemon.ask(#"{"op":"health"}"#)
        let stateError = try #require(health["state_error"]?.objectValue, "\(health)")
        #expect(stateError["message"]?.stringValue?.contains("state.json") == true)
        #expect(stateError["since"]?.stringValue != nil)
        #expect(try daemon.ask(#"{"op":"config"}"#)["state_error"]?.objectValue != nil)
        // variantctl status says so too.
        let status = try runProduct("variantctl", ["status", "--socket", daemon.socketPath])
        #expect(status.output.contains("state_error: the state file cannot be written since"), "\(status.output)")

        unblock()
        #expect(eventually { (try? daemon.ask(#"{"op":"health"}"#))?["state_error"] == .null })
        let logs = daemon.logs
        #expect(logs.components(separatedBy: "state.write_failed").count == 2, "logged once per failing run:\n\(logs)")
        #expect(logs.contains("state.write_recovered"))
        let saved = try String(contentsOfFile: stateDirectory + "/state.json", encoding: .utf8)
        #expect(saved.contains("incident 77"))
        let repeated = try daemon.ask(Self.disable)
        #expect(repeated["ok"] == .bool(true) && repeated["changed"] == .bool(false), "\(repeated)")
        #expect(daemon.stop() == 0)
    }

    /// A graceful stop whose last write fails was logged `state.saved` and exited 0, losing acknowledged records.
    /// Now it logs `state.save_failed` and exits non-zero.
    @Test func aFailedFinalWriteIsNotReportedSavedAndExitsNonZero() throws {
        // No timed flush before the stop: the acknowledged records are only in memory.
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--state-flush-interval", "3600"])
        let stateDirectory = daemon.directory.path + "/state"
        #expect(eventually { FileManager.default.fileExists(atPath: stateDirectory) })
        let records = Array(
            repeating: #"{"experiment":"checkout-prompt","variant":"control","metrics":{"error":false}}"#, count: 100)
        let answer = try daemon.ask(#"{"op":"batch","records":[\#(records.joined(separator: ","))]}"#)
        #expect(answer["recorded"] == .number(100))
        _ = try Self.blockStateFile(in: stateDirectory)

        let status = daemon.stop()
        #expect(status != nil && status != 0, "exit status \(String(describing: status))")
        let logs = daemon.logs
        #expect(!logs.contains("state.saved"), "\(logs)")
        #expect(logs.contains("state.save_failed"), "\(logs)")
    }
}
