/// One prompt version a document asks Langfuse for: a prompt name and either an immutable version number or a
/// label (`production`), which Langfuse may move to another version at any time.
public struct LangfuseReference: Sendable, Hashable, CustomStringConvertible {
    public enum Selector: Sendable, Hashable {
        case version(Int)
        case label(String)
    }

    /// The prompt's name in Langfuse (which may differ from its name in the document).
    public var name: String
    public var selector: Selector

    public init(name: String, selector: Selector) {
        self.name = name
        self.selector = selector
    }

    public var description: String {
        switch selector {
        case .version(let number): "langfuse '\(name)' version \(number)"
        case .label(let label): "langfuse '\(name)' label '\(label)'"
        }
    }
}

/// A configuration document that may keep some prompts in Langfuse (PROTOCOL.md, "Langfuse prompt source"), parsed
/// and checked as far as it can be without fetching anything.
///
/// A prompt is kept in Langfuse with `"langfuse": {"name": "movie-critic"}` instead of `versions` (`name` defaults
/// to the prompt's key); a variant of it names `prompt_version` (immutable) or `prompt_label` (re-resolved). Once
/// every reference is resolved, `resolved(with:)` substitutes the fetched contents, giving an ordinary inline
/// document (the prompt gets `versions` and loses `langfuse`; `prompt_label` becomes the `prompt_version` it
/// resolved to) that `ConfigDocument.validate` checks like any other.
public struct PromptReferences: Sendable {
    /// A Langfuse prompt of the document and where it is used.
    public struct Use: Sendable, Equatable {
        /// The prompt's key in the document's `prompts`.
        public var prompt: String
        public var reference: LangfuseReference
    }

    /// The parsed document, as served.
    public let root: JSONValue
    /// Every (prompt key, version or label) the document uses, in document order, without repeats.
    public let uses: [Use]
    /// The validated document when it keeps no prompt in Langfuse (`uses` is empty): nothing to resolve.
    public let inlineDocument: ConfigDocument?

    /// The distinct Langfuse prompt versions and labels to resolve.
    public var references: [LangfuseReference] {
        var seen: Set<LangfuseReference> = []
        return uses.map(\.reference).filter { seen.insert($0).inserted }
    }

    /// Whether any label is used (labels are re-resolved on a TTL).
    public var usesLabels: Bool {
        uses.contains { if case .label = $0.reference.selector { true } else { false } }
    }

    /// Parses a document and checks everything that does not need Langfuse: the shape of the `langfuse` prompts
    /// and of the variants that use them, and the whole document as `ConfigDocument.validate` sees it with each
    /// Langfuse version stood in for by an empty one. Every problem is reported at once.
    ///
    /// - Throws: `ConfigValidationError` (`invalid_json` alone when the bytes are not JSON).
    public static func parse(_ bytes: some Collection<UInt8>) throws(ConfigValidationError) -> PromptReferences {
        try parse(try ConfigDocument.parseDocument(bytes))
    }

    /// - Throws: `ConfigValidationError`, as `parse(_:)` for bytes.
    public static func parse(_ root: JSONValue) throws(ConfigValidationError) -> PromptReferences {
        var extractor = Extractor()
        let uses = extractor.extract(root)
        var issues = extractor.issues
        // The rest of the document, checked with stand-ins for what only Langfuse can tell (without Langfuse
        // prompts, the document itself).
        var document: ConfigDocument?
        do {
            document = try ConfigDocument.validate(uses.isEmpty && issues.isEmpty ? root : extractor.offlineRoot(root))
        } catch {
            issues += error.issues
        }
        guard issues.isEmpty else { throw ConfigValidationError(issues: issues) }
        return PromptReferences(root: root, uses: uses, inlineDocument: uses.isEmpty ? document : nil)
    }

