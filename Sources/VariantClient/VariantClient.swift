import Glibc
import Synchronization
import VariantCore

/// The Swift client shim: assignments and prompts that never throw into the request path, and records that never
/// block it.
///
/// - `assign` and `prompt` always return an ``Assignment``. When the daemon is unreachable, slower than
///   `timeout`, or answers an error, it is the ``Fallback``'s control with `reason == "fallback"` and `error` saying
///   why. When the daemon answers `no_config`, it is the fallback's control with the daemon's reason.
/// - `record` appends to a bounded buffer and returns at once; a background thread sends the buffer as `batch`
///   lines with `"ack":false` every `flushInterval`. A record that finds the buffer full, or that cannot be sent
///   because the daemon is down, is dropped and counted in ``counters``.
///
/// Requests use one kept connection, reconnected when needed and dropped after a timeout (so a late answer is never
/// taken for the next one); records use a second connection owned by the sender thread. Thread-safe.
public final class VariantClient: Sendable {
    /// How the client talks to the daemon; every member has a default.
    public struct Configuration: Sendable {
        /// The daemon's socket: `$VARIANTD_SOCKET`, else `/run/variantd/variantd.sock`.
        public var socketPath: String
        /// Seconds one `assign` or `prompt` may take in all, connecting included.
        public var timeout: Double = 0.005
        /// After the daemon was unreachable or timed out, seconds during which calls fall back at once.
        public var retryAfter: Double = 0.25
        /// Records that may wait to be sent; more are dropped and counted.
        public var recordBufferCapacity: Int = 10_000
        /// Seconds between sends of buffered records.
        public var flushInterval: Double = 0.05
        /// The longest `batch` line sent (the daemon's default limit is 65536 bytes).
        public var maximumLineBytes: Int = 60_000
        /// Seconds the operator calls (`events`, `disable`, `enable`, `request`) may take.
        public var adminTimeout: Double = 5

        public init(socketPath: String = VariantConnection.defaultSocketPath) {
            self.socketPath = socketPath
        }
    }

    /// What the client did since it started.
    public struct Counters: Sendable, Equatable {
        /// Answers served from the fallback.
        public var fallbacks = 0
        /// Records written to the daemon.
        public var sent = 0
        /// Records dropped: the buffer was full, the daemon was down, or the client was closed.
        public var dropped = 0
        /// Records the daemon refused (unknown variant, invalid metric, ...).
        public var rejected = 0
    }

    /// An error answer or a transport failure from an operator call.
    public struct RequestError: Error, CustomStringConvertible, Sendable {
        /// The daemon's error code, or `unreachable`, `timeout`, `closed`, `invalid_answer`.
        public var code: String
        public var message: String
        public var description: String { "\(code): \(message)" }
    }

    public let configuration: Configuration
    public let fallback: Fallback
    private let state: Mutex<RequestState>
    let shared: SharedRecordState
    /// The assignments of the distinct `assign` answers seen (and of `render` answers' assignment parts).
    let assignAnswers = AssignAnswers()

    public init(configuration: Configuration = Configuration(), fallback: Fallback = Fallback()) {
        self.configuration = configuration
        self.fallback = fallback
        self.state = Mutex(RequestState())
        self.shared = SharedRecordState()
        RecordSender.start(configuration: configuration, shared: shared)
    }

    public convenience init(socketPath: String, timeout: Double = 0.005, fallback: Fallback = Fallback()) {
        var configuration = Configuration(socketPath: socketPath)
        configuration.timeout = timeout
        self.init(configuration: configuration, fallback: fallback)
    }

    deinit {
        shared.close()
    }

    public var counters: Counters { shared.counters }

    // MARK: Request path (never throws)

    /// The variant `unit` gets in `experiment`; the fallback's control when the daemon cannot say.
    public func assign(_ experiment: String, unit: String, attributes: JSONObject = JSONObject()) -> Assignment {
        assigned(experiment, unit: unit, askLine(Self.assignFields(experiment, unit: unit, attributes: attributes)))
    }

