/// A request line, parsed and checked: the `id` to echo and what is asked.
public struct Request: Sendable {
    public enum Operation: Sendable {
        case assign(experiment: String, unit: String, attributes: JSONObject)
        case prompt(PromptQuery)
        case config
        case health
        /// One record; `acknowledge: false` asks for no answer unless it fails.
        case record(RecordRequest, acknowledge: Bool)
        /// Many records in one line, each checked on its own: a bad one is reported by index, the rest recorded.
        case batch([Result<RecordRequest, ProtocolError>], acknowledge: Bool)
        /// The experiment's statistics, of the current phase or of phase `phase`; the sample size is computed for
        /// `minimumDetectableEffect` when given.
        case stats(experiment: String, minimumDetectableEffect: Double?, phase: Int?)
        case events(limit: Int)
        /// Admin: send a treatment's units to the control until enabled again.
        case disable(experiment: String, variant: String, reason: String?)
        /// Admin: undo a disable, manual or automatic.
        case enable(experiment: String, variant: String)
        /// Admin: poll the config source now.
        case reload
        /// Admin: start a new phase of an experiment (its statistics start afresh).
        case newPhase(experiment: String, reason: String?)
        /// A prompt version rendered with `variables`: the unit's in an experiment, or one named.
        case render(RenderQuery, variables: JSONObject)
    }

    /// Which prompt version a `render` request renders.
    public enum RenderQuery: Sendable, Equatable {
        /// The version the unit's assignment serves; the answer carries the assignment too.
        case assigned(experiment: String, unit: String, attributes: JSONObject)
        /// The named version, or the latest when `version` is nil.
        case prompt(String, version: Int?)
    }

    /// What a `prompt` request asks for.
    public enum PromptQuery: Sendable, Equatable {
        case version(prompt: String, version: Int)
        case latest(prompt: String)
        case assigned(experiment: String, unit: String, attributes: JSONObject, prompt: String?)
    }

    public var id: RequestID
    public var operation: Operation

    /// The longest unit id accepted, in UTF-8 bytes.
    public static let maximumUnitBytes = 1024

    /// Decodes a request line (without its newline): the one way a line becomes a `Request`.
    ///
    /// A plain line (`PlainLine`: the common `assign` and `render`) is read without the general JSON parser; any
    /// other goes through it. Either way the same checks run on the same members (`operation(_:)`), so a rule
    /// added there holds for every line.
    /// - Parameter fastPath: false reads every line with the general parser (for the tests that compare both).
    /// - Throws: `Request.Failure`, which carries the `id` when it could be read, so the error answer echoes it.
    public static func decode(_ line: UnsafeBufferPointer<UInt8>) throws(Failure) -> Request {
        try decode(line, fastPath: true)
    }

    static func decode(_ line: UnsafeBufferPointer<UInt8>, fastPath: Bool) throws(Failure) -> Request {
        let object: JSONObject
        var idNumberText: [UInt8]?
        if fastPath, let plain = PlainLine.members(line) {
            object = plain
        } else {
            let root: JSONValue
            do {
                (root, idNumberText) = try JSONParser.parseRequest(buffer: line)
            } catch {
                throw Failure(id: .null, error: ProtocolError(.invalidJSON, "the line is not valid JSON: \(error)"))
            }
            guard case .object(let parsed) = root else {
                throw Failure(id: .null, error: ProtocolError(.invalidRequest, "a request is a JSON object, found \(root.typeName)"))
            }
            object = parsed
        }
        let id = RequestID(object["id"] ?? .null, numberText: idNumberText)
        do {
            return Request(id: id, operation: try operation(object))
        } catch {
            // Ops are ASCII, as `operation` reads them.
            var op = Op.unknown
            if case .string(let name)? = object["op"], name.utf8.allSatisfy({ $0 < 0x80 }) { op = Op(name: name) }
            switch id.value {
            case .null, .string, .number: throw Failure(id: id, error: error, op: op)
            default: throw Failure(id: .null, error: error, op: op)
            }
        }
    }

    /// A request that could not be parsed, with the id to echo.
    public struct Failure: Error, Sendable {
        public var id: RequestID
        public var error: ProtocolError
        /// The op the line named, if it could be read (a known op with a bad field); else `unknown`.
        public var op: Op = .unknown
    }

