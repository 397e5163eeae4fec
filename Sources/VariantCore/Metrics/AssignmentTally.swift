import Synchronization

/// How many `assign` answers enrolled a unit in each variant of one configuration, counted without a lock.
///
/// Counting an assignment is on every request's path, so it is one relaxed atomic add on a counter found by index
/// (`LoadedConfig` makes one tally per document). The ledger folds the counts into its aggregates by name when
/// anyone reads them (`ExperimentLedger.aggregates(experiment:)`, the persisted state, `generation`), and a tally
/// that is no longer referenced by any snapshot folds what is left when it is released, so no count is lost when a
/// configuration is replaced.
/// `@unchecked Sendable`: `counters` is written only through its atomics, and the pointer never changes; `ledger`
/// is behind its `Mutex`.
public final class AssignmentTally: @unchecked Sendable {
    /// Experiment names, and the variant names of each, in document order.
    private let names: [(experiment: String, variants: [String])]
    /// Where each experiment's counters start in `counters`.
    private let offsets: [Int]
    private let counters: UnsafeMutablePointer<Atomic<Int>>
    private let counterCount: Int
    /// The ledger that receives the counts, once one adopts this tally.
    private let ledger = Mutex<ExperimentLedger?>(nil)
    /// Whether a ledger adopted this tally: checked without the lock on every count.
    private let adopted = Atomic<Bool>(false)

    public init(document: ConfigDocument) {
        names = document.experiments.map { experiment in (experiment.name, experiment.variants.map(\.name)) }
        var offsets: [Int] = []
        var total = 0
        for entry in names {
            offsets.append(total)
            total += entry.variants.count
        }
        self.offsets = offsets
        counterCount = total
        counters = .allocate(capacity: max(total, 1))
        for index in 0..<total { (counters + index).initialize(to: Atomic(0)) }
    }

    deinit {
        let rest = drain()
        if !rest.isEmpty, let ledger = ledger.withLock({ $0 }) { ledger.add(assignmentCounts: rest) }
        counters.deinitialize(count: counterCount)
        counters.deallocate()
    }

    /// Counts one enrolled unit, for `ledger` (which adopts this tally on its first count).
    @inline(__always)
    public func countAssignment(experimentIndex: Int, variantIndex: Int, for ledger: ExperimentLedger) {
        counters[offsets[experimentIndex] + variantIndex].wrappingAdd(1, ordering: .relaxed)
        if !adopted.load(ordering: .acquiring) { ledger.adopt(self) }
    }

    /// Takes the counts gathered since the last drain, leaving zeros; only variants with a count appear.
    func drain() -> [(key: ExperimentLedger.VariantKey, count: Int)] {
        var counts: [(key: ExperimentLedger.VariantKey, count: Int)] = []
        for (experimentIndex, entry) in names.enumerated() {
            for (variantIndex, variant) in entry.variants.enumerated() {
                let count = counters[offsets[experimentIndex] + variantIndex].exchange(0, ordering: .relaxed)
                if count > 0 { counts.append((.init(experiment: entry.experiment, variant: variant), count)) }
            }
        }
        return counts
    }

    /// Makes `ledger` the receiver of the counts left when this tally is released.
    func attach(to ledger: ExperimentLedger) {
        self.ledger.withLock { $0 = ledger }
        adopted.store(true, ordering: .releasing)
    }
}
