/// An experiment's statistics over many hosts, rebuilt from what each daemon exported to Prometheus
/// (`ExperimentExposition`): each host's phase is rebuilt from its samples, and the phases are merged with
/// `ExperimentPhase.merge`, so the fleet's report is the report of one daemon that saw every record
/// (docs/fleet.md, "Fleet statistics").
///
/// Which hosts count: those whose latest exported phase of the experiment has the configuration's fingerprint
/// (`PhaseDefinition`). Hosts on another configuration, or that exported nothing usable, are listed with the
/// reason and left out.
public struct FleetState: Sendable {
    /// One daemon, as Prometheus names it (its target labels: `instance`, `job`, ...).
    public struct Host: Sendable, Equatable {
        /// The labels that tell this host's series apart from another's, sorted by name.
        public var labels: [(String, String)]
        /// The phase of the experiment the host exported last, with its fingerprint.
        public var phase: Int
        public var fingerprint: String
        /// The configuration version the host serves (`variantd_config_info`), when known.
        public var configVersion: String?
        /// Whether its totals are part of the fleet's figures.
        public var counted: Bool
        /// Why not, or what is unusual about it (another configuration version, another local phase number).
        public var note: String?

        /// `instance` when the host has one, else every label.
        public var name: String {
            labels.first { $0.0 == "instance" }?.1 ?? labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        }

        public static func == (lhs: Host, rhs: Host) -> Bool {
            lhs.labels.elementsEqual(rhs.labels, by: { $0 == $1 }) && lhs.phase == rhs.phase
                && lhs.fingerprint == rhs.fingerprint && lhs.configVersion == rhs.configVersion
                && lhs.counted == rhs.counted && lhs.note == rhs.note
        }
    }

    public var experiment: Experiment
    /// Every host that exported the experiment, counted or not, by name.
    public var hosts: [Host]
    /// The merged phase of the counted hosts.
    public var phase: ExperimentPhase
    /// Treatments disabled on any counted host, with the hosts in the reason.
    public var disabled: [ExperimentLedger.VariantKey: DisabledTreatment]

    /// The labels that belong to variantd's series rather than to the host that exported them.
    static let seriesLabels: Set<String> = [
        "__name__", "experiment", "phase", "variant", "metric", "group", "le", "rank", "fingerprint", "mode",
        "unit_sample", "by", "version", "config_version", "source",
    ]

    /// The host labels of a sample (everything but variantd's own labels), sorted by name.
    public static func hostLabels(of sample: PrometheusSample) -> [(String, String)] {
        sample.labels.filter { !seriesLabels.contains($0.key) }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
    }

    /// One string per host, for dictionaries.
    public static func hostKey(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\($0.1)" }.joined(separator: "\u{1F}")
    }

