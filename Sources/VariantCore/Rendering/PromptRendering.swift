/// How one prompt version renders: its templates parsed at validation time, its declared variables, and its
/// prompt rules split by what they read.
///
/// A class, immutable once validated, so that a render shares it instead of copying and retaining each field.
final class PromptRendering: Sendable {
    /// Required variables, then optional ones; a template value's index is its index here.
    let declared: [String]
    /// The declared names' UTF-8, for matching a request's variables without making strings of their names.
    let declaredUTF8: [[UInt8]]
    let requiredCount: Int
    /// One template for a text prompt; one per message for a chat prompt.
    let templates: [PromptTemplate]
    /// The roles of a chat prompt's messages; nil for a text prompt.
    let roles: [String]?
    let variableRules: [PromptRule]
    let outputRules: [PromptRule]
    /// The output rules need each rendered text as a string (a `max_length`-only version does not, when every
    /// template has a plan: the lengths add up from the plan).
    let outputNeedsText: Bool

    init(declared: [String], requiredCount: Int, templates: [PromptTemplate], roles: [String]?, rules: [PromptRule]) {
        self.declared = declared
        self.declaredUTF8 = declared.map { Array($0.utf8) }
        self.requiredCount = requiredCount
        self.templates = templates
        self.roles = roles
        self.variableRules = rules.filter { $0.kind != .model && $0.target == .variables }
        let outputRules = rules.filter { $0.kind != .model && $0.target == .output }
        self.outputRules = outputRules
        self.outputNeedsText =
            outputRules.contains { $0.kind != .maxLength } || templates.contains { !$0.hasRenderPlan }
    }
}

extension PromptRendering {
    /// A request's variables as values by declared index, with a warning for each one not declared.
    /// - Throws: `invalid_variables` (a value that is not a string, number or boolean).
    func templateValues(_ variables: JSONObject) throws(ProtocolError) -> ([TemplateValue?], [RenderWarning]) {
        var values = [TemplateValue?](repeating: nil, count: declared.count)
        var warnings: [RenderWarning] = []
        for (position, member) in variables.members.enumerated() {
            let value: TemplateValue
            switch member.value {
            case .string(let text): value = .text(text)
            case .bool(let flag): value = .flag(flag)
            case .number(let number):
                var writer = JSONWriter(reservingCapacity: 24)
                writer.number(number)
                value = .text(String(decoding: writer.bytes, as: UTF8.self))
            default:
                throw ProtocolError(
                    .invalidVariables,
                    "variable '\(member.key)' must be a string, a number or a boolean, found \(member.value.typeName)")
            }
            var name = member.key
            if let index = name.withUTF8({ declaredIndex(ofUTF8: $0, guess: position) }) {
                values[index] = value
            } else {
                warnings.append(RenderWarning(code: .extraVariable, variable: member.key))
            }
        }
        return (values, warnings)
    }

    /// The index of the declared variable whose name is these bytes. Clients usually send the variables in the
    /// order the version declares them, so the declaration at `guess` (the variable's position in the request) is
    /// tried first.
    func declaredIndex(ofUTF8 name: UnsafeBufferPointer<UInt8>, guess: Int) -> Int? {
        func matches(_ index: Int) -> Bool {
            declaredUTF8[index].withUnsafeBufferPointer { UnsafeBufferPointer.sameBytes($0, name) }
        }
        if guess < declaredUTF8.count, matches(guess) { return guess }
        return declaredUTF8.indices.first(where: matches)
    }
}

/// A warning in a `render` answer (PROTOCOL.md, `render`).
public struct RenderWarning: Sendable, Equatable, JSONObjectWritable {
    public enum Code: String, Sendable, CaseIterable {
        /// A variable the version does not declare was given; it is ignored.
        case extraVariable = "extra_variable"
        /// A prompt rule with action `warn` fired.
        case ruleWarning = "rule_warning"
    }

    public var code: Code
    /// The variable, for `extra_variable`.
    public var variable: String?
    /// The rule and why it fired, for `rule_warning`.
    public var rule: String?
    public var message: String?

    public func writeMembers(into object: inout JSONObjectWriter) {
        object.field("code", code.rawValue)
        if let variable { object.field("variable", variable) }
        if let rule { object.field("rule", rule) }
        if let message { object.field("message", message) }
    }
}

/// A prompt version rendered for one request, not yet written: the values, the texts if a rule needed them,
/// the warnings, and the rules that fired.
public struct PreparedRender: Sendable {
    let rendering: PromptRendering
    let values: [TemplateValue?]
    /// Each template's text, when a prompt rule needed it; otherwise written straight from the plan.
    var texts: [String]?
    public var warnings: [RenderWarning]
    /// Every rule that fired, block ones included, for counting.
    public var triggered: [PromptRule]
    /// The first `block` rule that fired and why; the answer is then a `rule_blocked` error.
    public var blocked: (rule: String, reason: String)?

    /// The rendered texts: the text prompt's, or each message's content.
    public var renderedTexts: [String] {
        texts ?? rendering.templates.map { $0.render(values, declaredVariables: rendering.declared) }
    }
}

extension PromptVersion {
    /// Renders this version with a request's `variables`, checking its prompt rules.
    /// - Throws: `invalid_variables` (a value that is not a string, number or boolean), `missing_variable` (every
    ///   missing required variable is named). A `block` rule that fires is reported in `blocked`, not thrown, so
    ///   that the caller can count it first.
    public func prepareRender(variables: JSONObject) throws(ProtocolError) -> PreparedRender {
        let (values, warnings) = try rendering.templateValues(variables)
        return try prepareRender(values: values, warnings: warnings)
    }

