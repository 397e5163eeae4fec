import Logging
import VariantCore

/// Connects the core's ledger to the rest of the daemon: builds each connection's `RequestContext`, applies a
/// disabled or enabled treatment to the serving snapshot at once, persists it, logs it, and records config
/// changes as events.
public final class ExperimentControl: Sendable {
    public let ledger: ExperimentLedger
    private let store: ServingStateStore
    private let persistence: LedgerPersistence?
    private let adminPolicy: AdminPolicy
    private let reload: @Sendable () -> Bool
    private let logger: Logger

    public init(
        ledger: ExperimentLedger, store: ServingStateStore, persistence: LedgerPersistence?, adminPolicy: AdminPolicy,
        logger: Logger, reload: @escaping @Sendable () -> Bool
    ) {
        self.ledger = ledger
        self.store = store
        self.persistence = persistence
        self.adminPolicy = adminPolicy
        self.logger = logger
        self.reload = reload
    }

    /// The context of a connection whose peer has these credentials.
    public func context(for peer: PeerCredentials?) -> RequestContext {
        RequestContext(
            ledger: ledger, caller: adminPolicy.caller(peer),
            treatmentsChanged: { [self] event in self.treatmentsChanged(event) }, reload: reload,
            persist: { [persistence] in persistence?.flush() })
    }

    /// Makes the serving snapshot follow the ledger's disabled treatments (at start and after every change). The
    /// document's own disables are in the snapshot's config already.
    public func syncDisabledTreatments() {
        let disabled = Set(ledger.locallyDisabled.keys)
        store.update { $0.withDisabled(disabled) }
    }

    private func treatmentsChanged(_ event: LedgerEvent) {
        syncDisabledTreatments()
        persistence?.flush()
        Self.logTreatmentEvent(event, logger: logger)
    }

    /// `treatment.disabled: REASON` (and the like) at notice level, with the event's details as metadata.
    static func logTreatmentEvent(_ event: LedgerEvent, logger: Logger) {
        var statistics: Logger.Metadata = [:]
        for member in event.details.members { statistics["stats." + member.key] = "\(member.value.plainDescription)" }
        logger.log(
            .notice, .treatment(event.kind), event.message,
            metadata: [
                .event: "\(event.kind.rawValue)", .experiment: "\(event.experiment ?? "")",
                .variant: "\(event.variant ?? "")", .actor: "\(event.actor)",
            ],
            dataKeys: statistics)
    }

    /// Hooks for a config source that record applied and rejected documents as events in `ledger`, and the
    /// treatments a document disables or no longer disables (each logged once, and written to the state at once).
    public static func configEventHooks(
        ledger: ExperimentLedger, persistence: LedgerPersistence? = nil, logger: Logger? = nil
    ) -> ConfigSourceHooks {
        ConfigSourceHooks(
            applied: { [ledger] config in
                defer {
                    ledger.follow(config)  // after the config_applied event, so a new phase is logged after it
                    let events = ledger.followDisables(of: config.document, at: config.loadedAt)
                    if !events.isEmpty {
                        persistence?.flush()
                        if let logger { events.forEach { ExperimentControl.logTreatmentEvent($0, logger: logger) } }
                    }
                }
                ledger.log(
                    LedgerEvent(
                        at: config.loadedAt, kind: .configApplied, actor: "config source",
                        message: "applied \(config.version) from \(config.source)",
                        details: JSONObject([
                            ("config_version", .string(config.version)),
                            ("experiments", .number(Double(config.document.experiments.count))),
                        ])))
            },
            rejected: { [ledger] failure in
                ledger.log(
                    LedgerEvent(
                        at: failure.at, kind: .configRejected, actor: "config source", message: failure.message,
                        details: JSONObject([
                            ("code", .string(failure.code)),
                            ("problems", .array(failure.problems.map { .string($0.description) })),
                        ])))
            })
    }
}
