import VariantCore

extension VariantClient {
    /// Which variant and prompt version a unit gets, as the daemon decided or, when it could not, the caller's
    /// fallback (`reason == "fallback"`).
    public struct Assignment: Sendable, Equatable {
        public var experiment: String
        /// The variant to serve; the fallback's control name when the daemon could not answer.
        public var variant: String?
        public var prompt: String?
        public var promptVersion: Int?
        /// The variant's free-form settings (model, temperature, ...), in document order.
        public var params: JSONObject
        public var enrolled: Bool
        /// The daemon's reason (`assigned`, `outside_exposure`, `disabled`, `shadow`, `no_config`, ...) or `fallback`.
        public var reason: String
        public var configVersion: String?
        /// The daemon's `metadata` object (experiment, variant, prompt, prompt_version, config_version).
        public var metadata: JSONObject
        /// The prompt version's text: filled by `VariantClient.prompt` and by the fallback, not by `assign`.
        public var template: String?
        public var variables: Variables?
        /// Shadow mode: the treatment to run in the background besides the served control.
        public var shadow: Shadow?
        /// Why the fallback was used: `unreachable`, `timeout`, `closed`, `invalid_answer`, `prompt_unavailable`
        /// or the daemon's error code; nil otherwise.
        public var error: String?
        /// A chat version's messages (each content a template), filled by `prompt` (and the fallback) where
        /// `template` is empty.
        public var messages: [PromptMessage]? = nil
        /// The unit the assignment is for (set by `assign` and `render`): `record(_:_:)` sends it with the variant,
        /// so that the daemon analyses the records by unit.
        public var unit: String? = nil

        public struct Variables: Sendable, Equatable {
            public var required: [String]
            public var optional: [String]

            public init(required: [String] = [], optional: [String] = []) {
                self.required = required
                self.optional = optional
            }
        }

        public struct Shadow: Sendable, Equatable {
            public var variant: String
            public var prompt: String
            public var promptVersion: Int
            public var params: JSONObject
        }

        /// True when the daemon did not decide (`fallback`): the caller's own control is served.
        public var isFallback: Bool { reason == "fallback" }

        /// Langfuse-style metadata for a trace: the daemon's `metadata` plus `reason` and `enrolled` (and
        /// `shadow_variant` in shadow mode), so traces filter by experiment, variant, prompt version and fallback.
        public var traceMetadata: JSONObject {
            var members: [(key: String, value: JSONValue)] = [
                ("experiment", .string(experiment)), ("variant", variant.map(JSONValue.string) ?? .null),
                ("prompt", prompt.map(JSONValue.string) ?? .null),
                ("prompt_version", promptVersion.map { .number(Double($0)) } ?? .null),
                ("config_version", configVersion.map(JSONValue.string) ?? .null),
            ]
            for member in metadata.members {
                if let index = members.firstIndex(where: { $0.key == member.key }) {
                    members[index].value = member.value
                } else {
                    members.append(member)
                }
            }
            members.append(("reason", .string(reason)))
            members.append(("enrolled", .bool(enrolled)))
            if let shadow { members.append(("shadow_variant", .string(shadow.variant))) }
            return JSONObject(members)
        }

        /// The same fields as OpenTelemetry span attributes: keys prefixed `variantd.`, null values left out.
        public func traceAttributes(prefix: String = "variantd.") -> [(key: String, value: JSONValue)] {
            traceMetadata.members.filter { $0.value != .null }.map { (prefix + $0.key, $0.value) }
        }

        public static func == (lhs: Assignment, rhs: Assignment) -> Bool {
            lhs.experiment == rhs.experiment && lhs.variant == rhs.variant && lhs.prompt == rhs.prompt
                && lhs.promptVersion == rhs.promptVersion && lhs.params == rhs.params && lhs.enrolled == rhs.enrolled
                && lhs.reason == rhs.reason && lhs.configVersion == rhs.configVersion && lhs.metadata == rhs.metadata
                && lhs.template == rhs.template && lhs.variables == rhs.variables && lhs.shadow == rhs.shadow
                && lhs.error == rhs.error && lhs.messages == rhs.messages && lhs.unit == rhs.unit
        }
    }
}

extension VariantClient.Assignment {
    /// Whether the daemon decided this assignment (not a fallback's control, not `no_config`).
    var isDaemonsDecision: Bool { reason != "fallback" && reason != "no_config" }

    /// Reads an `assign` answer; nil if a field is missing or has the wrong type.
    init?(answer: JSONObject) {
        guard let experiment = answer["experiment"]?.stringValue, let enrolled = answer["enrolled"]?.boolValue,
            let reason = answer["reason"]?.stringValue
        else { return nil }
        self.init(
            experiment: experiment, variant: answer["variant"]?.stringValue, prompt: answer["prompt"]?.stringValue,
            promptVersion: answer["prompt_version"]?.integerValue, params: answer["params"]?.objectValue ?? JSONObject(),
            enrolled: enrolled, reason: reason, configVersion: answer["config_version"]?.stringValue,
            metadata: answer["metadata"]?.objectValue ?? JSONObject(), template: nil, variables: nil, shadow: nil, error: nil)
        if let shadow = answer["shadow"]?.objectValue, let variant = shadow["variant"]?.stringValue,
            let prompt = shadow["prompt"]?.stringValue, let version = shadow["prompt_version"]?.integerValue
        {
            self.shadow = Shadow(
                variant: variant, prompt: prompt, promptVersion: version, params: shadow["params"]?.objectValue ?? JSONObject())
        }
    }
}
