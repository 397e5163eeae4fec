import Logging
import VariantCore

/// The poller's document applier: turns what a source served into the served config. Each new document is
/// validated completely before it replaces the one in use; its outcome is recorded in the store (the `config` op
/// shows it) and announced once per change of state, through the hooks and one log line. Bytes already seen are
/// not parsed again. A document with Langfuse prompts is checked offline here and handed to the `LangfuseStage`.
final class ConfigApplier: Sendable {
    /// What the applier remembers between polls.
    struct State: Sendable {
        /// The config version of the last document the source served, applied or not.
        var lastSeenVersion: String?
        /// Why that document was rejected, nil if it was applied: restored as the last error when the source
        /// answers "unchanged", since the source still serves it.
        var lastDocumentFailure: ConfigLoadFailure?
        /// How many documents without Langfuse prompts were parsed and validated.
        var validations = 0
    }

    let store: ServingStateStore
    let prompts: LangfuseStage
    let copy: LastKnownGoodCopy?
    private let hooks: ConfigSourceHooks
    private let logger: Logger
    private let source: String
    private let state = SharedBox(State())
    /// The code of the fetch failure last announced.
    private let fetchFailure = Announcement()

    init(
        store: ServingStateStore, hooks: ConfigSourceHooks, logger: Logger, source: String, copy: LastKnownGoodCopy?,
        promptResolver: LangfusePromptResolver?
    ) {
        self.store = store
        self.hooks = hooks
        self.logger = logger
        self.source = source
        self.copy = copy
        self.prompts = LangfuseStage(
            resolver: promptResolver, store: store, hooks: hooks, logger: logger, source: source, copy: copy)
    }

    /// How many fetched documents were parsed and validated so far.
    var validations: Int { state.current.validations + prompts.validations.current }

    /// The error that stays recorded while the source serves the same document.
    var standingFailure: ConfigLoadFailure? { state.current.lastDocumentFailure ?? prompts.current.failure }

    /// The source answered "unchanged": the config in use stays, and so does the error of the document it serves.
    func unchanged(at time: Timestamp) {
        let failure = standingFailure
        store.update { $0.polled(.ok, at: time, lastError: failure) }
    }

    /// The rejection of the document the source serves, if it was rejected.
    var documentFailure: ConfigLoadFailure? { state.current.lastDocumentFailure }

    /// The source answered: a later failure is announced again.
    func fetchSucceeded() {
        fetchFailure.clear()
    }

    /// Records a failed fetch; the config in use stays. Announced when it differs from the last one, or `always`
    /// (a forced reload reports its outcome).
    func fetchFailed(_ failure: ConfigLoadFailure, retryIn delay: Duration, always: Bool) {
        store.update { $0.polled(.failing, at: failure.at, lastError: failure) }
        guard fetchFailure.isNew(failure.code) || always else { return }
        hooks.rejected(failure)
        logger.log(.warning, .configFetchFailed, "\(failure.message)",
            metadata: [
                .configSource: "\(source)", .code: "\(failure.code)",
                .configVersion: "\(store.current.config?.version ?? "none")",
                .retryIn: "\(delay)",
            ]
        )
    }

    /// Re-resolves the Langfuse prompts of the latest document that uses them, when due.
    func resolvePromptsIfDue(at time: Timestamp) async {
        guard let pending = prompts.current.pending else { return }
        if await prompts.resolveIfDue(at: time) { noteServed(pending.sourceVersion) }
    }

