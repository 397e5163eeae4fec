import Crypto

/// The prompt version a variant serves, shared by every `render` of it instead of looked up and copied per request.
final class ServedPromptVersion: Sendable {
    let prompt: String
    let version: PromptVersion

    init(prompt: String, version: PromptVersion) {
        self.prompt = prompt
        self.version = version
    }
}

/// A configuration document in use, with where and when it came from.
///
/// A class, so that answering a request takes one reference instead of copying (and retaining) every field.
public final class LoadedConfig: Sendable {
    public let document: ConfigDocument
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the bytes as served (PROTOCOL.md, "Config version").
    /// The same bytes give the same version on every host, whatever the source calls them.
    public let version: String
    public let source: String
    /// When this document was applied here.
    public let loadedAt: Timestamp
    /// The source's own name for this version, if it gives one: an HTTP `ETag`, an AppConfig `Version-Label`.
    public let sourceVersion: String?
    /// When the bytes were fetched from the source; for a document from the cache, when they were first fetched.
    public let fetchedAt: Timestamp
    /// Whether the document came from the on-disk last-known-good copy because the source could not be used.
    public let fromCache: Bool
    /// The fixed parts of every `assign` answer, by experiment and variant, written once when the config is
    /// applied instead of once per request.
    let assignmentAnswers: [[AssignmentAnswerParts]]
    /// The prompt version each variant serves, by experiment and variant, looked up once when the config is
    /// applied (nil only for a document that names a version it lacks, which validation rules out).
    let servedPromptVersions: [[ServedPromptVersion?]]
    /// How many units each variant enrolled under this document (shared by relabelled copies).
    public let assignmentTally: AssignmentTally

    public convenience init(
        document: ConfigDocument, version: String, source: String, loadedAt: Timestamp, sourceVersion: String? = nil,
        fetchedAt: Timestamp? = nil, fromCache: Bool = false
    ) {
        self.init(
            document: document, version: version, source: source, loadedAt: loadedAt, sourceVersion: sourceVersion,
            fetchedAt: fetchedAt, fromCache: fromCache, assignmentTally: AssignmentTally(document: document, countedSince: loadedAt))
    }

    private init(
        document: ConfigDocument, version: String, source: String, loadedAt: Timestamp, sourceVersion: String?,
        fetchedAt: Timestamp?, fromCache: Bool, assignmentTally: AssignmentTally
    ) {
        self.assignmentTally = assignmentTally
        self.document = document
        self.version = version
        self.source = source
        self.loadedAt = loadedAt
        self.sourceVersion = sourceVersion
        self.fetchedAt = fetchedAt ?? loadedAt
        self.fromCache = fromCache
        self.assignmentAnswers = document.experiments.map { experiment in
            experiment.variants.map {
                AssignmentAnswerParts(AssignedVariant(experiment: experiment.name, variant: $0, configVersion: version))
            }
        }
        self.servedPromptVersions = document.experiments.map { experiment in
            experiment.variants.map { variant in
                document.prompt(named: variant.prompt)?.version(variant.promptVersion).map {
                    ServedPromptVersion(prompt: variant.prompt, version: $0)
                }
            }
        }
    }

    /// The same document (not parsed or validated again) under new source metadata, for when the source serves
    /// bytes already in use: a cached copy confirmed by the source, or a new ETag over the same bytes.
    public func relabelled(sourceVersion: String?, fetchedAt: Timestamp, fromCache: Bool) -> LoadedConfig {
        LoadedConfig(
            document: document, version: version, source: source, loadedAt: loadedAt, sourceVersion: sourceVersion,
            fetchedAt: fetchedAt, fromCache: fromCache, assignmentTally: assignmentTally)
    }

    /// The config version of a document's bytes.
    public static func version(of bytes: some Sequence<UInt8>) -> String {
        let digest = SHA256.hash(data: Array(bytes))
        let hex = digest.prefix(8).map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }
        return "sha256:" + hex.joined()
    }
}