    /// The document with every Langfuse prompt replaced by the versions fetched for it, ready for
    /// `ConfigDocument.validate`, and the canonical bytes of those versions (part of the config version, so that
    /// the version changes whenever a label moves).
    ///
    /// - Parameter resolved: a fetched prompt for every reference in `references`.
    /// - Throws: `ConfigLoadFailure` (`langfuse_invalid`, `langfuse_unsupported`) when a fetched prompt cannot be
    ///   served as a version, or a reference has no resolution.
    public func resolved(with resolved: [LangfuseReference: LangfusePrompt]) throws(PromptSourceError) -> (
        root: JSONValue, canonical: [UInt8]
    ) {
        guard case .object(var top) = root, case .object(var prompts)? = top["prompts"] else {
            return (root, [])
        }
        var canonical = JSONWriter()
        canonical.raw("{")
        var firstPrompt = true
        for index in prompts.members.indices {
            let key = prompts.members[index].key
            let promptUses = uses.filter { $0.prompt.hasSameUTF8(as: key) }
            guard !promptUses.isEmpty, case .object(var prompt) = prompts.members[index].value else { continue }
            var versions: [Int: JSONValue] = [:]
            for use in promptUses {
                guard let fetched = resolved[use.reference] else {
                    throw PromptSourceError(.langfuseNotFound, "\(use.reference) was not resolved")
                }
                versions[fetched.version] = fetched.inlineVersion
            }
            let sorted = versions.keys.sorted().map { versions[$0]! }
            prompt.members.removeAll { $0.key == "langfuse" }
            prompt.members.append((key: "versions", value: .array(sorted)))
            prompts.members[index].value = .object(prompt)
            if !firstPrompt { canonical.raw(",") }
            firstPrompt = false
            canonical.string(key)
            canonical.raw(":")
            canonical.value(.array(sorted))
        }
        canonical.raw("}")
        top.replace("prompts", with: .object(prompts))
        let labels = Dictionary(
            uses.compactMap { use -> (String, Int)? in
                guard case .label(let label) = use.reference.selector, let fetched = resolved[use.reference] else {
                    return nil
                }
                return (Self.labelKey(prompt: use.prompt, label: label), fetched.version)
            }, uniquingKeysWith: { first, _ in first })
        if case .array(var experiments)? = top["experiments"] {
            Self.forEachVariant(in: &experiments) { variant in
                guard case .string(let label)? = variant["prompt_label"],
                    case .string(let promptName)? = variant["prompt"],
                    let number = labels[Self.labelKey(prompt: promptName, label: label)]
                else { return }
                variant.renameAndReplace("prompt_label", as: "prompt_version", with: .number(Double(number)))
            }
            top.replace("experiments", with: .array(experiments))
        }
        return (.object(top), canonical.bytes)
    }

    static func labelKey(prompt: String, label: String) -> String { prompt + "\u{0}" + label }

    static func forEachVariant(in experiments: inout [JSONValue], _ body: (inout JSONObject) -> Void) {
        for index in experiments.indices {
            guard case .object(var experiment) = experiments[index],
                case .array(var variants)? = experiment["variants"]
            else { continue }
            for variantIndex in variants.indices {
                guard case .object(var variant) = variants[variantIndex] else { continue }
                body(&variant)
                variants[variantIndex] = .object(variant)
            }
            experiment.replace("variants", with: .array(variants))
            experiments[index] = .object(experiment)
        }
    }

    /// Langfuse's label pattern (lower-case letters, digits, `_`, `-`, `.`), at most 128 characters.
    static func isValidLabel(_ label: String) -> Bool {
        let bytes = Array(label.utf8)
        return (1...128).contains(bytes.count)
            && bytes.allSatisfy {
                (97...122).contains($0) || (48...57).contains($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
                    || $0 == UInt8(ascii: ".")
            }
    }
}

/// Walks a parsed document for Langfuse prompts and their uses, collecting problems instead of stopping.
private struct Extractor {
    var issues: [ValidationIssue] = []
    /// Langfuse prompt key → its Langfuse name.
    var langfuseNames: [String: String] = [:]
    /// Inline prompt key → its highest readable version number (stands in for a misplaced label).
    var inlineLatest: [String: Int] = [:]
    var uses: [PromptReferences.Use] = []
    /// Langfuse prompt keys some variant names, even with a selector in error.
    var mentioned: Set<String> = []

    mutating func report(_ path: String, _ code: ValidationIssue.Code, _ message: String) {
        issues.append(ValidationIssue(path: path, code: code, message: message))
    }

