/// Why a Langfuse prompt version could not be resolved or served, with a stable code of `ConfigLoadFailure.Code`
/// (`langfuse_*`, PROTOCOL.md section 4).
public struct PromptSourceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ConfigLoadFailure.Code
    public var message: String

    public init(_ code: ConfigLoadFailure.Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// One prompt version as Langfuse's public API returns it (`GET /api/public/v2/prompts/{name}`), and the inline
/// prompt version it becomes in the configuration document.
///
/// A text prompt (`"type": "text"`, `"prompt": "..."`) becomes `{"version", "template", "variables"}`; a chat
/// prompt (`"type": "chat"`, `"prompt": [{"role", "content"}, ...]`) becomes `{"version", "messages",
/// "variables"}`. The variables are `config.variables` when the version declares them (`{"required": [...],
/// "optional": [...]}`), else every `{{name}}` in the text or the messages, all required. Chat placeholders
/// (`{"type": "placeholder"}`) are refused (`langfuse_unsupported`): a version served by variantd is complete.
public struct LangfusePrompt: Sendable, Equatable {
    public let name: String
    public let version: Int
    /// The labels Langfuse gave this version when it was fetched.
    public let labels: [String]
    /// The API's answer as fetched (kept on disk, so a restart rebuilds the same version from it).
    public let raw: JSONValue
    /// The prompt version in the inline document format.
    public let inlineVersion: JSONValue

    /// Reads an API answer, checking that it is the prompt version `reference` asks for.
    ///
    /// - Throws: `PromptSourceError`: `langfuse_invalid` for an answer that does not follow the API's shape or is
    ///   another prompt, version or label; `langfuse_unsupported` for a chat placeholder or an unknown type.
    public init(_ raw: JSONValue, for reference: LangfuseReference) throws(PromptSourceError) {
        try self.init(raw)
        guard name == reference.name else {
            throw PromptSourceError(.langfuseInvalid, "\(reference): the answer is prompt '\(name)'")
        }
        switch reference.selector {
        case .version(let number) where number != version:
            throw PromptSourceError(.langfuseInvalid, "\(reference): the answer is version \(version)")
        case .label(let label) where raw.objectValue?["labels"] != nil && !labels.contains(label):
            throw PromptSourceError(
                .langfuseInvalid, "\(reference): the answer (version \(version)) does not carry that label")
        default:
            break
        }
    }

    /// Reads an API answer.
    ///
    /// - Throws: `PromptSourceError`, as `init(_:for:)`.
    public init(_ raw: JSONValue) throws(PromptSourceError) {
        guard case .object(let object) = raw else {
            throw PromptSourceError(.langfuseInvalid, "a prompt must be a JSON object, found \(raw.typeName)")
        }
        guard case .string(let name)? = object["name"] else {
            throw PromptSourceError(.langfuseInvalid, "the prompt has no string 'name'")
        }
        guard let version = object["version"]?.integerValue, version >= 1 else {
            throw PromptSourceError(.langfuseInvalid, "prompt '\(name)': 'version' must be an integer of 1 or more")
        }
        let described = "langfuse '\(name)' version \(version)"
        var labels: [String] = []
        if let labelsValue = object["labels"] {
            guard case .array(let elements) = labelsValue, elements.allSatisfy({ $0.stringValue != nil }) else {
                throw PromptSourceError(.langfuseInvalid, "\(described): 'labels' must be an array of strings")
            }
            labels = elements.compactMap(\.stringValue)
        }
        let type = object["type"]?.stringValue ?? (object["prompt"]?.stringValue != nil ? "text" : "chat")
        var members: [(key: String, value: JSONValue)] = [(key: "version", value: .number(Double(version)))]
        var texts: [String] = []
        switch (type, object["prompt"]) {
        case ("text", .string(let template)?):
            members.append((key: "template", value: .string(template)))
            texts = [template]
        case ("chat", .array(let elements)?):
            var messages: [JSONValue] = []
            for (index, element) in elements.enumerated() {
                guard case .object(let message) = element else {
                    throw PromptSourceError(.langfuseInvalid, "\(described): message \(index) is not an object")
                }
                if let kind = message["type"]?.stringValue, kind != "chatmessage" {
                    let what = kind == "placeholder" ? "a placeholder" : "of type '\(kind)'"
                    throw PromptSourceError(
                        .langfuseUnsupported,
                        "\(described): message \(index) is \(what); variantd serves complete prompts only (fill the placeholder in Langfuse, or keep it in the application)"
                    )
                }
                guard case .string(let role)? = message["role"], case .string(let content)? = message["content"] else {
                    throw PromptSourceError(
                        .langfuseInvalid, "\(described): message \(index) needs a string 'role' and 'content'")
                }
                messages.append(
                    .object(JSONObject([(key: "role", value: .string(role)), (key: "content", value: .string(content))])))
                texts.append(content)
            }
            members.append((key: "messages", value: .array(messages)))
        case ("text", _), ("chat", _):
            throw PromptSourceError(
                .langfuseInvalid,
                "\(described): a \(type) prompt's 'prompt' must be \(type == "text" ? "a string" : "an array of messages")")
        default:
            throw PromptSourceError(.langfuseUnsupported, "\(described): prompt type '\(type)' is not text or chat")
        }
        members.append((key: "variables", value: try Self.variables(object["config"], texts: texts, described)))
        if case .string(let message)? = object["commitMessage"], !message.isEmpty {
            members.append((key: "description", value: .string(message)))
        }
        self.name = name
        self.version = version
        self.labels = labels
        self.raw = raw
        self.inlineVersion = .object(JSONObject(members))
    }

    /// `config.variables` when present, else every `{{name}}` of the texts as required.
    static func variables(_ config: JSONValue?, texts: [String], _ described: String) throws(PromptSourceError)
        -> JSONValue
    {
        if case .object(let config)? = config, let declared = config["variables"] {
            guard case .object(let variables) = declared else {
                throw PromptSourceError(
                    .langfuseInvalid,
                    "\(described): config.variables must be an object {\"required\": [...], \"optional\": [...]}")
            }
            // Passed on as declared: the document's validation checks the names, with their paths.
            return .object(
                JSONObject(variables.members.filter { $0.key == "required" || $0.key == "optional" }))
        }
        var names: [String] = []
        for text in texts {
            for name in placeholders(in: text) where !names.contains(name) { names.append(name) }
        }
        return .object(
            JSONObject([(key: "required", value: .array(names.map { .string($0) })), (key: "optional", value: .array([]))]))
    }

    /// The variable names of a Langfuse template: `{{name}}`, spaces inside the braces ignored, in order of first
    /// appearance. Anything between braces that is not a variable name is left alone.
    public static func placeholders(in text: String) -> [String] {
        let bytes = Array(text.utf8)
        var names: [String] = []
        var index = 0
        while index + 1 < bytes.count {
            guard bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "{") else {
                index += 1
                continue
            }
            var end = index + 2
            while end + 1 < bytes.count, !(bytes[end] == UInt8(ascii: "}") && bytes[end + 1] == UInt8(ascii: "}")) {
                end += 1
            }
            guard end + 1 < bytes.count else { break }
            var inner = bytes[(index + 2)..<end]
            while let first = inner.first, first == 0x20 { inner.removeFirst() }
            while let last = inner.last, last == 0x20 { inner.removeLast() }
            let name = String(decoding: inner, as: UTF8.self)
            if DocumentValidator.isValidVariableName(name), !names.contains(name) { names.append(name) }
            index = end + 2
        }
        return names
    }
}
