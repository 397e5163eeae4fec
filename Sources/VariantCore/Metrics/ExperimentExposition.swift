import Histogram

/// The mergeable statistical state of every experiment's current phase, written as Prometheus samples (text
/// exposition format 0.0.4), so that a fleet's figures can be computed from Prometheus by the same code that
/// computes one daemon's (docs/fleet.md, "What each daemon exports").
///
/// Every number exported is a running total that adds up across hosts: counts, sums, sums of squares, the
/// per-group totals of the analysis by unit, the latency histogram's buckets, and the smallest unit hashes (the
/// distinct-unit sample). The totals are the ledger's own, so they are kept in the state file and continue across
/// restarts; a host restored from its last write may show a total a little below its last scrape (what it had not
/// written when it was killed), which is why fleet queries take each series' last value, never `rate()` or
/// `increase()`.
///
/// Written by hand rather than with swift-prometheus: its counters only go up from zero by increments (these totals
/// are restored from the state file and are read from the ledger at scrape time), its gauges hold one number each
/// (twenty thousand of them would each need an update on the record path), and sums of metric values may be
/// negative.
public enum ExperimentExposition {
    /// How much of the state is exported (`variantd --metrics-unit-groups`, `--metrics-unit-sample`).
    public struct Detail: Sendable, Equatable {
        /// Which metrics' per-group totals (128 series per metric and variant) are exported.
        public enum UnitGroups: String, Sendable, CaseIterable {
            /// Every metric recorded: the fleet's variances by unit equal one daemon's on every metric.
            case all
            /// Only the metrics the experiment's guardrails watch (error, latency_ms and custom guardrail metrics);
            /// other metrics are analysed by record in fleet statistics.
            case guardrail
            /// None: every fleet variance is by record.
            case none
        }

        public var unitGroups: UnitGroups = .all
        /// The smallest unit hashes exported per experiment (0 to `DistinctUnitSample.defaultCapacity`): the fleet's
        /// unit sample is the `unitSampleSize` smallest of all hosts' units.
        public var unitSampleSize = 64

        public init(unitGroups: UnitGroups = .all, unitSampleSize: Int = 64) {
            self.unitGroups = unitGroups
            self.unitSampleSize = unitSampleSize
        }
    }

    /// The latency histogram's bucket bounds in seconds, the same on every host (`+Inf` is added).
    public static let latencyBucketsSeconds = VariantAggregate.fixedLatencyBoundsSeconds

    /// The bits of a unit hash exported: a sample's value carries the hash's top 45 bits and the variant's index in
    /// the low 8 bits, 53 bits in all, exactly representable in a double.
    public static let exportedHashBits = 45

    /// One experiment's current phase, as the ledger holds it.
    public struct ExperimentState: Sendable {
        public var experiment: String
        public var phase: ExperimentPhase
        /// The `metric` label values whose group totals are exported under `UnitGroups.guardrail`.
        public var guardedMetrics: Set<String>

        public init(experiment: String, phase: ExperimentPhase, guardedMetrics: Set<String>) {
            self.experiment = experiment
            self.phase = phase
            self.guardedMetrics = guardedMetrics
        }
    }

    /// The `metric` label values of the metrics an experiment's guardrails watch.
    public static func guardedMetrics(of settings: GuardrailSettings) -> Set<String> {
        Set(["error", "latency_ms"] + settings.metrics.map { "custom." + $0.name })
    }

    /// Appends the exposition of `experiments` (each with its current phase) and the disabled treatments.
    ///
    /// A full-detail body of 20 experiments × 3 variants × 10 metrics is some 80,000 lines (10 MB), so the lines are
    /// assembled from label bytes written once per variant and metric, never from label lists per line
    /// (docs/fleet.md, "How many series").
    public static func write(
        _ experiments: [ExperimentState], disabled: [DisabledTreatment], detail: Detail, into bytes: inout [UInt8]
    ) {
        write(experiments, disabled: disabled, detail: detail) { bytes.append(contentsOf: $0) }
    }

