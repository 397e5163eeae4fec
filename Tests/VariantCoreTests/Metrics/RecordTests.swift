import Testing
@testable import VariantCore

/// `record` and `batch`: every measurement is checked before it reaches an aggregate.
@Suite struct RecordTests {
    /// A 50/50 experiment `e` (control `control`, treatment `treatment`) and a paused one.
    static let document = """
        {"schema_version":1,
         "prompts":{"p":{"versions":[{"version":1,"template":"one"},{"version":2,"template":"two"}]}},
         "experiments":[
          {"name":"e","salt":"s","status":"running","variants":[
            {"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},
            {"name":"treatment","weight":50,"prompt":"p","prompt_version":2}]},
          {"name":"paused","salt":"s","status":"paused","variants":[
            {"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},
            {"name":"other","weight":50,"prompt":"p","prompt_version":2}]}]}
        """

    static func snapshot() throws -> ServingSnapshot {
        let bytes = Array(document.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "test",
            loadedAt: someInstant)
        return ServingSnapshot(config: config, source: "test", lastError: nil, startedAt: someInstant)
    }

    func answer(_ line: String, _ context: RequestContext, snapshot: ServingSnapshot? = nil) throws -> JSONObject {
        let text = Responder.respond(to: line, snapshot: try snapshot ?? Self.snapshot(), now: someInstant, context: context)
        return try #require(try parseJSON(text).objectValue)
    }

    func errorCode(_ answer: JSONObject) -> String? {
        answer["error"]?.objectValue?["code"]?.stringValue
    }

    @Test func aRecordAddsEveryMeasurementToItsVariant() throws {
        let context = RequestContext.detached()
        let reply = try answer(
            #"{"id":1,"op":"record","experiment":"e","variant":"treatment","metrics":{"latency_ms":120.5,"error":true,"success":0.25,"cost_usd":0.002,"tokens":700,"custom":{"rating":4}}}"#,
            context)
        #expect(reply["ok"] == .bool(true))
        #expect(reply["variant"] == .string("treatment"))
        let aggregate = try #require(context.ledger.aggregates(experiment: "e")["treatment"])
        #expect(aggregate.records == 1)
        #expect(aggregate.errors == ProportionCounts(trials: 1, successes: 1))
        #expect(aggregate.success == ProportionCounts(trials: 1, successes: 0.25))
        #expect(aggregate.latencyMilliseconds.mean == 120.5)
        #expect(aggregate.costUSD.mean == 0.002)
        #expect(aggregate.tokens.mean == 700)
        #expect(aggregate.custom["rating"]?.mean == 4)
        #expect(try #require(aggregate.latencyPercentile(50)) == 120.5)
        #expect(context.ledger.aggregates(experiment: "e")["control"] == nil)
    }

