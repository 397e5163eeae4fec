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
        if fastPath {
            let plain = PlainLine.Members(reading: line)
            if plain.isPlain { return try plain.request(idNumberText: nil) }
        }
        let root: JSONValue
        let idNumberText: [UInt8]?
        do {
            (root, idNumberText) = try JSONParser.parseRequest(buffer: line)
        } catch {
            throw Failure(id: .null, error: ProtocolError(.invalidJSON, "the line is not valid JSON: \(error)"))
        }
        guard case .object(let parsed) = root else {
            throw Failure(id: .null, error: ProtocolError(.invalidRequest, "a request is a JSON object, found \(root.typeName)"))
        }
        return try RequestMembers(parsed).request(idNumberText: idNumberText)
    }

    /// A request that could not be parsed, with the id to echo.
    public struct Failure: Error, Sendable {
        public var id: RequestID
        public var error: ProtocolError
        /// The op the line named, if it could be read (a known op with a bad field); else `unknown`.
        public var op: Op = .unknown
    }

    fileprivate typealias Keys = RequestMembers.Keys
    fileprivate static let assignFields = Keys([.id, .op, .experiment, .unit, .attributes])
    fileprivate static let promptFields = Keys([.id, .op, .prompt, .promptVersion, .experiment, .unit, .attributes])
    fileprivate static let bareFields = Keys([.id, .op])
    fileprivate static let recordFields = Keys([.experiment, .variant, .unit, .attributes, .shadow, .metrics])
    fileprivate static let batchFields = Keys([.id, .op, .records, .ack])
    fileprivate static let statsFields = Keys([.id, .op, .experiment, .minimumDetectableEffect, .phase])
    fileprivate static let eventsFields = Keys([.id, .op, .limit])
    fileprivate static let disableFields = Keys([.id, .op, .experiment, .variant, .reason])
    fileprivate static let enableFields = Keys([.id, .op, .experiment, .variant])
    fileprivate static let newPhaseFields = Keys([.id, .op, .experiment, .reason])
    fileprivate static let assignedRenderFields = Keys([.id, .op, .experiment, .unit, .attributes, .variables])
    fileprivate static let namedRenderFields = Keys([.id, .op, .prompt, .promptVersion, .variables, .unit, .attributes])
    /// The most records one `batch` line may carry.
    public static let maximumBatchRecords = 1000
    /// The longest `reason` of `disable` and `new_phase`, in UTF-8 bytes.
    public static let maximumReasonBytes = 1000
    /// The most events one `events` answer lists, and the default.
    public static let maximumEventsListed = 1000
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

/// The checks, once for both readers' members.
///
/// Methods rather than functions taking the members: passed as an argument, the members were copied whole (their few
/// hundred bytes) on the way in, in the release build; as `self` they are read where they lie.
extension RequestFields where Self: ~Copyable {
    /// The request of a line's members, checked; the one place a request's fields are checked.
    fileprivate func request(idNumberText: [UInt8]?) throws(Request.Failure) -> Request {
        let id = RequestID(self[.id] ?? .null, numberText: idNumberText)
        do {
            return Request(id: id, operation: try operation())
        } catch {
            var op = Request.Op.unknown
            if case .string(let name)? = self[.op] { op = Request.Op(name: name) }
            switch id.value {
            case .null, .string, .number: throw Request.Failure(id: id, error: error, op: op)
            default: throw Request.Failure(id: .null, error: error, op: op)
            }
        }
    }