/// Why the last attempt to load a configuration failed.
public struct ConfigLoadFailure: Sendable, Equatable {
    /// A stable snake_case code (`ConfigLoadFailure.Code`), listed in PROTOCOL.md section 4.
    public var code: String
    public var message: String
    public var at: Timestamp
    public var problems: [ValidationIssue]

    public init(code: String, message: String, at: Timestamp, problems: [ValidationIssue] = []) {
        self.code = code
        self.message = message
        self.at = at
        self.problems = problems
    }

    public init(_ code: Code, message: String, at: Timestamp, problems: [ValidationIssue] = []) {
        self.init(code: code.rawValue, message: message, at: at, problems: problems)
    }

    public static func == (lhs: ConfigLoadFailure, rhs: ConfigLoadFailure) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.at == rhs.at
            && lhs.problems.map(\.description) == rhs.problems.map(\.description)
    }

    /// Why a document could not be fetched or was not applied; stable strings, usable as metric labels.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Value: String, CaseIterable {
            case readFailed = "read_failed"
            case invalidConfig = "invalid_config"
            case httpStatus = "http_status"
            case timeout
            case tooLarge = "too_large"
            case connectionFailed = "connection_failed"
            case redirectLoop = "redirect_loop"
            case tlsFailed = "tls_failed"
            case invalidResponse = "invalid_response"
            case credentialsMissing = "credentials_missing"
            case credentialsUnsupported = "credentials_unsupported"
            case langfuseUnreachable = "langfuse_unreachable"
            case langfuseTimeout = "langfuse_timeout"
            case langfuseAuth = "langfuse_auth"
            case langfuseNotFound = "langfuse_not_found"
            case langfuseStatus = "langfuse_status"
            case langfuseInvalid = "langfuse_invalid"
            case langfuseUnsupported = "langfuse_unsupported"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        public var rawValue: String { value.rawValue }
        public var description: String { value.rawValue }

        /// The file could not be read (missing, unreadable, larger than the limit).
        public static let readFailed = Code(.readFailed)
        /// The document was fetched and failed validation (or is not JSON); `problems` lists why.
        public static let invalidConfig = Code(.invalidConfig)
        /// The server answered with a status other than 200 or 304.
        public static let httpStatus = Code(.httpStatus)
        /// The request (connect, head and body) did not finish within the request timeout.
        public static let timeout = Code(.timeout)
        /// The body is larger than the maximum config size.
        public static let tooLarge = Code(.tooLarge)
        /// The server could not be reached, or closed the connection before the answer was complete.
        public static let connectionFailed = Code(.connectionFailed)
        /// The server redirected in a cycle or more often than allowed.
        public static let redirectLoop = Code(.redirectLoop)
        /// The TLS handshake failed (an untrusted certificate, a name mismatch).
        public static let tlsFailed = Code(.tlsFailed)
        /// The server's answer does not follow the API (AppConfig without a session or poll token).
        public static let invalidResponse = Code(.invalidResponse)
        /// No AWS credentials in the environment or the shared credentials file.
        public static let credentialsMissing = Code(.credentialsMissing)
        /// AWS credentials are configured through a provider variantd does not implement.
        public static let credentialsUnsupported = Code(.credentialsUnsupported)
        /// Langfuse could not be reached (refused, reset, TLS, a body cut short), so a prompt version is unresolved.
        public static let langfuseUnreachable = Code(.langfuseUnreachable)
        /// Langfuse gave no complete answer within the request timeout.
        public static let langfuseTimeout = Code(.langfuseTimeout)
        /// Langfuse refused the keys (401, 403), or no keys are configured.
        public static let langfuseAuth = Code(.langfuseAuth)
        /// Langfuse has no such prompt, version or label (404).
        public static let langfuseNotFound = Code(.langfuseNotFound)
        /// Langfuse answered another status (a 500).
        public static let langfuseStatus = Code(.langfuseStatus)
        /// Langfuse's answer is not a prompt in the API's shape, is another version, or is too large.
        public static let langfuseInvalid = Code(.langfuseInvalid)
        /// The prompt cannot be served as a version (a chat placeholder, an unknown prompt type).
        public static let langfuseUnsupported = Code(.langfuseUnsupported)

        public static var all: [Code] { Value.allCases.map(Code.init) }
    }
}

