import Logging
import VariantCore

/// The poller's Langfuse stage (docs/langfuse.md): a document that uses Langfuse prompts is applied
/// only once every prompt version it names is resolved (from Langfuse, the disk copies or the fallback file), and
/// is applied again, under a new config version, when a label it uses moves.
///
/// It keeps the latest such document between polls and says when it must be resolved again (a label's TTL, or a
/// retry while Langfuse fails), so that the poll loop can wake it on its own timer, apart from the source's.
final class LangfuseStage: Sendable {
    /// A document whose Langfuse references are parsed and checked offline.
    struct PendingDocument: Sendable {
        var references: PromptReferences
        var document: FetchedDocument
        var sourceVersion: String
        var fetchedAt: Timestamp
        var fromCache: Bool
        /// Whether some reference could not be resolved the last time (the document is not in use).
        var unresolved = true
    }

    /// What the stage keeps between polls.
    struct State: Sendable {
        /// The latest document with Langfuse prompts: the one in use, or a newer one waiting for its prompts.
        var pending: PendingDocument?
        /// The source-bytes version of the document behind the config in use (its config version differs when it
        /// has Langfuse prompts: it covers their contents too).
        var appliedSourceVersion: String?
        /// The last resolution's failure (unresolved, or served from a copy while Langfuse fails), kept as the
        /// last error across unchanged polls.
        var failure: ConfigLoadFailure?
        var failedResolutions = 0
        var retryAt: ContinuousClock.Instant?
    }

    let resolver: LangfusePromptResolver?
    private let store: ServingStateStore
    private let hooks: ConfigSourceHooks
    private let logger: Logger
    private let source: String
    private let copy: LastKnownGoodCopy?
    private let state = SharedBox(State())
    private let announcement = Announcement()
    /// How many resolved documents were validated (the applier adds its own).
    let validations = SharedBox(0)

    init(
        resolver: LangfusePromptResolver?, store: ServingStateStore, hooks: ConfigSourceHooks, logger: Logger,
        source: String, copy: LastKnownGoodCopy?
    ) {
        self.resolver = resolver
        self.store = store
        self.hooks = hooks
        self.logger = logger
        self.source = source
        self.copy = copy
    }

    var current: State { state.current }

    /// Forgets every Langfuse document, and what was announced about it: a document without Langfuse prompts
    /// (`appliedSourceVersion`) is in use, so a later document's Langfuse failure is news again.
    func reset(appliedSourceVersion: String?) {
        state.withLock { $0 = State(appliedSourceVersion: appliedSourceVersion) }
        announcement.clear()
    }

    /// Notes the source-bytes version of a document in use that has no Langfuse prompts (a cached copy).
    func noteApplied(sourceVersion: String) {
        state.withLock { $0.appliedSourceVersion = sourceVersion }
    }

    /// The source served the pending document again (under a new ETag, or confirming a cached copy).
    func refreshPending(version: String, document: FetchedDocument, at time: Timestamp) {
        state.withLock { state in
            guard state.pending?.sourceVersion == version else { return }
            state.pending?.fromCache = false
            state.pending?.document = document
            state.pending?.fetchedAt = time
        }
    }

    /// Resolves the latest Langfuse document again when a label is due or a version is still unresolved, and
    /// Langfuse is not being backed off from. Returns whether every version was resolved (see `resolveAndApply`).
    func resolveIfDue(at time: Timestamp) async -> Bool {
        let current = state.current
        guard let pending = current.pending else { return false }
        if let retryAt = current.retryAt, ContinuousClock.now < retryAt { return false }
        let due = pending.unresolved || (resolver?.isDue(pending.references.references) ?? false)
        guard due else { return false }
        return await resolveAndApply(pending, at: time)
    }

    /// How long until the latest Langfuse document must be resolved again (a label's TTL, or the retry after a
    /// failure); nil when nothing is due.
    func nextResolutionWait() -> Duration? {
        let current = state.current
        guard let pending = current.pending else { return nil }
        var wait = resolver?.untilDue(pending.references.references)
        if pending.unresolved { wait = .zero }
        guard var wait else { return nil }
        if let retryAt = current.retryAt { wait = max(wait, retryAt - .now) }
        return max(wait, .milliseconds(20))
    }

    /// Makes `pending` the latest Langfuse document (the one re-resolved from now on).
    func begin(_ pending: PendingDocument) {
        state.withLock { $0.pending = pending }
    }