    private static let assignFields = ["id", "op", "experiment", "unit", "attributes"]
    private static let promptFields = ["id", "op", "prompt", "prompt_version", "experiment", "unit", "attributes"]
    private static let bareFields = ["id", "op"]
    private static let recordFields = ["experiment", "variant", "unit", "attributes", "shadow", "metrics"]
    private static let batchFields = ["id", "op", "records", "ack"]
    /// The most records one `batch` line may carry.
    public static let maximumBatchRecords = 1000
    /// The longest `reason` of `disable` and `new_phase`, in UTF-8 bytes.
    public static let maximumReasonBytes = 1000
    /// The most events one `events` answer lists, and the default.
    public static let maximumEventsListed = 1000

    private static func operation(_ object: JSONObject) throws(ProtocolError) -> Operation {
        switch object["id"] {
        case nil, .null?, .string?, .number?: break
        case let other?: throw ProtocolError(.invalidField, "'id' must be a string, a number or null, found \(other.typeName)")
        }
        let fields = Fields(object)
        let op = try fields.string("op")
        // Ops are ASCII, and a non-ASCII op must not match one by canonical equivalence.
        switch op.utf8.allSatisfy({ $0 < 0x80 }) ? op : "" {
        case "assign":
            try fields.rejectUnknown(allowed: Self.assignFields)
            return .assign(
                experiment: try fields.string("experiment"), unit: try fields.unit(),
                attributes: try fields.attributes())
        case "prompt":
            try fields.rejectUnknown(allowed: Self.promptFields)
            if let experiment = try fields.optionalString("experiment") {
                if object["prompt_version"] != nil {
                    throw ProtocolError(.invalidField, "'prompt_version' cannot be combined with 'experiment': the unit's assignment decides the version")
                }
                return .prompt(.assigned(
                    experiment: experiment, unit: try fields.unit(), attributes: try fields.attributes(),
                    prompt: try fields.optionalString("prompt")))
            }
            for key in ["unit", "attributes"] where object[key] != nil {
                throw ProtocolError(.invalidField, "'\(key)' is only taken together with 'experiment'")
            }
            let prompt = try fields.string("prompt")
            if let version = try fields.optionalPromptVersion() {
                return .prompt(.version(prompt: prompt, version: version))
            }
            return .prompt(.latest(prompt: prompt))
        case "config":
            try fields.rejectUnknown(allowed: Self.bareFields)
            return .config
        case "health":
            try fields.rejectUnknown(allowed: Self.bareFields)
            return .health
        case "record":
            try fields.rejectUnknown(allowed: ["id", "op", "ack"] + Self.recordFields)
            return .record(try record(fields), acknowledge: try fields.optionalBool("ack") ?? true)
        case "batch":
            try fields.rejectUnknown(allowed: Self.batchFields)
            guard let value = object["records"] else { throw ProtocolError(.missingField, "'records' is required") }
            guard case .array(let entries) = value else {
                throw ProtocolError(.invalidField, "'records' must be an array, found \(value.typeName)")
            }
            guard entries.count <= Self.maximumBatchRecords else {
                throw ProtocolError(.invalidField, "'records' holds \(entries.count) records, more than the \(Self.maximumBatchRecords) allowed in one batch")
            }
            let records = entries.map { entry -> Result<RecordRequest, ProtocolError> in
                guard case .object(let recordObject) = entry else {
                    return .failure(ProtocolError(.invalidField, "a record is an object, found \(entry.typeName)"))
                }
                let recordFields = Fields(recordObject)
                return Result { () throws(ProtocolError) in
                    try recordFields.rejectUnknown(allowed: Self.recordFields)
                    return try record(recordFields)
                }
            }
            return .batch(records, acknowledge: try fields.optionalBool("ack") ?? true)
        case "stats":
            try fields.rejectUnknown(allowed: ["id", "op", "experiment", "minimum_detectable_effect", "phase"])
            var effect: Double?
            if let value = object["minimum_detectable_effect"] {
                guard case .number(let number) = value, number > 0, number < 1 else {
                    throw ProtocolError(.invalidField, "'minimum_detectable_effect' must be a number between 0 and 1 (an absolute change of the primary rate)")
                }
                effect = number
            }
            var phase: Int?
            if let value = object["phase"] {
                guard let number = value.integerValue, number >= 1 else {
                    throw ProtocolError(.invalidField, "'phase' must be a whole number, 1 or more")
                }
                phase = number
            }
            return .stats(experiment: try fields.string("experiment"), minimumDetectableEffect: effect, phase: phase)
        case "events":
            try fields.rejectUnknown(allowed: ["id", "op", "limit"])
            var limit = Self.maximumEventsListed
            if let value = object["limit"] {
                guard let requested = value.integerValue, requested >= 1, requested <= Self.maximumEventsListed else {
                    throw ProtocolError(.invalidField, "'limit' must be a whole number from 1 to \(Self.maximumEventsListed)")
                }
                limit = requested
            }
            return .events(limit: limit)
        case "disable":
            try fields.rejectUnknown(allowed: ["id", "op", "experiment", "variant", "reason"])
            return .disable(
                experiment: try fields.string("experiment"), variant: try fields.string("variant"),
                reason: try reason(fields))
        case "enable":
            try fields.rejectUnknown(allowed: ["id", "op", "experiment", "variant"])
            return .enable(experiment: try fields.string("experiment"), variant: try fields.string("variant"))
        case "reload":
            try fields.rejectUnknown(allowed: Self.bareFields)
            return .reload
        case "new_phase":
            try fields.rejectUnknown(allowed: ["id", "op", "experiment", "reason"])
            return .newPhase(experiment: try fields.string("experiment"), reason: try reason(fields))
        case "render":
            return try render(fields)
        default:
            throw ProtocolError(
                .unknownOp,
                "unknown op '\(op)' (known: assign, prompt, render, config, health, record, batch, stats, events, disable, enable, new_phase, reload)")
        }
    }