extension ConfigLoadFailure {
    /// `{"code":..,"message":..,"at":..}`, with `"problems":[{"path","code","message"},..]` when asked (the
    /// `config` op's `last_error`; a prompt source's `last_error` has no problems to list).
    func writeMembers(into object: inout JSONObjectWriter, withProblems: Bool) {
        object.field("code", code)
        object.field("message", message)
        object.field("at", at.rfc3339)
        if withProblems {
            object.objects("problems", problems) { problem, object in
                object.field("path", problem.path)
                object.field("code", problem.code.rawValue)
                object.field("message", problem.message)
            }
        }
    }
}

/// Whether the config source could be used the last time it was asked.
public enum ConfigSourceState: String, Sendable {
    /// Not asked yet.
    case starting
    /// The last poll reached the source and got a document or "unchanged".
    case ok
    /// The last poll failed; the daemon backs off and keeps serving the config in use.
    case failing
}

/// Everything a request is answered from, immutable so that one reference is one consistent view.
///
/// The daemon swaps whole snapshots when a configuration is applied or fails; a request never sees half of one.
public final class ServingSnapshot: Sendable {
    public let config: LoadedConfig?
    /// Where configuration comes from, even before anything was loaded (`file:/etc/variantd/config.json`).
    public let source: String
    public let lastError: ConfigLoadFailure?
    public let startedAt: Timestamp
    /// Whether the last poll of the source succeeded.
    public let sourceState: ConfigSourceState
    /// When a poll last reached the source and got a document or "unchanged".
    public let lastSuccessAt: Timestamp?
    /// Treatments disabled on this host, by a guardrail or an operator (by name, so they outlive config changes).
    /// The treatments `config`'s document disables serve the control too: `disabledTreatments` has both.
    public let disabled: Set<ExperimentLedger.VariantKey>
    /// `disabled` and the document's disables resolved against `config`: by experiment index, then variant index.
    private let disabledByIndex: [[Bool]]
    /// Whether any treatment of each experiment (by index) is disabled.
    private let experimentHasDisabled: [Bool]
    /// The Langfuse prompt versions and labels of the latest document, and how each was resolved.
    public let promptSources: [PromptSourceStatus]
    /// Why the state file does not hold the state in memory, while its writes fail; nil when it does.
    public let stateFailure: StateWriteFailure?

    public init(
        config: LoadedConfig?, source: String, lastError: ConfigLoadFailure?, startedAt: Timestamp,
        sourceState: ConfigSourceState = .starting, lastSuccessAt: Timestamp? = nil,
        disabled: Set<ExperimentLedger.VariantKey> = [], promptSources: [PromptSourceStatus] = [],
        stateFailure: StateWriteFailure? = nil
    ) {
        self.promptSources = promptSources
        self.stateFailure = stateFailure
        self.config = config
        self.source = source
        self.lastError = lastError
        self.startedAt = startedAt
        self.sourceState = sourceState
        self.lastSuccessAt = lastSuccessAt
        self.disabled = disabled
        self.disabledByIndex = (config?.document.experiments ?? []).map { experiment in
            experiment.variants.map {
                $0.disabled != nil || disabled.contains(.init(experiment: experiment.name, variant: $0.name))
            }
        }
        self.experimentHasDisabled = disabledByIndex.map { $0.contains(true) }
    }

    /// The same snapshot with a newly applied configuration; the last error is cleared.
    public func applying(_ config: LoadedConfig) -> ServingSnapshot {
        ServingSnapshot(
            config: config, source: config.source, lastError: nil, startedAt: startedAt,
            sourceState: config.fromCache ? sourceState : .ok,
            lastSuccessAt: config.fromCache ? lastSuccessAt : config.fetchedAt, disabled: disabled, promptSources: promptSources,
            stateFailure: stateFailure)
    }

