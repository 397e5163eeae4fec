/// One problem found in a configuration document: where it is, a stable code, and what is wrong.
public struct ValidationIssue: Sendable, Equatable, CustomStringConvertible {
    /// A JSON path such as `$.experiments[1].variants[0].weight`.
    public var path: String
    public var code: Code
    public var message: String

    public init(path: String, code: Code, message: String) {
        self.path = path
        self.code = code
        self.message = message
    }

    public var description: String { "\(path): \(code): \(message)" }

    /// A stable, snake_case validation code; the full list is in PROTOCOL.md, "Validation".
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, CaseIterable {
            case invalidJSON = "invalid_json"
            case wrongType = "wrong_type"
            case missingField = "missing_field"
            case unknownField = "unknown_field"
            case invalidValue = "invalid_value"
            case unsupportedSchemaVersion = "unsupported_schema_version"
            case duplicateName = "duplicate_name"
            case duplicateVersion = "duplicate_version"
            case tooFewVariants = "too_few_variants"
            case weightsSum = "weights_sum"
            case missingControl = "missing_control"
            case multipleControls = "multiple_controls"
            case unknownPrompt = "unknown_prompt"
            case unknownPromptVersion = "unknown_prompt_version"
            case invalidTimestamp = "invalid_timestamp"
            case windowInverted = "window_inverted"
            case windowTooLong = "window_too_long"
            case missingWinner = "missing_winner"
            case unexpectedWinner = "unexpected_winner"
            case unknownWinner = "unknown_winner"
            case invalidRule = "invalid_rule"
            case invalidTemplate = "invalid_template"
            case unsupportedTemplate = "unsupported_template"
            case undeclaredVariable = "undeclared_variable"
            case conflictingFields = "conflicting_fields"
            case invalidPattern = "invalid_pattern"
            case modelNotAllowed = "model_not_allowed"
            case controlCannotBeDisabled = "control_cannot_be_disabled"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public var rawValue: String { base.rawValue }
        public var description: String { base.rawValue }

        /// Every code, for documentation tests.
        public static var all: [Code] { Base.allCases.map(Code.init) }

        public static let invalidJSON = Code(.invalidJSON)
        public static let wrongType = Code(.wrongType)
        public static let missingField = Code(.missingField)
        public static let unknownField = Code(.unknownField)
        public static let invalidValue = Code(.invalidValue)
        public static let unsupportedSchemaVersion = Code(.unsupportedSchemaVersion)
        public static let duplicateName = Code(.duplicateName)
        public static let duplicateVersion = Code(.duplicateVersion)
        public static let tooFewVariants = Code(.tooFewVariants)
        public static let weightsSum = Code(.weightsSum)
        public static let missingControl = Code(.missingControl)
        public static let multipleControls = Code(.multipleControls)
        public static let unknownPrompt = Code(.unknownPrompt)
        public static let unknownPromptVersion = Code(.unknownPromptVersion)
        public static let invalidTimestamp = Code(.invalidTimestamp)
        public static let windowInverted = Code(.windowInverted)
        public static let windowTooLong = Code(.windowTooLong)
        public static let missingWinner = Code(.missingWinner)
        public static let unexpectedWinner = Code(.unexpectedWinner)
        public static let unknownWinner = Code(.unknownWinner)
        public static let invalidRule = Code(.invalidRule)
        public static let invalidTemplate = Code(.invalidTemplate)
        public static let unsupportedTemplate = Code(.unsupportedTemplate)
        public static let undeclaredVariable = Code(.undeclaredVariable)
        public static let conflictingFields = Code(.conflictingFields)
        public static let invalidPattern = Code(.invalidPattern)
        public static let modelNotAllowed = Code(.modelNotAllowed)
        /// The control carries `disabled` (the same word as the `disable` op's error).
        public static let controlCannotBeDisabled = Code(.controlCannotBeDisabled)
    }
}

/// A document that failed validation, with every problem found.
public struct ConfigValidationError: Error, Sendable, CustomStringConvertible {
    public var issues: [ValidationIssue]

    public var description: String {
        "invalid configuration (\(issues.count) problem\(issues.count == 1 ? "" : "s")): "
            + issues.map(\.description).joined(separator: "; ")
    }
}
