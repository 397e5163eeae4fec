import Histogram
import Synchronization

/// The ledger as a JSON document, for the daemon's state file (PROTOCOL.md, "State file").
///
/// Latency histograms are stored sparsely (recorded value and count pairs), so the file stays small however
/// fine the histogram is.
extension ExperimentLedger {
    /// The format name and version at the top of every state file.
    public static let stateFormat = "variantd-state"
    /// 2: experiments are lists of phases, each with its aggregates (and their group totals), sequential tests
    /// and unit sample. Version 1 files (no phases) are still read: their statistics become phase 1, which the
    /// first configuration seen adopts.
    public static let stateFormatVersion = 2

    /// Why a state file could not be restored at all: it is not a variantd state file of a version this daemon
    /// reads (not JSON, another format or version), so nothing in it can be trusted.
    public struct RestoreError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// A part of a state file that could not be restored, and what became of it; the rest was restored.
    public struct RestoreProblem: Sendable, Equatable, CustomStringConvertible {
        /// Where in the file (`experiments.e[0].variants.treatment.cost_usd`, `disabled[2]`).
        public var path: String
        /// What is wrong with it, and what was done instead ("... must be a finite number; the metric starts afresh").
        public var message: String

        public var description: String { "'\(path)': \(message)" }
    }

    /// The most problems a restore lists one by one; the rest are counted in a last one.
    public static let maximumRestoreProblemsListed = 50

    /// The whole ledger, written in one consistent view, and the generation it reflects.
    public func encodedState(savedAt: Timestamp) -> (bytes: [UInt8], generation: UInt64) {
        foldTallies()
        let state = state.withLock { $0 }
        var writer = JSONWriter(reservingCapacity: 4096)
        writer.object { file in
            file.field("format", Self.stateFormat)
            file.field("version", Self.stateFormatVersion)
            file.field("saved_at", savedAt.rfc3339)
            file.field("next_sequence", state.nextSequence)
            file.field("experiments", writing: { writer in
                writer.object(sortedBy: state.experiments) { phases, writer in
                    writer.array { array in phases.forEach { phase in array.object { Self.write(phase, into: &$0) } } }
                }
            })
            let disabled = state.disabled.values.sorted { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }
            file.objects("disabled", disabled) { treatment, object in
                object.field("experiment", treatment.experiment)
                object.field("variant", treatment.variant)
                object.field("at", treatment.at.rfc3339)
                object.field("automatic", treatment.automatic)
                object.field("reason", treatment.reason)
            }
            // The document's disables already logged, so that a restart on the same document logs none again.
            let configDisabled = state.configDisabled.values.sorted {
                ($0.experiment, $0.variant) < ($1.experiment, $1.variant)
            }
            file.objects("config_disabled", configDisabled) { treatment, object in
                object.field("experiment", treatment.experiment)
                object.field("variant", treatment.variant)
                object.field("at", treatment.at.rfc3339)
                object.field("by", treatment.configuredBy ?? "")
                object.field("reason", treatment.reason)
            }
            let guardrails = state.promptRules.keys.sorted {
                ($0.prompt, $0.version, $0.rule) < ($1.prompt, $1.version, $1.rule)
            }
            file.objects("prompt_rules", guardrails) { key, object in
                let tally = state.promptRules[key] ?? PromptRuleTally()
                object.field("prompt", key.prompt)
                object.field("version", key.version)
                object.field("rule", key.rule)
                object.field("triggered", tally.triggered)
                object.field("unreported", tally.unreported)
                object.field("last_event_at", tally.lastEventAt?.rfc3339)
            }
            file.objects("events", state.events) { event, object in event.writeMembers(into: &object) }
        }
        writer.newline()
        return (writer.bytes, state.generation)
    }