    /// The same snapshot, still serving what it served, with the failure recorded.
    public func recording(_ failure: ConfigLoadFailure) -> ServingSnapshot {
        ServingSnapshot(
            config: config, source: source, lastError: failure, startedAt: startedAt, sourceState: sourceState,
            lastSuccessAt: lastSuccessAt, disabled: disabled, promptSources: promptSources,
            stateFailure: stateFailure)
    }

    /// The same snapshot after a poll: `lastError` replaces the recorded error (nil clears it).
    public func polled(
        _ state: ConfigSourceState, at time: Timestamp, lastError: ConfigLoadFailure?, config: LoadedConfig? = nil
    ) -> ServingSnapshot {
        ServingSnapshot(
            config: config ?? self.config, source: source, lastError: lastError, startedAt: startedAt,
            sourceState: state, lastSuccessAt: state == .ok ? time : lastSuccessAt, disabled: disabled, promptSources: promptSources,
            stateFailure: stateFailure)
    }

    /// The same snapshot with another set of disabled treatments.
    public func withDisabled(_ disabled: Set<ExperimentLedger.VariantKey>) -> ServingSnapshot {
        ServingSnapshot(
            config: config, source: source, lastError: lastError, startedAt: startedAt, sourceState: sourceState,
            lastSuccessAt: lastSuccessAt, disabled: disabled, promptSources: promptSources,
            stateFailure: stateFailure)
    }

    /// The same snapshot with the prompt-source state of the latest document.
    public func withPromptSources(_ promptSources: [PromptSourceStatus]) -> ServingSnapshot {
        ServingSnapshot(
            config: config, source: source, lastError: lastError, startedAt: startedAt, sourceState: sourceState,
            lastSuccessAt: lastSuccessAt, disabled: disabled, promptSources: promptSources,
            stateFailure: stateFailure)
    }

    /// The same snapshot with the state file's failure (nil once a write succeeded).
    public func withStateFailure(_ stateFailure: StateWriteFailure?) -> ServingSnapshot {
        ServingSnapshot(
            config: config, source: source, lastError: lastError, startedAt: startedAt, sourceState: sourceState,
            lastSuccessAt: lastSuccessAt, disabled: disabled, promptSources: promptSources, stateFailure: stateFailure)
    }

    /// Every treatment that serves the control to its units: disabled on this host or by the document in use.
    public var disabledTreatments: Set<ExperimentLedger.VariantKey> {
        var treatments = disabled
        for experiment in config?.document.experiments ?? [] {
            for variant in experiment.variants where variant.disabled != nil {
                treatments.insert(.init(experiment: experiment.name, variant: variant.name))
            }
        }
        return treatments
    }

    /// Whether a treatment of the experiment at this index of `config` is disabled.
    public func hasDisabledTreatment(experimentIndex: Int) -> Bool {
        experimentHasDisabled[experimentIndex]
    }

    /// Whether the variant at these indexes of `config` is a disabled treatment.
    public func isDisabled(experimentIndex: Int, variantIndex: Int) -> Bool {
        disabledByIndex[experimentIndex][variantIndex]
    }

    /// The unit's assignment with disabled treatments sent to the control (PROTOCOL.md, "Decision order").
    func assignment(experimentIndex: Int, unit: String, attributes: JSONObject, now: Timestamp, in config: LoadedConfig)
        -> Assignment
    {
        let experiment = config.document.experiments[experimentIndex]
        var assignment = experiment.assign(unit: unit, attributes: attributes, now: now)
        if let shadow = assignment.shadowVariantIndex, isDisabled(experimentIndex: experimentIndex, variantIndex: shadow) {
            assignment.shadowVariantIndex = nil  // a disabled treatment stops running in the shadow too
        }
        guard assignment.enrolled, isDisabled(experimentIndex: experimentIndex, variantIndex: assignment.variantIndex)
        else { return assignment }
        return Assignment(variantIndex: experiment.controlIndex, enrolled: false, reason: .disabled)
    }
}