    /// Writes the exposition in chunks of up to 64 KiB, each handed to `emit` (valid only during the call), so the
    /// caller copies the body once, into whatever it sends.
    public static func write(
        _ experiments: [ExperimentState], disabled: [DisabledTreatment], detail: Detail,
        emit: (UnsafeRawBufferPointer) -> Void
    ) {
        withoutActuallyEscaping(emit) { emit in
            var out = ExpositionWriter(emit: emit)
            write(experiments, disabled: disabled, detail: detail, to: &out)
            out.flush()
        }
    }

    private static func write(
        _ experiments: [ExperimentState], disabled: [DisabledTreatment], detail: Detail, to out: inout ExpositionWriter
    ) {
        let experiments = experiments.sorted { $0.experiment < $1.experiment }
        let phases = experiments.map { state in (state: state, labels: ExpositionWriter.labels(phaseLabels(state))) }

        out.family("variantd_experiment_phase_info", .gauge, "The phase each experiment's exported totals belong to (1), with its configuration fingerprint, mode and the size of its exported unit sample.")
        for (state, labels) in phases {
            let more = ExpositionWriter.labels(
                [
                    ("fingerprint", state.phase.definition?.fingerprint ?? ""),
                    ("mode", state.phase.definition.flatMap(mode(of:)) ?? "live"),
                    ("unit_sample", String(detail.unitSampleSize)),
                ], continuing: true)
            out.sample("variantd_experiment_phase_info", labels, more, integer: 1)
        }
        out.family("variantd_experiment_phase_start_timestamp_seconds", .gauge, "When the phase started (Unix time).")
        for (state, labels) in phases {
            out.sample("variantd_experiment_phase_start_timestamp_seconds", labels, value: state.phase.startedAt.secondsSinceEpoch)
        }
        out.family("variantd_treatment_disabled", .gauge, "1 for each treatment disabled on this host, by a guardrail, an operator or the configuration document.")
        for treatment in disabled.sorted(by: { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }) {
            let labels = ExpositionWriter.labels([
                ("experiment", treatment.experiment), ("variant", treatment.variant), ("by", treatment.source),
            ])
            out.sample("variantd_treatment_disabled", labels, integer: 1)
        }

        let arms = phases.flatMap { state, labels in
            state.phase.variants.keys.sorted().map { variant in
                let aggregate = state.phase.variants[variant]!
                return Arm(
                    state: state, variant: variant, aggregate: aggregate,
                    labels: labels + ExpositionWriter.labels([("variant", variant)], continuing: true),
                    metrics: metricTotals(of: aggregate))
            }
        }
        let counters: [(StaticString, String, (Arm) -> Int)] = [
            ("variantd_assignments_total", "Assign answers that enrolled a unit in the variant, this phase.", { $0.aggregate.assignments }),
            ("variantd_records_total", "Records added to the variant's statistics, this phase (live and shadow).", { $0.aggregate.records }),
            ("variantd_shadow_records_total", "Of the records, those from running the variant in shadow.", { $0.aggregate.shadowRecords }),
            ("variantd_unit_records_total", "Of the records, those that named their unit.", { $0.aggregate.unitRecords }),
            ("variantd_out_of_range_records_total", "Records refused because a value was outside its plausible range.", { $0.aggregate.outOfRange }),
        ]
        for (name, help, value) in counters {
            out.family("\(name)", .counter, help)
            for arm in arms { out.sample(name, arm.labels, integer: value(arm)) }
        }

        out.family("variantd_metric_observations_total", .counter, "Records carrying the metric, this phase.")
        for arm in arms {
            for metric in arm.metrics {
                out.sample("variantd_metric_observations_total", arm.labels, metric.labels, integer: metric.count)
            }
        }
        out.family("variantd_metric_sum_of_values", .gauge, "The sum of the metric's values (errors for error, success scores for success), this phase.")
        for arm in arms {
            for metric in arm.metrics {
                out.sample("variantd_metric_sum_of_values", arm.labels, metric.labels, value: metric.sum)
            }
        }
        out.family("variantd_metric_sum_of_squares", .gauge, "The sum of the squared values (about zero), this phase; not for error and success, which are rates.")
        for arm in arms {
            for metric in arm.metrics {
                guard let squares = metric.sumOfSquares else { continue }
                out.sample("variantd_metric_sum_of_squares", arm.labels, metric.labels, value: squares)
            }
        }
        let grouped = arms.map { arm in
            (arm: arm, metrics: arm.metrics.filter { metric in
                !metric.groups.isEmpty
                    && (detail.unitGroups == .all
                        || (detail.unitGroups == .guardrail && arm.state.guardedMetrics.contains(metric.name)))
            })
        }
        // 64 samples per metric that differ only in their last label: most of the body, so each is its series'
        // shared prefix, the group's number and the value.
        let groupFamilies: [(name: StaticString, kind: ExpositionWriter.Kind, help: String, sums: Bool)] = [
            ("variantd_metric_group_observations_total", .counter, "Records carrying the metric in each of the 64 unit groups (the analysis by unit), this phase.", false),
            ("variantd_metric_group_sum_of_values", .gauge, "The sum of the metric's values in each of the 64 unit groups, this phase.", true),
        ]
        for family in groupFamilies {
            out.family("\(family.name)", family.kind, family.help)
            for (arm, metrics) in grouped {
                for metric in metrics {
                    let prefix = ExpositionWriter.seriesPrefix(family.name, arm.labels, metric.labels, openLabel: "group")
                    let (counts, sums) = (metric.groups.counts, metric.groups.sums)
                    prefix.withUnsafeBytes { prefix in
                        for group in 0..<UnitGroupTotals.groupCount {
                            if family.sums {
                                out.sample(prefix: prefix, lastLabel: group, value: sums[group])
                            } else {
                                out.sample(prefix: prefix, lastLabel: group, integer: counts[group])
                            }
                        }
                    }
                }
            }
        }

        out.family("variantd_latency_seconds", .histogram, "Latency of the calls recorded for the variant, this phase, in fixed buckets (the same on every host).")
        for arm in arms where arm.aggregate.latencyMilliseconds.count > 0 {
            let cumulative = latencyBucketCounts(arm.aggregate)
            for (bound, count) in zip(latencyBucketLabels, cumulative) {
                out.sample("variantd_latency_seconds_bucket", arm.labels, bound, integer: Int(count))
            }
            let moments = arm.aggregate.latencyMilliseconds
            out.sample("variantd_latency_seconds_bucket", arm.labels, infinityBucketLabel, integer: moments.count)
            out.sample("variantd_latency_seconds_sum", arm.labels, value: moments.mean * Double(moments.count) / 1000)
            out.sample("variantd_latency_seconds_count", arm.labels, integer: moments.count)
        }

        out.family("variantd_guardrail_always_valid_p_value", .gauge, "This host's own guardrail evaluation of each treatment and guarded metric: the always-valid p-value of its sequential test (a treatment is disabled at or below the guardrail's alpha; with scope fleet the judge decides instead).")
        for arm in arms {
            guard let tests = arm.state.phase.sequential[arm.variant] else { continue }
            for metric in tests.keys.sorted() {
                let more = ExpositionWriter.labels([("metric", metric)], continuing: true)
                out.sample("variantd_guardrail_always_valid_p_value", arm.labels, more, value: tests[metric]!.alwaysValidPValue)
            }
        }

        out.family("variantd_unit_sample", .gauge, "The phase's smallest unit hashes (rank 0 is the smallest): the top 45 bits of the hash times 256 plus the variant's index.")
        for (state, labels) in phases {
            let sample = state.phase.units
            let count = min(detail.unitSampleSize, sample.hashes.count)
            guard count > 0 else { continue }
            let prefix = ExpositionWriter.seriesPrefix("variantd_unit_sample", labels, [], openLabel: "rank")
            let (hashes, variants) = (sample.hashes, sample.variants)
            prefix.withUnsafeBytes { prefix in
                for rank in 0..<count {
                    let value = encodeUnit(hash: hashes[rank], variant: variants[rank])
                    out.sample(prefix: prefix, lastLabel: rank, integer: Int(value))
                }
            }
        }
    }