    /// Resolves every reference of a document and applies the result if anything served changes; if a reference is unresolved, the config in use stays and the failure is recorded, announced
    /// once per state. Returns whether every version was resolved, so the document is the one the source serves.
    func resolveAndApply(_ pending: PendingDocument, at time: Timestamp) async -> Bool {
        let references = pending.references.references
        let resolutions: [LangfuseReference: LangfusePromptResolver.Resolution]
        if let resolver {
            resolutions = await resolver.resolve(references, at: time)
        } else {
            let failure = ConfigLoadFailure(
                .langfuseAuth, message: "this daemon has no Langfuse settings (docs/langfuse.md)",
                at: time)
            resolutions = Dictionary(uniqueKeysWithValues: references.map { ($0, .init(error: failure)) })
        }
        let statuses = pending.references.uses.map { use in
            let resolution = resolutions[use.reference]
            return PromptSourceStatus(
                prompt: use.prompt, reference: use.reference, resolvedVersion: resolution?.prompt?.version,
                origin: resolution?.origin, fetchedAt: resolution?.fetchedAt, lastError: resolution?.error)
        }
        let failed = references.filter { resolutions[$0]?.error != nil }
        for reference in failed { if let error = resolutions[reference]?.error { hooks.promptResolutionFailed(error) } }
        let unresolved = references.filter { resolutions[$0]?.prompt == nil }
        let retryAt = noteResolution(failed: !failed.isEmpty)
        let firstError = failed.first.flatMap { resolutions[$0]?.error }

        guard unresolved.isEmpty else {
            let error = resolutions[unresolved[0]]?.error
            let failure = ConfigLoadFailure(
                code: error?.code ?? ConfigLoadFailure.Code.langfuseNotFound.rawValue,
                message:
                    "\(unresolved.count) of \(references.count) Langfuse prompt versions of the document from \(source) (\(pending.sourceVersion)) could not be resolved (\(error?.message ?? "no resolution")); keeping the config in use",
                at: time)
            store.update { snapshot in
                // While the source fails, its failure stays the recorded error; prompt_sources shows Langfuse's.
                (snapshot.sourceState == .failing ? snapshot : snapshot.recording(failure)).withPromptSources(statuses)
            }
            state.withLock { state in
                state.pending?.unresolved = true
                state.failure = failure
            }
            announce(
                failure, key: "unresolved " + unresolved.map(\.description).joined(separator: ",") + " " + failure.code,
                retryAt: retryAt, level: .error, event: .configPromptsUnresolved)
            return false
        }

        let prompts = resolutions.compactMapValues(\.prompt)
        let resolved: (root: JSONValue, canonical: [UInt8])
        do {
            resolved = try pending.references.resolved(with: prompts)
        } catch {
            let failure = ConfigLoadFailure(
                error.code,
                message: "the document from \(source) (\(pending.sourceVersion)): \(error.message); keeping the config in use",
                at: time)
            recordContentFailure(failure, statuses: statuses, retryAt: retryAt)
            return false
        }
        let document: ConfigDocument
        do {
            validations.withLock { $0 += 1 }
            document = try ConfigDocument.validate(resolved.root)
        } catch {
            let count = error.issues.count
            let failure = ConfigLoadFailure(
                .invalidConfig,
                message:
                    "\(count) problem\(count == 1 ? "" : "s") in the document from \(source) (\(pending.sourceVersion)) with its Langfuse prompts; keeping the config in use",
                at: time, problems: error.issues)
            recordContentFailure(failure, statuses: statuses, retryAt: retryAt)
            return false
        }
        let standing = apply(
            document, canonical: resolved.canonical, of: pending, statuses: statuses, firstError: firstError, at: time)
        if let standing {
            announce(
                standing, key: "copies " + failed.map(\.description).joined(separator: ",") + " " + standing.code,
                retryAt: retryAt, level: .warning, event: .configPromptsLangfuseFailing)
        } else if announcement.clear() {
            logger.log(.info, .configPromptsLangfuseRecovered, metadata: [.configSource: "\(source)"])
        }
        return true
    }

