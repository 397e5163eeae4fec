import CSystemd
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VariantCore
import VariantFleet

/// `variantd-judge`'s loop: every interval, read the document the fleet follows, judge each fleet-guarded
/// experiment on the fleet's statistics from Prometheus (`FleetJudge`), and publish a disable through the source
/// (docs/fleet.md, "The judge").
///
/// Never decides on missing data: a round whose Prometheus queries fail decides nothing for those experiments,
/// keeps every earlier decision, and the next round waits longer (doubling up to `maximumBackoff`). Decisions and
/// the tests' evidence are written to `statePath` after every round, so a restart resumes where it was and a
/// published disable is never published again.
public final class JudgeService: Service, Sendable {
    public struct Configuration: Sendable {
        public var interval: Duration = .seconds(30)
        public var maximumBackoff: Duration = .seconds(300)
        /// Print what would be published; publish nothing.
        public var dryRun = false
        /// The judge's state file (decisions and evidence).
        public var statePath: String
        /// Who decides, as written in the document's `disabled.by`.
        public var actor: String

        public init(statePath: String, actor: String) {
            self.statePath = statePath
            self.actor = actor
        }
    }

    /// What one round did.
    public struct Round: Sendable {
        /// Why the document could not be read or validated (nothing was judged then).
        public var documentError: PublishError?
        /// Experiments judged on fleet data this round.
        public var judged: [String] = []
        /// Experiments whose fleet data could not be read, with the error.
        public var failed: [String: FleetError] = [:]
        /// Decisions published (or, with `dryRun`, that would have been).
        public var published: [FleetJudge.Decision] = []
    }

    /// The round failed in a way another round cannot mend: the source cannot be written.
    public struct Fatal: Error, CustomStringConvertible {
        public var description: String
    }

    private let configuration: Configuration
    private let query: FleetQuery
    private let source: any DocumentSource
    private let logger: Logger
    private let judge: Mutex<FleetJudge>
    /// The last read or query failure logged, by experiment ("" for the document), so each is logged once.
    private let lastFailure = Mutex<[String: String]>([:])

    public init(configuration: Configuration, query: FleetQuery, source: any DocumentSource, logger: Logger) {
        self.configuration = configuration
        self.query = query
        self.source = source
        self.logger = logger
        var restored = FleetJudge()
        if let bytes = try? FileIdentity.read(path: configuration.statePath, maximumBytes: 64 << 20) {
            do {
                restored = try JSONDecoder().decode(FleetJudge.self, from: Data(bytes))
                logger.log(.info, .judgeStateRestored,
                    metadata: [.statePath: "\(configuration.statePath)", .decisions: "\(restored.decisions.count)"])
            } catch {
                logger.log(
                    .error, .judgeStateUnreadable, "starting with no evidence; decisions already in the document are not made again",
                    metadata: [.statePath: "\(configuration.statePath)", .error: "\(error)"])
            }
        }
        judge = Mutex(restored)
    }

    public func run() async throws {
        var wait = configuration.interval
        var first = true
        while !Task.isCancelled {
            let round = try await self.round(at: Timestamp(secondsSinceEpoch: Date().timeIntervalSince1970))
            if first {
                sd_notify(0, "READY=1")
                first = false
            }
            let failed = round.failed.count + (round.documentError == nil ? 0 : 1)
            sd_notify(
                0,
                "WATCHDOG=1\nSTATUS=judged \(round.judged.count) experiments, \(failed) unreadable, \(judge.withLock { $0.decisions.count }) decisions")
            wait = failed > 0 ? min(wait * 2, configuration.maximumBackoff) : configuration.interval
            do {
                try await cancelWhenGracefulShutdown { [wait] in try await Task.sleep(for: wait) }
            } catch {
                break
            }
        }
        sd_notify(0, "STOPPING=1")
    }