    mutating func extract(_ root: JSONValue) -> [PromptReferences.Use] {
        guard case .object(let top) = root else { return [] }
        if case .object(let prompts)? = top["prompts"] {
            for member in prompts.members {
                guard case .object(let prompt) = member.value else { continue }
                let path = "$.prompts.\(member.key)"
                guard let langfuse = prompt["langfuse"] else {
                    let numbers = (prompt["versions"]?.arrayValue ?? []).compactMap {
                        $0.objectValue?["version"]?.integerValue
                    }
                    inlineLatest[member.key] = numbers.max()
                    continue
                }
                if prompt["versions"] != nil {
                    report(
                        "\(path).versions", .invalidValue,
                        "a prompt has either 'versions' (inline) or 'langfuse', not both")
                }
                guard case .object(let settings) = langfuse else {
                    report("\(path).langfuse", .wrongType, "'langfuse' must be an object, found \(langfuse.typeName)")
                    langfuseNames[member.key] = member.key
                    continue
                }
                for key in settings.keys where key != "name" {
                    report("\(path).langfuse.\(key)", .unknownField, "unknown field '\(key)'")
                }
                var name = member.key
                if let value = settings["name"] {
                    if case .string(let text) = value, !text.isEmpty, text.utf8.count <= 1024,
                        !text.utf8.contains(where: { $0 < 0x20 })
                    {
                        name = text
                    } else if case .string = value {
                        report(
                            "\(path).langfuse.name", .invalidValue,
                            "a Langfuse prompt name is 1 to 1024 bytes without control characters")
                    } else {
                        report("\(path).langfuse.name", .wrongType, "'name' must be a string, found \(value.typeName)")
                    }
                }
                langfuseNames[member.key] = name
            }
        }
        guard case .array(let experiments)? = top["experiments"] else { return uses }
        for (experimentIndex, experiment) in experiments.enumerated() {
            guard case .array(let variants)? = experiment.objectValue?["variants"] else { continue }
            for (variantIndex, variantValue) in variants.enumerated() {
                guard case .object(let variant) = variantValue else { continue }
                variantUse(variant, at: "$.experiments[\(experimentIndex)].variants[\(variantIndex)]")
            }
        }
        for key in langfuseNames.keys.sorted() where !mentioned.contains(key) {
            report(
                "$.prompts.\(key)", .invalidValue,
                "no variant uses this Langfuse prompt, so there is no version to fetch; use it or remove it")
        }
        return uses
    }

    mutating func variantUse(_ variant: JSONObject, at path: String) {
        let named = variant["prompt"]?.stringValue
        // The prompt's key exactly as `prompts` spells it, and its Langfuse name, if it is kept in Langfuse.
        let match = named.flatMap { name in langfuseNames.first { $0.key.hasSameUTF8(as: name) } }
        let promptName = match?.key ?? named
        let langfuseName = match?.value
        if let match { mentioned.insert(match.key) }
        // A numbered version is recorded even beside a label in error, so that it is not reported twice.
        if let promptName, let langfuseName, let number = variant["prompt_version"]?.integerValue, number >= 1 {
            let use = PromptReferences.Use(
                prompt: promptName, reference: .init(name: langfuseName, selector: .version(number)))
            if !uses.contains(use) { uses.append(use) }
        }
        let label = variant["prompt_label"]
        if let label {
            guard case .string(let text) = label else {
                report("\(path).prompt_label", .wrongType, "'prompt_label' must be a string, found \(label.typeName)")
                return
            }
            guard PromptReferences.isValidLabel(text) else {
                report(
                    "\(path).prompt_label", .invalidValue,
                    "'\(text)' is not a Langfuse label (1 to 128 of a-z 0-9 _ - .)")
                return
            }
            if variant["prompt_version"] != nil {
                report("\(path).prompt_label", .invalidValue, "a variant names 'prompt_version' or 'prompt_label', not both")
                return
            }
            guard let promptName, let langfuseName else {
                if let promptName, inlineLatest.keys.contains(where: { $0.hasSameUTF8(as: promptName) }) {
                    report(
                        "\(path).prompt_label", .invalidValue,
                        "'prompt_label' is only for prompts kept in Langfuse; '\(promptName)' is inline: use 'prompt_version'"
                    )
                }
                return
            }
            let use = PromptReferences.Use(
                prompt: promptName, reference: .init(name: langfuseName, selector: .label(text)))
            if !uses.contains(use) { uses.append(use) }
            return
        }
    }