    /// Like `assign`, with the prompt version's `template` and `variables`; templates are cached per config
    /// version, so this is usually one round trip.
    public func prompt(_ experiment: String, unit: String, attributes: JSONObject = JSONObject()) -> Assignment {
        let answer = assign(experiment, unit: unit, attributes: attributes)
        guard let wanted = templateWanted(for: answer) else { return answer }
        if let known = knownTemplate(wanted) { return prompted(answer, wanted, known: known) }
        return prompted(answer, wanted, ask(wanted.fields))
    }

    /// A prompt version's template (the latest without `version`) from the daemon, else from the fallback.
    public func template(_ prompt: String, version: Int? = nil) -> Template? {
        template(prompt, version: version, ask(Self.templateFields(prompt, version: version)))
    }

    /// Many assignments pipelined in one write and one read; all fall back together if the daemon cannot answer.
    /// (Python: `assign_many`.)
    public func assignMany(_ requests: [(experiment: String, unit: String, attributes: JSONObject)]) -> [Assignment] {
        let lines: [[(String, JSONValue)]] = requests.map { request in
            Self.assignFields(request.experiment, unit: request.unit, attributes: request.attributes)
        }
        do throws(Failure) {
            let answers = try exchange(lines, timeout: configuration.timeout, respectingBackoff: true)
            return zip(requests, answers).map { assigned($0.experiment, unit: $0.unit, .success($1)) }
        } catch {
            return requests.map { fallBack($0.experiment, error.code) }
        }
    }

    // MARK: Operator calls (these throw)

    /// Sends any request and returns the answer; throws `RequestError` on an error answer or a transport failure.
    public func request(_ fields: [(String, JSONValue)]) throws(RequestError) -> JSONObject {
        let answer: JSONObject
        do throws(Failure) {
            answer = try Self.object(of: exchange([fields], timeout: configuration.adminTimeout, respectingBackoff: false)[0])
        } catch {
            throw RequestError(code: error.code, message: error.message)
        }
        guard answer["ok"] == .bool(true) else {
            let error = answer["error"]?.objectValue
            throw RequestError(
                code: error?["code"]?.stringValue ?? "invalid_answer", message: error?["message"]?.stringValue ?? "")
        }
        return answer
    }

    /// The daemon's health (PROTOCOL.md, `health`): `status` (`serving` or `no_config`), `config_version`,
    /// `uptime_seconds`, `state_error`.
    public func health() throws(RequestError) -> JSONObject {
        try request([("op", .string("health"))])
    }

