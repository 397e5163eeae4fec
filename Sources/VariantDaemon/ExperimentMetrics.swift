import NIOCore
import VariantCore

/// The experiment half of `/metrics`: every experiment's current phase from the ledger, written by
/// `ExperimentExposition` (docs/fleet.md, "What each daemon exports").
public struct ExperimentMetrics: Sendable {
    private let ledger: ExperimentLedger
    private let store: ServingStateStore
    public var detail: ExperimentExposition.Detail

    public init(ledger: ExperimentLedger, store: ServingStateStore, detail: ExperimentExposition.Detail) {
        self.ledger = ledger
        self.store = store
        self.detail = detail
    }

    /// Appends the experiments' samples. The guardrail metrics (for `--metrics-unit-groups guardrail`) come from
    /// the document in use; an experiment it no longer has keeps the default guardrails'.
    public func append(into body: inout ByteBuffer) {
        var guarded: [String: Set<String>] = [:]
        for experiment in store.current.config?.document.experiments ?? [] {
            guarded[experiment.name] = ExperimentExposition.guardedMetrics(of: experiment.guardrails)
        }
        let defaults = ExperimentExposition.guardedMetrics(of: GuardrailSettings())
        let states = ledger.currentPhases().map { entry in
            ExperimentExposition.ExperimentState(
                experiment: entry.experiment, phase: entry.phase, guardedMetrics: guarded[entry.experiment] ?? defaults)
        }
        ExperimentExposition.write(states, disabled: Array(ledger.disabled.values), detail: detail) { chunk in
            body.writeBytes(chunk)
        }
    }
}
