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
    public static let latencyBucketsSeconds: [Double] = [
        0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120,
    ]

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
    public static func write(
        _ experiments: [ExperimentState], disabled: [DisabledTreatment], detail: Detail, into bytes: inout [UInt8]
    ) {
        var out = ExpositionWriter(bytes: bytes)
        defer { bytes = out.bytes }
        let experiments = experiments.sorted { $0.experiment < $1.experiment }

        out.family("variantd_experiment_phase_info", .gauge, "The phase each experiment's exported totals belong to (1), with its configuration fingerprint, mode and the size of its exported unit sample.")
        for state in experiments {
            out.sample(
                "variantd_experiment_phase_info",
                phaseLabels(state) + [
                    ("fingerprint", state.phase.definition?.fingerprint ?? ""),
                    ("mode", state.phase.definition.flatMap(mode(of:)) ?? "live"),
                    ("unit_sample", String(detail.unitSampleSize)),
                ], 1)
        }
        out.family("variantd_experiment_phase_start_timestamp_seconds", .gauge, "When the phase started (Unix time).")
        for state in experiments {
            out.sample(
                "variantd_experiment_phase_start_timestamp_seconds", phaseLabels(state),
                state.phase.startedAt.secondsSinceEpoch)
        }
        out.family("variantd_treatment_disabled", .gauge, "1 for each treatment disabled on this host, by a guardrail, an operator or the configuration document.")
        for treatment in disabled.sorted(by: { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }) {
            out.sample(
                "variantd_treatment_disabled",
                [
                    ("experiment", treatment.experiment), ("variant", treatment.variant),
                    ("by", treatment.source),
                ], 1)
        }

        let arms = experiments.flatMap { state in
            state.phase.variants.keys.sorted().map { (state: state, variant: $0, aggregate: state.phase.variants[$0]!) }
        }
        let counters: [(String, String, (VariantAggregate) -> Int)] = [
            ("variantd_assignments_total", "Assign answers that enrolled a unit in the variant, this phase.", \.assignments),
            ("variantd_records_total", "Records added to the variant's statistics, this phase (live and shadow).", \.records),
            ("variantd_shadow_records_total", "Of the records, those from running the variant in shadow.", \.shadowRecords),
            ("variantd_unit_records_total", "Of the records, those that named their unit.", \.unitRecords),
            ("variantd_out_of_range_records_total", "Records refused because a value was outside its plausible range.", \.outOfRange),
        ]
        for (name, help, value) in counters {
            out.family(name, .counter, help)
            for arm in arms { out.sample(name, armLabels(arm.state, arm.variant), Double(value(arm.aggregate))) }
        }

        let metrics = arms.map { arm in (arm: arm, metrics: metricTotals(of: arm.aggregate)) }
        out.family("variantd_metric_observations_total", .counter, "Records carrying the metric, this phase.")
        for (arm, list) in metrics {
            for metric in list {
                out.sample("variantd_metric_observations_total", armLabels(arm.state, arm.variant, metric: metric.name), Double(metric.count))
            }
        }
        out.family("variantd_metric_sum_of_values", .gauge, "The sum of the metric's values (errors for error, success scores for success), this phase.")
        for (arm, list) in metrics {
            for metric in list {
                out.sample("variantd_metric_sum_of_values", armLabels(arm.state, arm.variant, metric: metric.name), metric.sum)
            }
        }
        out.family("variantd_metric_sum_of_squares", .gauge, "The sum of the squared values (about zero), this phase; not for error and success, which are rates.")
        for (arm, list) in metrics {
            for metric in list {
                guard let squares = metric.sumOfSquares else { continue }
                out.sample("variantd_metric_sum_of_squares", armLabels(arm.state, arm.variant, metric: metric.name), squares)
            }
        }
        let grouped = metrics.map { arm, list in
            (arm: arm, list: list.filter { metric in
                !metric.groups.isEmpty
                    && (detail.unitGroups == .all
                        || (detail.unitGroups == .guardrail && arm.state.guardedMetrics.contains(metric.name)))
            })
        }
        out.family("variantd_metric_group_observations_total", .counter, "Records carrying the metric in each of the 64 unit groups (the analysis by unit), this phase.")
        for (arm, list) in grouped {
            for metric in list {
                // 64 samples that differ only in their last label: its prefix is written once (these series are most
                // of the body).
                let prefix = out.seriesPrefix(
                    "variantd_metric_group_observations_total", armLabels(arm.state, arm.variant, metric: metric.name),
                    openLabel: "group")
                for group in 0..<UnitGroupTotals.groupCount {
                    out.sample(prefix: prefix, lastLabel: group, Double(metric.groups.counts[group]))
                }
            }
        }
        out.family("variantd_metric_group_sum_of_values", .gauge, "The sum of the metric's values in each of the 64 unit groups, this phase.")
        for (arm, list) in grouped {
            for metric in list {
                let prefix = out.seriesPrefix(
                    "variantd_metric_group_sum_of_values", armLabels(arm.state, arm.variant, metric: metric.name),
                    openLabel: "group")
                for group in 0..<UnitGroupTotals.groupCount {
                    out.sample(prefix: prefix, lastLabel: group, metric.groups.sums[group])
                }
            }
        }

        out.family("variantd_latency_seconds", .histogram, "Latency of the calls recorded for the variant, this phase, in fixed buckets (the same on every host).")
        for arm in arms where arm.aggregate.latencyMilliseconds.count > 0 {
            let labels = armLabels(arm.state, arm.variant)
            let cumulative = latencyBucketCounts(arm.aggregate)
            for (bound, count) in zip(latencyBucketsSeconds, cumulative) {
                out.sample("variantd_latency_seconds_bucket", labels + [("le", boundLabel(bound))], Double(count))
            }
            let moments = arm.aggregate.latencyMilliseconds
            out.sample("variantd_latency_seconds_bucket", labels + [("le", "+Inf")], Double(moments.count))
            out.sample("variantd_latency_seconds_sum", labels, moments.mean * Double(moments.count) / 1000)
            out.sample("variantd_latency_seconds_count", labels, Double(moments.count))
        }

        out.family("variantd_guardrail_always_valid_p_value", .gauge, "This host's own guardrail evaluation of each treatment and guarded metric: the always-valid p-value of its sequential test (a treatment is disabled at or below the guardrail's alpha; with scope fleet the judge decides instead).")
        for state in experiments {
            for variant in state.phase.sequential.keys.sorted() {
                let tests = state.phase.sequential[variant] ?? [:]
                for metric in tests.keys.sorted() {
                    out.sample(
                        "variantd_guardrail_always_valid_p_value",
                        armLabels(state, variant) + [("metric", metric)], tests[metric]!.alwaysValidPValue)
                }
            }
        }

        out.family("variantd_unit_sample", .gauge, "The phase's smallest unit hashes (rank 0 is the smallest): the top 45 bits of the hash times 256 plus the variant's index.")
        for state in experiments {
            let sample = state.phase.units
            for rank in 0..<min(detail.unitSampleSize, sample.hashes.count) {
                out.sample(
                    "variantd_unit_sample", phaseLabels(state) + [("rank", String(rank))],
                    Double(encodeUnit(hash: sample.hashes[rank], variant: sample.variants[rank])))
            }
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
    /// Read from the variant's latency histogram (two significant digits), each of its buckets counted under the
    /// first bound at or above its highest value: the same on every host, so the counts add up across hosts.
    static func latencyBucketCounts(_ aggregate: VariantAggregate) -> [UInt64] {
        let bounds = latencyBucketsSeconds.map { UInt64(($0 * 1_000_000).rounded()) }
        var counts = [UInt64](repeating: 0, count: bounds.count)
        for bucket in aggregate.latencyHistogram.recordedValues() {
            if let index = bounds.firstIndex(where: { bucket.value <= $0 }) { counts[index] += UInt64(bucket.count) }
        }
        for index in counts.indices.dropFirst() { counts[index] += counts[index - 1] }
        return counts
    }

    /// One metric's exported totals.
    struct MetricTotals {
        var name: String
        var count: Int
        var sum: Double
        /// Σx², for metrics kept as running moments; nil for the rates.
        var sumOfSquares: Double?
        var groups: UnitGroupTotals
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

    static func armLabels(_ state: ExperimentState, _ variant: String, metric: String? = nil) -> [(String, String)] {
        var labels = phaseLabels(state) + [("variant", variant)]
        if let metric { labels.append(("metric", metric)) }
        return labels
    }

    static func mode(of definition: PhaseDefinition) -> String? {
        definition.lines.first { $0.hasPrefix("mode ") }.map { String($0.dropFirst("mode ".count)) }
    }

    /// A bucket bound as Prometheus writes one (`0.025`, `1`, `120`).
    static func boundLabel(_ bound: Double) -> String {
        bound.rounded() == bound ? String(Int(bound)) : String(bound)
    }
}

/// Appends Prometheus text exposition lines to a byte buffer.
struct ExpositionWriter {
    enum Kind: String {
        case counter, gauge, histogram
    }

    private var writer: JSONWriter

    init(bytes: [UInt8]) {
        writer = JSONWriter(reservingCapacity: 0)
        writer.append(bytes)
    }

    var bytes: [UInt8] { writer.bytes }

    /// The `# HELP` and `# TYPE` lines of a metric family.
    mutating func family(_ name: String, _ kind: Kind, _ help: String) {
        text("# HELP \(name) ")
        text(help)
        text("\n# TYPE \(name) \(kind.rawValue)\n")
    }

    /// One sample line: `name{label="value",...} number`.
    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text(name)
        if !labels.isEmpty {
            writer.raw("{")
            for (index, (label, labelValue)) in labels.enumerated() {
                if index > 0 { writer.raw(",") }
                text(label)
                writer.raw("=")
                // Label values are names of experiments, variants and metrics (letters, digits, `._-`), so JSON's
                // escaping (backslash, quote, newline) is also the exposition format's.
                writer.string(labelValue)
            }
            writer.raw("}")
        }
        writer.raw(" ")
        writer.number(value)
        writer.raw("\n")
    }

    /// `name{label="value",...,openLabel="`: the part of a series shared by samples that differ only in the value
    /// of their last label (an integer), written by `sample(prefix:lastLabel:_:)`.
    mutating func seriesPrefix(_ name: String, _ labels: [(String, String)], openLabel: String) -> [UInt8] {
        var prefix = ExpositionWriter(bytes: [])
        prefix.text(name)
        prefix.writer.raw("{")
        for (label, labelValue) in labels {
            prefix.text(label)
            prefix.writer.raw("=")
            prefix.writer.string(labelValue)
            prefix.writer.raw(",")
        }
        prefix.text(openLabel)
        prefix.writer.raw("=\"")
        return prefix.bytes
    }

    /// One sample line from a `seriesPrefix`: the prefix, the last label's integer value, and the sample's value.
    mutating func sample(prefix: [UInt8], lastLabel: Int, _ value: Double) {
        writer.append(prefix)
        writer.integer(lastLabel)
        writer.raw("\"} ")
        writer.number(value)
        writer.raw("\n")
    }

    private mutating func text(_ string: String) {
        var string = string
        string.withUTF8 { writer.append($0) }
    }
}
