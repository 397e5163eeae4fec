/// An error answered to a client: a stable code and a human message (PROTOCOL.md, "Error codes").
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// A stable snake_case error code, usable as a metric label.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, CaseIterable {
            case invalidJSON = "invalid_json"
            case invalidRequest = "invalid_request"
            case missingField = "missing_field"
            case invalidField = "invalid_field"
            case unknownField = "unknown_field"
            case unknownOp = "unknown_op"
            case unknownExperiment = "unknown_experiment"
            case unknownPrompt = "unknown_prompt"
            case unknownPromptVersion = "unknown_prompt_version"
            case promptMismatch = "prompt_mismatch"
            case noConfig = "no_config"
            case lineTooLong = "line_too_long"
            case tooManyConnections = "too_many_connections"
            case unknownVariant = "unknown_variant"
            case unknownPhase = "unknown_phase"
            case unknownMetric = "unknown_metric"
            case invalidMetric = "invalid_metric"
            case tooManyMetrics = "too_many_metrics"
            case notEnrolled = "not_enrolled"
            case notShadow = "not_shadow"
            case controlCannotBeDisabled = "control_cannot_be_disabled"
            case disabledByConfig = "disabled_by_config"
            case forbidden = "forbidden"
            case unavailable = "unavailable"
            case missingVariable = "missing_variable"
            case invalidVariables = "invalid_variables"
            case ruleBlocked = "rule_blocked"
            case stateNotDurable = "state_not_durable"
            case `internal` = "internal"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public var rawValue: String { base.rawValue }
        public var description: String { base.rawValue }

        /// Every code, for documentation tests.
        public static var all: [Code] { Base.allCases.map(Code.init) }

        public static let invalidJSON = Code(.invalidJSON)
        public static let invalidRequest = Code(.invalidRequest)
        public static let missingField = Code(.missingField)
        public static let invalidField = Code(.invalidField)
        public static let unknownField = Code(.unknownField)
        public static let unknownOp = Code(.unknownOp)
        public static let unknownExperiment = Code(.unknownExperiment)
        public static let unknownPrompt = Code(.unknownPrompt)
        public static let unknownPromptVersion = Code(.unknownPromptVersion)
        public static let promptMismatch = Code(.promptMismatch)
        public static let noConfig = Code(.noConfig)
        public static let lineTooLong = Code(.lineTooLong)
        public static let tooManyConnections = Code(.tooManyConnections)
        public static let unknownVariant = Code(.unknownVariant)
        /// `stats` asked for a phase the experiment never had, or that is no longer kept.
        public static let unknownPhase = Code(.unknownPhase)
        public static let unknownMetric = Code(.unknownMetric)
        public static let invalidMetric = Code(.invalidMetric)
        public static let tooManyMetrics = Code(.tooManyMetrics)
        public static let notEnrolled = Code(.notEnrolled)
        public static let notShadow = Code(.notShadow)
        public static let controlCannotBeDisabled = Code(.controlCannotBeDisabled)
        /// `enable` named a treatment the configuration document disables; only a document can serve it again.
        public static let disabledByConfig = Code(.disabledByConfig)
        public static let forbidden = Code(.forbidden)
        public static let unavailable = Code(.unavailable)
        public static let missingVariable = Code(.missingVariable)
        public static let invalidVariables = Code(.invalidVariables)
        public static let ruleBlocked = Code(.ruleBlocked)
        /// An admin op took effect in memory, but the state file could not be written, so a restart would undo it.
        public static let stateNotDurable = Code(.stateNotDurable)
        public static let `internal` = Code(.internal)
    }
}