    /// The `reason` of an admin op, which is kept in the state file and the event log for good: bounded, so one
    /// request cannot grow them by megabytes.
    /// - Throws: `invalid_field` for a reason longer than `maximumReasonBytes`.
    private static func reason(_ fields: Fields) throws(ProtocolError) -> String? {
        guard let reason = try fields.optionalString("reason") else { return nil }
        guard reason.utf8.count <= maximumReasonBytes else {
            throw ProtocolError(.invalidField, "'reason' is \(reason.utf8.count) bytes long; at most \(maximumReasonBytes) are kept")
        }
        return reason
    }

    /// A `render` request: with `experiment` and `unit`, or with `prompt` and an optional `version`.
    private static func render(_ fields: Fields) throws(ProtocolError) -> Operation {
        let object = fields.object
        var variables = JSONObject()
        if let value = object["variables"] {
            guard case .object(let given) = value else {
                throw ProtocolError(.invalidVariables, "'variables' must be an object, found \(value.typeName)")
            }
            for member in given.members where !member.value.isScalar {
                throw ProtocolError(
                    .invalidVariables,
                    "variable '\(member.key)' must be a string, a number or a boolean, found \(member.value.typeName)")
            }
            variables = given
        }
        if let experiment = try fields.optionalString("experiment") {
            try fields.rejectUnknown(allowed: ["id", "op", "experiment", "unit", "attributes", "variables"])
            return .render(
                .assigned(experiment: experiment, unit: try fields.unit(), attributes: try fields.attributes()),
                variables: variables)
        }
        try fields.rejectUnknown(allowed: ["id", "op", "prompt", "prompt_version", "variables", "unit", "attributes"])
        for key in ["unit", "attributes"] where object[key] != nil {
            throw ProtocolError(.invalidField, "'\(key)' is only taken together with 'experiment'")
        }
        return .render(.prompt(try fields.string("prompt"), version: try fields.optionalPromptVersion()), variables: variables)
    }

