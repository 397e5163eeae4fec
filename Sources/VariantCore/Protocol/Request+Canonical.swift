/// A decoded request line as one JSON value, in the shape the protocol's Python reference decoder gives
/// (`protocol/reference/variantd_reference.py`, `decode_request`), so that the two can be compared line by line: the
/// request vectors (`protocol/test-vectors/requests.json`) and the differential check (docs/testing.md).
///
/// `{"id": ID, "op": OP, ...the operation's fields}` for a request, `{"id": ID, "op": OP, "error": CODE}` for a
/// line that does not decode. `ID` is the id the answer echoes: `null`, the string, or `{"number": TEXT}` with
/// the number's text as the answer writes it. `OP` is the op named (`unknown` when none could be read).
extension Request {
    /// The canonical form of decoding `line`.
    public static func canonicalDecode(_ line: UnsafeBufferPointer<UInt8>) -> JSONValue {
        canonicalDecode(line, fastPath: true)
    }

    static func canonicalDecode(_ line: UnsafeBufferPointer<UInt8>, fastPath: Bool) -> JSONValue {
        do {
            return try decode(line, fastPath: fastPath).canonicalForm
        } catch {
            return .object(JSONObject([
                ("id", Self.canonical(error.id)), ("op", .string(error.op.name)), ("error", .string(error.error.code.rawValue)),
            ]))
        }
    }

    public var canonicalForm: JSONValue {
        var members: [(key: String, value: JSONValue)] = [("id", Self.canonical(id)), ("op", .string(operation.op.name))]
        func add(_ key: String, _ value: JSONValue) { members.append((key, value)) }
        func optional(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }
        func optional(_ number: Int?) -> JSONValue { number.map { .number(Double($0)) } ?? .null }
        switch operation {
        case .assign(let experiment, let unit, let attributes):
            add("experiment", .string(experiment))
            add("unit", .string(unit))
            add("attributes", .object(attributes))
        case .prompt(.version(let prompt, let version)):
            add("form", .string("prompt_version"))
            add("prompt", .string(prompt))
            add("prompt_version", .number(Double(version)))
        case .prompt(.latest(let prompt)):
            add("form", .string("latest"))
            add("prompt", .string(prompt))
        case .prompt(.assigned(let experiment, let unit, let attributes, let prompt)):
            add("form", .string("assigned"))
            add("experiment", .string(experiment))
            add("unit", .string(unit))
            add("attributes", .object(attributes))
            add("prompt", optional(prompt))
        case .config, .health, .reload:
            break
        case .record(let record, let acknowledge):
            add("ack", .bool(acknowledge))
            add("record", Self.canonical(record))
        case .batch(let records, let acknowledge):
            add("ack", .bool(acknowledge))
            add(
                "records",
                .array(records.map { entry in
                    switch entry {
                    case .success(let record): Self.canonical(record)
                    case .failure(let error): .object(JSONObject([("error", .string(error.code.rawValue))]))
                    }
                }))
        case .stats(let experiment, let effect, let phase):
            add("experiment", .string(experiment))
            add("minimum_detectable_effect", effect.map(JSONValue.number) ?? .null)
            add("phase", optional(phase))
        case .events(let limit):
            add("limit", .number(Double(limit)))
        case .disable(let experiment, let variant, let reason):
            add("experiment", .string(experiment))
            add("variant", .string(variant))
            add("reason", optional(reason))
        case .enable(let experiment, let variant):
            add("experiment", .string(experiment))
            add("variant", .string(variant))
        case .newPhase(let experiment, let reason):
            add("experiment", .string(experiment))
            add("reason", optional(reason))
        case .render(.assigned(let experiment, let unit, let attributes), let variables):
            add("form", .string("assigned"))
            add("experiment", .string(experiment))
            add("unit", .string(unit))
            add("attributes", .object(attributes))
            add("variables", .object(variables))
        case .render(.prompt(let prompt, let version), let variables):
            add("form", .string("prompt"))
            add("prompt", .string(prompt))
            add("prompt_version", optional(version))
            add("variables", .object(variables))
        }
        return .object(JSONObject(members))
    }

    private static func canonical(_ id: RequestID) -> JSONValue {
        guard case .number = id.value else { return id.value }
        var writer = JSONWriter(reservingCapacity: 32)
        writer.id(id)
        return .object(JSONObject([("number", .string(String(decoding: writer.bytes, as: UTF8.self)))]))
    }

    private static func canonical(_ record: RecordRequest) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("experiment", .string(record.experiment))]
        switch record.subject {
        case .variant(let variant, let unit):
            members.append(("variant", .string(variant)))
            members.append(("unit", unit.map(JSONValue.string) ?? .null))
        case .unit(let unit, let attributes):
            members.append(("unit", .string(unit)))
            members.append(("attributes", .object(attributes)))
        }
        members.append(("shadow", .bool(record.shadow)))
        let measured = record.measurements
        var metrics: [(key: String, value: JSONValue)] = []
        if let value = measured.latencyMilliseconds { metrics.append(("latency_ms", .number(value))) }
        if let value = measured.error { metrics.append(("error", .bool(value))) }
        if let value = measured.success { metrics.append(("success", .number(value))) }
        if let value = measured.costUSD { metrics.append(("cost_usd", .number(value))) }
        if let value = measured.tokens { metrics.append(("tokens", .number(value))) }
        if !measured.custom.isEmpty {
            metrics.append(("custom", .object(JSONObject(measured.custom.map { ($0.name, .number($0.value)) }))))
        }
        members.append(("metrics", .object(JSONObject(metrics))))
        return .object(JSONObject(members))
    }
}
