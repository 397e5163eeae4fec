import Glibc
import VariantCore

/// The caller's own knowledge of each experiment's control, served when the daemon cannot answer.
///
/// From code (`Fallback(experiments: ["checkout-prompt": .init(prompt: "checkout", promptVersion: 1,
/// template: "...")])`) or from a JSON file in either of two shapes, as the Python shim reads them:
/// - experiments: `{"checkout-prompt": {"variant": "control", "prompt": "checkout", "prompt_version": 1,
///   "template": "You are ...", "params": {}}}`, every member optional (`variant` defaults to `control`);
/// - a variantd configuration document (it has `schema_version`; it is validated as the daemon would): each
///   experiment's `control` variant, with its prompt version's template.
///
/// An experiment the fallback does not name gets `variant: "control"` with no prompt and no template.
public struct Fallback: Sendable {
    /// What one experiment serves without the daemon.
    public struct Control: Sendable, Equatable {
        public var variant: String
        public var prompt: String?
        public var promptVersion: Int?
        public var template: String?
        public var params: JSONObject

        public init(
            variant: String = "control", prompt: String? = nil, promptVersion: Int? = nil, template: String? = nil,
            params: JSONObject = JSONObject()
        ) {
            self.variant = variant
            self.prompt = prompt
            self.promptVersion = promptVersion
            self.template = template
            self.params = params
        }
    }

    /// A fallback file that cannot be used, with the reason.
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public var experiments: [String: Control]
    /// Prompt templates by name and version (from a configuration document, or from the experiments' entries).
    public var templates: [String: [Int: Template]]
    /// The same versions parsed as the daemon parses them, for rendering here (`render`): every version of a
    /// configuration document, and each entry's template whose variables are all optional.
    public var versions: [String: [Int: PromptVersion]]

    public init(experiments: [String: Control] = [:]) {
        self.experiments = experiments
        self.templates = [:]
        self.versions = [:]
        var prompts: [(key: String, value: JSONValue)] = []
        for control in experiments.values {
            if let prompt = control.prompt, let version = control.promptVersion, let template = control.template {
                templates[prompt, default: [:]][version] = Template(
                    prompt: prompt, version: version, template: template, variables: .init(), configVersion: nil,
                    fromFallback: true)
                let declared = PromptTemplate.referencedVariables(in: template).map(JSONValue.string)
                prompts.append((prompt, .object(JSONObject([("versions", .array([.object(JSONObject([
                    ("version", .number(Double(version))), ("template", .string(template)),
                    ("variables", .object(JSONObject([("optional", .array(declared))]))),
                ]))]))]))))
            }
        }
        // Parsed like a configuration document, one prompt at a time so that one bad template costs only itself.
        for prompt in prompts {
            let document = JSONValue.object(JSONObject([
                ("schema_version", .number(1)), ("prompts", .object(JSONObject([prompt]))), ("experiments", .array([])),
            ]))
            guard let parsed = try? ConfigDocument.validate(document), let only = parsed.prompts[prompt.key] else { continue }
            for version in only.versions { versions[prompt.key, default: [:]][version.number] = version }
        }
    }

    /// Reads a fallback from a JSON file (either shape).
    /// - Throws: `LoadError` when the file cannot be read, is not JSON, or is not one of the two shapes.
    public init(contentsOfFile path: String) throws(LoadError) {
        let bytes: [UInt8]
        do {
            bytes = try LocalFile.bytes(atPath: path)
        } catch {
            throw LoadError(description: "cannot read fallback \(path): \(error)")
        }
        try self.init(json: bytes, name: path)
    }

