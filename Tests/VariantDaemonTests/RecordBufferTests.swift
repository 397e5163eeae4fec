import Testing
@testable import VariantClient

/// The Swift shim's record buffer without its sender thread: the bound `record` never blocks on.
@Suite struct RecordBufferTests {
    @Test func theBufferHoldsItsCapacityAndCountsTheRestAsDropped() {
        let shared = SharedRecordState()
        let record = Array(#"{"experiment":"e","variant":"v","metrics":{"error":false}}"#.utf8)
        let accepted = (0..<1000).filter { _ in shared.append(record, capacity: 100) }.count
        #expect(accepted == 100)
        #expect(shared.counters.dropped == 900)
        #expect(shared.pending == 100)
        // The sender takes what is buffered (being sent still counts as pending), and there is room again.
        #expect(shared.take()?.count == 100)
        #expect(shared.pending == 100)
        #expect(shared.append(record, capacity: 100))
        shared.finishSending(sent: 100, dropped: 0, rejected: 0)
        #expect(shared.pending == 1)
        #expect(shared.counters.sent == 100)
        // Once closed, nothing more is buffered, and what is refused is counted.
        shared.close()
        #expect(!shared.append(record, capacity: 100))
        #expect(shared.counters.dropped == 901)
    }
}