    @Test(arguments: [
        (#"{"latency_ms":-1}"#, "invalid_metric"),
        (#"{"latency_ms":1e999}"#, "invalid_json"),  // the parser refuses numbers that overflow a double
        (#"{"latency_ms":"12"}"#, "invalid_metric"),
        (#"{"latency_ms":90000000}"#, "invalid_metric"),
        (#"{"error":1}"#, "invalid_metric"),
        (#"{"success":1.5}"#, "invalid_metric"),
        (#"{"success":-0.1}"#, "invalid_metric"),
        (#"{"cost_usd":-0.01}"#, "invalid_metric"),
        (#"{"tokens":1.5}"#, "invalid_metric"),
        (#"{"tokens":-3}"#, "invalid_metric"),
        (#"{"custom":{"bad name":1}}"#, "invalid_metric"),
        (#"{"custom":{"score":null}}"#, "invalid_metric"),
        (#"{"custom":[1]}"#, "invalid_metric"),
        (#"{"latency":12}"#, "unknown_metric"),
        (#"{}"#, "missing_field"),
    ])
    func aBadMeasurementRefusesTheWholeRecord(metrics: String, code: String) throws {
        let context = RequestContext.detached()
        let reply = try answer(#"{"id":2,"op":"record","experiment":"e","variant":"control","metrics":\#(metrics)}"#, context)
        #expect(reply["ok"] == .bool(false))
        #expect(errorCode(reply) == code)
        // A value out of its range is counted as such (MetricRangeTests); nothing reaches the statistics.
        #expect(context.ledger.aggregates(experiment: "e").values.allSatisfy { $0.records == 0 && $0.latencyMilliseconds.isEmpty })
    }

    @Test func aRecordByUnitGoesToTheUnitsVariantAndAnUnenrolledUnitIsRefused() throws {
        let context = RequestContext.detached()
        let snapshot = try Self.snapshot()
        let experiment = try #require(snapshot.config?.document.experiment(named: "e"))
        let expected = experiment.variants[experiment.assign(unit: "user-7", attributes: noAttributes, now: someInstant).variantIndex].name
        let reply = try answer(#"{"op":"record","experiment":"e","unit":"user-7","metrics":{"error":false}}"#, context)
        #expect(reply["variant"] == .string(expected))
        #expect(context.ledger.aggregates(experiment: "e")[expected]?.errors.trials == 1)

        let paused = try answer(#"{"op":"record","experiment":"paused","unit":"user-7","metrics":{"error":false}}"#, context)
        #expect(errorCode(paused) == "not_enrolled")
    }

    @Test func unknownNamesAndMisusedFieldsHaveTheirOwnCodes() throws {
        let context = RequestContext.detached()
        #expect(errorCode(try answer(#"{"op":"record","experiment":"nope","variant":"control","metrics":{"error":true}}"#, context)) == "unknown_experiment")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"nope","metrics":{"error":true}}"#, context)) == "unknown_variant")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","metrics":{"error":true}}"#, context)) == "missing_field")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"control","unit":"u","attributes":{"plan":"pro"},"metrics":{"error":true}}"#, context)) == "invalid_field")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"control","unit":"","metrics":{"error":true}}"#, context)) == "invalid_field")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"treatment","shadow":true,"metrics":{"error":true}}"#, context)) == "not_shadow")
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"control","metrics":{"error":true},"extra":1}"#, context)) == "unknown_field")
        let noConfig = ServingSnapshot(config: nil, source: "test", lastError: nil, startedAt: someInstant)
        #expect(errorCode(try answer(#"{"op":"record","experiment":"e","variant":"control","metrics":{"error":true}}"#, context, snapshot: noConfig)) == "no_config")
        #expect(context.ledger.aggregates(experiment: "e").isEmpty)
    }

    @Test func ackFalseIsAnsweredOnlyWhenTheRecordIsRefused() throws {
        let context = RequestContext.detached()
        let snapshot = try Self.snapshot()
        #expect(Responder.respond(to: #"{"op":"record","ack":false,"experiment":"e","variant":"control","metrics":{"error":true}}"#, snapshot: snapshot, now: someInstant, context: context) == "")
        #expect(Responder.respond(to: #"{"op":"record","ack":false,"experiment":"e","variant":"x","metrics":{"error":true}}"#, snapshot: snapshot, now: someInstant, context: context).contains("unknown_variant"))
        #expect(context.ledger.aggregates(experiment: "e")["control"]?.records == 1)
    }

    @Test func aBatchRecordsTheGoodEntriesAndReportsTheBadOnesByIndex() throws {
        let context = RequestContext.detached()
        let reply = try answer(
            #"{"id":3,"op":"batch","records":[{"experiment":"e","variant":"control","metrics":{"error":true}},{"experiment":"e","variant":"nope","metrics":{"error":false}},7,{"experiment":"e","variant":"treatment","metrics":{"latency_ms":-5}},{"experiment":"e","variant":"treatment","metrics":{"error":false}}]}"#,
            context)
        #expect(reply["recorded"] == .number(2))
        let rejected = try #require(reply["rejected"]?.arrayValue).compactMap { $0.objectValue }
        #expect(rejected.map { $0["index"] } == [.number(1), .number(2), .number(3)])
        #expect(rejected.map { $0["code"] } == [.string("unknown_variant"), .string("invalid_field"), .string("invalid_metric")])
        let aggregates = context.ledger.aggregates(experiment: "e")
        #expect(aggregates["control"]?.records == 1)
        #expect(aggregates["treatment"]?.records == 1)
    }

    @Test func aVariantKeepsAtMostThirtyTwoCustomMetricNames() throws {
        let context = RequestContext.detached()
        for index in 0..<32 {
            let reply = try answer(#"{"op":"record","experiment":"e","variant":"control","metrics":{"custom":{"m\#(index)":1}}}"#, context)
            #expect(reply["ok"] == .bool(true))
        }
        let refused = try answer(#"{"op":"record","experiment":"e","variant":"control","metrics":{"error":false,"custom":{"one-more":1}}}"#, context)
        #expect(errorCode(refused) == "too_many_metrics")
        #expect(context.ledger.aggregates(experiment: "e")["control"]?.records == 32)
    }
}
