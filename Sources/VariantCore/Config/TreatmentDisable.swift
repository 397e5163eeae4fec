/// The edit `variantd-judge` publishes: a configuration document with one treatment disabled and the decision
/// recorded in the variant's `disabled` member (PROTOCOL.md, "Experiment"), every other byte of meaning unchanged.
///
/// The result is validated before it is returned, so a judge never publishes a document its daemons would refuse.
public enum TreatmentDisable {
    /// Why a document could not be edited: a stable code and what to do.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Code: String, Sendable {
            /// The document (before or after the edit) does not validate; `issues` says why.
            case invalidConfig = "invalid_config"
            case unknownExperiment = "unknown_experiment"
            case unknownVariant = "unknown_variant"
            case controlCannotBeDisabled = "control_cannot_be_disabled"
        }

        public var code: Code
        public var message: String
        public var issues: [ValidationIssue] = []

        public init(code: Code, message: String, issues: [ValidationIssue] = []) {
            self.code = code
            self.message = message
            self.issues = issues
        }

        public var description: String { "\(code.rawValue): \(message)" }
    }

    /// The document with `variant` of `experiment` disabled: `{"at","by","reason","evidence"}` in its `disabled`
    /// member (replacing an earlier one), pretty-printed with two-space indents.
    /// - Throws: `Failure`: `invalid_config` (with the issues) when the document or the result does not validate,
    ///   `unknown_experiment`, `unknown_variant`, `control_cannot_be_disabled`.
    public static func apply(
        to bytes: [UInt8], experiment: String, variant: String, at: Timestamp, by: String, reason: String,
        evidence: JSONObject
    ) throws(Failure) -> [UInt8] {
        do {
            _ = try ConfigDocument.validate(bytes)
        } catch {
            throw Failure(code: .invalidConfig, message: "the document does not validate (\(error.issues.count) problems)", issues: error.issues)
        }
        guard case .object(var root)? = try? JSONParser.parse(bytes),
            case .array(var experiments)? = root["experiments"]
        else { throw Failure(code: .invalidConfig, message: "the document has no experiments") }
        guard let experimentIndex = experiments.firstIndex(where: { $0.objectValue?["name"]?.stringValue == experiment }),
            case .object(var experimentObject) = experiments[experimentIndex],
            case .array(var variants)? = experimentObject["variants"]
        else { throw Failure(code: .unknownExperiment, message: "the document has no experiment '\(experiment)'") }
        guard let variantIndex = variants.firstIndex(where: { $0.objectValue?["name"]?.stringValue == variant }),
            case .object(var variantObject) = variants[variantIndex]
        else {
            throw Failure(code: .unknownVariant, message: "experiment '\(experiment)' has no variant '\(variant)'")
        }
        guard variantObject["control"] != .bool(true) else {
            throw Failure(code: .controlCannotBeDisabled, message: "'\(variant)' is the control of '\(experiment)'")
        }
        let disabled = JSONValue.object(
            JSONObject([
                ("at", .string(at.rfc3339)), ("by", .string(by)), ("reason", .string(shortened(reason))),
                ("evidence", .object(evidence)),
            ]))
        variantObject.set("disabled", disabled)
        variants[variantIndex] = .object(variantObject)
        experimentObject.set("variants", .array(variants))
        experiments[experimentIndex] = .object(experimentObject)
        root.set("experiments", .array(experiments))

        var writer = JSONWriter(reservingCapacity: bytes.count + 1024)
        writePretty(.object(root), indent: 0, into: &writer)
        writer.raw("\n")
        do {
            _ = try ConfigDocument.validate(writer.bytes)
        } catch {
            throw Failure(code: .invalidConfig, message: "the edited document does not validate (\(error.issues.count) problems)", issues: error.issues)
        }
        return writer.bytes
    }

    /// The reason cut to the 1000 bytes a `disabled.reason` may hold, at a character boundary.
    static func shortened(_ reason: String) -> String {
        var cut = reason
        while cut.utf8.count > 1000 { cut.removeLast() }
        return cut
    }

    /// JSON with each member and element on its own line, indented by two spaces per level (as the examples are).
    static func writePretty(_ value: JSONValue, indent: Int, into writer: inout JSONWriter) {
        func newline(_ level: Int) {
            writer.raw("\n")
            for _ in 0..<level { writer.raw("  ") }
        }
        switch value {
        case .array(let elements) where !elements.isEmpty:
            writer.raw("[")
            for (index, element) in elements.enumerated() {
                if index > 0 { writer.raw(",") }
                newline(indent + 1)
                writePretty(element, indent: indent + 1, into: &writer)
            }
            newline(indent)
            writer.raw("]")
        case .object(let object) where !object.isEmpty:
            writer.raw("{")
            for (index, member) in object.members.enumerated() {
                if index > 0 { writer.raw(",") }
                newline(indent + 1)
                writer.string(member.key)
                writer.raw(": ")
                writePretty(member.value, indent: indent + 1, into: &writer)
            }
            newline(indent)
            writer.raw("}")
        default:
            writer.value(value)
        }
    }
}

extension JSONObject {
    /// Replaces the member named `key`, or appends it.
    mutating func set(_ key: String, _ value: JSONValue) {
        if let index = members.firstIndex(where: { $0.key == key }) {
            members[index].value = value
        } else {
            members.append((key: key, value: value))
        }
    }
}