    /// Serves a resolved document: applied under a config version that covers the source's bytes and the prompt
    /// contents (so it changes when a label moves), or only noted when nothing served changes. Returns the failure
    /// that stays recorded while copies of Langfuse's prompts serve (`firstError` is Langfuse's).
    private func apply(
        _ document: ConfigDocument, canonical: [UInt8], of pending: PendingDocument, statuses: [PromptSourceStatus],
        firstError: ConfigLoadFailure?, at time: Timestamp
    ) -> ConfigLoadFailure? {
        let version = LoadedConfig.version(of: pending.document.bytes + [0] + canonical)
        let standing = firstError.map { error in
            ConfigLoadFailure(
                code: error.code,
                message: "Langfuse failed (\(error.message)); serving copies of its prompts (see prompt_sources)",
                at: time)
        }
        let current = store.current
        let relabel = state.withLock { state in
            let relabel = state.appliedSourceVersion == pending.sourceVersion
            state.pending?.unresolved = false
            state.failure = standing
            state.appliedSourceVersion = pending.sourceVersion
            return relabel
        }
        // While the source fails (a label due between its retries), its failure stays the recorded error.
        let sourceFailing = current.sourceState == .failing
        if current.config?.version == version {
            // Nothing served changes (a label re-resolved to the version in use).
            store.update { snapshot in
                snapshot.polled(snapshot.sourceState, at: time, lastError: sourceFailing ? snapshot.lastError : standing)
                    .withPromptSources(statuses)
            }
            return standing
        }
        let loaded = LoadedConfig(
            document: document, version: version, source: source, loadedAt: time,
            sourceVersion: pending.document.sourceVersion,
            fetchedAt: relabel ? current.config?.fetchedAt ?? pending.fetchedAt : pending.fetchedAt,
            fromCache: pending.fromCache)
        store.update { snapshot in
            let applied = pending.fromCache || sourceFailing
                ? snapshot.polled(snapshot.sourceState, at: time, lastError: snapshot.lastError, config: loaded)
                : snapshot.applying(loaded)
            let recorded = sourceFailing ? nil : standing
            return (recorded.map { applied.recording($0) } ?? applied).withPromptSources(statuses)
        }
        hooks.applied(loaded)
        if pending.fromCache, let copy {
            copy.logServed(loaded)
            return standing
        }
        var metadata: [LogMetadataKey: Logger.MetadataValue] = [
            .configVersion: "\(version)", .configSource: "\(source)",
            .configExperiments: "\(document.experiments.count)", .configPrompts: "\(document.prompts.count)",
            .configLangfuse: .array(statuses.map { .string(Self.describe($0)) }),
        ]
        if let sourceVersion = pending.document.sourceVersion {
            metadata[.configSourceVersion] = "\(sourceVersion)"
        }
        if relabel { metadata[.configReason] = "langfuse_label_moved" }
        logger.log(.info, .configApplied, metadata: metadata)
        if !relabel { copy?.store(pending.document, version: pending.sourceVersion, at: time) }
        return standing
    }

    /// A fetched prompt that cannot be served (a chat placeholder, a version that fails validation): the config in
    /// use stays. Not retried before a label is due: a numbered version never changes.
    private func recordContentFailure(
        _ failure: ConfigLoadFailure, statuses: [PromptSourceStatus], retryAt: ContinuousClock.Instant?
    ) {
        store.update { $0.recording(failure).withPromptSources(statuses) }
        state.withLock { state in
            state.pending?.unresolved = false
            state.failure = failure
        }
        announce(
            failure, key: "content " + failure.code + " " + failure.problems.map(\.description).joined(),
            retryAt: retryAt, level: .error, event: .configRejected)
    }

    /// Counts resolutions that met a Langfuse failure and returns when to retry (nil after a clean one): 1 s,
    /// doubling, at most the label TTL.
    private func noteResolution(failed: Bool) -> ContinuousClock.Instant? {
        let ttl = resolver?.configuration.labelTTL ?? .seconds(60)
        return state.withLock { state in
            guard failed else {
                state.failedResolutions = 0
                state.retryAt = nil
                return nil
            }
            state.failedResolutions += 1
            let doubling = Duration.seconds(1 << min(state.failedResolutions - 1, 16))
            let retryAt = ContinuousClock.now + min(doubling, ttl)
            state.retryAt = retryAt
            return retryAt
        }
    }

    /// Logs and reports a failure once per state (`key`), not once per attempt.
    private func announce(
        _ failure: ConfigLoadFailure, key: String, retryAt: ContinuousClock.Instant?, level: Logger.Level,
        event: LogEventName
    ) {
        guard announcement.isNew(key) else { return }
        hooks.rejected(failure)
        var metadata: [LogMetadataKey: Logger.MetadataValue] = [
            .configSource: "\(source)", .code: "\(failure.code)",
            .configVersion: "\(store.current.config?.version ?? "none")",
            .configLangfuse: .array(store.current.promptSources.map { .string(Self.describe($0)) }),
        ]
        if !failure.problems.isEmpty {
            metadata[.problems] = .array(failure.problems.map { .string($0.description) })
        }
        if let retryAt { metadata[.retryIn] = "\(retryAt - .now)" }
        logger.log(level, event, failure.message, metadata: metadata)
    }

    /// `critic=langfuse 'movie-critic' label 'production' -> 3 (langfuse)`, for logs.
    static func describe(_ status: PromptSourceStatus) -> String {
        let resolved = status.resolvedVersion.map { "\($0) (\(status.origin?.rawValue ?? "?"))" } ?? "unresolved"
        let error = status.lastError.map { " [\($0.code)]" } ?? ""
        return "\(status.prompt)=\(status.reference) -> \(resolved)\(error)"
    }
}
