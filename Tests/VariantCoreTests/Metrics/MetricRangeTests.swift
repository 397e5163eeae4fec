import Foundation
import Testing
@testable import VariantCore

/// Plausible ranges: a finite but absurd value is refused and counted, and no value accepted can make a statistic
/// (or the state file) non-finite (issue 16, item 1).
@Suite struct MetricRangeTests {
    func answer(_ line: String, _ context: RequestContext, document: String = RecordTests.document) throws -> JSONObject {
        let bytes = Array(document.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "test",
            loadedAt: someInstant)
        let snapshot = ServingSnapshot(config: config, source: "test", lastError: nil, startedAt: someInstant)
        let text = Responder.respond(to: line, snapshot: snapshot, now: someInstant, context: context)
        return try #require(try parseJSON(text).objectValue)
    }

    func record(_ metrics: String, _ context: RequestContext, document: String = RecordTests.document) throws -> JSONObject {
        try answer(#"{"id":1,"op":"record","experiment":"e","variant":"treatment","metrics":\#(metrics)}"#, context, document: document)
    }

    @Test(arguments: [
        (#"{"cost_usd":1e200}"#, "'cost_usd' must be from 0 to 1000, found 1e+200"),
        (#"{"cost_usd":-0.01}"#, "'cost_usd' must be from 0 to 1000, found -0.01"),
        (#"{"tokens":650000000000000}"#, "'tokens' must be from 0 to 10000000, found 650000000000000"),
        (#"{"latency_ms":90000000}"#, "'latency_ms' must be from 0 to 86400000, found 90000000"),
        (#"{"custom":{"score":1e308}}"#, "'custom.score' must be from -1000000000000 to 1000000000000, found 1e+308"),
    ])
    func aValueOutsideItsRangeIsRefusedNamingTheRangeAndCounted(metrics: String, message: String) throws {
        let context = RequestContext.detached()
        let reply = try record(metrics, context)
        #expect(reply["error"]?.objectValue?["code"] == .string("invalid_metric"))
        #expect(reply["error"]?.objectValue?["message"] == .string(message))
        let aggregate = try #require(context.ledger.aggregates(experiment: "e")["treatment"])
        #expect(aggregate.records == 0 && aggregate.outOfRange == 1)
        let stats = try answer(#"{"op":"stats","experiment":"e"}"#, context)
        let treatment = try #require(stats["variants"]?.arrayValue?.compactMap(\.objectValue).first { $0["name"] == .string("treatment") })
        #expect(treatment["out_of_range"] == .number(1))
    }

    @Test func theIssuesHugeCostThenZeroLeavesFiniteStatisticsAndALoadableStateFile() throws {
        let context = RequestContext.detached()
        _ = try record(#"{"cost_usd":1e200}"#, context)
        _ = try record(#"{"cost_usd":0}"#, context)
        _ = try record(#"{"cost_usd":999}"#, context)
        let cost = try #require(context.ledger.aggregates(experiment: "e")["treatment"]).costUSD
        #expect(cost.count == 2 && cost.mean == 499.5 && cost.m2.isFinite)
        let saved = context.ledger.encodedState(savedAt: someInstant).bytes
        let restored = ExperimentLedger()
        #expect(try restored.restore(from: saved).isEmpty)
        #expect(restored.encodedState(savedAt: someInstant).bytes == saved)
    }

    @Test func anExperimentGivesACustomMetricItsOwnRange() throws {
        let document = RecordTests.document.replacingOccurrences(
            of: #""salt":"s","status":"running","#,
            with: #""salt":"s","status":"running","metric_ranges":{"bytes":{"min":0,"max":1e15},"rating":{"min":1,"max":5}},"#)
        let context = RequestContext.detached()
        #expect(try record(#"{"custom":{"bytes":5e14}}"#, context, document: document)["ok"] == .bool(true))
        #expect(try record(#"{"custom":{"rating":5}}"#, context, document: document)["ok"] == .bool(true))
        let refused = try record(#"{"custom":{"rating":6}}"#, context, document: document)
        #expect(refused["error"]?.objectValue?["message"] == .string("'custom.rating' must be from 1 to 5, found 6"))
        // Another custom metric keeps the default range.
        #expect(try record(#"{"custom":{"other":2e12}}"#, context, document: document)["ok"] == .bool(false))
        #expect(context.ledger.aggregates(experiment: "e")["treatment"]?.outOfRange == 2)
    }

    @Test(arguments: [
        (#"{"rating":{"min":5,"max":1}}"#, "$.experiments[0].metric_ranges.rating.max", "invalid_value"),
        (#"{"rating":{"min":0,"max":1e16}}"#, "$.experiments[0].metric_ranges.rating.max", "invalid_value"),
        (#"{"rating":{"min":0}}"#, "$.experiments[0].metric_ranges.rating.max", "missing_field"),
        (#"{"rating":{"min":0,"max":5,"step":1}}"#, "$.experiments[0].metric_ranges.rating.step", "unknown_field"),
        (#"{"bad name":{"min":0,"max":5}}"#, "$.experiments[0].metric_ranges.bad name", "invalid_value"),
        (#"{"rating":[0,5]}"#, "$.experiments[0].metric_ranges.rating", "wrong_type"),
    ])
    func badMetricRangesAreRefusedByValidation(ranges: String, path: String, code: String) throws {
        let document = RecordTests.document.replacingOccurrences(
            of: #""salt":"s","status":"running","#, with: #""salt":"s","status":"running","metric_ranges":\#(ranges),"#)
        let found = issues(of: document)
        #expect(found.contains { $0.path == path && $0.code.rawValue == code }, "\(found)")
    }

    @Test func runningMomentsRefuseAValueOrAMergeThatWouldOverflowThem() {
        var moments = RunningMoments()
        let first = moments.add(1e308)
        let opposite = moments.add(-1e308)  // the deviation itself overflows
        #expect(first && !opposite)
        #expect(moments == RunningMoments([1e308]))
        var huge = RunningMoments([1e200])
        let negated = huge.add(-1e200)  // the mean would be finite, m2 not
        #expect(!negated && huge.count == 1 && huge.m2 == 0)
        var merged = RunningMoments([1e200])
        let overflowing = merged.merge(RunningMoments([-1e200]))
        #expect(!overflowing && merged == RunningMoments([1e200]))
        var moderate = RunningMoments([1e150])
        let fitting = moderate.merge(RunningMoments([3e149]))
        #expect(fitting && moderate.m2.isFinite && moderate.count == 2)
    }
}
