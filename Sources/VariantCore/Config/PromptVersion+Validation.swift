/// Validation of what a prompt version renders: its template or messages (parsed here, once) and its
/// rules (every pattern compiled here). PROTOCOL.md, "Prompt version" and "Prompt rules".
extension DocumentValidator {
    /// A version's text template or chat messages, with the JSON path of each template.
    struct PromptContent {
        var template: String?
        var messages: [PromptMessage]?
        /// Each template and its path: one for a text prompt, one per message for a chat prompt.
        var templates: [(text: String, path: String)]
    }

    /// - Reports: `conflicting_fields` (both `template` and `messages`), `missing_field` (neither), and the usual
    ///   type and value problems of `messages`.
    mutating func promptContent(_ object: JSONObject, at path: String) -> PromptContent? {
        let hasTemplate = object["template"] != nil
        let hasMessages = object["messages"] != nil
        if hasTemplate && hasMessages {
            report("\(path).messages", .conflictingFields, "a version has either 'template' (a text prompt) or 'messages' (a chat prompt), not both")
            return nil
        }
        if !hasMessages {
            guard let template = string(object, "template", at: path) else { return nil }
            return PromptContent(template: template, messages: nil, templates: [(template, "\(path).template")])
        }
        guard let elements = array(object, "messages", at: path) else { return nil }
        if elements.isEmpty {
            report("\(path).messages", .invalidValue, "a chat prompt needs at least one message")
            return nil
        }
        var messages: [PromptMessage] = []
        var templates: [(text: String, path: String)] = []
        for (index, element) in elements.enumerated() {
            let messagePath = "\(path).messages[\(index)]"
            guard let message = self.object(element, at: messagePath, allowed: ["role", "content"]) else { continue }
            let role = string(message, "role", at: messagePath)
            if let role, role.isEmpty || role.utf8.count > 64 {
                report("\(messagePath).role", .invalidValue, "a role is 1 to 64 bytes long (system, user, assistant, ...)")
            }
            let content = string(message, "content", at: messagePath)
            guard let role, let content else { continue }
            messages.append(PromptMessage(role: role, content: content))
            templates.append((content, "\(messagePath).content"))
        }
        guard messages.count == elements.count else { return nil }
        return PromptContent(template: nil, messages: messages, templates: templates)
    }

    /// Parses every template of a version (`invalid_template`, `unsupported_template`, `undeclared_variable`).
    mutating func promptRendering(
        _ content: PromptContent?, declared: [String], requiredCount: Int, rules: [PromptRule]?,
        at path: String
    ) -> PromptRendering? {
        guard let content else { return nil }
        var templates: [PromptTemplate] = []
        for (text, templatePath) in content.templates {
            do {
                templates.append(try PromptTemplate(text, declaredVariables: declared))
            } catch {
                for problem in error.problems {
                    switch problem {
                    case .syntax(let message):
                        report(templatePath, .invalidTemplate, "the template does not parse: \(message)")
                    case .unsupported(let what):
                        report(templatePath, .unsupportedTemplate, "variantd's templates do not support \(what)")
                    case .undeclaredVariable(let name):
                        report(templatePath, .undeclaredVariable, "the template uses '\(name)', which the version does not declare in 'variables'")
                    }
                }
            }
        }
        guard templates.count == content.templates.count, let rules else { return nil }
        return PromptRendering(
            declared: declared, requiredCount: requiredCount, templates: templates,
            roles: content.messages?.map(\.role), rules: rules)
    }

    /// The prompt's rules and the version's own, names unique across both (`duplicate_name`); nil when one of the
    /// version's own rules is invalid.
    mutating func versionRules(
        _ object: JSONObject, at path: String, inherited: [(rule: PromptRule, path: String)]
    ) -> [PromptRule]? {
        guard let own = promptRuleList(object, at: path) else { return nil }
        var seen: [String: String] = [:]
        for (rule, rulePath) in inherited { seen[rule.name] = rulePath }
        for (rule, rulePath) in own {
            if let first = seen[rule.name] {
                report("\(rulePath).name", .duplicateName, "rule '\(rule.name)' is also defined at \(first)")
                return nil
            }
            seen[rule.name] = rulePath
        }
        return inherited.map(\.rule) + own.map(\.rule)
    }

    static let promptRuleFields: [PromptRule.Kind: Set<String>] = [
        .regex: ["name", "type", "action", "target", "pattern", "must_match"],
        .keywords: ["name", "type", "action", "target", "keywords"],
        .maxLength: ["name", "type", "action", "target", "max_characters", "max_tokens"],
        .model: ["name", "type", "action", "models"],
    ]

    /// The `rules` array of a prompt or a version, each rule with its path; nil when any rule is invalid.
    mutating func promptRuleList(_ object: JSONObject, at path: String) -> [(rule: PromptRule, path: String)]? {
        guard object["rules"] != nil else { return [] }
        guard let elements = array(object, "rules", at: path) else { return nil }
        var rules: [(rule: PromptRule, path: String)] = []
        var seen: [String: Int] = [:]
        for (index, element) in elements.enumerated() {
            let rulePath = "\(path).rules[\(index)]"
            if let name = element.objectValue?["name"]?.stringValue {
                if let first = seen[name] {
                    report("\(rulePath).name", .duplicateName, "rule '\(name)' is also defined at \(path).rules[\(first)]")
                } else {
                    seen[name] = index
                }
            }
            if let rule = promptRule(element, at: rulePath) { rules.append((rule, rulePath)) }
        }
        return rules.count == elements.count && seen.count == elements.count ? rules : nil
    }

