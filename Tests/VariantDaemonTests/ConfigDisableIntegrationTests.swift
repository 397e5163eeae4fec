import Foundation
import Glibc
import Testing
import VariantCore
import VariantDaemon

/// A treatment disabled through the configuration document (as `variantd-judge` publishes it), on the real binary:
/// its units get the control within a check interval, the decision is logged once however often the document is
/// applied (restarts included), lifting it serves the treatment again, and an operator cannot overrule it.
@Suite(.serialized) struct ConfigDisableIntegrationTests {
    static let paramsLine = #""params": { "model": "gpt-4o-mini", "temperature": 0.2 }"#
    static let disable =
        #""disabled": {"at": "2026-11-20T08:30:00Z", "by": "variantd-judge@judge-1", "reason": "error rate 6 points above the control's on 12 hosts", "evidence": {"metric": "error_rate", "hosts": 12, "p_value": 0.0004}}"#

    /// The example configuration with `concise` disabled by the document; `description` changes something else.
    static func disabledConfig(description: String? = nil) -> String {
        var config = exampleConfig.replacingOccurrences(of: paramsLine, with: paramsLine + ", " + disable)
        if let description {
            config = config.replacingOccurrences(
                of: "Is the concise checkout prompt better? 50/50 across every user.", with: description)
        }
        return config
    }

    func temporaryDirectory() throws -> String {
        var template = Array(FileManager.default.temporaryDirectory.appendingPathComponent("variantd-state-XXXXXX").path.utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        return String(cString: created)
    }

    func events(_ daemon: DaemonFixture) throws -> [JSONObject] {
        try daemon.ask(#"{"op":"events"}"#)["events"]?.arrayValue?.compactMap(\.objectValue) ?? []
    }

    func configEvents(_ daemon: DaemonFixture, kind: String) throws -> [JSONObject] {
        try events(daemon).filter {
            $0["kind"] == .string(kind) && $0["variant"] == .string("concise")
                && ($0["actor"]?.stringValue?.hasPrefix("config") ?? false)
        }
    }

    func assign(_ daemon: DaemonFixture, _ unit: String) throws -> JSONObject {
        try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"\#(unit)"}"#)
    }

    @Test func aDocumentDisableIsServedLoggedOnceAndLiftedThroughTheDocument() throws {
        let stateDirectory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        let experiment = try #require(try ConfigDocument.validate(Array(exampleConfig.utf8)).experiment(named: "checkout-prompt"))
        let conciseUnit = try #require((0..<100).map { "user-\($0)" }.first {
            experiment.variants[experiment.assign(unit: $0, attributes: JSONObject(), now: SystemClock.now()).variantIndex].name == "concise"
        })
        let controlUnit = try #require((0..<100).map { "user-\($0)" }.first {
            experiment.variants[experiment.assign(unit: $0, attributes: JSONObject(), now: SystemClock.now()).variantIndex].name == "control"
        })

        let first = try DaemonFixture(config: exampleConfig, stateDirectory: stateDirectory)
        #expect(try assign(first, conciseUnit)["variant"] == .string("concise"))

        // The judge publishes a disable: the units go to the control within the check interval.
        try first.writeConfig(Self.disabledConfig())
        #expect(try eventually { try assign(first, conciseUnit)["reason"] == .string("disabled") })
        let disabledAnswer = try assign(first, conciseUnit)
        #expect(disabledAnswer["variant"] == .string("control"))
        #expect(disabledAnswer["enrolled"] == .bool(false))
        #expect(try assign(first, controlUnit)["reason"] == .string("assigned"))
        let listed = try first.ask(#"{"op":"config"}"#)["disabled_treatments"]
        #expect(listed == .array([.object(JSONObject([("experiment", .string("checkout-prompt")), ("variant", .string("concise"))]))]))
        #expect(try eventually { try configEvents(first, kind: "disabled").count == 1 })
        let event = try #require(try configEvents(first, kind: "disabled").first)
        #expect(event["actor"] == .string("config: variantd-judge@judge-1"))
        #expect(event["message"] == .string("error rate 6 points above the control's on 12 hosts"))
        let details = try #require(event["details"]?.objectValue)
        #expect(details["at"] == .string("2026-11-20T08:30:00Z"))
        #expect(details["evidence"]?.objectValue?["hosts"] == .number(12))
        #expect(eventually { first.logs.contains("treatment.disabled: error rate 6 points above the control's on 12 hosts") })

        // An operator cannot overrule the document.
        let refused = try first.ask(#"{"op":"enable","experiment":"checkout-prompt","variant":"concise"}"#)
        #expect(refused["error"]?.objectValue?["code"] == .string("disabled_by_config"))
        #expect(try assign(first, conciseUnit)["reason"] == .string("disabled"))

        // The same disable in a document changed elsewhere: applied, and still one event.
        let changed = Self.disabledConfig(description: "Judged by the fleet.")
        try first.writeConfig(changed)
        let changedVersion = LoadedConfig.version(of: Array(changed.utf8))
        #expect(try eventually { try first.ask(#"{"op":"config"}"#)["config_version"] == .string(changedVersion) })
        #expect(try configEvents(first, kind: "disabled").count == 1)
        #expect(first.stop() == 0)

        // A restart on the same state and document: still one event.
        let second = try DaemonFixture(config: changed, stateDirectory: stateDirectory)
        #expect(try eventually { try second.ask(#"{"op":"config"}"#)["config_version"] == .string(changedVersion) })
        #expect(try assign(second, conciseUnit)["reason"] == .string("disabled"))
        #expect(try events(second).filter { $0["kind"] == .string("config_applied") }.count == 4)
        #expect(try configEvents(second, kind: "disabled").count == 1)

        // The document no longer disables it: served again, with an `enabled` event by the config.
        try second.writeConfig(exampleConfig)
        #expect(try eventually { try assign(second, conciseUnit)["variant"] == .string("concise") })
        #expect(try assign(second, conciseUnit)["reason"] == .string("assigned"))
        #expect(try eventually { try configEvents(second, kind: "enabled").count == 1 })
        #expect(try configEvents(second, kind: "enabled").first?["actor"] == .string("config"))
        #expect(try second.ask(#"{"op":"config"}"#)["disabled_treatments"] == .array([]))
        #expect(try configEvents(second, kind: "disabled").count == 1)
        #expect(second.stop() == 0)
    }
}
