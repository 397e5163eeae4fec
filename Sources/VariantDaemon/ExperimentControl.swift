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
            treatmentsChanged: { [self] event in self.treatmentsChanged(event) }, reload: reload)
    }

    /// Makes the serving snapshot follow the ledger's disabled treatments (at start and after every change).
    public func syncDisabledTreatments() {
        let disabled = Set(ledger.disabled.keys)
        store.update { $0.withDisabled(disabled) }
    }

    private func treatmentsChanged(_ event: LedgerEvent) {
        syncDisabledTreatments()
        persistence?.flush()
        var metadata: Logger.Metadata = [
            "event": "\(event.kind.rawValue)", "experiment": "\(event.experiment ?? "")",
            "variant": "\(event.variant ?? "")", "actor": "\(event.actor)",
        ]
        for member in event.details.members { metadata["stats." + member.key] = "\(member.value.plainDescription)" }
        logger.notice("treatment.\(event.kind.rawValue): \(event.message)", metadata: metadata)
    }

    /// Hooks for a config source that record applied and rejected documents as events in `ledger`.
    public static func configEventHooks(ledger: ExperimentLedger) -> ConfigSourceHooks {
        ConfigSourceHooks(
            applied: { [ledger] config in
                defer { ledger.follow(config) }  // after the config_applied event, so a new phase is logged after it
                ledger.log(
                    LedgerEvent(
                        at: config.loadedAt, kind: .configApplied, actor: "config source",
                        message: "applied \(config.version) from \(config.source)",
                        details: JSONObject([
                            ("version", .string(config.version)),
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