    /// Replaces the ledger's contents with a state file's, keeping every part of the file that is sound.
    ///
    /// A damaged part is left out and reported, never the whole file: a malformed metric starts afresh, a
    /// malformed variant, phase or experiment is dropped, a malformed event or guardrail tally is skipped. A
    /// disabled treatment is kept whenever its experiment and variant can be read, whatever else is wrong with its
    /// entry (fail closed: a treatment an operator or a guardrail stopped is never served again by accident).
    /// When there are problems, a `state_damaged` event lists them, at `now` (nil: the file's `saved_at`).
    /// - Returns: the parts not restored as written (empty for a sound file).
    /// - Throws: `RestoreError` when the file is not a variantd state file of version 1 or 2; the ledger is left
    ///   unchanged then.
    @discardableResult
    public func restore(from bytes: [UInt8], at now: Timestamp? = nil) throws(RestoreError) -> [RestoreProblem] {
        let root: JSONObject
        do {
            guard case .object(let object) = try JSONParser.parse(bytes) else { throw RestoreError(description: "not a JSON object") }
            root = object
        } catch let error as RestoreError {
            throw error
        } catch {
            throw RestoreError(description: "not valid JSON: \(error)")
        }
        guard root["format"]?.stringValue == Self.stateFormat else {
            throw RestoreError(description: "not a variantd state file (format is not '\(Self.stateFormat)')")
        }
        let version = root["version"]?.integerValue
        guard version == 1 || version == Self.stateFormatVersion else {
            throw RestoreError(description: "state format version \(root["version"].map { "\($0)" } ?? "missing") is not 1 or \(Self.stateFormatVersion)")
        }
        let savedAt = root["saved_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)) ?? Timestamp(secondsSinceEpoch: 0)
        var salvage = Salvage()
        var restored = State()
        restored.nextSequence =
            salvage.attempt("next_sequence", "sequence numbers go on from the last event") { () throws(RestoreError) in
                try Self.integer(root["next_sequence"], "next_sequence")
            } ?? 1
        if let experiments = root["experiments"]?.objectValue {
            for experiment in experiments.members {
                let path = "experiments.\(experiment.key)"
                if version == 1 {
                    // Before phases: the experiment's variants, and its sequential tests at the top level (below).
                    guard let variants = experiment.value.objectValue else {
                        salvage.report(path, "is not an object; the experiment's statistics start afresh")
                        continue
                    }
                    var phase = ExperimentPhase(
                        number: 1, definition: nil, startedAt: Timestamp(secondsSinceEpoch: 0),
                        reason: "restored from a state file without phases", unitVariants: [])
                    for variant in variants.members {
                        let variantPath = "\(path).\(variant.key)"
                        phase.variants[variant.key] = Self.aggregate(variant.value, path: variantPath, salvage: &salvage)
                    }
                    restored.experiments[experiment.key] = [phase]
                    continue
                }
                guard let phases = experiment.value.arrayValue else {
                    salvage.report(path, "is not a list of phases; the experiment's statistics start afresh")
                    continue
                }
                var restoredPhases: [ExperimentPhase] = []
                for (position, phase) in phases.enumerated() {
                    if let phase = Self.phase(phase, path: "\(path)[\(position)]", salvage: &salvage) {
                        restoredPhases.append(phase)
                    }
                }
                if !restoredPhases.isEmpty { restored.experiments[experiment.key] = restoredPhases }
            }
        } else {
            salvage.report("experiments", "is missing or not an object; every experiment's statistics start afresh")
        }
        // As leniently as can be: serving a treatment again by accident is the one loss a damaged file must never
        // cause.
        for (position, entry) in Self.entries(root, "disabled", salvage: &salvage).enumerated() {
            let path = "disabled[\(position)]"
            guard let object = entry.objectValue, let experiment = object["experiment"]?.stringValue,
                let variant = object["variant"]?.stringValue
            else {
                salvage.report(path, "names no experiment and variant; that treatment is served again")
                continue
            }
            let at = object["at"]?.stringValue.flatMap(Timestamp.init(rfc3339:))
            let automatic = object["automatic"]?.boolValue
            let reason = object["reason"]?.stringValue
            if at == nil || automatic == nil || reason == nil {
                salvage.report(path, "is malformed; '\(variant)' of '\(experiment)' stays disabled")
            }
            restored.disabled[VariantKey(experiment: experiment, variant: variant)] = DisabledTreatment(
                experiment: experiment, variant: variant, at: at ?? savedAt, automatic: automatic ?? false,
                reason: reason ?? "restored from a damaged state file")
        }
        // Absent from state files written before documents could disable. A damaged entry is left out: the
        // document, which still disables the treatment if it does, is followed again and logs it once more.
        for (position, entry) in Self.entries(root, "config_disabled", salvage: &salvage).enumerated() {
            guard let object = entry.objectValue, let experiment = object["experiment"]?.stringValue,
                let variant = object["variant"]?.stringValue,
                let at = object["at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
                let by = object["by"]?.stringValue, let reason = object["reason"]?.stringValue
            else {
                salvage.report("config_disabled[\(position)]", "is malformed; the document's disable is logged again when next applied")
                continue
            }
            restored.configDisabled[VariantKey(experiment: experiment, variant: variant)] = DisabledTreatment(
                experiment: experiment, variant: variant, at: at, automatic: false, reason: reason, configuredBy: by)
        }
        for (position, entry) in Self.entries(root, "sequential", salvage: &salvage).enumerated() {
            guard let object = entry.objectValue, let experiment = object["experiment"]?.stringValue,
                let variant = object["variant"]?.stringValue, let metric = object["metric"]?.stringValue,
                let test = Self.sequentialTest(object)
            else {
                salvage.report("sequential[\(position)]", "is malformed; that guardrail test starts afresh")
                continue
            }
            // Version 1 only: the tests of the one phase restored.
            guard let last = restored.experiments[experiment]?.indices.last else { continue }
            restored.experiments[experiment]![last].sequential[variant, default: [:]][metric] = test
        }
        // Absent from state files written before prompt rules were counted.
        for (position, entry) in Self.entries(root, "prompt_rules", salvage: &salvage).enumerated() {
            guard let object = entry.objectValue, let prompt = object["prompt"]?.stringValue,
                let version = object["version"]?.integerValue, let rule = object["rule"]?.stringValue,
                let triggered = object["triggered"]?.integerValue, triggered >= 0,
                let unreported = object["unreported"]?.integerValue, (0...triggered).contains(unreported)
            else {
                salvage.report("prompt_rules[\(position)]", "is malformed; that rule's count starts afresh")
                continue
            }
            var lastEventAt: Timestamp?
            if let at = object["last_event_at"], at != .null {
                lastEventAt = at.stringValue.flatMap(Timestamp.init(rfc3339:))
                if lastEventAt == nil {
                    salvage.report("prompt_rules[\(position)].last_event_at", "is not a timestamp; it is left out")
                }
            }
            restored.promptRules[PromptRuleKey(prompt: prompt, version: version, rule: rule)] =
                PromptRuleTally(triggered: triggered, unreported: unreported, lastEventAt: lastEventAt)
        }
        for (position, entry) in Self.entries(root, "events", salvage: &salvage).enumerated() {
            guard let object = entry.objectValue, let sequence = object["sequence"]?.integerValue,
                let at = object["at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
                let kind = object["kind"]?.stringValue.flatMap(LedgerEvent.Kind.init(rawValue:)),
                let actor = object["actor"]?.stringValue, let message = object["message"]?.stringValue
            else {
                salvage.report("events[\(position)]", "is malformed; the event is left out")
                continue
            }
            restored.events.append(
                LedgerEvent(
                    sequence: sequence, at: at, kind: kind, experiment: object["experiment"]?.stringValue,
                    variant: object["variant"]?.stringValue, actor: actor, message: message,
                    details: object["details"]?.objectValue ?? JSONObject()))
        }
        if restored.events.count > eventCapacity { restored.events.removeFirst(restored.events.count - eventCapacity) }
        restored.nextSequence = max(restored.nextSequence, (restored.events.last?.sequence ?? 0) + 1)
        let problems = salvage.listed
        if !problems.isEmpty {
            _ = Self.append(
                LedgerEvent(
                    at: now ?? savedAt, kind: .stateDamaged, actor: "state file",
                    message: "restored in part: \(salvage.count) damaged part(s) left out or started afresh",
                    details: JSONObject([("problems", .array(problems.map { .string($0.description) }))])),
                to: &restored, capacity: eventCapacity)
        }
        state.withLock { current in
            restored.generation = current.generation &+ 1
            current = restored
        }
        return problems
    }

    /// The problems met while restoring, and the way to go on past one.
    struct Salvage {
        private(set) var problems: [RestoreProblem] = []
        /// Every problem met, listed or not.
        private(set) var count = 0

        mutating func report(_ path: String, _ message: String) {
            count += 1
            if problems.count < ExperimentLedger.maximumRestoreProblemsListed {
                problems.append(RestoreProblem(path: path, message: message))
            }
        }

        /// `body`'s value, or nil after reporting its error at `path` with what was done instead.
        mutating func attempt<Value>(
            _ path: String, _ consequence: String, _ body: () throws(RestoreError) -> Value
        ) -> Value? {
            do {
                return try body()
            } catch {
                report(path, error.description + "; " + consequence)
                return nil
            }
        }

        /// The problems, with one more counting those not listed.
        var listed: [RestoreProblem] {
            guard count > problems.count else { return problems }
            return problems + [RestoreProblem(path: "...", message: "and \(count - problems.count) more problems")]
        }
    }

    /// The entries of a top-level list that may be absent; anything else there is a problem.
    private static func entries(_ root: JSONObject, _ key: String, salvage: inout Salvage) -> [JSONValue] {
        guard let value = root[key] else { return [] }
        guard let entries = value.arrayValue else {
            salvage.report(key, "is not a list; it is left out")
            return []
        }
        return entries
    }

    private static func sequentialTest(_ object: JSONObject) -> SequentialTestState? {
        guard let pValue = object["p_value"]?.numberValue, pValue >= 0, pValue <= 1,
            let evaluations = object["evaluations"]?.integerValue, evaluations >= 0
        else { return nil }
        return SequentialTestState(alwaysValidPValue: pValue, evaluations: evaluations)
    }

    // MARK: - One phase

    private static func write(_ phase: ExperimentPhase, into object: inout JSONObjectWriter) {
        object.field("number", phase.number)
        object.field("started_at", phase.startedAt.rfc3339)
        object.field("reason", phase.reason)
        object.field("definition", phase.definition.map { JSONValue.array($0.lines.map(JSONValue.string)) } ?? .null)
        object.field("variants", writing: { writer in
            writer.object(sortedBy: phase.variants) { aggregate, writer in writer.object { write(aggregate, into: &$0) } }
        })
        object.array("sequential") { array in
            for variant in phase.sequential.keys.sorted() {
                for (metric, test) in (phase.sequential[variant] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    array.object { object in
                        object.field("variant", variant)
                        object.field("metric", metric)
                        object.field("p_value", test.alwaysValidPValue)
                        object.field("evaluations", test.evaluations)
                    }
                }
            }
        }
        object.object("units") { units in
            units.strings("variants", phase.unitVariants)
            // Each sampled unit as 18 hex digits: its 16-digit hash, then its variant index.
            var sample: [UInt8] = []
            sample.reserveCapacity(phase.units.hashes.count * 18)
            for (hash, variant) in zip(phase.units.hashes, phase.units.variants) {
                for shift in stride(from: 60, through: 0, by: -4) { sample.append(hexDigit(UInt8((hash >> UInt64(shift)) & 0xF))) }
                sample.append(hexDigit(variant >> 4))
                sample.append(hexDigit(variant & 0xF))
            }
            units.field("sample", String(decoding: sample, as: UTF8.self))
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// A phase, or nil (reported) when its number, start or reason cannot be read; a damaged part of it is left
    /// out and reported.
    private static func phase(_ value: JSONValue, path: String, salvage: inout Salvage) -> ExperimentPhase? {
        guard let object = value.objectValue, let number = object["number"]?.integerValue, number >= 1,
            let startedAt = object["started_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
            let reason = object["reason"]?.stringValue
        else {
            salvage.report(path, "lacks a number, started_at or reason; the phase's statistics are left out")
            return nil
        }
        var definition: PhaseDefinition?
        if let lines = object["definition"]?.arrayValue {
            let strings = lines.compactMap(\.stringValue)
            if strings.count == lines.count {
                definition = PhaseDefinition(lines: strings)
            } else {
                salvage.report(path + ".definition", "is malformed; the phase adopts the next configuration seen")
            }
        }
        let unitsObject = object["units"]?.objectValue
        let unitVariants = (unitsObject?["variants"]?.arrayValue ?? []).compactMap(\.stringValue)
        var phase = ExperimentPhase(
            number: number, definition: definition, startedAt: startedAt, reason: reason, unitVariants: unitVariants)
        for variant in object["variants"]?.objectValue?.members ?? [] {
            phase.variants[variant.key] = aggregate(variant.value, path: "\(path).variants.\(variant.key)", salvage: &salvage)
        }
        for (position, entry) in (object["sequential"]?.arrayValue ?? []).enumerated() {
            guard let test = entry.objectValue, let variant = test["variant"]?.stringValue,
                let metric = test["metric"]?.stringValue, let state = sequentialTest(test)
            else {
                salvage.report("\(path).sequential[\(position)]", "is malformed; that guardrail test starts afresh")
                continue
            }
            phase.sequential[variant, default: [:]][metric] = state
        }
        if let units = unitSample(unitsObject?["sample"]?.stringValue ?? "") {
            phase.units = units
        } else {
            salvage.report(path + ".units.sample", "is not a sorted sample of distinct units; the count of units starts afresh")
        }
        return phase
    }

    /// Each sampled unit as 18 hex digits (`write(_:into:)`); nil when the text is not such a sample.
    private static func unitSample(_ text: String) -> DistinctUnitSample? {
        let sample = Array(text.utf8)
        guard sample.count % 18 == 0 else { return nil }
        var hashes: [UInt64] = []
        var variants: [UInt8] = []
        var position = 0
        while position < sample.count {
            var hash: UInt64 = 0
            for digit in sample[position..<(position + 16)] {
                guard let value = hexValue(digit) else { return nil }
                hash = hash << 4 | UInt64(value)
            }
            guard let high = hexValue(sample[position + 16]), let low = hexValue(sample[position + 17]) else { return nil }
            hashes.append(hash)
            variants.append(high << 4 | low)
            position += 18
        }
        return DistinctUnitSample(hashes: hashes, variants: variants)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    // MARK: - One variant

    private static func write(_ aggregate: VariantAggregate, into object: inout JSONObjectWriter) {
        object.field("assignments", aggregate.assignments)
        object.field("records", aggregate.records)
        object.field("shadow_records", aggregate.shadowRecords)
        object.field("out_of_range", aggregate.outOfRange)
        object.object("errors", aggregate.errors, members: write)
        object.object("success", aggregate.success, members: write)
        object.object("latency_ms", aggregate.latencyMilliseconds, members: write)
        object.array("latency_histogram_us") { buckets in
            for bucket in aggregate.latencyHistogram.recordedValues() {
                buckets.array { pair in
                    pair.element(Int(bucket.value))
                    pair.element(Int(bucket.count))
                }
            }
        }
        object.object("cost_usd", aggregate.costUSD, members: write)
        object.object("tokens", aggregate.tokens, members: write)
        object.field("custom", writing: { writer in
            writer.object(sortedBy: aggregate.custom) { moments, writer in writer.object { write(moments, into: &$0) } }
        })
        object.field("unit_records", aggregate.unitRecords)
        var groups: [(String, UnitGroupTotals)] = [
            ("error_rate", aggregate.errorGroups), ("success", aggregate.successGroups),
            ("latency_ms", aggregate.latencyGroups), ("cost_usd", aggregate.costGroups), ("tokens", aggregate.tokenGroups),
        ]
        groups += aggregate.customGroups.keys.sorted().map { ("custom." + $0, aggregate.customGroups[$0]!) }
        object.object("groups") { object in
            for (name, totals) in groups where !totals.isEmpty {
                object.key(named: name)
                object.json.object { group in
                    group.array("n") { array in totals.counts.forEach { array.element($0) } }
                    group.array("sum") { array in totals.sums.forEach { array.element($0) } }
                }
            }
        }
    }

    private static func write(_ counts: ProportionCounts, into object: inout JSONObjectWriter) {
        object.field("trials", counts.trials)
        object.field("successes", counts.successes)
    }

    private static func write(_ moments: RunningMoments, into object: inout JSONObjectWriter) {
        object.field("count", moments.count)
        object.field("mean", moments.mean)
        object.field("m2", moments.m2)
        object.field("min", moments.min)
        object.field("max", moments.max)
    }

    /// A variant's aggregate: its counts must be sound (else the variant starts afresh, reported); a malformed
    /// metric starts afresh on its own, with its group totals, so the others keep their statistics.
    private static func aggregate(_ value: JSONValue, path: String, salvage: inout Salvage) -> VariantAggregate {
        let consequence = "the variant's statistics of this phase start afresh"
        guard let object = value.objectValue else {
            salvage.report(path, "is not an object; " + consequence)
            return VariantAggregate()
        }
        var aggregate = VariantAggregate()
        do throws(RestoreError) {
            aggregate.assignments = try integer(object["assignments"], path + ".assignments")
            aggregate.records = try integer(object["records"], path + ".records")
            aggregate.shadowRecords = try integer(object["shadow_records"], path + ".shadow_records")
            // Absent from files written before records out of range were counted, and from version 1 files,
            // whose records were analysed per record.
            aggregate.outOfRange = object["out_of_range"] == nil ? 0 : try integer(object["out_of_range"], path + ".out_of_range")
            aggregate.unitRecords = object["unit_records"] == nil ? 0 : try integer(object["unit_records"], path + ".unit_records")
        } catch {
            salvage.report(path, error.description + "; " + consequence)
            return VariantAggregate()
        }
        let metricConsequence = "the metric starts afresh"
        // Metrics that start afresh lose their group totals too, so that mean and variance describe one stream.
        var restarted: Set<String> = []
        func restoreCounts(_ name: String, _ key: String) -> ProportionCounts {
            let metricPath = "\(path).\(key)"
            if let counts = salvage.attempt(metricPath, metricConsequence, { () throws(RestoreError) in try counts(object[key], metricPath) }) {
                return counts
            }
            restarted.insert(name)
            return ProportionCounts()
        }
        func restoreMoments(_ name: String, _ value: JSONValue?) -> RunningMoments {
            let metricPath = "\(path).\(name)"
            if let moments = salvage.attempt(metricPath, metricConsequence, { () throws(RestoreError) in try moments(value, metricPath) }) {
                return moments
            }
            restarted.insert(name)
            return RunningMoments()
        }
        aggregate.errors = restoreCounts("error_rate", "errors")
        aggregate.success = restoreCounts("success", "success")
        aggregate.latencyMilliseconds = restoreMoments("latency_ms", object["latency_ms"])
        let buckets = object["latency_histogram_us"]?.arrayValue ?? []
        let pairs = buckets.compactMap { bucket -> (value: UInt64, count: UInt64)? in
            guard let pair = bucket.arrayValue, pair.count == 2, let value = pair[0].integerValue,
                let count = pair[1].integerValue, value >= 0, count >= 0
            else { return nil }
            return (UInt64(value), UInt64(count))
        }
        if pairs.count == buckets.count, !restarted.contains("latency_ms") {
            for pair in pairs { aggregate.recordLatencyMicroseconds(pair.value, count: pair.count) }
        } else if pairs.count != buckets.count {
            salvage.report(path + ".latency_histogram_us", "holds a malformed bucket; the latency percentiles start afresh")
        }
        aggregate.costUSD = restoreMoments("cost_usd", object["cost_usd"])
        aggregate.tokens = restoreMoments("tokens", object["tokens"])
        for metric in object["custom"]?.objectValue?.members ?? [] {
            let moments = restoreMoments("custom.\(metric.key)", metric.value)
            if !moments.isEmpty { aggregate.custom[metric.key] = moments }
        }
        for group in object["groups"]?.objectValue?.members ?? [] where !restarted.contains(group.key) {
            let groupPath = "\(path).groups.\(group.key)"
            guard let totals = group.value.objectValue,
                let counts = totals["n"]?.arrayValue?.compactMap(\.integerValue),
                let sums = totals["sum"]?.arrayValue?.compactMap(\.numberValue),
                let restored = UnitGroupTotals(counts: counts, sums: sums)
            else {
                salvage.report(
                    groupPath, "must hold \(UnitGroupTotals.groupCount) counts and finite sums; the metric's variance by unit starts afresh")
                continue
            }
            switch group.key {
            case "error_rate": aggregate.errorGroups = restored
            case "success": aggregate.successGroups = restored
            case "latency_ms": aggregate.latencyGroups = restored
            case "cost_usd": aggregate.costGroups = restored
            case "tokens": aggregate.tokenGroups = restored
            case let name where name.hasPrefix("custom."): aggregate.customGroups[String(name.dropFirst(7))] = restored
            default: salvage.report(groupPath, "is not a metric; it is left out")
            }
        }
        return aggregate
    }

    private static func integer(_ value: JSONValue?, _ path: String) throws(RestoreError) -> Int {
        guard let number = value?.integerValue, number >= 0 else {
            throw RestoreError(description: "'\(path)' must be a whole number, 0 or more")
        }
        return number
    }

    private static func number(_ value: JSONValue?, _ path: String) throws(RestoreError) -> Double {
        guard let number = value?.numberValue, number.isFinite else {
            throw RestoreError(description: "'\(path)' must be a finite number")
        }
        return number
    }

    private static func counts(_ value: JSONValue?, _ path: String) throws(RestoreError) -> ProportionCounts {
        guard let object = value?.objectValue else { throw RestoreError(description: "'\(path)' is missing") }
        return ProportionCounts(
            trials: try integer(object["trials"], path + ".trials"),
            successes: try number(object["successes"], path + ".successes"))
    }

    private static func moments(_ value: JSONValue?, _ path: String) throws(RestoreError) -> RunningMoments {
        guard let object = value?.objectValue else { throw RestoreError(description: "'\(path)' is missing") }
        return RunningMoments(
            count: try integer(object["count"], path + ".count"), mean: try number(object["mean"], path + ".mean"),
            m2: try number(object["m2"], path + ".m2"), min: try number(object["min"], path + ".min"),
            max: try number(object["max"], path + ".max"))
    }
}