    fileprivate func operation() throws(ProtocolError) -> Request.Operation {
        switch self[.id] {
        case nil, .null?, .string?, .number?: break
        case let other?: throw ProtocolError(.invalidField, "'id' must be a string, a number or null, found \(other.typeName)")
        }
        let op = try self.string(.op)
        // By its bytes: a string canonically equivalent to an op's name is not that op.
        switch Request.Op(name: op) {
        case .assign:
            try self.rejectUnknown(allowed: Request.assignFields)
            return .assign(
                experiment: try self.string(.experiment), unit: try self.unit(),
                attributes: try self.attributes())
        case .prompt:
            try self.rejectUnknown(allowed: Request.promptFields)
            if let experiment = try self.optionalString(.experiment) {
                if self[.promptVersion] != nil {
                    throw ProtocolError(.invalidField, "'prompt_version' cannot be combined with 'experiment': the unit's assignment decides the version")
                }
                return .prompt(.assigned(
                    experiment: experiment, unit: try self.unit(), attributes: try self.attributes(),
                    prompt: try self.optionalString(.prompt)))
            }
            try self.refuseUnitWithoutExperiment()
            let prompt = try self.string(.prompt)
            if let version = try self.optionalPromptVersion() {
                return .prompt(.version(prompt: prompt, version: version))
            }
            return .prompt(.latest(prompt: prompt))
        case .config:
            try self.rejectUnknown(allowed: Request.bareFields)
            return .config
        case .health:
            try self.rejectUnknown(allowed: Request.bareFields)
            return .health
        case .record:
            try self.rejectUnknown(allowed: Request.recordFields.union(RequestMembers.Keys([.id, .op, .ack])))
            return .record(try record(), acknowledge: try self.optionalBool(.ack) ?? true)
        case .batch:
            try self.rejectUnknown(allowed: Request.batchFields)
            guard let value = self[.records] else { throw ProtocolError(.missingField, "'records' is required") }
            guard case .array(let entries) = value else {
                throw ProtocolError(.invalidField, "'records' must be an array, found \(value.typeName)")
            }
            guard entries.count <= Request.maximumBatchRecords else {
                throw ProtocolError(.invalidField, "'records' holds \(entries.count) records, more than the \(Request.maximumBatchRecords) allowed in one batch")
            }
            let records = entries.map { entry -> Result<RecordRequest, ProtocolError> in
                guard case .object(let recordObject) = entry else {
                    return .failure(ProtocolError(.invalidField, "a record is an object, found \(entry.typeName)"))
                }
                let recordMembers = RequestMembers(recordObject)
                return Result { () throws(ProtocolError) in
                    try recordMembers.rejectUnknown(allowed: Request.recordFields)
                    return try recordMembers.record()
                }
            }
            return .batch(records, acknowledge: try self.optionalBool(.ack) ?? true)
        case .stats:
            try self.rejectUnknown(allowed: Request.statsFields)
            var effect: Double?
            if let value = self[.minimumDetectableEffect] {
                guard case .number(let number) = value, number > 0, number < 1 else {
                    throw ProtocolError(.invalidField, "'minimum_detectable_effect' must be a number between 0 and 1 (an absolute change of the primary rate)")
                }
                effect = number
            }
            var phase: Int?
            if let value = self[.phase] {
                guard let number = value.integerValue, number >= 1 else {
                    throw ProtocolError(.invalidField, "'phase' must be a whole number, 1 or more")
                }
                phase = number
            }
            return .stats(experiment: try self.string(.experiment), minimumDetectableEffect: effect, phase: phase)
        case .events:
            try self.rejectUnknown(allowed: Request.eventsFields)
            var limit = Request.maximumEventsListed
            if let value = self[.limit] {
                guard let requested = value.integerValue, requested >= 1, requested <= Request.maximumEventsListed else {
                    throw ProtocolError(.invalidField, "'limit' must be a whole number from 1 to \(Request.maximumEventsListed)")
                }
                limit = requested
            }
            return .events(limit: limit)
        case .disable:
            try self.rejectUnknown(allowed: Request.disableFields)
            return .disable(
                experiment: try self.string(.experiment), variant: try self.string(.variant),
                reason: try reason())
        case .enable:
            try self.rejectUnknown(allowed: Request.enableFields)
            return .enable(experiment: try self.string(.experiment), variant: try self.string(.variant))
        case .reload:
            try self.rejectUnknown(allowed: Request.bareFields)
            return .reload
        case .newPhase:
            try self.rejectUnknown(allowed: Request.newPhaseFields)
            return .newPhase(experiment: try self.string(.experiment), reason: try reason())
        case .render:
            return try render()
        case .unknown:
            throw ProtocolError(
                .unknownOp,
                "unknown op '\(op)' (known: assign, prompt, render, config, health, record, batch, stats, events, disable, enable, new_phase, reload)")
        }
    }


    /// The `reason` of an admin op, which is kept in the state file and the event log for good: bounded, so one
    /// request cannot grow them by megabytes.
    /// - Throws: `invalid_field` for a reason longer than `Request.maximumReasonBytes`.
    fileprivate func reason() throws(ProtocolError) -> String? {
        guard let reason = try self.optionalString(.reason) else { return nil }
        guard reason.utf8.count <= Request.maximumReasonBytes else {
            throw ProtocolError(.invalidField, "'reason' is \(reason.utf8.count) bytes long; at most \(Request.maximumReasonBytes) are kept")
        }
        return reason
    }


