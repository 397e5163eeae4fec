import Testing
@testable import VariantCore

/// Numbers for people: logs print `stats.alpha=0.05`, not `number(0.05)`, and p-values without binary noise
/// (issue 16, "Errors that say what to do").
@Suite struct ReadableTests {
    @Test(arguments: [
        (7.706999999999995e-154, "7.707e-154"), (0.05, "0.05"), (0.123456, "0.1235"), (12.5, "12.5"), (1234.0, "1234"),
        (123_456.0, "123500"), (99.995, "100"), (-0.000_123_44, "-0.0001234"), (5e-7, "5e-7"), (2.5e15, "2.5e15"),
        (4.9e-324, "4.941e-324"), (1.0, "1"),
    ])
    func fourSignificantDigitsShowNoBinaryNoise(value: Double, expected: String) {
        #expect(Readable.fourSignificantDigits(value) == expected)
    }

    @Test(arguments: [
        (JSONValue.number(0.05), "0.05"), (.number(1000), "1000"), (.number(7.706999999999995e-154), "7.707e-154"),
        (.string("error_rate"), "error_rate"), (.bool(true), "true"), (.null, "null"),
        (.array([.number(1), .string("a")]), #"[1,"a"]"#),
    ])
    func plainDescriptionIsWhatALogLineShows(value: JSONValue, expected: String) {
        #expect(value.plainDescription == expected)
    }

    @Test func numbersPrintAsTyped() {
        #expect(Readable.number(86_400_000) == "86400000")
        #expect(Readable.number(-1e12) == "-1000000000000")
        #expect(Readable.number(0.25) == "0.25")
        #expect(Readable.number(1e200) == "1e+200")
    }
}
