import Foundation
import Testing
@testable import VariantCore

/// Shadow mode: everyone is served the control; the treatment only runs in the background and is measured.
@Suite struct ShadowModeTests {
    static func snapshot(mode: String) throws -> ServingSnapshot {
        let text = RecordTests.document.replacingOccurrences(of: #"{"name":"e","salt":"s","status":"running","#, with: #"{"name":"e","salt":"s","status":"running","mode":"\#(mode)","#)
        let bytes = Array(text.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "test", loadedAt: someInstant)
        return ServingSnapshot(config: config, source: "test", lastError: nil, startedAt: someInstant)
    }

    func answer(_ line: String, _ snapshot: ServingSnapshot, _ context: RequestContext = .detached()) throws -> JSONObject {
        try #require(try parseJSON(Responder.respond(to: line, snapshot: snapshot, now: someInstant, context: context)).objectValue)
    }

    @Test func everyoneGetsTheControlAndTheTreatmentOnlyAsAShadow() throws {
        let live = try Self.snapshot(mode: "live")
        let shadow = try Self.snapshot(mode: "shadow")
        var shadowsSeen = 0
        for index in 0..<200 {
            let line = #"{"op":"assign","experiment":"e","unit":"user-\#(index)"}"#
            let liveAnswer = try answer(line, live)
            let shadowAnswer = try answer(line, shadow)
            #expect(shadowAnswer["variant"] == .string("control"))
            #expect(shadowAnswer["prompt_version"] == .number(1))
            #expect(shadowAnswer["enrolled"] == .bool(true))
            #expect(shadowAnswer["reason"] == .string("shadow"))
            #expect(liveAnswer["shadow"] == nil)
            if liveAnswer["variant"] == .string("treatment") {
                let object = try #require(shadowAnswer["shadow"]?.objectValue)
                #expect(object["variant"] == .string("treatment"))
                #expect(object["prompt_version"] == .number(2))
                shadowsSeen += 1
            } else {
                #expect(shadowAnswer["shadow"] == .null)
            }
        }
        #expect(shadowsSeen > 60 && shadowsSeen < 140)
    }

    @Test func shadowResultsAreRecordedForTheTreatmentAndLiveOnesForTheControl() throws {
        let snapshot = try Self.snapshot(mode: "shadow")
        let context = RequestContext.detached()
        func code(_ line: String) throws -> String? {
            try answer(line, snapshot, context)["error"]?.objectValue?["code"]?.stringValue
        }
        #expect(try code(#"{"op":"record","experiment":"e","variant":"treatment","shadow":true,"metrics":{"latency_ms":900}}"#) == nil)
        #expect(try code(#"{"op":"record","experiment":"e","variant":"control","metrics":{"latency_ms":600}}"#) == nil)
        #expect(try code(#"{"op":"record","experiment":"e","variant":"treatment","metrics":{"latency_ms":900}}"#) == "not_shadow")
        #expect(try code(#"{"op":"record","experiment":"e","variant":"control","shadow":true,"metrics":{"latency_ms":900}}"#) == "not_shadow")

        let treatmentUnit = try #require((0..<100).map { "user-\($0)" }.first { unit in
            (try? answer(#"{"op":"assign","experiment":"e","unit":"\#(unit)"}"#, snapshot)["shadow"]?.objectValue) != nil
        })
        let recorded = try answer(#"{"op":"record","experiment":"e","unit":"\#(treatmentUnit)","shadow":true,"metrics":{"latency_ms":1000}}"#, snapshot, context)
        #expect(recorded["variant"] == .string("treatment"))
        let aggregates = context.ledger.aggregates(experiment: "e")
        #expect(aggregates["treatment"]?.shadowRecords == 2)
        #expect(aggregates["treatment"]?.latencyMilliseconds.mean == 950)
        #expect(aggregates["control"]?.records == 1 && aggregates["control"]?.shadowRecords == 0)
    }

    @Test func aDisabledTreatmentStopsRunningInTheShadow() throws {
        let snapshot = try Self.snapshot(mode: "shadow")
            .withDisabled([ExperimentLedger.VariantKey(experiment: "e", variant: "treatment")])
        for index in 0..<50 {
            let reply = try answer(#"{"op":"assign","experiment":"e","unit":"user-\#(index)"}"#, snapshot)
            #expect(reply["shadow"] == .null)
            #expect(reply["variant"] == .string("control"))
        }
    }
}
