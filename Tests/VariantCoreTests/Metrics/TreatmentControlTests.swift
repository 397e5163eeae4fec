import Synchronization
import Testing
@testable import VariantCore

/// `disable`, `enable` and `events`: who may, what changes for the units, and what is logged.
@Suite struct TreatmentControlTests {
    func answer(_ line: String, _ snapshot: ServingSnapshot, _ context: RequestContext) throws -> JSONObject {
        try #require(try parseJSON(Responder.respond(to: line, snapshot: snapshot, now: someInstant, context: context)).objectValue)
    }

    /// A context whose treatment changes are applied to the snapshot the way the daemon applies them.
    final class Harness: Sendable {
        let ledger = ExperimentLedger()
        let snapshot: Mutex<ServingSnapshot>
        let changes = Mutex<[LedgerEvent]>([])

        init() throws {
            snapshot = Mutex(try RecordTests.snapshot())
        }

        func context(mayAdminister: Bool) -> RequestContext {
            RequestContext(
                ledger: ledger, caller: Caller(pid: 42, uid: mayAdminister ? 0 : 1000, gid: 1000, mayAdminister: mayAdminister),
                treatmentsChanged: { [self] event in
                    changes.withLock { $0.append(event) }
                    let disabled = Set(ledger.disabled.keys)
                    snapshot.withLock { $0 = $0.withDisabled(disabled) }
                },
                reload: { true })
        }

        var current: ServingSnapshot { snapshot.withLock { $0 } }
    }

    @Test(arguments: ["disable\",\"variant\":\"treatment", "new_phase"])
    func aReasonLongerThanAThousandBytesIsRefusedAndNothingChanges(op: String) throws {
        let harness = try Harness()
        let admin = harness.context(mayAdminister: true)
        let longest = String(repeating: "é", count: 500)  // 1,000 bytes
        let refused = try answer(
            #"{"id":1,"op":"\#(op)","experiment":"e","reason":"\#(longest)x"}"#, harness.current, admin)
        #expect(refused["error"]?.objectValue?["code"] == .string("invalid_field"))
        #expect(refused["error"]?.objectValue?["message"] == .string("'reason' is 1001 bytes long; at most 1000 are kept"))
        #expect(harness.ledger.disabled.isEmpty && harness.ledger.events(limit: 10).isEmpty)
        let accepted = try answer(#"{"id":2,"op":"\#(op)","experiment":"e","reason":"\#(longest)"}"#, harness.current, admin)
        #expect(accepted["ok"] == .bool(true))
        #expect(harness.ledger.events(limit: 10).last?.message.hasSuffix(longest) == true)
    }

    @Test func aDisabledTreatmentSendsItsUnitsToTheControlUntilEnabled() throws {
        let harness = try Harness()
        let admin = harness.context(mayAdminister: true)
        let units = (0..<200).map { "user-\($0)" }
        func assignments() throws -> [(variant: String?, reason: String?)] {
            try units.map { unit in
                let reply = try answer(#"{"op":"assign","experiment":"e","unit":"\#(unit)"}"#, harness.current, admin)
                return (reply["variant"]?.stringValue, reply["reason"]?.stringValue)
            }
        }
        let before = try assignments()
        #expect(before.contains { $0.variant == "treatment" })

        let disabled = try answer(#"{"id":1,"op":"disable","experiment":"e","variant":"treatment","reason":"incident 77"}"#, harness.current, admin)
        #expect(disabled["disabled"] == .bool(true))
        #expect(disabled["changed"] == .bool(true))
        let during = try assignments()
        for (old, new) in zip(before, during) {
            if old.variant == "treatment" {
                #expect(new.variant == "control" && new.reason == "disabled")
            } else {
                #expect(new.variant == old.variant && new.reason == "assigned")
            }
        }
        let again = try answer(#"{"op":"disable","experiment":"e","variant":"treatment"}"#, harness.current, admin)
        #expect(again["changed"] == .bool(false))

        let enabled = try answer(#"{"op":"enable","experiment":"e","variant":"treatment"}"#, harness.current, admin)
        #expect(enabled["disabled"] == .bool(false) && enabled["changed"] == .bool(true))
        #expect(try assignments().map(\.variant) == before.map(\.variant))

        let events = try #require(try answer(#"{"op":"events"}"#, harness.current, admin)["events"]?.arrayValue).compactMap(\.objectValue)
        #expect(events.map { $0["kind"] } == [.string("disabled"), .string("enabled")])
        #expect(events[0]["message"] == .string("incident 77"))
        #expect(events[0]["actor"] == .string("uid 0 pid 42"))
        #expect(events.map { $0["sequence"] } == [.number(1), .number(2)])
        #expect(harness.changes.withLock { $0.count } == 2)
    }

    @Test func adminOpsAreRefusedToOtherCallersAndChangeNothing() throws {
        let harness = try Harness()
        let app = harness.context(mayAdminister: false)
        for line in [
            #"{"op":"disable","experiment":"e","variant":"treatment"}"#, #"{"op":"enable","experiment":"e","variant":"treatment"}"#,
            #"{"op":"reload"}"#,
        ] {
            let reply = try answer(line, harness.current, app)
            #expect(reply["error"]?.objectValue?["code"] == .string("forbidden"))
        }
        #expect(harness.ledger.disabled.isEmpty)
        #expect(try answer(#"{"op":"assign","experiment":"e","unit":"u"}"#, harness.current, app)["ok"] == .bool(true))
    }

    @Test func theControlCannotBeDisabledAndNamesMustExist() throws {
        let harness = try Harness()
        let admin = harness.context(mayAdminister: true)
        func code(_ line: String) throws -> String? {
            try answer(line, harness.current, admin)["error"]?.objectValue?["code"]?.stringValue
        }
        #expect(try code(#"{"op":"disable","experiment":"e","variant":"control"}"#) == "control_cannot_be_disabled")
        #expect(try code(#"{"op":"disable","experiment":"e","variant":"nope"}"#) == "unknown_variant")
        #expect(try code(#"{"op":"disable","experiment":"nope","variant":"treatment"}"#) == "unknown_experiment")
        #expect(try code(#"{"op":"enable","experiment":"e","variant":"nope"}"#) == "unknown_variant")
        #expect(harness.ledger.disabled.isEmpty)
    }

    @Test func theEventLogKeepsTheLatestEventsUpToItsCapacity() {
        let ledger = ExperimentLedger(eventCapacity: 3)
        for index in 0..<5 {
            ledger.log(LedgerEvent(at: someInstant, kind: .configApplied, actor: "config source", message: "v\(index)"))
        }
        #expect(ledger.events(limit: 10).map(\.message) == ["v2", "v3", "v4"])
        #expect(ledger.events(limit: 10).map(\.sequence) == [3, 4, 5])
        #expect(ledger.events(limit: 1).map(\.message) == ["v4"])
    }
}
