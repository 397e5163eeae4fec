/// The answers of the ops that feed and steer experiments (PROTOCOL.md, section 3): `record`, `batch`, `events`,
/// `disable`, `enable`, `new_phase` and `reload`.

/// The `record` answer, when asked for (`ack`).
struct RecordAnswer: Answer {
    var id: RequestID
    /// The variant the record was counted for.
    var variant: String

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("recorded", 1)
        answer.field("variant", variant)
    }
}

/// The `batch` answer: how many records were counted, and why each other one was not.
struct BatchAnswer: Answer {
    var id: RequestID
    var recorded: Int
    /// By index in the batch, ascending.
    var rejected: [(index: Int, error: ProtocolError)]

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("recorded", recorded)
        answer.objects("rejected", rejected) { rejection, object in
            object.field("index", rejection.index)
            object.field("code", rejection.error.code.rawValue)
            object.field("message", rejection.error.message)
        }
    }
}

/// The `events` answer: the latest events of the log, oldest first.
struct EventsAnswer: Answer {
    var id: RequestID
    var events: [LedgerEvent]

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.objects("events", events) { event, object in event.writeMembers(into: &object) }
    }
}

/// The `disable` and `enable` answer: the treatment's state now, and whether the request changed it.
struct TreatmentStateAnswer: Answer {
    var id: RequestID
    var experiment: String
    var variant: String
    var disabled: Bool
    var changed: Bool

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("experiment", experiment)
        answer.field("variant", variant)
        answer.field("disabled", disabled)
        answer.field("changed", changed)
    }
}

/// The `new_phase` answer: the number of the phase that started.
struct NewPhaseAnswer: Answer {
    var id: RequestID
    var experiment: String
    var phase: Int

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("experiment", experiment)
        answer.field("phase", phase)
    }
}

/// The `reload` answer: the config source was asked to poll now.
struct ReloadAnswer: Answer {
    var id: RequestID

    func writeMembers(into answer: inout JSONObjectWriter) {
        answer.field("reloading", true)
    }
}
