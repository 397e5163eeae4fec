import Synchronization
import Testing
@testable import VariantCore

/// `Responder.respond` tells the daemon each line's op and outcome code (for `variantd_requests_total`), on the
/// plain path and the general one alike, and reports every record it refused (`variantd_records_refused_total`).
@Suite struct RequestOutcomeTests {
    static func outcome(of line: String, snapshot: ServingSnapshot? = nil, context: RequestContext = .detached())
        throws -> RequestOutcome
    {
        var writer = JSONWriter()
        var line = line
        let snapshot = try snapshot ?? ResponderTests.servingSnapshot()
        return line.withUTF8 { Responder.respond(to: $0, snapshot: snapshot, now: someInstant, context: context, into: &writer) }
    }

    @Test(arguments: [
        (#"{"id":1,"op":"assign","experiment":"e","unit":"u1"}"#, Request.Op.assign, "ok"),
        (#"{"op":"assign","experiment":"e","unit":"u1","attributes":{"a":"b"}}"#, .assign, "ok"),
        (#"{"id":1,"op":"assign","experiment":"nope","unit":"u1"}"#, .assign, "unknown_experiment"),
        (#"{"op":"assign","experiment":"e"}"#, .assign, "missing_field"),
        (#"{"op":"render","experiment":"e","unit":"u1","variables":{"name":"Ada"}}"#, .render, "ok"),
        (#"{"op":"render","experiment":"e","unit":"u1","variables":{}}"#, .render, "missing_variable"),
        (#"{"op":"prompt","prompt":"q"}"#, .prompt, "ok"),
        (#"{"op":"config"}"#, .config, "ok"),
        (#"{"op":"health","extra":1}"#, .health, "unknown_field"),
        (#"{"op":"record","experiment":"e","variant":"control","metrics":{"error":true}}"#, .record, "ok"),
        (#"{"op":"batch","records":[{"experiment":"e","variant":"nope","metrics":{}}]}"#, .batch, "ok"),
        (#"{"op":"stats","experiment":"e"}"#, .stats, "ok"),
        (#"{"op":"events"}"#, .events, "ok"),
        (#"{"op":"disable","experiment":"e","variant":"treatment"}"#, .disable, "forbidden"),
        (#"{"op":"enable","experiment":"e","variant":"treatment"}"#, .enable, "forbidden"),
        (#"{"op":"new_phase","experiment":"e"}"#, .newPhase, "forbidden"),
        (#"{"op":"reload"}"#, .reload, "forbidden"),
        (#"not json"#, .unknown, "invalid_json"),
        (#"[1]"#, .unknown, "invalid_request"),
        (#"{"id":1}"#, .unknown, "missing_field"),
        (#"{"op":"fly"}"#, .unknown, "unknown_op"),
        (#"{"op":"assıgn"}"#, .unknown, "unknown_op"),
    ])
    func everyLineReportsItsOpAndCode(line: String, op: Request.Op, code: String) throws {
        let outcome = try Self.outcome(of: line)
        #expect(outcome.op == op)
        #expect(outcome.code == code)
        #expect(op.name == (op == .newPhase ? "new_phase" : "\(op)"))
    }

    @Test func withoutAConfigAnAssignStillSucceedsAndARecordIsRefused() throws {
        let empty = ServingSnapshot(config: nil, source: "test", lastError: nil, startedAt: someInstant)
        #expect(try Self.outcome(of: #"{"op":"assign","experiment":"e","unit":"u"}"#, snapshot: empty) == RequestOutcome(op: .assign))
        #expect(
            try Self.outcome(of: #"{"op":"prompt","prompt":"p"}"#, snapshot: empty)
                == RequestOutcome(op: .prompt, error: .noConfig))
    }

    @Test func everyRefusedRecordIsReportedWithItsCode() throws {
        let refused = Mutex<[String: Int]>([:])
        var context = RequestContext.detached()
        context.recordsRefused = { code, count in refused.withLock { $0[code.rawValue, default: 0] += count } }
        _ = try Self.outcome(of: #"{"op":"record","experiment":"e","variant":"nope","metrics":{"error":true}}"#, context: context)
        _ = try Self.outcome(of: #"{"op":"record","experiment":"e","variant":"control"}"#, context: context)
        _ = try Self.outcome(
            of: #"{"op":"batch","records":[{"experiment":"e","variant":"control","metrics":{"error":true}},{"experiment":"e","variant":"nope","metrics":{"error":true}},{"experiment":"x","variant":"control","metrics":{"error":true}},7]}"#,
            context: context)
        let empty = ServingSnapshot(config: nil, source: "test", lastError: nil, startedAt: someInstant)
        _ = try Self.outcome(
            of: #"{"op":"batch","records":[{"experiment":"e","variant":"control","metrics":{"error":true}},{"experiment":"e","variant":"control","metrics":{"error":true}}]}"#,
            snapshot: empty, context: context)
        _ = try Self.outcome(of: #"{"op":"assign","experiment":"nope","unit":"u"}"#, context: context)
        #expect(
            refused.withLock { $0 } == [
                "unknown_variant": 2, "missing_field": 1, "unknown_experiment": 1, "invalid_field": 1, "no_config": 2,
            ])
    }

    @Test func anOpIsFoundByItsWireName() {
        for op in Request.Op.allCases where op != .unknown { #expect(Request.Op(name: op.name) == op) }
        #expect(Request.Op(name: "unknown") == .unknown)
        #expect(Request.Op(name: "") == .unknown)
    }
}