    /// `prepareRender(variables:)` once the variables are values by declared index, with a warning for each one
    /// not declared.
    func prepareRender(values: [TemplateValue?], warnings: [RenderWarning]) throws(ProtocolError) -> PreparedRender {
        let rendering = self.rendering
        let missing = (0..<rendering.requiredCount).filter { values[$0] == nil }.map { rendering.declared[$0] }
        if !missing.isEmpty {
            throw ProtocolError(
                .missingVariable,
                "missing required variable\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")) of version \(number)")
        }
        var prepared = PreparedRender(rendering: rendering, values: values, texts: nil, warnings: warnings, triggered: [])
        if !rendering.variableRules.isEmpty {
            let texts = values.compactMap { $0?.text }
            check(rendering.variableRules, on: texts, into: &prepared)
            if prepared.blocked != nil { return prepared }
        }
        if !rendering.outputRules.isEmpty {
            if rendering.outputNeedsText {
                let texts = rendering.templates.map { $0.render(values, declaredVariables: rendering.declared) }
                prepared.texts = texts
                check(rendering.outputRules, on: texts, into: &prepared)
            } else {
                // Only max_length rules and plans: the length adds up without building the text.
                let length = rendering.templates.reduce(0) { $0 + $1.renderedScalarCount(values) }
                check(rendering.outputRules, onLength: length, into: &prepared)
            }
        }
        return prepared
    }

    private func check(_ rules: [PromptRule], on texts: [String], into prepared: inout PreparedRender) {
        for rule in rules {
            guard let reason = rule.violation(in: texts) else { continue }
            record(rule, reason: reason, into: &prepared)
        }
    }

    private func check(_ rules: [PromptRule], onLength length: Int, into prepared: inout PreparedRender) {
        for rule in rules {
            guard let reason = rule.violation(ofLength: length) else { continue }
            record(rule, reason: reason, into: &prepared)
        }
    }

    private func record(_ rule: PromptRule, reason: String, into prepared: inout PreparedRender) {
        prepared.triggered.append(rule)
        switch rule.action {
        case .block: if prepared.blocked == nil { prepared.blocked = (rule.name, reason) }
        case .warn: prepared.warnings.append(RenderWarning(code: .ruleWarning, rule: rule.name, message: reason))
        case .log: break
        }
    }
}

extension PromptTemplate {
    /// The length in Unicode scalars of the rendering with these values; only for a template with a plan.
    func renderedScalarCount(_ values: [TemplateValue?]) -> Int {
        guard let plan else { return 0 }
        var count = 0
        for segment in plan.segments {
            switch segment {
            case .literal(_, _, let scalars): count += scalars
            case .variable(let index): count += values[index]?.text.unicodeScalars.count ?? 0
            }
        }
        return count
    }

    /// Writes the rendering as a JSON string: from the plan's pre-escaped parts and the escaped values, or
    /// `text` when it was already rendered.
    func writeRendered(_ values: [TemplateValue?], declaredVariables: [String], into writer: inout JSONWriter) {
        guard let plan else {
            return writer.string(renderWithMustache(values, declaredVariables: declaredVariables))
        }
        writer.raw("\"")
        plan.json.withUnsafeBufferPointer { json in
            for segment in plan.segments {
                switch segment {
                case .literal(_, let range, _): writer.append(UnsafeBufferPointer(rebasing: json[range]))
                case .variable(let index):
                    switch values[index] {
                    case .text(let text)?: writer.stringContents(text)
                    case .flag(let flag)?: flag ? writer.raw("true") : writer.raw("false")
                    case nil: break
                    }
                }
            }
        }
        writer.raw("\"")
    }
}

extension PromptRule {
    /// `violation(in:)` for a `max_length` rule on output whose length is known.
    func violation(ofLength length: Int) -> String? {
        guard case .maxLength(let maximumCharacters, let maximumTokens) = check else { return nil }
        if let maximumCharacters, length > maximumCharacters {
            return "the rendered prompt is \(length) characters long, more than \(maximumCharacters)"
        }
        let tokens = Self.approximateTokens(scalars: length)
        if let maximumTokens, tokens > maximumTokens {
            return "the rendered prompt is about \(tokens) tokens long, more than \(maximumTokens)"
        }
        return nil
    }
}

extension PreparedRender {
    /// The rendering's members of a `render` answer: `type`, then `text` or `messages`, then `warnings`.
    func writeMembers(into answer: inout JSONObjectWriter) {
        func writeText(_ index: Int, into writer: inout JSONWriter) {
            if let texts {
                writer.string(texts[index])
            } else {
                rendering.templates[index].writeRendered(values, declaredVariables: rendering.declared, into: &writer)
            }
        }
        if let roles = rendering.roles {
            answer.field("type", "chat")
            answer.objects("messages", roles.indices) { index, message in
                message.field("role", roles[index])
                message.field("content", writing: { writeText(index, into: &$0) })
            }
        } else {
            answer.field("type", "text")
            answer.field("text", writing: { writeText(0, into: &$0) })
        }
        answer.array("warnings") { array in warnings.forEach { array.element($0) } }
    }
}