    /// The document with each Langfuse prompt given empty stand-in versions (the numbers its variants use, and one
    /// per label), so that `ConfigDocument.validate` checks everything else without repeating what is reported here.
    func offlineRoot(_ root: JSONValue) -> JSONValue {
        guard case .object(var top) = root else { return root }
        // Labels stand in as numbers above every numbered version used, so they never collide with one.
        let numbers = uses.compactMap { use -> Int? in
            guard case .version(let number) = use.reference.selector else { return nil }
            return number
        }
        var next = (numbers.max() ?? 0) + 1
        var labelNumbers: [String: Int] = [:]
        var standIns: [String: [Int]] = [:]
        for use in uses {
            switch use.reference.selector {
            case .version(let number):
                standIns[use.prompt, default: []].append(number)
            case .label(let label):
                let key = PromptReferences.labelKey(prompt: use.prompt, label: label)
                if labelNumbers[key] == nil {
                    labelNumbers[key] = next
                    next += 1
                }
                standIns[use.prompt, default: []].append(labelNumbers[key]!)
            }
        }
        if case .object(var prompts)? = top["prompts"] {
            for index in prompts.members.indices {
                let key = prompts.members[index].key
                guard langfuseNames[key] != nil, case .object(var prompt) = prompts.members[index].value else {
                    continue
                }
                // A prompt no variant uses is reported above: one stand-in keeps "needs a version" from repeating it.
                let numbers = Set(standIns[key] ?? [1]).sorted()
                let versions: [JSONValue] = numbers.map {
                    .object(JSONObject([(key: "version", value: .number(Double($0))), (key: "template", value: .string(""))]))
                }
                prompt.members.removeAll { $0.key == "langfuse" || $0.key == "versions" }
                prompt.members.append((key: "versions", value: .array(versions)))
                prompts.members[index].value = .object(prompt)
            }
            top.replace("prompts", with: .object(prompts))
        }
        if case .array(var experiments)? = top["experiments"] {
            let inline = inlineLatest
            PromptReferences.forEachVariant(in: &experiments) { variant in
                guard let label = variant["prompt_label"] else { return }
                // A problem with the label is reported above; a stand-in number keeps it from being reported again
                // as a missing or unknown version.
                let promptName = variant["prompt"]?.stringValue ?? ""
                let isLangfuse = langfuseNames.keys.contains { $0.hasSameUTF8(as: promptName) }
                let standIn =
                    label.stringValue.flatMap { labelNumbers[PromptReferences.labelKey(prompt: promptName, label: $0)] }
                    ?? standIns.first { $0.key.hasSameUTF8(as: promptName) }?.value.first
                    ?? (isLangfuse ? 1 : inline.first { $0.key.hasSameUTF8(as: promptName) }?.value)
                if variant["prompt_version"] != nil || standIn == nil {
                    variant.members.removeAll { $0.key == "prompt_label" }
                } else if let standIn {
                    variant.renameAndReplace("prompt_label", as: "prompt_version", with: .number(Double(standIn)))
                }
            }
            top.replace("experiments", with: .array(experiments))
        }
        return .object(top)
    }
}

extension JSONObject {
    /// Replaces the value of the member named `key` (appending it if absent), keeping the members' order.
    mutating func replace(_ key: String, with value: JSONValue) {
        if let index = members.firstIndex(where: { $0.key.hasSameUTF8(as: key) }) {
            members[index].value = value
        } else {
            members.append((key: key, value: value))
        }
    }

    /// Renames the member `key` to `newKey` with a new value, in place.
    mutating func renameAndReplace(_ key: String, as newKey: String, with value: JSONValue) {
        guard let index = members.firstIndex(where: { $0.key.hasSameUTF8(as: key) }) else { return }
        members[index] = (key: newKey, value: value)
    }
}