    /// The daemon's latest events, oldest first.
    public func events(limit: Int? = nil) throws(RequestError) -> [JSONObject] {
        var fields: [(String, JSONValue)] = [("op", .string("events"))]
        if let limit { fields.append(("limit", .number(Double(limit)))) }
        return (try request(fields)["events"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    /// The experiment's statistics (PROTOCOL.md, `stats`): per-variant summaries, each treatment against the
    /// control, the sample-ratio check, the sample size and a recommendation.
    public func stats(_ experiment: String, minimumDetectableEffect: Double? = nil) throws(RequestError) -> JSONObject {
        var fields: [(String, JSONValue)] = [("op", .string("stats")), ("experiment", .string(experiment))]
        if let minimumDetectableEffect { fields.append(("minimum_detectable_effect", .number(minimumDetectableEffect))) }
        return try request(fields)
    }

    public func disable(_ experiment: String, variant: String, reason: String? = nil) throws(RequestError) -> JSONObject {
        var fields: [(String, JSONValue)] = [
            ("op", .string("disable")), ("experiment", .string(experiment)), ("variant", .string(variant)),
        ]
        if let reason { fields.append(("reason", .string(reason))) }
        return try request(fields)
    }

    public func enable(_ experiment: String, variant: String) throws(RequestError) -> JSONObject {
        try request([("op", .string("enable")), ("experiment", .string(experiment)), ("variant", .string(variant))])
    }

    // MARK: Internals

    struct Failure: Error {
        var code: String
        var message: String = ""
    }

    struct RequestState: ~Copyable {
        var connection: VariantConnection?
        var nextID = 1
        var downUntil = 0.0
        var templates: [TemplateWanted: Template] = [:]
    }

    func fallBack(_ experiment: String, _ code: String) -> Assignment {
        shared.count { $0.fallbacks += 1 }
        return fallback.assignment(for: experiment, reason: "fallback", error: code)
    }

    func assignment(_ experiment: String, from answer: JSONObject, unit: String) -> Assignment {
        guard answer["ok"] == .bool(true) else {
            return fallBack(experiment, answer["error"]?.objectValue?["code"]?.stringValue ?? "invalid_answer")
        }
        if answer["reason"]?.stringValue == "no_config" {
            // No configuration in the daemon: the client serves its own control, keeping the daemon's reason.
            return fallback.assignment(for: experiment, reason: "no_config")
        }
        guard var assignment = Assignment(answer: answer) else { return fallBack(experiment, "invalid_answer") }
        assignment.unit = unit
        return assignment
    }

    static func template(from answer: JSONObject) -> Template? {
        guard answer["ok"] == .bool(true), let prompt = answer["prompt"]?.stringValue,
            let version = answer["prompt_version"]?.integerValue
        else { return nil }
        let messages = answer["messages"]?.arrayValue.map(Self.messages(from:))
        guard let text = answer["template"]?.stringValue ?? (messages != nil ? "" : nil) else { return nil }
        let variables = answer["variables"]?.objectValue
        return Template(
            prompt: prompt, version: version, template: text,
            variables: .init(
                required: variables?["required"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                optional: variables?["optional"]?.arrayValue?.compactMap(\.stringValue) ?? []),
            configVersion: answer["config_version"]?.stringValue, fromFallback: false, messages: messages)
    }

    /// `[{"role":..,"content":..}]` as messages (entries of another shape are left out).
    static func messages(from array: [JSONValue]) -> [PromptMessage] {
        array.compactMap { entry in
            guard let object = entry.objectValue, let role = object["role"]?.stringValue,
                let content = object["content"]?.stringValue
            else { return nil }
            return PromptMessage(role: role, content: content)
        }
    }

    /// A cached template for `wanted`, if this config version's was fetched before.
    func knownTemplate(_ wanted: TemplateWanted) -> Template? {
        state.withLock { $0.templates[wanted] }
    }

    /// Keeps `found` for later `prompt` calls on the same config version (never one from another version).
    func remember(_ found: Template, for wanted: TemplateWanted) {
        guard found.configVersion == wanted.configVersion else { return }
        state.withLock { state in
            if state.templates.count > 1024 { state.templates.removeAll() }
            state.templates[wanted] = found
        }
    }

    /// The descriptor of the kept request connection, nil when there is none (before the first call, after a
    /// failure). For the benchmark (`variantd-bench`), which makes raw round trips on the very connection the
    /// shim's calls use, one at a time between them, so that both go to the same event-loop thread of the daemon.
    package func requestConnectionDescriptor() -> Int32? {
        state.withLock { $0.connection?.descriptor }
    }

    /// One request on the kept connection, within `timeout`, respecting the backoff: the request path's exchange.
    func ask(_ fields: [(String, JSONValue)]) -> Result<JSONObject, Failure> {
        Result { () throws(Failure) -> JSONObject in
            try Self.object(of: exchange([fields], timeout: configuration.timeout, respectingBackoff: true)[0])
        }
    }

    /// Like `ask`, with the answer line as read, for the calls that decode it themselves (`assign`, `render`).
    func askLine(_ fields: [(String, JSONValue)]) -> Result<AnswerLine, Failure> {
        Result { () throws(Failure) -> AnswerLine in
            try exchange([fields], timeout: configuration.timeout, respectingBackoff: true)[0]
        }
    }

    static func object(of line: AnswerLine) throws(Failure) -> JSONObject {
        guard let object = line.object else {
            throw Failure(code: "invalid_answer", message: "not a JSON object: \(String(decoding: line.bytes.prefix(200), as: UTF8.self))")
        }
        return object
    }

    /// Writes the requests in one go on the kept connection and reads their answers, all within `timeout`.
    func exchange(
        _ requests: [[(String, JSONValue)]], timeout: Double, respectingBackoff: Bool
    ) throws(Failure) -> [AnswerLine] {
        let deadline = monotonicSeconds() + timeout
        let socketPath = configuration.socketPath
        let retryAfter = configuration.retryAfter
        return try state.withLock { (state: inout RequestState) throws(Failure) -> [AnswerLine] in
            if respectingBackoff, monotonicSeconds() < state.downUntil {
                throw Failure(code: "unreachable", message: "the daemon was unreachable moments ago")
            }
            let firstID = state.nextID
            state.nextID += requests.count
            var writer = JSONWriter(reservingCapacity: 256 * requests.count)
            for (offset, fields) in requests.enumerated() {
                Self.writeRequestLine(id: firstID + offset, fields, to: &writer)
            }
            let payload = writer.bytes
            for attempt in 0..<2 {
                let fresh = state.connection == nil
                do throws(Failure) {
                    let connection: VariantConnection
                    if let existing = state.connection {
                        connection = existing
                        connection.setTimeout(seconds: deadline - monotonicSeconds())
                    } else {
                        let remaining = deadline - monotonicSeconds()
                        guard remaining > 0 else { throw Failure(code: "timeout", message: "no time left to connect") }
                        do throws(VariantConnection.Failure) {
                            connection = try VariantConnection(socketPath: socketPath, timeoutSeconds: remaining)
                        } catch {
                            throw Failure(code: "unreachable", message: error.description)
                        }
                        state.connection = connection
                    }
                    try Self.transport { () throws(VariantConnection.Failure) in try connection.send(bytes: payload) }
                    var answers: [AnswerLine] = []
                    for offset in 0..<requests.count {
                        answers.append(try Self.readAnswer(id: firstID + offset, on: connection, deadline: deadline))
                    }
                    return answers
                } catch {
                    state.connection = nil
                    // A kept connection the daemon closed (a restart) is retried once on a new one.
                    if error.code == "closed", !fresh, attempt == 0, monotonicSeconds() < deadline { continue }
                    if ["unreachable", "timeout", "closed"].contains(error.code) {
                        state.downUntil = monotonicSeconds() + retryAfter
                    }
                    throw error
                }
            }
            throw Failure(code: "closed", message: "the daemon closed the connection")
        }
    }

    private static func transport(_ body: () throws(VariantConnection.Failure) -> Void) throws(Failure) {
        do throws(VariantConnection.Failure) {
            try body()
        } catch {
            throw Failure(code: error.kind == .timedOut ? "timeout" : "closed", message: error.description)
        }
    }

    /// A request line, `{"id":N,` and the fields in order, with its newline.
    static func writeRequestLine(id: Int, _ fields: [(String, JSONValue)], to writer: inout JSONWriter) {
        writer.raw(#"{"id":"#)
        writer.integer(id)
        for (name, value) in fields {
            writer.raw(",")
            writer.string(name)
            writer.raw(":")
            writer.value(value)
        }
        writer.raw("}\n")
    }

    /// The answer to request `id`: matched by the `{"id":N,` the daemon starts every answer with, without parsing
    /// it (the caller decodes it); any other line is parsed to tell an answer to an earlier request (skipped) from
    /// the daemon's answer to a line it could not read (`"id":null`, an error).
    private static func readAnswer(id: Int, on connection: VariantConnection, deadline: Double) throws(Failure) -> AnswerLine {
        while true {
            let remaining = deadline - monotonicSeconds()
            guard remaining > 0 else { throw Failure(code: "timeout", message: "no answer in time") }
            connection.setTimeout(seconds: remaining)
            var line: [UInt8] = []
            try transport { () throws(VariantConnection.Failure) in line = try connection.receiveLineBytes() }
            if let leading = AnswerLine.leadingID(of: line) {
                if leading.id == id { return AnswerLine(bytes: line, afterID: leading.afterID) }
                continue  // an answer to an earlier request
            }
            guard case .object(let answer)? = try? JSONParser.parse(line) else {
                let text = String(decoding: line.prefix(200), as: UTF8.self)
                throw Failure(code: "invalid_answer", message: "not a JSON object: \(text)")
            }
            if answer["id"]?.integerValue == id { return AnswerLine(bytes: line, afterID: nil) }
            if answer["id"] == .null, answer["ok"] == .bool(false) {
                throw Failure(code: answer["error"]?.objectValue?["code"]?.stringValue ?? "invalid_answer")
            }
            // An answer to an earlier request: skip it.
        }
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