    /// One variant of one experiment's current phase, with its label bytes. A class: the loops over the variants
    /// pass it around, and copying its state and aggregate would retain each of their dozens of arrays each time.
    private final class Arm {
        let state: ExperimentState
        let variant: String
        let aggregate: VariantAggregate
        /// `experiment="…",phase="…",variant="…"`.
        let labels: [UInt8]
        let metrics: [MetricTotals]

        init(state: ExperimentState, variant: String, aggregate: VariantAggregate, labels: [UInt8], metrics: [MetricTotals]) {
            self.state = state
            self.variant = variant
            self.aggregate = aggregate
            self.labels = labels
            self.metrics = metrics
        }
    }

    /// A unit sample entry as exported: the hash's top `exportedHashBits` bits, then the variant index's 8.
    public static func encodeUnit(hash: UInt64, variant: UInt8) -> UInt64 {
        (hash >> UInt64(64 - exportedHashBits)) << 8 | UInt64(variant)
    }

    /// An exported unit sample entry back as a hash (its low bits zero) and a variant index; nil for a value no
    /// daemon writes (negative, fractional or beyond 2^53).
    public static func decodeUnit(_ value: Double) -> (hash: UInt64, variant: UInt8)? {
        guard value >= 0, value < 0x1p53, value.rounded() == value else { return nil }
        let bits = UInt64(value)
        return (hash: (bits >> 8) << UInt64(64 - exportedHashBits), variant: UInt8(bits & 0xFF))
    }