    /// The fields of one record, in a `record` request or an entry of a `batch`.
    private static func record(_ fields: Fields) throws(ProtocolError) -> RecordRequest {
        let experiment = try fields.string("experiment")
        let subject: RecordRequest.Subject
        switch (fields.object["variant"], fields.object["unit"]) {
        case (.some, let unit):
            if fields.object["attributes"] != nil {
                throw ProtocolError(.invalidField, "'attributes' is only taken with 'unit' alone (the daemon recomputes the variant from them); with 'variant' the unit only groups the record")
            }
            subject = .variant(try fields.string("variant"), unit: unit == nil ? nil : try fields.unit())
        case (nil, .some):
            subject = .unit(try fields.unit(), attributes: try fields.attributes())
        case (nil, nil):
            throw ProtocolError(.missingField, "'variant' or 'unit' is required")
        }
        guard let metricsValue = fields.object["metrics"] else { throw ProtocolError(.missingField, "'metrics' is required") }
        guard case .object(let metrics) = metricsValue else {
            throw ProtocolError(.invalidField, "'metrics' must be an object, found \(metricsValue.typeName)")
        }
        return RecordRequest(
            experiment: experiment, subject: subject, shadow: try fields.optionalBool("shadow") ?? false,
            measurements: try Measurements.parse(metrics))
    }
}

/// A `record` request, or one entry of a `batch`: what was measured for which variant of which experiment.
public struct RecordRequest: Sendable, Equatable {
    /// Whom the measurements belong to.
    public enum Subject: Sendable, Equatable {
        /// The variant, as the client was told by `assign`, and the unit it was told for, if the client says: the
        /// unit then only groups the record for the analysis by unit (STATISTICS.md), the variant is taken as given.
        case variant(String, unit: String?)
        /// The unit; the daemon recomputes its variant, which needs the same attributes as the `assign`.
        case unit(String, attributes: JSONObject)
    }

    public var experiment: String
    public var subject: Subject
    /// The measurements come from running the shadow variant in the background (shadow mode).
    public var shadow: Bool
    public var measurements: Measurements

    public init(experiment: String, subject: Subject, shadow: Bool = false, measurements: Measurements) {
        self.experiment = experiment
        self.subject = subject
        self.shadow = shadow
        self.measurements = measurements
    }
}

/// Typed access to a request's fields, with the protocol's error codes.
private struct Fields {
    let object: JSONObject

    init(_ object: JSONObject) { self.object = object }

    func rejectUnknown(allowed: [String]) throws(ProtocolError) {
        for member in object.members where !allowed.contains(where: { $0.hasSameUTF8(as: member.key) }) {
            throw ProtocolError(.unknownField, "unknown field '\(member.key)'")
        }
    }

    func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = object[key] else { return nil }
        guard case .string(let text) = value else {
            throw ProtocolError(.invalidField, "'\(key)' must be a string, found \(value.typeName)")
        }
        return text
    }

    func string(_ key: String) throws(ProtocolError) -> String {
        guard let text = try optionalString(key) else { throw ProtocolError(.missingField, "'\(key)' is required") }
        return text
    }

    func unit() throws(ProtocolError) -> String {
        let unit = try string("unit")
        let length = unit.utf8.count
        guard length >= 1, length <= Request.maximumUnitBytes else {
            throw ProtocolError(.invalidField, "'unit' must be 1 to \(Request.maximumUnitBytes) bytes, found \(length)")
        }
        guard !unit.utf8.contains(0) else { throw ProtocolError(.invalidField, "'unit' must not contain NUL") }
        return unit
    }

    func attributes() throws(ProtocolError) -> JSONObject {
        guard let value = object["attributes"] else { return JSONObject() }
        guard case .object(let attributes) = value else {
            throw ProtocolError(.invalidField, "'attributes' must be an object, found \(value.typeName)")
        }
        for member in attributes.members where !member.value.isScalar {
            throw ProtocolError(.invalidField, "attribute '\(member.key)' must be a string, number or boolean, found \(member.value.typeName)")
        }
        return attributes
    }

    func optionalBool(_ key: String) throws(ProtocolError) -> Bool? {
        guard let value = object[key] else { return nil }
        guard case .bool(let flag) = value else {
            throw ProtocolError(.invalidField, "'\(key)' must be a boolean, found \(value.typeName)")
        }
        return flag
    }

    func optionalPromptVersion() throws(ProtocolError) -> Int? {
        guard let value = object["prompt_version"] else { return nil }
        guard let version = value.integerValue, version >= 1 else {
            throw ProtocolError(.invalidField, "'prompt_version' must be an integer of 1 or more")
        }
        return version
    }
}
