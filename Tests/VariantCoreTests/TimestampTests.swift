import Testing
@testable import VariantCore

@Suite struct TimestampTests {
    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2026-11-01T00:00:00Z", 1_793_491_200.0),
        ("2026-11-01t00:00:00z", 1_793_491_200.0),
        ("2026-11-01T02:00:00+02:00", 1_793_491_200.0),
        ("2026-10-31T19:30:00-04:30", 1_793_491_200.0),
        ("2024-02-29T12:00:00.25Z", 1_709_208_000.25),
        ("1969-12-31T23:59:59Z", -1.0),
    ])
    func parsesRFC3339(text: String, seconds: Double) {
        #expect(Timestamp(rfc3339: text)?.secondsSinceEpoch == seconds)
    }

    @Test(arguments: [
        "2026-11-01", "2026-11-01T00:00:00", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-11-01T24:00:00Z", "2026-11-01T00:00:00+2:00", "2026-11-01T00:00:00.Z", "2026-11-01T00:00:00Zjunk",
        "26-11-01T00:00:00Z", "2026-11-01 00:00:00Z", "2026-12-31T23:59:60Z",
    ])
    func rejectsAnythingElse(text: String) {
        #expect(Timestamp(rfc3339: text) == nil)
    }

    @Test func formatsInUTCToTheSecond() {
        #expect(Timestamp(secondsSinceEpoch: 1_793_491_200.9).rfc3339 == "2026-11-01T00:00:00Z")
        #expect(Timestamp(secondsSinceEpoch: -1).rfc3339 == "1969-12-31T23:59:59Z")
        #expect(Timestamp(secondsSinceEpoch: 951_782_400).rfc3339 == "2000-02-29T00:00:00Z")
    }
}