    /// Reads a fallback from JSON bytes (either shape).
    /// - Throws: `LoadError` naming the problem.
    public init(json bytes: [UInt8], name: String = "fallback") throws(LoadError) {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes)
        } catch {
            throw LoadError(description: "\(name) is not JSON: \(error)")
        }
        guard let object = root.objectValue else { throw LoadError(description: "\(name) is not a JSON object") }
        if object["schema_version"] != nil {
            let document: ConfigDocument
            do {
                document = try ConfigDocument.validate(root)
            } catch {
                let problems = error.issues.prefix(5).map { "\($0.path): \($0.code.rawValue)" }.joined(separator: "; ")
                throw LoadError(description: "\(name) is not a valid configuration document: \(problems)")
            }
            self.init(document: document)
            return
        }
        var experiments: [String: Control] = [:]
        for member in object.members {
            guard let entry = member.value.objectValue else {
                throw LoadError(description: "\(name): the fallback for '\(member.key)' is not an object")
            }
            let known: Set<String> = ["variant", "prompt", "prompt_version", "template", "params"]
            if let unknown = entry.keys.first(where: { !known.contains($0) }) {
                throw LoadError(description: "\(name): the fallback for '\(member.key)' has an unknown field '\(unknown)'")
            }
            experiments[member.key] = Control(
                variant: entry["variant"]?.stringValue ?? "control", prompt: entry["prompt"]?.stringValue,
                promptVersion: entry["prompt_version"]?.integerValue, template: entry["template"]?.stringValue,
                params: entry["params"]?.objectValue ?? JSONObject())
        }
        self.init(experiments: experiments)
    }

    /// Each experiment's control and every prompt version of a (valid) configuration document.
    public init(document: ConfigDocument) {
        self.init()
        for (name, prompt) in document.prompts {
            for version in prompt.versions {
                templates[name, default: [:]][version.number] = Template(
                    prompt: name, version: version.number, template: version.template,
                    variables: .init(required: version.requiredVariables, optional: version.optionalVariables),
                    configVersion: nil, fromFallback: true, messages: version.messages)
                versions[name, default: [:]][version.number] = version
            }
        }
        for experiment in document.experiments {
            let control = experiment.control
            experiments[experiment.name] = Control(
                variant: control.name, prompt: control.prompt, promptVersion: control.promptVersion,
                template: templates[control.prompt]?[control.promptVersion]?.template, params: control.params)
        }
    }

    /// A prompt version's template (the latest without `version`), if this fallback has it.
    public func template(_ prompt: String, version: Int? = nil) -> Template? {
        guard let versions = templates[prompt] else { return nil }
        guard let number = version ?? versions.keys.max() else { return nil }
        return versions[number]
    }

    /// The control of `experiment` as this fallback describes it, with `reason` and, for `fallback`, the `error`.
    public func assignment(for experiment: String, reason: String = "fallback", error: String? = nil) -> VariantClient.Assignment {
        let control = experiments[experiment] ?? Control()
        let known = control.prompt.flatMap { prompt in control.promptVersion.flatMap { templates[prompt]?[$0] } }
        let metadata = JSONObject([
            ("experiment", .string(experiment)), ("variant", .string(control.variant)),
            ("prompt", control.prompt.map(JSONValue.string) ?? .null),
            ("prompt_version", control.promptVersion.map { .number(Double($0)) } ?? .null), ("config_version", .null),
        ])
        return VariantClient.Assignment(
            experiment: experiment, variant: control.variant, prompt: control.prompt, promptVersion: control.promptVersion,
            params: control.params, enrolled: false, reason: reason, configVersion: nil, metadata: metadata,
            template: control.template ?? known?.template, variables: known?.variables, shadow: nil, error: error,
            messages: known?.messages)
    }
}

/// One version of a named prompt, from the daemon or from the fallback.
public struct Template: Sendable, Equatable {
    public var prompt: String
    public var version: Int
    /// The template of a text prompt; empty for a chat prompt.
    public var template: String
    public var variables: VariantClient.Assignment.Variables
    public var configVersion: String?
    public var fromFallback: Bool
    /// The messages of a chat prompt (each content a template); nil for a text prompt.
    public var messages: [PromptMessage]? = nil
}