    /// The cumulative count of recorded latencies at or below each bound of `latencyBucketsSeconds`.
    ///
    /// The aggregate counts them as it records (`VariantAggregate.fixedLatencyBuckets`): each of its histogram's
    /// buckets under the first bound at or above the bucket's highest value, the same on every host.
    static func latencyBucketCounts(_ aggregate: VariantAggregate) -> [UInt64] {
        var total: UInt64 = 0
        var cumulative = [UInt64](repeating: 0, count: latencyBucketsSeconds.count)
        for (index, count) in aggregate.fixedLatencyBuckets.enumerated() {
            total += count
            cumulative[index] = total
        }
        return cumulative
    }

    /// `le="0.025"` … `le="120"`, the labels of `latencyBucketsSeconds`, after the variant's labels.
    static let latencyBucketLabels = latencyBucketsSeconds.map {
        ExpositionWriter.labels([("le", boundLabel($0))], continuing: true)
    }
    static let infinityBucketLabel = ExpositionWriter.labels([("le", "+Inf")], continuing: true)

    /// One metric's exported totals (a class, for the reason `Arm` is one).
    final class MetricTotals {
        let name: String
        /// `,metric="…"`, to follow a variant's labels.
        let labels: [UInt8]
        let count: Int
        let sum: Double
        /// Σx², for metrics kept as running moments; nil for the rates.
        let sumOfSquares: Double?
        let groups: UnitGroupTotals

        init(name: String, count: Int, sum: Double, sumOfSquares: Double? = nil, groups: UnitGroupTotals) {
            self.name = name
            labels = ExpositionWriter.labels([("metric", name)], continuing: true)
            self.count = count
            self.sum = sum
            self.sumOfSquares = sumOfSquares
            self.groups = groups
        }
    }