    /// A `render` request: with `experiment` and `unit`, or with `prompt` and an optional `version`.
    fileprivate func render() throws(ProtocolError) -> Request.Operation {
        var variables = JSONObject()
        if let value = self[.variables] {
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
        if let experiment = try self.optionalString(.experiment) {
            try self.rejectUnknown(allowed: Request.assignedRenderFields)
            return .render(
                .assigned(experiment: experiment, unit: try self.unit(), attributes: try self.attributes()),
                variables: variables)
        }
        try self.rejectUnknown(allowed: Request.namedRenderFields)
        try self.refuseUnitWithoutExperiment()
        return .render(.prompt(try self.string(.prompt), version: try self.optionalPromptVersion()), variables: variables)
    }


    /// The fields of one record, in a `record` request or an entry of a `batch`.
    fileprivate func record() throws(ProtocolError) -> RecordRequest {
        let experiment = try self.string(.experiment)
        let subject: RecordRequest.Subject
        switch (self[.variant], self[.unit]) {
        case (.some, let unit):
            if self[.attributes] != nil {
                throw ProtocolError(.invalidField, "'attributes' is only taken with 'unit' alone (the daemon recomputes the variant from them); with 'variant' the unit only groups the record")
            }
            subject = .variant(try self.string(.variant), unit: unit == nil ? nil : try self.unit())
        case (nil, .some):
            subject = .unit(try self.unit(), attributes: try self.attributes())
        case (nil, nil):
            throw ProtocolError(.missingField, "'variant' or 'unit' is required")
        }
        guard let metricsValue = self[.metrics] else { throw ProtocolError(.missingField, "'metrics' is required") }
        guard case .object(let metrics) = metricsValue else {
            throw ProtocolError(.invalidField, "'metrics' must be an object, found \(metricsValue.typeName)")
        }
        return RecordRequest(
            experiment: experiment, subject: subject, shadow: try self.optionalBool(.shadow) ?? false,
            measurements: try Measurements.parse(metrics))
    }
}

/// Typed access to a request's fields, with the protocol's error codes.
extension RequestFields where Self: ~Copyable {

    fileprivate func rejectUnknown(allowed: RequestMembers.Keys) throws(ProtocolError) {
        // The bit sets here, the rest out of line: with `firstMember` called here, the members were copied whole
        // on every call, needed or not (release build).
        guard present.rawValue & ~allowed.rawValue != 0 || hasUnknownMember else { return }
        try refuseMember(notIn: allowed)
    }

    @inline(never)
    private func refuseMember(notIn allowed: RequestMembers.Keys) throws(ProtocolError) {
        if let name = firstMember(notIn: allowed) { throw ProtocolError(.unknownField, "unknown field '\(name)'") }
    }

    /// `unit` and `attributes` name whose assignment is asked for, which only an `experiment` decides.
    fileprivate func refuseUnitWithoutExperiment() throws(ProtocolError) {
        for key in [RequestMembers.Key.unit, .attributes] where self[key] != nil {
            throw ProtocolError(.invalidField, "'\(key.name)' is only taken together with 'experiment'")
        }
    }

    fileprivate func optionalString(_ key: RequestMembers.Key) throws(ProtocolError) -> String? {
        guard let value = self[key] else { return nil }
        guard case .string(let text) = value else {
            throw ProtocolError(.invalidField, "'\(key.name)' must be a string, found \(value.typeName)")
        }
        return text
    }

    fileprivate func string(_ key: RequestMembers.Key) throws(ProtocolError) -> String {
        guard let text = try optionalString(key) else { throw ProtocolError(.missingField, "'\(key.name)' is required") }
        return text
    }

    fileprivate func unit() throws(ProtocolError) -> String {
        let unit = try string(.unit)
        let length = unit.utf8.count
        guard length >= 1, length <= Request.maximumUnitBytes else {
            throw ProtocolError(.invalidField, "'unit' must be 1 to \(Request.maximumUnitBytes) bytes, found \(length)")
        }
        // Through the bytes: the UTF-8 view's iterator is several times slower (profiled).
        guard unit.utf8.withContiguousStorageIfAvailable({ !$0.contains(0) }) ?? !unit.utf8.contains(0) else {
            throw ProtocolError(.invalidField, "'unit' must not contain NUL")
        }
        return unit
    }

    fileprivate func attributes() throws(ProtocolError) -> JSONObject {
        guard let value = self[.attributes] else { return JSONObject() }
        guard case .object(let attributes) = value else {
            throw ProtocolError(.invalidField, "'attributes' must be an object, found \(value.typeName)")
        }
        for member in attributes.members where !member.value.isScalar {
            throw ProtocolError(.invalidField, "attribute '\(member.key)' must be a string, number or boolean, found \(member.value.typeName)")
        }
        return attributes
    }

    fileprivate func optionalBool(_ key: RequestMembers.Key) throws(ProtocolError) -> Bool? {
        guard let value = self[key] else { return nil }
        guard case .bool(let flag) = value else {
            throw ProtocolError(.invalidField, "'\(key.name)' must be a boolean, found \(value.typeName)")
        }
        return flag
    }

    fileprivate func optionalPromptVersion() throws(ProtocolError) -> Int? {
        guard let value = self[.promptVersion] else { return nil }
        guard let version = value.integerValue, version >= 1 else {
            throw ProtocolError(.invalidField, "'prompt_version' must be an integer of 1 or more")
        }
        return version
    }
}
