import Testing
@testable import VariantCore

/// Errors that say what to do: a mistyped name is answered with the names it was likely meant to be (issue 16,
/// "Errors that say what to do").
@Suite struct NearNamesTests {
    @Test(arguments: [
        ("handover-sumary", ["handover-summary", "handover-summary-v2", "checkout"], ["handover-summary", "handover-summary-v2"]),
        ("exposre", ["exposure", "status", "mode"], ["exposure"]),
        ("stauts", ["status", "start", "stats"], ["status", "stats", "start"]),  // a swap of neighbours costs one edit
        ("checkout", ["handover-summary"], []),
        ("ab", ["cd", "abc"], ["abc"]),
        ("e", ["e"], []),  // the same name is not a suggestion
    ])
    func nearNamesAreFoundNearestFirst(typed: String, candidates: [String], expected: [String]) {
        #expect(NearNames.near(typed, among: candidates) == expected)
    }

    @Test func anUnknownExperimentListsTheNearNames() throws {
        let answer = Responder.respond(
            to: #"{"id":1,"op":"stats","experiment":"paused2"}"#, snapshot: try RecordTests.snapshot(), now: someInstant,
            context: .detached())
        let error = try #require(try parseJSON(answer).objectValue?["error"]?.objectValue)
        #expect(error["code"] == .string("unknown_experiment"))
        let message = try #require(error["message"]?.stringValue)
        #expect(message.hasPrefix("no experiment named 'paused2' in config ") && message.hasSuffix(" (did you mean 'paused'?)"))
        let far = Responder.respond(
            to: #"{"id":1,"op":"assign","experiment":"zzzzzzz","unit":"u"}"#, snapshot: try RecordTests.snapshot(),
            now: someInstant, context: .detached())
        #expect(far.contains("unknown_experiment") && !far.contains("did you mean"))
    }

    @Test func anUnknownFieldSuggestsTheFieldItWasLikelyMeantToBe() {
        let found = issues(
            of: documentWithExperiment(
                #""name":"e","salt":"s","status":"running","exposre":50,"guardrails":{"alpah":0.1},"variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#
            ))
        #expect(
            found.map(\.message).sorted() == [
                "unknown field 'alpah' (did you mean 'alpha'?)", "unknown field 'exposre' (did you mean 'exposure'?)",
            ])
        let unlike = issues(
            of: documentWithExperiment(
                #""name":"e","salt":"s","status":"running","colour":"red","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#
            ))
        #expect(unlike.map(\.message) == ["unknown field 'colour'"])
    }
}
