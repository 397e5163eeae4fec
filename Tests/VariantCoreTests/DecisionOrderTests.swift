import Testing
@testable import VariantCore

@Suite struct DecisionOrderTests {
    static func decide(_ members: String, attributes: String = "{}", now: String = "2026-11-23T12:00:00Z") throws
        -> (variant: String, enrolled: Bool, reason: AssignmentReason)
    {
        let document = try validDocument(
            documentWithExperiment(
                #""name":"e","salt":"s",\#(members),"variants":[{"name":"control","control":true,"weight":0,"prompt":"p","prompt_version":1},{"name":"treatment","weight":100,"prompt":"p","prompt_version":2}]"#
            ))
        let experiment = document.experiments[0]
        let assignment = experiment.assign(
            unit: "u1", attributes: try parseJSON(attributes).objectValue!, now: Timestamp(rfc3339: now)!)
        return (experiment.variants[assignment.variantIndex].name, assignment.enrolled, assignment.reason)
    }

    @Test(arguments: [
        (#""status":"draft""#, "{}", "control", false, AssignmentReason.draft),
        (#""status":"paused""#, "{}", "control", false, .paused),
        (#""status":"completed","winner":"treatment""#, "{}", "treatment", false, .completed),
        (#""status":"running","start":"2026-12-01T00:00:00Z""#, "{}", "control", false, .notStarted),
        (#""status":"running","end":"2026-11-23T12:00:00Z""#, "{}", "control", false, .ended),
        (#""status":"running","start":"2026-11-23T12:00:00Z""#, "{}", "treatment", true, .assigned),
        (#""status":"running","targeting":[{"attribute":"plan","op":"eq","value":"pro"}]"#, #"{"plan":"free"}"#, "control", false, .notTargeted),
        (#""status":"running","targeting":[{"attribute":"plan","op":"eq","value":"pro"}]"#, #"{"plan":"pro"}"#, "treatment", true, .assigned),
        (#""status":"running","exposure":0"#, "{}", "control", false, .outsideExposure),
        (#""status":"running""#, "{}", "treatment", true, .assigned),
    ])
    func followsTheDecisionOrder(
        members: String, attributes: String, variant: String, enrolled: Bool, reason: AssignmentReason
    ) throws {
        let decision = try Self.decide(members, attributes: attributes)
        #expect(decision.variant == variant)
        #expect(decision.enrolled == enrolled)
        #expect(decision.reason == reason)
    }

    @Test(arguments: [
        (#"{"attribute":"n","op":"eq","value":1}"#, #"{"n":1.0}"#, true),
        (#"{"attribute":"n","op":"eq","value":1}"#, #"{"n":true}"#, false),
        (#"{"attribute":"n","op":"eq","value":true}"#, #"{"n":1}"#, false),
        (#"{"attribute":"n","op":"ne","value":"x"}"#, #"{}"#, false),
        (#"{"attribute":"n","op":"ne","value":"x"}"#, #"{"n":"y"}"#, true),
        (#"{"attribute":"n","op":"in","values":["a",2]}"#, #"{"n":2}"#, true),
        (#"{"attribute":"n","op":"in","values":["a",2]}"#, #"{"n":"2"}"#, false),
        (#"{"attribute":"n","op":"not_in","values":["a"]}"#, #"{}"#, false),
        (#"{"attribute":"n","op":"not_in","values":["a"]}"#, #"{"n":"b"}"#, true),
        (#"{"attribute":"n","op":"lt","value":18}"#, #"{"n":17.5}"#, true),
        (#"{"attribute":"n","op":"lt","value":18}"#, #"{"n":18}"#, false),
        (#"{"attribute":"n","op":"lte","value":18}"#, #"{"n":18}"#, true),
        (#"{"attribute":"n","op":"gt","value":18}"#, #"{"n":"19"}"#, false),
        (#"{"attribute":"n","op":"gte","value":18}"#, #"{"n":18}"#, true),
    ])
    func targetingRulesMatchByJSONType(rule: String, attributes: String, matches: Bool) throws {
        let decision = try Self.decide(#""status":"running","targeting":[\#(rule)]"#, attributes: attributes)
        #expect(decision.enrolled == matches)
        #expect(decision.reason == (matches ? .assigned : .notTargeted))
    }
}