    /// The totals of every metric the variant has an observation of, in a stable order.
    static func metricTotals(of aggregate: VariantAggregate) -> [MetricTotals] {
        var list: [MetricTotals] = []
        if aggregate.errors.trials > 0 {
            list.append(MetricTotals(name: "error", count: aggregate.errors.trials, sum: aggregate.errors.successes, groups: aggregate.errorGroups))
        }
        if aggregate.success.trials > 0 {
            list.append(MetricTotals(name: "success", count: aggregate.success.trials, sum: aggregate.success.successes, groups: aggregate.successGroups))
        }
        func moments(_ name: String, _ moments: RunningMoments, _ groups: UnitGroupTotals) {
            guard moments.count > 0 else { return }
            let n = Double(moments.count)
            list.append(
                MetricTotals(
                    name: name, count: moments.count, sum: moments.mean * n,
                    sumOfSquares: moments.m2 + n * moments.mean * moments.mean, groups: groups))
        }
        moments("latency_ms", aggregate.latencyMilliseconds, aggregate.latencyGroups)
        moments("cost_usd", aggregate.costUSD, aggregate.costGroups)
        moments("tokens", aggregate.tokens, aggregate.tokenGroups)
        for name in aggregate.custom.keys.sorted() {
            moments("custom." + name, aggregate.custom[name]!, aggregate.customGroups[name] ?? UnitGroupTotals())
        }
        return list
    }

    static func phaseLabels(_ state: ExperimentState) -> [(String, String)] {
        [("experiment", state.experiment), ("phase", String(state.phase.number))]
    }

    static func mode(of definition: PhaseDefinition) -> String? {
        definition.lines.first { $0.hasPrefix("mode ") }.map { String($0.dropFirst("mode ".count)) }
    }

    /// A bucket bound as Prometheus writes one (`0.025`, `1`, `120`).
    static func boundLabel(_ bound: Double) -> String {
        bound.rounded() == bound ? String(Int(bound)) : String(bound)
    }
}

/// Writes Prometheus text exposition lines into a scratch buffer and hands it out whenever it fills.
///
/// A sample line is its name, label bytes prepared once per series (`labels(_:continuing:)`, `seriesPrefix`), and
/// its value; room for the whole line is made first, then its pieces are copied without further checks. Counts are
/// written digit by digit, other values in Swift's shortest round-tripping form, non-finite ones as Prometheus
/// writes them (`NaN`, `+Inf`, `-Inf`).
struct ExpositionWriter: ~Copyable {
    enum Kind: String {
        case counter, gauge, histogram
    }

    static let chunkSize = 1 << 16
    /// Room for what a line adds to its labels: a value (at most 24 bytes), a group number, braces, quotes.
    private static let lineOverhead = 64

    private let scratch: UnsafeMutableRawBufferPointer
    private var used = 0
    private let emit: (UnsafeRawBufferPointer) -> Void

    init(emit: @escaping (UnsafeRawBufferPointer) -> Void) {
        scratch = .allocate(byteCount: Self.chunkSize, alignment: 16)
        self.emit = emit
    }

    deinit { scratch.deallocate() }

    /// Hands out what is written so far.
    mutating func flush() {
        guard used > 0 else { return }
        emit(UnsafeRawBufferPointer(rebasing: scratch[..<used]))
        used = 0
    }

