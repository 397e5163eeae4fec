/// The `prompt` answer (PROTOCOL.md, `prompt`): a prompt version, and for a unit in an experiment the decision
/// that chose it.
struct PromptAnswer: Answer {
    var id: RequestID
    var prompt: String
    var version: PromptVersion
    var configVersion: String
    var decision: Decision?

    /// The experiment's decision for the unit, when the prompt was asked for through one.
    struct Decision {
        var experiment: String
        var variant: String
        var reason: AssignmentReason
    }

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("prompt", prompt)
        answer.field("prompt_version", version.number)
        if let messages = version.messages {
            answer.objects("messages", messages) { message, object in
                object.field("role", message.role)
                object.field("content", message.content)
            }
        } else {
            answer.field("template", version.template)
        }
        answer.object("variables") { variables in
            variables.strings("required", version.requiredVariables)
            variables.strings("optional", version.optionalVariables)
        }
        answer.field("config_version", configVersion)
        if let decision {
            answer.field("experiment", decision.experiment)
            answer.field("variant", decision.variant)
            answer.field("reason", decision.reason.rawValue)
        }
    }
}