    /// One round: read the document, judge every fleet-guarded experiment, publish what was decided.
    /// - Throws: `Fatal` when a decision cannot be published because the source cannot be written.
    public func round(at now: Timestamp) async throws(Fatal) -> Round {
        var round = Round()
        let bytes: [UInt8]
        let document: ConfigDocument
        do {
            bytes = try await source.read()
            document = try Self.validated(bytes)
            clearFailure("")
        } catch {
            noteFailure("", code: error.code.rawValue, .judgeSourceFailed, "deciding nothing until the document can be read and validated", error.message)
            round.documentError = error
            return round
        }
        let disables = Self.disables(in: bytes)
        for experiment in document.experiments where Self.isJudged(experiment, at: now) {
            do {
                let fleet = try await query.state(of: experiment)
                clearFailure(experiment.name)
                let decided = judge.withLock {
                    $0.judge(fleet, alreadyDisabled: Set((disables[experiment.name] ?? [:]).keys), at: now)
                }
                round.judged.append(experiment.name)
                for decision in decided {
                    logger.log(.notice, .judgeDecided,
                        metadata: [
                            .experiment: "\(decision.experiment)", .variant: "\(decision.variant)",
                            .reason: "\(decision.reason)", .evidence: "\(decision.evidence)",
                            .configFingerprint: "\(decision.fingerprint)",
                        ])
                }
            } catch {
                round.failed[experiment.name] = error
                noteFailure(experiment.name, code: error.code.rawValue, .judgeFleetUnreadable, "no decision on this experiment this round", error.message)
            }
        }
        let pending = judge.withLock { $0.unpublished }
        for decision in pending {
            // Disabled in the document by someone else (an operator) meanwhile: nothing to publish. Disabled by this
            // judge (a publish whose answer was lost, or an AppConfig version not yet deployed): publish again,
            // which rewrites the same bytes or deploys the version already created.
            if let by = disables[decision.experiment]?[decision.variant], by != configuration.actor {
                judge.withLock { $0.markPublished(decision) }
                continue
            }
            if configuration.dryRun {
                logger.log(.notice, .judgeDryRun, "would publish",
                    metadata: [.experiment: "\(decision.experiment)", .variant: "\(decision.variant)", .reason: "\(decision.reason)"])
                print("would disable \(decision.experiment)/\(decision.variant) in \(source.sourceDescription): \(decision.reason)")
                round.published.append(decision)
                judge.withLock { $0.markPublished(decision) }
                continue
            }
            do {
                let version = try await publish(decision)
                judge.withLock { $0.markPublished(decision) }
                round.published.append(decision)
                logger.log(.notice, .judgePublished,
                    metadata: [
                        .experiment: "\(decision.experiment)", .variant: "\(decision.variant)",
                        .configVersion: "\(version)", .configSource: "\(source.sourceDescription)",
                    ])
            } catch where error.code == .notWritable {
                saveState()
                logger.log(.critical, .judgeNotWritable, "decided but cannot publish",
                    metadata: [.experiment: "\(decision.experiment)", .variant: "\(decision.variant)", .reason: "\(decision.reason)"])
                throw Fatal(description: "decided to disable \(decision.experiment)/\(decision.variant) (\(decision.reason)) but \(error.message)")
            } catch {
                noteFailure("publish " + decision.experiment, code: error.code.rawValue, .judgePublishFailed, "retrying next round", error.message)
            }
        }
        saveState()
        return round
    }

    private func publish(_ decision: FleetJudge.Decision) async throws(PublishError) -> String {
        let evidence = (try? JSONParser.parse(Array(decision.evidence.utf8)).objectValue) ?? JSONObject()
        let actor = configuration.actor
        return try await source.publish { bytes throws(TreatmentDisable.Failure) in
            try TreatmentDisable.apply(
                to: bytes, experiment: decision.experiment, variant: decision.variant,
                at: Timestamp(secondsSinceEpoch: decision.at), by: actor, reason: decision.reason, evidence: evidence)
        }
    }

    private func saveState() {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let bytes = try encoder.encode(judge.withLock { $0 })
            try AtomicFile.write(Array(bytes), to: configuration.statePath, mode: 0o640)
        } catch {
            noteFailure("state", code: "state_write_failed", .judgeStateWriteFailed, "decisions are kept in memory", "\(error)")
        }
    }

    static func validated(_ bytes: [UInt8]) throws(PublishError) -> ConfigDocument {
        do {
            return try ConfigDocument.validate(bytes)
        } catch {
            throw PublishError(TreatmentDisable.Failure(code: .invalidConfig, message: "the document does not validate", issues: error.issues))
        }
    }

    /// The experiments the judge decides for: guardrails with scope `fleet` and automatic disabling on, running,
    /// inside their window. With scope `host` each daemon decides for itself, and the judge stays out.
    static func isJudged(_ experiment: Experiment, at now: Timestamp) -> Bool {
        experiment.guardrails.scope == .fleet && experiment.status == .running && experiment.guardrails.autoDisable
            && (experiment.start.map { $0 <= now } ?? true) && (experiment.end.map { now < $0 } ?? true)
    }

    /// The treatments the document itself disables (a variant's `disabled` member), by experiment and variant,
    /// with who disabled them (`disabled.by`).
    static func disables(in bytes: [UInt8]) -> [String: [String: String]] {
        var found: [String: [String: String]] = [:]
        for experiment in (try? JSONParser.parse(bytes))?.objectValue?["experiments"]?.arrayValue ?? [] {
            guard let object = experiment.objectValue, let name = object["name"]?.stringValue else { continue }
            for variant in object["variants"]?.arrayValue ?? [] {
                guard let variant = variant.objectValue, let variantName = variant["name"]?.stringValue,
                    let disabled = variant["disabled"]?.objectValue
                else { continue }
                found[name, default: [:]][variantName] = disabled["by"]?.stringValue ?? ""
            }
        }
        return found
    }

    private func noteFailure(_ key: String, code: String, _ event: LogEventName, _ explanation: String, _ detail: String) {
        let changed = lastFailure.withLock { failures in
            defer { failures[key] = code }
            return failures[key] != code
        }
        guard changed else { return }
        logger.log(.warning, event, explanation, metadata: [.code: "\(code)", .error: "\(detail)", .about: "\(key)"])
    }

    private func clearFailure(_ key: String) {
        let had = lastFailure.withLock { $0.removeValue(forKey: key) }
        if had != nil { logger.log(.notice, .judgeRecovered, metadata: [.about: "\(key)"]) }
    }
}
