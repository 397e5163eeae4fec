import Logging
import Synchronization
import Testing
@testable import VariantCore
import VariantDaemon

/// The text log of a disabled treatment prints its statistics as a person reads them: `stats.alpha=0.05`, not
/// `number(0.05)`, and p-values without binary noise (issue 16, "Errors that say what to do").
@Suite struct TreatmentLogTests {
    /// Keeps every log record's metadata in memory (tests never bootstrap the logging system).
    final class CapturedMetadata: Sendable {
        let records = Mutex<[Logger.Metadata]>([])

        var logger: Logger {
            Logger(label: "test") { _ in Handler(captured: self) }
        }

        struct Handler: LogHandler {
            let captured: CapturedMetadata
            var metadata: Logger.Metadata = [:]
            var logLevel: Logger.Level = .trace

            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }

            func log(event: LogEvent) {
                captured.records.withLock { $0.append(event.metadata ?? [:]) }
            }
        }
    }

    @Test func aDisablesStatisticsArePlainInTheLog() throws {
        let captured = CapturedMetadata()
        let store = ServingStateStore(ServingSnapshot(config: nil, source: "test", lastError: nil, startedAt: someInstantForLogs))
        let control = ExperimentControl(
            ledger: ExperimentLedger(), store: store, persistence: nil, adminPolicy: AdminPolicy(), logger: captured.logger,
            reload: { false })
        let event = try #require(
            control.ledger.disable(
                DisabledTreatment(experiment: "e", variant: "t", at: someInstantForLogs, automatic: true, reason: "errors up"),
                actor: "guardrail",
                details: JSONObject([
                    ("metric", .string("error_rate")), ("alpha", .number(0.05)), ("control_n", .number(1000)),
                    ("p_value", .number(7.706999999999995e-154)),
                ])))
        control.context(for: nil).treatmentsChanged(event)
        let metadata = try #require(captured.records.withLock { $0.last })
        #expect(metadata["stats.metric"]?.description == "error_rate")
        #expect(metadata["stats.alpha"]?.description == "0.05")
        #expect(metadata["stats.control_n"]?.description == "1000")
        #expect(metadata["stats.p_value"]?.description == "7.707e-154")
    }
}

private let someInstantForLogs = Timestamp(rfc3339: "2026-11-23T12:00:00Z")!