    /// Rebuilds the fleet's phase of `experiment` from the last value of each exported series.
    /// - Parameters:
    ///   - samples: by metric name (`variantd_records_total`, ...), the series of the experiment.
    ///   - configInfo: the `variantd_config_info` series of the hosts (for their configuration versions).
    /// - Throws: `no_series` when no host exported the experiment; `phase_mismatch` when none is on the
    ///   configuration's phase (naming the fingerprints found); `invalid_answer` for a sample no daemon writes.
    public static func assemble(
        experiment: Experiment, samples: [String: [PrometheusSample]], configInfo: [PrometheusSample] = []
    ) throws(FleetError) -> FleetState {
        let definition = PhaseDefinition(experiment)
        // Each host's latest phase (the highest number it exported within the query's window).
        var latest: [String: (labels: [(String, String)], phase: Int, fingerprint: String, unitSample: Int)] = [:]
        for sample in samples["variantd_experiment_phase_info"] ?? [] {
            guard let phase = sample.labels["phase"].flatMap({ Int($0) }), phase >= 1 else {
                throw FleetError(.invalidAnswer, "a variantd_experiment_phase_info series has no phase number: \(sample.labels)")
            }
            let labels = hostLabels(of: sample)
            let key = hostKey(labels)
            if let known = latest[key], known.phase >= phase { continue }
            latest[key] = (
                labels, phase, sample.labels["fingerprint"] ?? "",
                sample.labels["unit_sample"].flatMap { Int($0) } ?? DistinctUnitSample.defaultCapacity
            )
        }
        guard !latest.isEmpty else {
            throw FleetError(
                .noSeries,
                "no host exports experiment '\(experiment.name)' (no variantd_experiment_phase_info series): is Prometheus scraping the daemons' --metrics-address, and has the experiment any records?")
        }
        var versions: [String: String] = [:]
        for sample in configInfo { versions[hostKey(hostLabels(of: sample))] = sample.labels["config_version"] }
        let commonVersion = mostCommon(Array(versions.values))

        var hosts: [Host] = latest.sorted { $0.key < $1.key }.map { key, entry in
            let counted = entry.fingerprint == definition.fingerprint
            var host = Host(
                labels: entry.labels, phase: entry.phase, fingerprint: entry.fingerprint, configVersion: versions[key],
                counted: counted,
                note: counted ? nil : "on another configuration of the experiment (fingerprint \(entry.fingerprint), phase \(entry.phase)); not counted")
            if counted, let version = versions[key], let commonVersion, version != commonVersion {
                host.note = "serves configuration \(version), most hosts \(commonVersion) (same experiment definition, counted)"
            }
            return host
        }
        let counted = hosts.filter(\.counted)
        guard !counted.isEmpty else {
            let found = Set(hosts.map(\.fingerprint)).sorted().joined(separator: ", ")
            throw FleetError(
                .phaseMismatch,
                "no host is on this configuration of '\(experiment.name)' (fingerprint \(definition.fingerprint)); the hosts export \(found). Give the document the fleet serves with --config")
        }
        // Local phase numbers may differ (a host that joined later numbers from 1): say so, the figures are merged.
        let commonPhase = mostCommon(counted.map(\.phase)) ?? counted[0].phase
        for index in hosts.indices where hosts[index].counted && hosts[index].phase != commonPhase {
            hosts[index].note = (hosts[index].note.map { $0 + "; " } ?? "")
                + "numbers this phase \(hosts[index].phase) locally (most hosts: \(commonPhase)); counted, same configuration"
        }

        let unitSampleSize = counted.map { latest[hostKey($0.labels)]!.unitSample }.min() ?? 0
        var merged = ExperimentPhase(
            number: commonPhase, definition: definition, startedAt: Timestamp(secondsSinceEpoch: .infinity),
            reason: "fleet: \(counted.count) of \(hosts.count) hosts", unitVariants: definition.variantNames)
        merged.units = DistinctUnitSample(capacity: max(unitSampleSize, 2))
        for host in counted {
            let phase = try rebuild(host: host, definition: definition, samples: samples, unitSampleSize: unitSampleSize)
            merged.merge(phase)
            if phase.startedAt < merged.startedAt { merged.startedAt = phase.startedAt }
        }
        if !merged.startedAt.secondsSinceEpoch.isFinite { merged.startedAt = Timestamp(secondsSinceEpoch: 0) }

        var disabledOn: [String: (by: String?, hosts: [String])] = [:]
        let countedKeys = Set(counted.map { hostKey($0.labels) })
        for sample in samples["variantd_treatment_disabled"] ?? [] where sample.value == 1 {
            guard countedKeys.contains(hostKey(hostLabels(of: sample))), let variant = sample.labels["variant"] else {
                continue
            }
            disabledOn[variant, default: (sample.labels["by"], [])].hosts.append(
                Host(labels: hostLabels(of: sample), phase: 0, fingerprint: "", counted: true).name)
        }
        var disabled: [ExperimentLedger.VariantKey: DisabledTreatment] = [:]
        for (variant, entry) in disabledOn {
            disabled[ExperimentLedger.VariantKey(experiment: experiment.name, variant: variant)] = DisabledTreatment(
                experiment: experiment.name, variant: variant, at: Timestamp(secondsSinceEpoch: 0),
                automatic: entry.by == "guardrail",
                reason: "on \(entry.hosts.count) of \(counted.count) hosts (\(entry.hosts.sorted().joined(separator: ", "))); `variantctl events` on a host says why",
                configuredBy: entry.by == "config" ? "" : nil)  // who decided is in the document, not the metrics
        }
        return FleetState(experiment: experiment, hosts: hosts, phase: merged, disabled: disabled)
    }