    mutating func promptRule(_ value: JSONValue, at path: String) -> PromptRule? {
        guard case .object(let raw) = value else {
            report(path, .wrongType, "expected an object, found \(value.typeName)")
            return nil
        }
        var kind: PromptRule.Kind?
        if let typeText = string(raw, "type", at: path) {
            kind = PromptRule.Kind(rawValue: typeText)
            if kind == nil {
                let known = PromptRule.Kind.allCases.map(\.rawValue).joined(separator: ", ")
                report("\(path).type", .invalidValue, "type must be one of \(known); found '\(typeText)'")
            }
        }
        let allowed = kind.map { Self.promptRuleFields[$0]! } ?? Self.promptRuleFields.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        guard let object = object(value, at: path, allowed: allowed) else { return nil }
        let name = self.name(object, "name", at: path)
        var action: PromptRule.Action?
        if let actionText = string(object, "action", at: path) {
            action = PromptRule.Action(rawValue: actionText)
            if action == nil {
                report("\(path).action", .invalidValue, "action must be one of block, warn, log; found '\(actionText)'")
            } else if kind == .model, action != .block {
                report("\(path).action", .invalidValue, "a model rule is enforced when the config is validated, so its action is block")
                action = nil
            }
        }
        var target = PromptRule.Target.output
        if let targetText = string(object, "target", at: path, required: false) {
            if let parsed = PromptRule.Target(rawValue: targetText) {
                target = parsed
            } else {
                report("\(path).target", .invalidValue, "target must be output or variables; found '\(targetText)'")
            }
        }
        guard let kind else { return nil }
        let check: PromptRule.Check?
        switch kind {
        case .regex:
            let mustMatch = bool(object, "must_match", at: path) ?? false
            if let pattern = string(object, "pattern", at: path) {
                do {
                    check = .regex(try CompiledPatterns.shared.regex(pattern), pattern: pattern, mustMatch: mustMatch)
                } catch {
                    report("\(path).pattern", .invalidPattern, "the pattern does not compile: \(error)")
                    check = nil
                }
            } else {
                check = nil
            }
        case .keywords:
            let keywords = nonEmptyStrings(object, "keywords", at: path, what: "keyword")
            check = keywords.map { .keywords($0.map { $0.lowercased() }) }
        case .maxLength:
            let characters = integer(object, "max_characters", at: path, required: false)
            let tokens = integer(object, "max_tokens", at: path, required: false)
            for (key, limit) in [("max_characters", characters), ("max_tokens", tokens)] {
                if let limit, limit < 1 { report("\(path).\(key)", .invalidValue, "'\(key)' must be 1 or more") }
            }
            if object["max_characters"] == nil, object["max_tokens"] == nil {
                report("\(path).max_characters", .missingField, "a max_length rule needs 'max_characters', 'max_tokens' or both")
            }
            check =
                (characters ?? 1) >= 1 && (tokens ?? 1) >= 1 && (characters != nil || tokens != nil)
                ? .maxLength(characters: characters, tokens: tokens) : nil
        case .model:
            check = nonEmptyStrings(object, "models", at: path, what: "model").map { .model($0) }
        }
        guard let name, let action, let check else { return nil }
        return PromptRule(name: name, action: action, target: target, check: check)
    }

    /// A required, non-empty array of non-empty strings.
    private mutating func nonEmptyStrings(_ object: JSONObject, _ key: String, at path: String, what: String) -> [String]? {
        guard let elements = array(object, key, at: path) else { return nil }
        if elements.isEmpty {
            report("\(path).\(key)", .invalidValue, "'\(key)' needs at least one \(what)")
            return nil
        }
        var strings: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                report("\(path).\(key)[\(index)]", .wrongType, "a \(what) must be a string, found \(element.typeName)")
                continue
            }
            guard !text.isEmpty else {
                report("\(path).\(key)[\(index)]", .invalidValue, "a \(what) must not be empty")
                continue
            }
            strings.append(text)
        }
        return strings.count == elements.count ? strings : nil
    }

    /// Every `model` rule of the version a variant serves must allow the variant's `params.model`
    /// (`model_not_allowed`, also when the variant names no model).
    mutating func checkModelRules(of version: PromptVersion, prompt: String, params: JSONObject, at path: String) {
        for rule in version.rules {
            guard let models = rule.allowedModels else { continue }
            guard case .string(let model)? = params["model"] else {
                report("\(path).params.model", .modelNotAllowed, "rule '\(rule.name)' of prompt '\(prompt)' version \(version.number) allows only \(models.joined(separator: ", ")), and the variant names no model in params.model")
                continue
            }
            if !models.contains(where: { $0.hasSameUTF8(as: model) }) {
                report("\(path).params.model", .modelNotAllowed, "rule '\(rule.name)' of prompt '\(prompt)' version \(version.number) allows only \(models.joined(separator: ", ")), not '\(model)'")
            }
        }
    }
}
