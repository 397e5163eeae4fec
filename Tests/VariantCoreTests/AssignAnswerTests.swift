import Testing
@testable import VariantCore

/// The assign answer's per-request members are encoded once per pair; they must be what the field writer writes.
@Suite struct AssignAnswerTests {
    @Test(arguments: AssignmentReason.allCases, [false, true])
    func theEncodedDecisionIsWhatTheFieldWriterWrites(reason: AssignmentReason, enrolled: Bool) {
        var expected = JSONWriter()
        expected.members { decision in
            decision.field("enrolled", enrolled)
            decision.field("reason", reason.rawValue)
        }
        #expect(AssignAnswer.decisionMembers(enrolled: enrolled, reason: reason) == expected.bytes)
        #expect(
            String(decoding: AssignAnswer.decisionMembers(enrolled: enrolled, reason: reason), as: UTF8.self)
                == #","enrolled":\#(enrolled),"reason":"\#(reason.rawValue)""#)
    }
}
