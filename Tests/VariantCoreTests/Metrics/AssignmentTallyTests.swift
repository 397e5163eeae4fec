import Testing
@testable import VariantCore

/// Assignment counts: counted without a lock on the request path, yet every enrolled answer reaches the ledger,
/// across config changes and concurrent readers.
@Suite struct AssignmentTallyTests {
    func assign(_ unit: String, _ snapshot: ServingSnapshot, _ ledger: ExperimentLedger) throws -> JSONObject {
        let line = #"{"op":"assign","experiment":"e","unit":"\#(unit)"}"#
        let text = Responder.respond(to: line, snapshot: snapshot, now: someInstant, context: .detached(ledger: ledger))
        return try #require(try parseJSON(text).objectValue)
    }

    /// The variants the answers named, counted by name.
    func tally(of answers: [JSONObject]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for answer in answers { counts[answer["variant"]?.stringValue ?? "?", default: 0] += 1 }
        return counts
    }

    @Test func everyEnrolledAnswerIsCountedForItsVariant() throws {
        let ledger = ExperimentLedger()
        let snapshot = try RecordTests.snapshot()
        let answers = try (0..<500).map { try assign("user-\($0)", snapshot, ledger) }
        let counts = ledger.aggregates(experiment: "e").mapValues(\.assignments)
        #expect(counts == tally(of: answers))
        #expect(counts.values.reduce(0, +) == 500)
    }

    @Test func countsUnderAReplacedConfigAreKeptWhenItsSnapshotIsReleased() throws {
        let ledger = ExperimentLedger()
        var answers: [JSONObject] = []
        do {
            let first = try RecordTests.snapshot()
            answers += try (0..<300).map { try assign("user-\($0)", first, ledger) }
            // Nobody reads the aggregates before the first config goes away.
        }
        let second = try RecordTests.snapshot()
        answers += try (300..<700).map { try assign("user-\($0)", second, ledger) }
        #expect(ledger.aggregates(experiment: "e").mapValues(\.assignments) == tally(of: answers))
    }

    @Test func aNewCountIsAChangeToPersist() throws {
        let ledger = ExperimentLedger()
        let snapshot = try RecordTests.snapshot()
        _ = try assign("user-1", snapshot, ledger)
        let before = ledger.generation
        #expect(ledger.generation == before)
        _ = try assign("user-2", snapshot, ledger)
        #expect(ledger.generation != before)
    }

    @Test func concurrentCountsAndReadsLoseNothing() async throws {
        let ledger = ExperimentLedger()
        let snapshot = try RecordTests.snapshot()
        let tally = try #require(snapshot.config?.assignmentTally)
        let perTask = 20_000
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<4 {
                group.addTask {
                    for _ in 0..<perTask {
                        tally.countAssignment(
                            experimentIndex: 0, variantIndex: task % 2, unitHash: UInt64(task), for: ledger)
                    }
                }
            }
            group.addTask {
                for _ in 0..<200 { _ = ledger.aggregates(experiment: "e") }
            }
        }
        let counts = ledger.aggregates(experiment: "e").mapValues(\.assignments)
        #expect(counts == ["control": 2 * perTask, "treatment": 2 * perTask])
    }
}
