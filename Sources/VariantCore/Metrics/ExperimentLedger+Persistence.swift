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

    /// Why a state file could not be restored.
    public struct RestoreError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The whole ledger, written in one consistent view, and the generation it reflects.
    public func encodedState(savedAt: Timestamp) -> (bytes: [UInt8], generation: UInt64) {
        foldTallies()
        let state = state.withLock { $0 }
        var writer = JSONWriter(reservingCapacity: 4096)
        writer.raw("{\"format\":")
        writer.string(Self.stateFormat)
        writer.raw(",\"version\":")
        writer.integer(Self.stateFormatVersion)
        writer.raw(",\"saved_at\":")
        writer.string(savedAt.rfc3339)
        writer.raw(",\"next_sequence\":")
        writer.integer(state.nextSequence)
        writer.raw(",\"experiments\":")
        writer.object(sortedBy: state.experiments) { phases, writer in
            writer.raw("[")
            for (position, phase) in phases.enumerated() {
                if position > 0 { writer.raw(",") }
                Self.write(phase, into: &writer)
            }
            writer.raw("]")
        }
        writer.raw(",\"disabled\":[")
        let disabled = state.disabled.values.sorted { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }
        for (position, treatment) in disabled.enumerated() {
            if position > 0 { writer.raw(",") }
            writer.raw("{\"experiment\":")
            writer.string(treatment.experiment)
            writer.raw(",\"variant\":")
            writer.string(treatment.variant)
            writer.raw(",\"at\":")
            writer.string(treatment.at.rfc3339)
            writer.raw(",\"automatic\":")
            writer.bool(treatment.automatic)
            writer.raw(",\"reason\":")
            writer.string(treatment.reason)
            writer.raw("}")
        }
        writer.raw("],\"prompt_guardrails\":[")
        let guardrails = state.promptGuardrails.keys.sorted { ($0.prompt, $0.version, $0.rule) < ($1.prompt, $1.version, $1.rule) }
        for (position, key) in guardrails.enumerated() {
            let tally = state.promptGuardrails[key] ?? PromptGuardrailTally()
            if position > 0 { writer.raw(",") }
            writer.raw("{\"prompt\":")
            writer.string(key.prompt)
            writer.raw(",\"version\":")
            writer.integer(key.version)
            writer.raw(",\"rule\":")
            writer.string(key.rule)
            writer.raw(",\"triggered\":")
            writer.integer(tally.triggered)
            writer.raw(",\"unreported\":")
            writer.integer(tally.unreported)
            writer.raw(",\"last_event_at\":")
            if let at = tally.lastEventAt { writer.string(at.rfc3339) } else { writer.null() }
            writer.raw("}")
        }
        writer.raw("],\"events\":[")
        for (position, event) in state.events.enumerated() {
            if position > 0 { writer.raw(",") }
            event.write(into: &writer)
        }
        writer.raw("]}\n")
        return (writer.bytes, state.generation)
    }

    /// Replaces the ledger's contents with a state file's.
    /// - Throws: `RestoreError` naming the first problem; the ledger is left unchanged then.
    public func restore(from bytes: [UInt8]) throws(RestoreError) {
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
        var restored = State()
        restored.nextSequence = try Self.integer(root["next_sequence"], "next_sequence")
        guard let experiments = root["experiments"]?.objectValue else { throw RestoreError(description: "'experiments' is missing") }
        for experiment in experiments.members {
            if version == 1 {
                // Before phases: the experiment's variants, and its sequential tests at the top level (below).
                guard let variants = experiment.value.objectValue else {
                    throw RestoreError(description: "experiment '\(experiment.key)' is not an object")
                }
                var phase = ExperimentPhase(
                    number: 1, definition: nil, startedAt: Timestamp(secondsSinceEpoch: 0),
                    reason: "restored from a state file without phases", unitVariants: [])
                for variant in variants.members {
                    phase.variants[variant.key] = try Self.aggregate(variant.value, path: "\(experiment.key).\(variant.key)")
                }
                restored.experiments[experiment.key] = [phase]
                continue
            }
            guard let phases = experiment.value.arrayValue else {
                throw RestoreError(description: "experiment '\(experiment.key)' is not a list of phases")
            }
            var restoredPhases: [ExperimentPhase] = []
            for (position, phase) in phases.enumerated() {
                restoredPhases.append(try Self.phase(phase, path: "\(experiment.key)[\(position)]"))
            }
            restored.experiments[experiment.key] = restoredPhases
        }
        for entry in root["disabled"]?.arrayValue ?? [] {
            guard let object = entry.objectValue, let experiment = object["experiment"]?.stringValue,
                let variant = object["variant"]?.stringValue, let at = object["at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
                let automatic = object["automatic"]?.boolValue, let reason = object["reason"]?.stringValue
            else { throw RestoreError(description: "a 'disabled' entry is malformed") }
            restored.disabled[VariantKey(experiment: experiment, variant: variant)] = DisabledTreatment(
                experiment: experiment, variant: variant, at: at, automatic: automatic, reason: reason)
        }
        for entry in root["sequential"]?.arrayValue ?? [] {
            guard let object = entry.objectValue, let experiment = object["experiment"]?.stringValue,
                let variant = object["variant"]?.stringValue, let metric = object["metric"]?.stringValue,
                let pValue = object["p_value"]?.numberValue, pValue >= 0, pValue <= 1,
                let evaluations = object["evaluations"]?.integerValue, evaluations >= 0
            else { throw RestoreError(description: "a 'sequential' entry is malformed") }
            // Version 1 only: the tests of the one phase restored.
            guard let last = restored.experiments[experiment]?.indices.last else { continue }
            restored.experiments[experiment]![last].sequential[variant, default: [:]][metric] =
                SequentialTestState(alwaysValidPValue: pValue, evaluations: evaluations)
        }
        // Absent from state files written before prompt guardrails were counted.
        for entry in root["prompt_guardrails"]?.arrayValue ?? [] {
            guard let object = entry.objectValue, let prompt = object["prompt"]?.stringValue,
                let version = object["version"]?.integerValue, let rule = object["rule"]?.stringValue,
                let triggered = object["triggered"]?.integerValue, triggered >= 0,
                let unreported = object["unreported"]?.integerValue, (0...triggered).contains(unreported)
            else { throw RestoreError(description: "a 'prompt_guardrails' entry is malformed") }
            var lastEventAt: Timestamp?
            if let at = object["last_event_at"], at != .null {
                guard let parsed = at.stringValue.flatMap(Timestamp.init(rfc3339:)) else {
                    throw RestoreError(description: "a 'prompt_guardrails' entry is malformed")
                }
                lastEventAt = parsed
            }
            restored.promptGuardrails[PromptGuardrailKey(prompt: prompt, version: version, rule: rule)] =
                PromptGuardrailTally(triggered: triggered, unreported: unreported, lastEventAt: lastEventAt)
        }
        for entry in root["events"]?.arrayValue ?? [] {
            guard let object = entry.objectValue, let sequence = object["sequence"]?.integerValue,
                let at = object["at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
                let kind = object["kind"]?.stringValue.flatMap(LedgerEvent.Kind.init(rawValue:)),
                let actor = object["actor"]?.stringValue, let message = object["message"]?.stringValue
            else { throw RestoreError(description: "an 'events' entry is malformed") }
            restored.events.append(
                LedgerEvent(
                    sequence: sequence, at: at, kind: kind, experiment: object["experiment"]?.stringValue,
                    variant: object["variant"]?.stringValue, actor: actor, message: message,
                    details: object["details"]?.objectValue ?? JSONObject()))
        }
        if restored.events.count > eventCapacity { restored.events.removeFirst(restored.events.count - eventCapacity) }
        restored.nextSequence = max(restored.nextSequence, (restored.events.last?.sequence ?? 0) + 1)
        state.withLock { current in
            restored.generation = current.generation &+ 1
            current = restored
        }
    }

    // MARK: - One phase

    private static func write(_ phase: ExperimentPhase, into writer: inout JSONWriter) {
        writer.raw("{\"number\":")
        writer.integer(phase.number)
        writer.raw(",\"started_at\":")
        writer.string(phase.startedAt.rfc3339)
        writer.raw(",\"reason\":")
        writer.string(phase.reason)
        writer.raw(",\"definition\":")
        if let definition = phase.definition {
            writer.value(.array(definition.lines.map(JSONValue.string)))
        } else {
            writer.null()
        }
        writer.raw(",\"variants\":")
        writer.object(sortedBy: phase.variants) { aggregate, writer in write(aggregate, into: &writer) }
        writer.raw(",\"sequential\":[")
        var first = true
        for variant in phase.sequential.keys.sorted() {
            for (metric, test) in (phase.sequential[variant] ?? [:]).sorted(by: { $0.key < $1.key }) {
                if !first { writer.raw(",") }
                first = false
                writer.raw("{\"variant\":")
                writer.string(variant)
                writer.raw(",\"metric\":")
                writer.string(metric)
                writer.raw(",\"p_value\":")
                writer.number(test.alwaysValidPValue)
                writer.raw(",\"evaluations\":")
                writer.integer(test.evaluations)
                writer.raw("}")
            }
        }
        writer.raw("],\"units\":{\"variants\":")
        writer.value(.array(phase.unitVariants.map(JSONValue.string)))
        // Each sampled unit as 18 hex digits: its 16-digit hash, then its variant index.
        writer.raw(",\"sample\":")
        var sample: [UInt8] = []
        sample.reserveCapacity(phase.units.hashes.count * 18)
        for (hash, variant) in zip(phase.units.hashes, phase.units.variants) {
            for shift in stride(from: 60, through: 0, by: -4) { sample.append(hexDigit(UInt8((hash >> UInt64(shift)) & 0xF))) }
            sample.append(hexDigit(variant >> 4))
            sample.append(hexDigit(variant & 0xF))
        }
        writer.string(String(decoding: sample, as: UTF8.self))
        writer.raw("}}")
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    private static func phase(_ value: JSONValue, path: String) throws(RestoreError) -> ExperimentPhase {
        guard let object = value.objectValue else { throw RestoreError(description: "'\(path)' is not an object") }
        let number = try integer(object["number"], path + ".number")
        guard number >= 1, let startedAt = object["started_at"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
            let reason = object["reason"]?.stringValue
        else { throw RestoreError(description: "'\(path)' lacks a number, started_at or reason") }
        var definition: PhaseDefinition?
        if let lines = object["definition"]?.arrayValue {
            let strings = lines.compactMap(\.stringValue)
            guard strings.count == lines.count else { throw RestoreError(description: "'\(path).definition' is malformed") }
            definition = PhaseDefinition(lines: strings)
        }
        let unitsObject = object["units"]?.objectValue
        let unitVariants = (unitsObject?["variants"]?.arrayValue ?? []).compactMap(\.stringValue)
        var phase = ExperimentPhase(
            number: number, definition: definition, startedAt: startedAt, reason: reason, unitVariants: unitVariants)
        for variant in object["variants"]?.objectValue?.members ?? [] {
            phase.variants[variant.key] = try aggregate(variant.value, path: "\(path).variants.\(variant.key)")
        }
        for entry in object["sequential"]?.arrayValue ?? [] {
            guard let test = entry.objectValue, let variant = test["variant"]?.stringValue,
                let metric = test["metric"]?.stringValue, let pValue = test["p_value"]?.numberValue, pValue >= 0,
                pValue <= 1, let evaluations = test["evaluations"]?.integerValue, evaluations >= 0
            else { throw RestoreError(description: "a 'sequential' entry of '\(path)' is malformed") }
            phase.sequential[variant, default: [:]][metric] = SequentialTestState(
                alwaysValidPValue: pValue, evaluations: evaluations)
        }
        let sample = Array((unitsObject?["sample"]?.stringValue ?? "").utf8)
        guard sample.count % 18 == 0 else { throw RestoreError(description: "'\(path).units.sample' is malformed") }
        var hashes: [UInt64] = []
        var variants: [UInt8] = []
        var position = 0
        while position < sample.count {
            var hash: UInt64 = 0
            for digit in sample[position..<(position + 16)] {
                guard let value = hexValue(digit) else { throw RestoreError(description: "'\(path).units.sample' is malformed") }
                hash = hash << 4 | UInt64(value)
            }
            guard let high = hexValue(sample[position + 16]), let low = hexValue(sample[position + 17]) else {
                throw RestoreError(description: "'\(path).units.sample' is malformed")
            }
            hashes.append(hash)
            variants.append(high << 4 | low)
            position += 18
        }
        guard let units = DistinctUnitSample(hashes: hashes, variants: variants) else {
            throw RestoreError(description: "'\(path).units.sample' is not a sorted sample of distinct units")
        }
        phase.units = units
        return phase
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    // MARK: - One variant

    private static func write(_ aggregate: VariantAggregate, into writer: inout JSONWriter) {
        writer.raw("{\"assignments\":")
        writer.integer(aggregate.assignments)
        writer.raw(",\"records\":")
        writer.integer(aggregate.records)
        writer.raw(",\"shadow_records\":")
        writer.integer(aggregate.shadowRecords)
        writer.raw(",\"errors\":")
        write(aggregate.errors, into: &writer)
        writer.raw(",\"success\":")
        write(aggregate.success, into: &writer)
        writer.raw(",\"latency_ms\":")
        write(aggregate.latencyMilliseconds, into: &writer)
        writer.raw(",\"latency_histogram_us\":[")
        for (position, bucket) in aggregate.latencyHistogram.recordedValues().enumerated() {
            if position > 0 { writer.raw(",") }
            writer.raw("[")
            writer.integer(Int(bucket.value))
            writer.raw(",")
            writer.integer(Int(bucket.count))
            writer.raw("]")
        }
        writer.raw("],\"cost_usd\":")
        write(aggregate.costUSD, into: &writer)
        writer.raw(",\"tokens\":")
        write(aggregate.tokens, into: &writer)
        writer.raw(",\"custom\":")
        writer.object(sortedBy: aggregate.custom) { moments, writer in write(moments, into: &writer) }
        writer.raw(",\"unit_records\":")
        writer.integer(aggregate.unitRecords)
        writer.raw(",\"groups\":{")
        var groups: [(String, UnitGroupTotals)] = [
            ("error_rate", aggregate.errorGroups), ("success", aggregate.successGroups),
            ("latency_ms", aggregate.latencyGroups), ("cost_usd", aggregate.costGroups), ("tokens", aggregate.tokenGroups),
        ]
        groups += aggregate.customGroups.keys.sorted().map { ("custom." + $0, aggregate.customGroups[$0]!) }
        var first = true
        for (name, totals) in groups where !totals.isEmpty {
            if !first { writer.raw(",") }
            first = false
            writer.string(name)
            writer.raw(":{\"n\":[")
            for (index, count) in totals.counts.enumerated() {
                if index > 0 { writer.raw(",") }
                writer.integer(count)
            }
            writer.raw("],\"sum\":[")
            for (index, sum) in totals.sums.enumerated() {
                if index > 0 { writer.raw(",") }
                writer.number(sum)
            }
            writer.raw("]}")
        }
        writer.raw("}}")
    }

    private static func write(_ counts: ProportionCounts, into writer: inout JSONWriter) {
        writer.raw("{\"trials\":")
        writer.integer(counts.trials)
        writer.raw(",\"successes\":")
        writer.number(counts.successes)
        writer.raw("}")
    }

    private static func write(_ moments: RunningMoments, into writer: inout JSONWriter) {
        writer.raw("{\"count\":")
        writer.integer(moments.count)
        writer.raw(",\"mean\":")
        writer.number(moments.mean)
        writer.raw(",\"m2\":")
        writer.number(moments.m2)
        writer.raw(",\"min\":")
        writer.number(moments.min)
        writer.raw(",\"max\":")
        writer.number(moments.max)
        writer.raw("}")
    }

    private static func aggregate(_ value: JSONValue, path: String) throws(RestoreError) -> VariantAggregate {
        guard let object = value.objectValue else { throw RestoreError(description: "'\(path)' is not an object") }
        var aggregate = VariantAggregate()
        aggregate.assignments = try integer(object["assignments"], path + ".assignments")
        aggregate.records = try integer(object["records"], path + ".records")
        aggregate.shadowRecords = try integer(object["shadow_records"], path + ".shadow_records")
        aggregate.errors = try counts(object["errors"], path + ".errors")
        aggregate.success = try counts(object["success"], path + ".success")
        aggregate.latencyMilliseconds = try moments(object["latency_ms"], path + ".latency_ms")
        for bucket in object["latency_histogram_us"]?.arrayValue ?? [] {
            guard let pair = bucket.arrayValue, pair.count == 2, let value = pair[0].integerValue,
                let count = pair[1].integerValue, value >= 0, count >= 0
            else { throw RestoreError(description: "'\(path).latency_histogram_us' holds a malformed bucket") }
            aggregate.recordLatencyMicroseconds(UInt64(value), count: UInt64(count))
        }
        aggregate.costUSD = try moments(object["cost_usd"], path + ".cost_usd")
        aggregate.tokens = try moments(object["tokens"], path + ".tokens")
        for metric in object["custom"]?.objectValue?.members ?? [] {
            aggregate.custom[metric.key] = try moments(metric.value, "\(path).custom.\(metric.key)")
        }
        // Absent from version 1 files: their records were analysed per record.
        aggregate.unitRecords = object["unit_records"] == nil ? 0 : try integer(object["unit_records"], path + ".unit_records")
        for group in object["groups"]?.objectValue?.members ?? [] {
            let groupPath = "\(path).groups.\(group.key)"
            guard let totals = group.value.objectValue,
                let counts = totals["n"]?.arrayValue?.compactMap(\.integerValue),
                let sums = totals["sum"]?.arrayValue?.compactMap(\.numberValue),
                let restored = UnitGroupTotals(counts: counts, sums: sums)
            else { throw RestoreError(description: "'\(groupPath)' must hold \(UnitGroupTotals.groupCount) counts and sums") }
            switch group.key {
            case "error_rate": aggregate.errorGroups = restored
            case "success": aggregate.successGroups = restored
            case "latency_ms": aggregate.latencyGroups = restored
            case "cost_usd": aggregate.costGroups = restored
            case "tokens": aggregate.tokenGroups = restored
            case let name where name.hasPrefix("custom."): aggregate.customGroups[String(name.dropFirst(7))] = restored
            default: throw RestoreError(description: "'\(groupPath)' is not a metric")
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