    /// The report of the merged phase: the same figures `stats` computes on one daemon.
    public func report(minimumDetectableEffect: Double? = nil) -> ExperimentReport {
        ExperimentReport(
            experiment: experiment, phase: phase, currentPhase: phase.number, disabled: disabled,
            minimumDetectableEffect: minimumDetectableEffect)
    }

    /// One host's phase from its samples.
    static func rebuild(
        host: Host, definition: PhaseDefinition, samples: [String: [PrometheusSample]], unitSampleSize: Int
    ) throws(FleetError) -> ExperimentPhase {
        let key = hostKey(host.labels)
        let phaseLabel = String(host.phase)
        func series(_ name: String) -> [PrometheusSample] {
            (samples[name] ?? []).filter { $0.labels["phase"] == phaseLabel && hostKey(hostLabels(of: $0)) == key }
        }
        func count(_ value: Double, _ name: String) throws(FleetError) -> Int {
            guard value >= 0, value < 0x1p53, value.rounded() == value else {
                throw FleetError(.invalidAnswer, "\(name) of host \(host.name) is \(value), not a count")
            }
            return Int(value)
        }
        var phase = ExperimentPhase(
            number: host.phase, definition: definition, startedAt: Timestamp(secondsSinceEpoch: 0), reason: "",
            unitVariants: definition.variantNames)
        if let start = series("variantd_experiment_phase_start_timestamp_seconds").first {
            phase.startedAt = Timestamp(secondsSinceEpoch: start.value)
        }
        // Aggregates of the variants the configuration names (a series of a variant it does not name cannot come
        // from this fingerprint, and is ignored).
        let names = Set(definition.variantNames)
        func forVariant(_ name: String, _ apply: (inout VariantAggregate, PrometheusSample) throws(FleetError) -> Void)
            throws(FleetError)
        {
            for sample in series(name) {
                guard let variant = sample.labels["variant"], names.contains(variant) else { continue }
                try apply(&phase.variants[variant, default: VariantAggregate()], sample)
            }
        }
        try forVariant("variantd_assignments_total") { aggregate, sample throws(FleetError) in
            aggregate.assignments = try count(sample.value, "assignments")
        }
        try forVariant("variantd_records_total") { aggregate, sample throws(FleetError) in
            aggregate.records = try count(sample.value, "records")
        }
        try forVariant("variantd_shadow_records_total") { aggregate, sample throws(FleetError) in
            aggregate.shadowRecords = try count(sample.value, "shadow records")
        }
        try forVariant("variantd_unit_records_total") { aggregate, sample throws(FleetError) in
            aggregate.unitRecords = try count(sample.value, "unit records")
        }
        try forVariant("variantd_out_of_range_records_total") { aggregate, sample throws(FleetError) in
            aggregate.outOfRange = try count(sample.value, "out-of-range records")
        }

        // Metric totals: observations, sums and sums of squares by variant and metric.
        struct Totals {
            var count = 0
            var sum = 0.0
            var squares = 0.0
            var groupCounts = [Int](repeating: 0, count: UnitGroupTotals.groupCount)
            var groupSums = [Double](repeating: 0, count: UnitGroupTotals.groupCount)
            var hasGroups = false
        }
        var totals: [String: [String: Totals]] = [:]
        func forMetric(_ name: String, _ apply: (inout Totals, PrometheusSample) throws(FleetError) -> Void)
            throws(FleetError)
        {
            for sample in series(name) {
                guard let variant = sample.labels["variant"], names.contains(variant), let metric = sample.labels["metric"]
                else { continue }
                try apply(&totals[variant, default: [:]][metric, default: Totals()], sample)
            }
        }
        func group(_ sample: PrometheusSample) throws(FleetError) -> Int {
            guard let group = sample.labels["group"].flatMap({ Int($0) }), (0..<UnitGroupTotals.groupCount).contains(group)
            else { throw FleetError(.invalidAnswer, "a group series of host \(host.name) has no group from 0 to 63") }
            return group
        }
        try forMetric("variantd_metric_observations_total") { totals, sample throws(FleetError) in
            totals.count = try count(sample.value, "observations")
        }
        try forMetric("variantd_metric_sum_of_values") { totals, sample throws(FleetError) in totals.sum = sample.value }
        try forMetric("variantd_metric_sum_of_squares") { totals, sample throws(FleetError) in
            totals.squares = sample.value
        }
        try forMetric("variantd_metric_group_observations_total") { totals, sample throws(FleetError) in
            totals.groupCounts[try group(sample)] = try count(sample.value, "group observations")
            totals.hasGroups = true
        }
        try forMetric("variantd_metric_group_sum_of_values") { totals, sample throws(FleetError) in
            totals.groupSums[try group(sample)] = sample.value
            totals.hasGroups = true
        }
        for (variant, metrics) in totals {
            for (metric, totals) in metrics where totals.count > 0 {
                let groups =
                    totals.hasGroups
                    ? UnitGroupTotals(counts: totals.groupCounts, sums: totals.groupSums) ?? UnitGroupTotals()
                    : UnitGroupTotals()
                let n = Double(totals.count)
                let mean = totals.sum / n
                // Σ(x − x̄)² = Σx² − (Σx)²/n; a difference of two rounded numbers can dip just below zero.
                let moments = RunningMoments(
                    count: totals.count, mean: mean, m2: max(0, totals.squares - totals.sum * mean), min: 0, max: 0)
                var aggregate = phase.variants[variant, default: VariantAggregate()]
                switch metric {
                case "error":
                    aggregate.errors = ProportionCounts(trials: totals.count, successes: totals.sum)
                    aggregate.errorGroups = groups
                case "success":
                    aggregate.success = ProportionCounts(trials: totals.count, successes: totals.sum)
                    aggregate.successGroups = groups
                case "latency_ms":
                    aggregate.latencyMilliseconds = moments
                    aggregate.latencyGroups = groups
                case "cost_usd":
                    aggregate.costUSD = moments
                    aggregate.costGroups = groups
                case "tokens":
                    aggregate.tokens = moments
                    aggregate.tokenGroups = groups
                default:
                    guard metric.hasPrefix("custom.") else { continue }
                    let name = String(metric.dropFirst("custom.".count))
                    aggregate.custom[name] = moments
                    if !groups.isEmpty { aggregate.customGroups[name] = groups }
                }
                phase.variants[variant] = aggregate
            }
        }

        // Latency percentiles: each bucket's count at the bucket's upper bound (the `+Inf` bucket at an hour).
        var buckets: [String: [(bound: Double, cumulative: Double)]] = [:]
        for sample in series("variantd_latency_seconds_bucket") {
            guard let variant = sample.labels["variant"], names.contains(variant), let le = sample.labels["le"] else {
                continue
            }
            let bound = le == "+Inf" ? Double.infinity : Double(le) ?? .nan
            guard !bound.isNaN else { throw FleetError(.invalidAnswer, "a latency bucket of host \(host.name) has le=\"\(le)\"") }
            buckets[variant, default: []].append((bound, sample.value))
        }
        for (variant, list) in buckets {
            var previous = 0.0
            for bucket in list.sorted(by: { $0.bound < $1.bound }) {
                let inBucket = try count(bucket.cumulative - previous, "a latency bucket")
                previous = bucket.cumulative
                guard inBucket > 0 else { continue }
                let microseconds =
                    bucket.bound.isFinite
                    ? UInt64((bucket.bound * 1_000_000).rounded()) : VariantAggregate.latencyHistogramHighestMicroseconds
                phase.variants[variant, default: VariantAggregate()].recordLatencyMicroseconds(
                    microseconds, count: UInt64(inBucket))
            }
        }

        // The unit sample: the host's smallest hashes, cut to the size every counted host exported.
        var entries: [(hash: UInt64, variant: UInt8)] = []
        for sample in series("variantd_unit_sample") {
            guard let entry = ExperimentExposition.decodeUnit(sample.value) else {
                throw FleetError(.invalidAnswer, "a unit sample entry of host \(host.name) is \(sample.value)")
            }
            entries.append(entry)
        }
        var units = DistinctUnitSample(capacity: max(unitSampleSize, 2))
        for entry in entries { units.add(hash: entry.hash, variant: Int(entry.variant)) }
        phase.units = units
        return phase
    }

