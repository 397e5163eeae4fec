import VariantCore

/// The request path's decisions, shared by the blocking calls (`VariantClient`) and the async ones
/// (`AsyncVariantClient`): the request each call sends, and what it returns for the daemon's answer or for the
/// failure to get one. Only the transport differs between the two.
extension VariantClient {
    /// The fields of an `assign` request.
    static func assignFields(_ experiment: String, unit: String, attributes: JSONObject) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [
            ("op", .string("assign")), ("experiment", .string(experiment)), ("unit", .string(unit)),
        ]
        if !attributes.isEmpty { fields.append(("attributes", .object(attributes))) }
        return fields
    }

    /// The assignment for an `assign` answer line: the kept one for answers seen before (`AssignAnswers`), else
    /// decoded (and kept when it is the daemon's decision), or the fallback's control when there is none.
    func assigned(_ experiment: String, unit: String, _ result: Result<AnswerLine, Failure>) -> Assignment {
        let line: AnswerLine
        switch result {
        case .success(let success): line = success
        case .failure(let failure): return fallBack(experiment, failure.code)
        }
        // A line matched by parsing it (no leading id) is decoded whole and not kept.
        let key = line.afterID.map { AssignAnswers.Key(bytes: line.bytes[$0...]) }
        if let key, let known = assignAnswers.assignment(key, unit: unit) { return known }
        guard let answer = line.object else { return fallBack(experiment, "invalid_answer") }
        let decided = assignment(experiment, from: answer, unit: unit)
        if let key, decided.isDaemonsDecision { assignAnswers.keep(decided, for: key) }
        return decided
    }

    /// The assignment for an `assign` answer, or the fallback's control when there is none.
    func assigned(_ experiment: String, unit: String, _ result: Result<JSONObject, Failure>) -> Assignment {
        switch result {
        case .success(let answer): assignment(experiment, from: answer, unit: unit)
        case .failure(let failure): fallBack(experiment, failure.code)
        }
    }

    /// The template `prompt` needs for an assignment; templates are kept by config version, prompt and version.
    struct TemplateWanted: Sendable, Hashable {
        var prompt: String
        var version: Int
        var configVersion: String?

        /// The `prompt` request for this version.
        var fields: [(String, JSONValue)] {
            [("op", .string("prompt")), ("prompt", .string(prompt)), ("prompt_version", .number(Double(version)))]
        }
    }

    /// What `prompt` still has to fetch after `assign`; nil when the answer is final (a fallback, `no_config`, or
    /// an assignment without a prompt version).
    func templateWanted(for answer: Assignment) -> TemplateWanted? {
        guard answer.isDaemonsDecision, let prompt = answer.prompt,
            let version = answer.promptVersion
        else { return nil }
        return TemplateWanted(prompt: prompt, version: version, configVersion: answer.configVersion)
    }

    /// `answer` with the template fetched by a `prompt` request (kept for later calls); the fallback's control
    /// (`prompt_unavailable`) when the daemon did not give it.
    func prompted(_ answer: Assignment, _ wanted: TemplateWanted, _ result: Result<JSONObject, Failure>) -> Assignment {
        guard case .success(let reply) = result, let found = Self.template(from: reply) else {
            return fallBack(answer.experiment, "prompt_unavailable")
        }
        remember(found, for: wanted)
        return prompted(answer, wanted, known: found)
    }

    /// `answer` with `known`'s template, variables and messages.
    func prompted(_ answer: Assignment, _ wanted: TemplateWanted, known: Template) -> Assignment {
        var answer = answer
        answer.template = known.template
        answer.variables = known.variables
        answer.messages = known.messages
        return answer
    }

    /// The fields of a `prompt` request for `prompt` (its latest version without `version`).
    static func templateFields(_ prompt: String, version: Int?) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("op", .string("prompt")), ("prompt", .string(prompt))]
        if let version { fields.append(("prompt_version", .number(Double(version)))) }
        return fields
    }

    /// The template a `prompt` answer gives, else the fallback's.
    func template(_ prompt: String, version: Int?, _ result: Result<JSONObject, Failure>) -> Template? {
        if case .success(let answer) = result, let found = Self.template(from: answer) { return found }
        return fallback.template(prompt, version: version)
    }
}
