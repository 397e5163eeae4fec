/// The `render` answer (PROTOCOL.md, `render`): the unit's assignment or the prompt version asked for, then the
/// rendering.
struct RenderAnswer: Answer {
    var id: RequestID
    var source: Source
    var rendering: PreparedRender

    /// What the rendering was made from.
    enum Source {
        /// For a unit in an experiment: the `assign` answer's members.
        case assigned(AssignAnswer)
        /// A prompt version asked for by name.
        case prompt(name: String, version: Int, configVersion: String)
    }

    func writeMembers(into answer: inout JSONObjectWriter) {
        switch source {
        case .assigned(let assignment):
            assignment.writeMembers(into: &answer)
        case .prompt(let name, let version, let configVersion):
            answer.field("prompt", name)
            answer.field("prompt_version", version)
            answer.field("config_version", configVersion)
        }
        rendering.writeMembers(into: &answer)
    }
}
