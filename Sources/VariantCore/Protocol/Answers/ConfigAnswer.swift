/// The `config` answer (PROTOCOL.md, `config`): the document in use, its source's state, what each experiment
/// does now, the treatments disabled and the Langfuse prompt sources.
struct ConfigAnswer: Answer {
    var id: RequestID
    var snapshot: ServingSnapshot
    var now: Timestamp

    func writeMembers(into answer: inout JSONObjectWriter) {
        let config = snapshot.config
        answer.field("loaded", config != nil)
        answer.field("config_version", config?.version)
        answer.field("source", snapshot.source)
        answer.field("loaded_at", config?.loadedAt.rfc3339)
        answer.field("age_seconds", config.map { roundedToMilliseconds(now.seconds(since: $0.loadedAt)) })
        answer.field("experiments", config?.document.experiments.count ?? 0)
        answer.field("prompts", config?.document.prompts.count ?? 0)
        answer.object("last_error", snapshot.lastError) { failure, object in
            failure.writeMembers(into: &object, withProblems: true)
        }
        answer.field("source_version", config?.sourceVersion)
        answer.field("fetched_at", config?.fetchedAt.rfc3339)
        answer.field("from_cache", config?.fromCache ?? false)
        answer.field("source_state", snapshot.sourceState.rawValue)
        answer.field("last_success_at", snapshot.lastSuccessAt?.rfc3339)
        answer.objects("experiment_states", config?.document.experiments ?? []) { experiment, state in
            state.field("name", experiment.name)
            state.field("status", experiment.status.rawValue)
            state.field("mode", experiment.mode.rawValue)
            state.field("enrolling", experiment.isAssigning(at: now))
        }
        let disabled = snapshot.disabledTreatments.sorted { ($0.experiment, $0.variant) < ($1.experiment, $1.variant) }
        answer.objects("disabled_treatments", disabled) { treatment, object in
            object.field("experiment", treatment.experiment)
            object.field("variant", treatment.variant)
        }
        answer.field("state_error", snapshot.stateFailure)
        answer.objects("prompt_sources", snapshot.promptSources) { status, object in
            status.writeMembers(into: &object)
        }
    }
}
