import Synchronization

/// How many `assign` answers enrolled a unit in each variant of one configuration, and which distinct units they
/// were, counted on the request path without the ledger's lock.
///
/// Counting an assignment is on every request's path, so it is one relaxed atomic add on a counter found by index
/// (`LoadedConfig` makes one tally per document), and a unit enters the experiment's distinct-unit sample only when
/// its hash is below the sample's threshold (one relaxed atomic load; a lock only for the few that enter). The
/// ledger folds both into the phase of the configuration they were counted for when anyone reads them
/// (`ExperimentLedger.aggregates(experiment:)`, the persisted state, `generation`), and a tally that is no longer
/// referenced by any snapshot folds what is left when it is released, so no count is lost when a configuration is
/// replaced.
/// `@unchecked Sendable`: `counters` and `thresholds` are written only through their atomics and the pointers never
/// change; `units` and `ledger` are behind their `Mutex`es.
public final class AssignmentTally: @unchecked Sendable {
    /// Experiment names, and the variant names of each, in document order.
    private let names: [(experiment: String, variants: [String])]
    /// The phase definition of each experiment of the configuration.
    public let definitions: [PhaseDefinition]
    /// When the configuration was loaded: counting began then.
    let countedSince: Timestamp
    /// Where each experiment's counters start in `counters`.
    private let offsets: [Int]
    private let counters: UnsafeMutablePointer<Atomic<Int>>
    private let counterCount: Int
    /// Each experiment's distinct units since the configuration was loaded (or its last new phase), and whether
    /// the sample changed since the ledger last gathered it.
    private let units: Mutex<[(sample: DistinctUnitSample, changed: Bool)]>
    /// Each experiment's `units` threshold, read without the lock: a unit whose hash is not below it cannot enter.
    private let thresholds: UnsafeMutablePointer<Atomic<UInt64>>
    /// The ledger that receives the counts, once one adopts this tally.
    private let ledger = Mutex<ExperimentLedger?>(nil)
    /// Whether a ledger adopted this tally: checked without the lock on every count.
    private let adopted = Atomic<Bool>(false)

    public init(document: ConfigDocument, countedSince: Timestamp = Timestamp(secondsSinceEpoch: 0)) {
        self.countedSince = countedSince
        names = document.experiments.map { experiment in (experiment.name, experiment.variants.map(\.name)) }
        definitions = document.experiments.map(PhaseDefinition.init)
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
        units = Mutex(names.map { _ in (DistinctUnitSample(), false) })
        thresholds = .allocate(capacity: max(names.count, 1))
        for index in 0..<names.count { (thresholds + index).initialize(to: Atomic(.max)) }
    }

    deinit {
        let rest = gather()
        if !rest.isEmpty, let ledger = ledger.withLock({ $0 }) { ledger.add(rest, at: nil) }
        counters.deinitialize(count: counterCount)
        counters.deallocate()
        thresholds.deinitialize(count: names.count)
        thresholds.deallocate()
    }

    /// Counts one enrolled unit, for `ledger` (which adopts this tally on its first count). `unitHash`
    /// (`UnitHash.of(unit)`) adds the unit to the experiment's distinct units; nil leaves them alone (while a
    /// treatment of the experiment is disabled, so that the sample-ratio check leaves that time out).
    @inline(__always)
    public func countAssignment(
        experimentIndex: Int, variantIndex: Int, unitHash: UInt64?, for ledger: ExperimentLedger
    ) {
        counters[offsets[experimentIndex] + variantIndex].wrappingAdd(1, ordering: .relaxed)
        if let unitHash, unitHash < thresholds[experimentIndex].load(ordering: .relaxed) {
            addUnit(unitHash, experimentIndex: experimentIndex, variantIndex: variantIndex)
        }
        if !adopted.load(ordering: .acquiring) { ledger.adopt(self) }
    }

    private func addUnit(_ hash: UInt64, experimentIndex: Int, variantIndex: Int) {
        units.withLock { units in
            guard units[experimentIndex].sample.add(hash: hash, variant: variantIndex) else { return }
            units[experimentIndex].changed = true
            thresholds[experimentIndex].store(units[experimentIndex].sample.threshold, ordering: .relaxed)
        }
    }

    /// What the ledger folds in for one experiment.
    struct Gathered: Sendable {
        var experiment: String
        var definition: PhaseDefinition
        /// When the configuration was loaded (a phase these counts start begins then if no better time is known).
        var countedSince = Timestamp(secondsSinceEpoch: 0)
        /// Assignment counts since the last gathering, by variant name (only variants with a count).
        var counts: [(variant: String, count: Int)]
        /// The experiment's unit sample, when it changed since the last gathering (folding it again is harmless:
        /// the union of a sample with itself is the sample).
        var units: DistinctUnitSample?
    }

    /// Takes the counts gathered since the last call, leaving zeros, and the unit samples that changed.
    func gather() -> [Gathered] {
        let samples = units.withLock { units in
            units.indices.map { index -> DistinctUnitSample? in
                guard units[index].changed else { return nil }
                units[index].changed = false
                return units[index].sample
            }
        }
        var gathered: [Gathered] = []
        for (experimentIndex, entry) in names.enumerated() {
            var counts: [(variant: String, count: Int)] = []
            for (variantIndex, variant) in entry.variants.enumerated() {
                let count = counters[offsets[experimentIndex] + variantIndex].exchange(0, ordering: .relaxed)
                if count > 0 { counts.append((variant, count)) }
            }
            if !counts.isEmpty || samples[experimentIndex] != nil {
                gathered.append(
                    Gathered(
                        experiment: entry.experiment, definition: definitions[experimentIndex],
                        countedSince: countedSince, counts: counts, units: samples[experimentIndex]))
            }
        }
        return gathered
    }

    /// Forgets the units counted so far for an experiment (a new phase started: they belong to the last one).
    func forgetUnits(of experiment: String) {
        guard let index = names.firstIndex(where: { $0.experiment == experiment }) else { return }
        units.withLock { units in
            units[index] = (DistinctUnitSample(), false)
            thresholds[index].store(.max, ordering: .relaxed)
        }
    }

    /// Makes `ledger` the receiver of the counts left when this tally is released.
    func attach(to ledger: ExperimentLedger) {
        self.ledger.withLock { $0 = ledger }
        adopted.store(true, ordering: .releasing)
    }
}
