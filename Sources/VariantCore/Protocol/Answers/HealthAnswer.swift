/// The `health` answer (PROTOCOL.md, `health`): whether a config is served, since when, and the state file's
/// failure.
struct HealthAnswer: Answer {
    var id: RequestID
    var snapshot: ServingSnapshot
    var now: Timestamp

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("status", snapshot.config == nil ? "no_config" : "serving")
        answer.field("config_version", snapshot.config?.version)
        answer.field("uptime_seconds", roundedToMilliseconds(now.seconds(since: snapshot.startedAt)))
        answer.field("state_error", snapshot.stateFailure)
    }
}

/// Seconds to the millisecond, as `health` and `config` show ages.
func roundedToMilliseconds(_ seconds: Double) -> Double {
    (seconds * 1000).rounded() / 1000
}