    static func mostCommon<Value: Hashable & Comparable>(_ values: [Value]) -> Value? {
        var counts: [Value: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        return counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
    }
}

/// One series of a Prometheus instant-query answer: its labels and its value.
public struct PrometheusSample: Sendable, Equatable {
    public var labels: [String: String]
    public var value: Double

    public init(labels: [String: String], value: Double) {
        self.labels = labels
        self.value = value
    }

    /// The series of an answer of Prometheus' HTTP API (`/api/v1/query`) of type `vector`.
    /// - Throws: `invalid_answer` when the bytes are not such an answer; `query_failed` with Prometheus' own
    ///   error when it refused the query.
    public static func vector(from bytes: [UInt8]) throws(FleetError) -> [PrometheusSample] {
        guard case .object(let root)? = try? JSONParser.parse(bytes), let status = root["status"]?.stringValue else {
            let start = String(decoding: bytes.prefix(120), as: UTF8.self)
            throw FleetError(.invalidAnswer, "the answer is not from Prometheus' query API (it starts: \(start))")
        }
        guard status == "success" else {
            let kind = root["errorType"]?.stringValue ?? "error"
            throw FleetError(.queryFailed, "Prometheus refused the query (\(kind)): \(root["error"]?.stringValue ?? "no reason given")")
        }
        guard let data = root["data"]?.objectValue, data["resultType"]?.stringValue == "vector",
            let result = data["result"]?.arrayValue
        else {
            throw FleetError(.invalidAnswer, "Prometheus' answer has no vector result")
        }
        return try result.map { entry throws(FleetError) in
            guard let series = entry.objectValue, let metric = series["metric"]?.objectValue,
                let pair = series["value"]?.arrayValue, pair.count == 2, let text = pair[1].stringValue
            else { throw FleetError(.invalidAnswer, "a series of Prometheus' answer is not {metric, value}") }
            var labels: [String: String] = [:]
            for member in metric.members {
                guard let value = member.value.stringValue else {
                    throw FleetError(.invalidAnswer, "label \(member.key) of a series is not a string")
                }
                labels[member.key] = value
            }
            // Prometheus writes values as Go formats them: "NaN", "+Inf", "-Inf" or a decimal number.
            let value: Double? =
                switch text {
                case "+Inf": .infinity
                case "-Inf": -.infinity
                default: Double(text)
                }
            guard let value else { throw FleetError(.invalidAnswer, "a sample value is \"\(text)\", not a number") }
            return PrometheusSample(labels: labels, value: value)
        }
    }
}

/// Why fleet statistics could not be computed: a stable code and what to do.
public struct FleetError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public enum Code: String, Sendable, CaseIterable {
        /// Prometheus could not be reached (refused, no route, name not resolved).
        case unreachable = "prometheus_unreachable"
        /// Prometheus did not answer within the deadline.
        case timeout = "prometheus_timeout"
        /// The answer is not Prometheus' (not its API's JSON, or a sample no daemon writes).
        case invalidAnswer = "prometheus_invalid_answer"
        /// Prometheus answered the query with an error.
        case queryFailed = "prometheus_query_failed"
        /// No host exports the experiment.
        case noSeries = "no_series"
        /// Hosts export the experiment, but none on the configuration given.
        case phaseMismatch = "phase_mismatch"
    }
}