    /// Applies a fetched document unless it is the one in use or one already rejected. A document with Langfuse
    /// prompts is checked offline first, then applied once every prompt version it uses is resolved.
    func consider(_ document: FetchedDocument, at time: Timestamp, force: Bool) async {
        let version = LoadedConfig.version(of: document.bytes)
        let current = store.current
        let seen = state.current
        let langfuse = prompts.current
        // A newer document waiting for its Langfuse prompts is no longer served: the one in use is again. Without
        // Langfuse prompts it needs nothing; with them, it is parsed again below to take over their re-resolution.
        let supersedesPending = langfuse.pending.map { $0.sourceVersion != version } ?? false
        if let config = current.config,
            config.version == version || (langfuse.appliedSourceVersion == version && !supersedesPending)
        {
            // The bytes in use, perhaps under a new ETag, or confirming a cached copy: no parse, no validation.
            let relabelled = config.relabelled(sourceVersion: document.sourceVersion, fetchedAt: time, fromCache: false)
            let failure = supersedesPending ? nil : langfuse.failure
            store.update { snapshot in
                let polled = snapshot.polled(.ok, at: time, lastError: failure, config: relabelled)
                return supersedesPending ? polled.withPromptSources([]) : polled
            }
            noteServed(version)
            if supersedesPending { prompts.reset(appliedSourceVersion: version) }
            prompts.refreshPending(version: version, document: document, at: time)
            if config.fromCache {
                logger.log(.info, .configConfirmed, "the source serves the cached document",
                    metadata: [.configVersion: "\(config.version)", .configSource: "\(source)"]
                )
            }
            return
        }
        if !force, seen.lastSeenVersion == version, let failure = seen.lastDocumentFailure {
            store.update { $0.polled(.ok, at: time, lastError: failure) }
            return
        }
        if !force, langfuse.pending?.sourceVersion == version {
            // Waiting for its Langfuse prompts: retried on the resolution's own schedule, not parsed again.
            store.update { $0.polled(.ok, at: time, lastError: langfuse.failure) }
            return
        }
        state.withLock { $0.validations += 1 }
        let references: PromptReferences
        do {
            references = try PromptReferences.parse(document.bytes)
        } catch {
            reject(error, version: version, at: time)
            return
        }
        if !references.uses.isEmpty {
            noteServed(version)
            await resolve(
                .init(references: references, document: document, sourceVersion: version, fetchedAt: time, fromCache: false),
                at: time)
            return
        }
        // Without Langfuse prompts the parse validated the document itself.
        guard let validated = references.inlineDocument else { return }
        let loaded = LoadedConfig(
            document: validated, version: version, source: source, loadedAt: time,
            sourceVersion: document.sourceVersion, fetchedAt: time)
        store.update { $0.applying(loaded).withPromptSources([]) }
        noteServed(version)
        prompts.reset(appliedSourceVersion: version)
        hooks.applied(loaded)
        var metadata: [LogMetadataKey: Logger.MetadataValue] = [
            .configVersion: "\(version)", .configSource: "\(source)",
            .configExperiments: "\(validated.experiments.count)", .configPrompts: "\(validated.prompts.count)",
        ]
        if let sourceVersion = document.sourceVersion { metadata[.configSourceVersion] = "\(sourceVersion)" }
        logger.log(.info, .configApplied, metadata: metadata)
        copy?.store(document, version: version, at: time)
    }

    /// Starts from the last-known-good copy, when the source gave nothing usable at start-up.
    func applyCachedCopy(maximumBytes: Int, at time: Timestamp, usesCache: Bool) async {
        guard let copy, let entry = copy.load(maximumBytes: maximumBytes) else {
            if usesCache {
                logger.log(.warning, .configNone, "no cached copy either; serving no_config until the source answers",
                    metadata: [.configSource: "\(source)"]
                )
            }
            return
        }
        let version = LoadedConfig.version(of: entry.bytes)
        guard let references = try? PromptReferences.parse(entry.bytes) else {
            logger.log(.warning, .configCacheInvalid, "the cached copy does not validate",
                metadata: [.path: "\(copy.path)"]
            )
            return
        }
        if !references.uses.isEmpty {
            // Its Langfuse prompts come from the disk copies if Langfuse cannot be reached.
            await resolve(
                .init(
                    references: references,
                    document: FetchedDocument(bytes: entry.bytes, sourceVersion: entry.sourceVersion),
                    sourceVersion: version, fetchedAt: entry.fetchedAt ?? time, fromCache: true),
                at: time)
            return
        }
        guard let document = references.inlineDocument else { return }
        let loaded = LoadedConfig(
            document: document, version: version, source: source, loadedAt: time,
            sourceVersion: entry.sourceVersion, fetchedAt: entry.fetchedAt ?? time, fromCache: true)
        store.update { $0.polled($0.sourceState, at: time, lastError: $0.lastError, config: loaded) }
        prompts.noteApplied(sourceVersion: version)
        hooks.applied(loaded)
        copy.logServed(loaded)
    }

    /// Hands a document with Langfuse prompts to the stage; once every version resolves, it is the one served.
    private func resolve(_ pending: LangfuseStage.PendingDocument, at time: Timestamp) async {
        prompts.begin(pending)
        if await prompts.resolveAndApply(pending, at: time) { noteServed(pending.sourceVersion) }
    }

    /// The source serves `version` and nothing is wrong with it.
    private func noteServed(_ version: String) {
        state.withLock { state in
            state.lastSeenVersion = version
            state.lastDocumentFailure = nil
        }
    }

    /// Records a document that failed validation; the config in use stays.
    private func reject(_ error: ConfigValidationError, version: String, at time: Timestamp) {
        let count = error.issues.count
        let failure = ConfigLoadFailure(
            .invalidConfig,
            message:
                "\(count) problem\(count == 1 ? "" : "s") in the document from \(source) (\(version)); keeping the config in use",
            at: time,
            problems: error.issues
        )
        store.update { $0.polled(.ok, at: time, lastError: failure) }
        state.withLock { state in
            state.lastSeenVersion = version
            state.lastDocumentFailure = failure
        }
        hooks.rejected(failure)
        logger.log(.error, .configRejected, "\(failure.message)",
            metadata: [
                .configSource: "\(source)", .code: "\(failure.code)",
                .configVersion: "\(store.current.config?.version ?? "none")",
                .problems: .array(failure.problems.map { .string($0.description) }),
            ]
        )
    }
}