    /// `name="value",...` (with a leading comma when `continuing`), to go between a sample's braces.
    static func labels(_ labels: [(String, String)], continuing: Bool = false) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 64)
        for (index, (label, value)) in labels.enumerated() {
            if continuing || index > 0 { writer.raw(",") }
            writer.append(Array(label.utf8))
            writer.raw("=")
            // Label values are names of experiments, variants and metrics (letters, digits, `._-`) and fingerprints
            // (hex): JSON's escaping (backslash, quote, newline) is also the exposition format's.
            writer.string(value)
        }
        return writer.bytes
    }

    /// `name{labels more,openLabel="`: the part of a series shared by samples that differ only in the value of
    /// their last label (an integer), written by `sample(prefix:lastLabel:value:)`.
    static func seriesPrefix(_ name: StaticString, _ labels: [UInt8], _ more: [UInt8], openLabel: StaticString)
        -> [UInt8]
    {
        var writer = JSONWriter(reservingCapacity: 128)
        writer.raw(name)
        writer.raw("{")
        writer.append(labels)
        writer.append(more)
        if !labels.isEmpty || !more.isEmpty { writer.raw(",") }
        writer.raw(openLabel)
        writer.raw("=\"")
        return writer.bytes
    }

    /// The `# HELP` and `# TYPE` lines of a metric family.
    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text("# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n")
    }

    /// `name{labels more} value`.
    mutating func sample(_ name: StaticString, _ labels: [UInt8], _ more: [UInt8] = [], value: Double) {
        open(name, labels, more)
        put(value)
        put("\n")
    }

    /// `name{labels more} value`, for a value that is a count.
    mutating func sample(_ name: StaticString, _ labels: [UInt8], _ more: [UInt8] = [], integer value: Int) {
        open(name, labels, more)
        put(value)
        put("\n")
    }

    /// One sample line from a `seriesPrefix`: the prefix, the last label's integer value, and the sample's value.
    mutating func sample(prefix: UnsafeRawBufferPointer, lastLabel: Int, value: Double) {
        makeRoom(prefix.count + Self.lineOverhead)
        put(prefix)
        put(lastLabel)
        put("\"} ")
        put(value)
        put("\n")
    }

    /// `sample(prefix:lastLabel:value:)` for a value that is a count.
    mutating func sample(prefix: UnsafeRawBufferPointer, lastLabel: Int, integer value: Int) {
        makeRoom(prefix.count + Self.lineOverhead)
        put(prefix)
        put(lastLabel)
        put("\"} ")
        put(value)
        put("\n")
    }

    /// Makes room for a line, then writes `name{labels more} ` (no braces without labels).
    private mutating func open(_ name: StaticString, _ labels: [UInt8], _ more: [UInt8]) {
        makeRoom(name.utf8CodeUnitCount + labels.count + more.count + Self.lineOverhead)
        put(name)
        if labels.isEmpty && more.isEmpty {
            put(" ")
            return
        }
        put("{")
        put(labels)
        put(more)
        put("} ")
    }

    /// Text of any length (help lines), in as many chunks as it takes.
    private mutating func text(_ string: String) {
        var string = string
        string.withUTF8 { utf8 in
            var rest = UnsafeRawBufferPointer(utf8)
            while !rest.isEmpty {
                if used == scratch.count { flush() }
                let count = min(rest.count, scratch.count - used)
                put(UnsafeRawBufferPointer(rebasing: rest[..<count]))
                rest = UnsafeRawBufferPointer(rebasing: rest[count...])
            }
        }
    }

    /// Flushes unless `count` more bytes fit. A line is far below the chunk size: its labels are bounded names.
    @inline(__always)
    private mutating func makeRoom(_ count: Int) {
        if used + count > scratch.count { flush() }
        precondition(count <= scratch.count, "an exposition line of \(count) bytes")
    }

    // The `put`s write where `makeRoom` made room, without checks of their own.

    @inline(__always)
    private mutating func put(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress else { return }
        (scratch.baseAddress! + used).copyMemory(from: source, byteCount: bytes.count)
        used += bytes.count
    }

    @inline(__always)
    private mutating func put(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { put($0) }
    }

    @inline(__always)
    private mutating func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Decimal digits, with a sign.
    private mutating func put(_ value: Int) {
        let base = scratch.baseAddress!
        if value < 0 {
            base.storeBytes(of: UInt8(ascii: "-"), toByteOffset: used, as: UInt8.self)
            used += 1
        }
        var magnitude = value.magnitude
        var digits = 1
        var probe = magnitude
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        var position = used + digits
        used = position
        repeat {
            position -= 1
            base.storeBytes(of: UInt8(ascii: "0") + UInt8(magnitude % 10), toByteOffset: position, as: UInt8.self)
            magnitude /= 10
        } while magnitude > 0
    }

    /// A whole number within ±2^53 as digits ("2", not "2.0"), another finite value in Swift's shortest
    /// round-tripping form, and `NaN`, `+Inf` or `-Inf` as Prometheus writes them.
    private mutating func put(_ value: Double) {
        if let whole = Int(exactly: value), whole.magnitude < 1 << 53 {
            put(whole)
        } else if value.isNaN {
            put("NaN")
        } else if value.isInfinite {
            put(value > 0 ? "+Inf" : "-Inf")
        } else {
            var text = value.description
            text.withUTF8 { put(UnsafeRawBufferPointer($0)) }
        }
    }
}
