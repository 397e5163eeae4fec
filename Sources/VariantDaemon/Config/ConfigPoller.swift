import Logging
import ServiceLifecycle
import UnixSignals
import VariantCore

/// Keeps the served configuration in step with its source (a file, an HTTP endpoint, the AWS AppConfig Data
/// API): polls on a jittered interval, on SIGHUP and on `reloadNow()`, validates every new document completely
/// before it replaces the one in use, keeps the last good document on disk, and backs off while the source fails.
///
/// Nothing a source does stops routing: a failed fetch or a rejected document is recorded as the last error
/// (the `config` op shows it), logged once per change of state, and the config in use stays. An unchanged
/// document (HTTP 304, an empty AppConfig answer, bytes already seen) is not parsed again.
public final class ConfigPoller: Service, Sendable {
    public struct Configuration: Sendable {
        /// The time between polls while the source answers.
        public var interval: Duration = .seconds(30)
        /// The share of the interval (0–1) by which each wait is randomly shortened.
        public var jitter: Double = 0.1
        /// The longest wait between attempts while the source fails.
        public var maximumBackoff: Duration = .seconds(300)
        /// Where the last-known-good copy is kept (nil: nowhere); only for fetchers that use a cache.
        public var cacheDirectory: String?
        /// The largest document read back from the cache.
        public var maximumBytes: Int = 16 << 20

        public init() {}
    }

    /// Why a poll happens.
    public enum Trigger: Sendable {
        /// The timer: ask the source, which may answer "unchanged".
        case poll
        /// SIGHUP or an operator (`reloadNow()`): ask at once, announced through the hooks.
        case reload
    }

    /// What the poll loop remembers between polls; only the poll loop (and `loadInitial`, before it) writes it.
    struct PollState: Sendable {
        var schedule: PollSchedule
        /// The config version of the last document the source served, applied or not.
        var lastSeenVersion: String?
        /// Why that document was rejected, nil if it was applied: restored as the last error when the source
        /// answers "unchanged", since the source still serves it.
        var lastDocumentFailure: ConfigLoadFailure?
        /// The code of the failure last announced (logged and passed to `hooks.rejected`), so that a repeat is not
        /// announced again: one log line per change of state, not one per attempt.
        var announcedFailure: String?
        var cacheFailing = false
        var polledOnce = false
        /// How many documents were parsed and validated (a test shows that an unchanged one is not).
        var validations = 0
        var timerGeneration: UInt64 = 0
        /// Langfuse prompts (README "Langfuse prompt source"): the latest document that uses them, re-resolved
        /// when a label is due or while a version is unresolved; and the retry state while Langfuse fails.
        var langfuse = LangfuseState()
    }

    /// What the poll loop keeps about a document's Langfuse prompts between polls.
    struct LangfuseState: Sendable {
        /// The latest document with Langfuse prompts: the one in use, or a newer one waiting for its prompts.
        var pending: PendingDocument?
        /// The source-bytes version of the document behind the config in use (its config version differs when it
        /// has Langfuse prompts: it covers their contents too).
        var appliedSourceVersion: String?
        /// The last resolution's failure (unresolved, or served from a copy while Langfuse fails), kept as the
        /// last error across unchanged polls.
        var failure: ConfigLoadFailure?
        /// What was last announced (logged and passed to the hooks), so each state is logged once.
        var announced: String?
        var failedResolutions = 0
        var retryAt: ContinuousClock.Instant?
    }

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

    private let configuration: Configuration
    let fetcher: any ConfigFetcher
    let store: ServingStateStore
    let logger: Logger
    let hooks: ConfigSourceHooks
    let cache: ConfigCache?
    let promptResolver: LangfusePromptResolver?
    private let now: @Sendable () -> Timestamp
    private let random: @Sendable () -> Double
    let state: SharedBox<PollState>
    private let requests: AsyncStream<Trigger>
    private let requestContinuation: AsyncStream<Trigger>.Continuation
    /// The next timer poll: a generation (a later schedule replaces an earlier one) and when.
    typealias Schedule = (generation: UInt64, deadline: ContinuousClock.Instant)
    private let schedules: AsyncStream<Schedule>
    private let scheduleContinuation: AsyncStream<Schedule>.Continuation

    public init(
        configuration: Configuration,
        fetcher: any ConfigFetcher,
        store: ServingStateStore,
        logger: Logger,
        hooks: ConfigSourceHooks = .init(),
        promptResolver: LangfusePromptResolver? = nil,
        now: @escaping @Sendable () -> Timestamp = SystemClock.now,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.configuration = configuration
        self.promptResolver = promptResolver
        self.fetcher = fetcher
        self.store = store
        self.logger = logger
        self.hooks = hooks
        self.now = now
        self.random = random
        self.cache = configuration.cacheDirectory.flatMap { directory in
            fetcher.usesCache ? ConfigCache(directory: directory, source: fetcher.sourceDescription) : nil
        }
        var schedule = PollSchedule.Configuration()
        schedule.interval = configuration.interval
        schedule.jitter = configuration.jitter
        schedule.maximumBackoff = configuration.maximumBackoff
        self.state = SharedBox(PollState(schedule: PollSchedule(configuration: schedule)))
        (requests, requestContinuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(1))
        (schedules, scheduleContinuation) = AsyncStream.makeStream(
            of: Schedule.self,
            bufferingPolicy: .bufferingNewest(1)
        )
    }

    public var sourceDescription: String { fetcher.sourceDescription }

    /// How many fetched documents were parsed and validated so far.
    var validations: Int { state.current.validations }

    /// Polls once and, if that gives no config, starts from the last-known-good copy on disk; a caller waits
    /// for this before declaring readiness. Returns whether a config is in use.
    @discardableResult
    public func loadInitial() async -> Bool {
        await poll(announced: false, force: true)
        if store.current.config == nil { await applyCachedCopy() }
        return store.current.config != nil
    }

    /// Asks the poll loop to poll at once, as SIGHUP does (for the `reload` admin op). Returns at once; the
    /// outcome shows in the `config` op and reaches the hooks.
    public func reloadNow() {
        requestContinuation.yield(.reload)
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let (triggers, continuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(4))
        if !state.current.polledOnce { continuation.yield(.poll) }
        // On graceful shutdown every child ends: the sleeps throw, and the sequences finish when cancelled.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    for await _ in signals { continuation.yield(.reload) }
                }
                group.addTask {
                    for await trigger in self.requests { continuation.yield(trigger) }
                }
                group.addTask {
                    // One sleeper per scheduled poll; a sleeper whose schedule was replaced (a forced reload
                    // polled in between) wakes and does nothing.
                    await withDiscardingTaskGroup { sleepers in
                        for await (generation, deadline) in self.schedules {
                            sleepers.addTask {
                                guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else {
                                    return
                                }
                                if self.state.current.timerGeneration == generation { continuation.yield(.poll) }
                            }
                        }
                    }
                }
                group.addTask {
                    await self.run(triggers: triggers)
                    continuation.finish()
                }
            }
        }
        // `run()` ends only on shutdown: nothing else is waiting on these.
        requestContinuation.finish()
        scheduleContinuation.finish()
    }

    /// Polls once per trigger until the sequence ends; tests drive this directly.
    public func run(triggers: some AsyncSequence<Trigger, Never>) async {
        for await trigger in triggers {
            switch trigger {
            case .poll:
                await poll(announced: false, force: false)
            case .reload:
                logger.info("config.reload", metadata: ["config.source": "\(fetcher.sourceDescription)"])
                hooks.reloadStarted()
                await poll(announced: true, force: true)
                hooks.reloadFinished()
            }
        }
    }

    /// One poll: fetch, then apply, keep or record, then schedule the next one.
    func poll(announced: Bool, force: Bool) async {
        let time = now()
        let delay: Duration
        let transition: PollSchedule.Transition?
        do {
            let result = try await fetcher.fetch(force: force, logger: logger)
            var suggested: Duration?
            switch result {
            case .unchanged(let suggestedInterval):
                suggested = suggestedInterval
                let failure = state.current.standingFailure
                store.update { $0.polled(.ok, at: time, lastError: failure) }
            case .document(let document):
                suggested = document.suggestedInterval
                await consider(document, at: time, force: force)
            }
            await resolvePendingIfDue(at: time)
            let draw = self.random()
            (delay, transition) = state.withLock { state in
                state.announcedFailure = nil
                return state.schedule.succeeded(suggestedInterval: suggested, random: draw)
            }
        } catch {
            // Shutting down: the request was cancelled, which says nothing about the source.
            if Task.isCancelled { return }
            let failure = ConfigLoadFailure(error.code, message: error.message, at: time)
            store.update { $0.polled(.failing, at: time, lastError: failure) }
            // The document in use still names its Langfuse labels: a label that moves is served even while the
            // source itself cannot be reached (the source's failure stays the recorded error).
            await resolvePendingIfDue(at: time)
            let draw = self.random()
            let isNew: Bool
            (delay, transition, isNew) = state.withLock { state in
                let (delay, transition) = state.schedule.failed(random: draw)
                let isNew = state.announcedFailure != failure.code
                state.announcedFailure = failure.code
                return (delay, transition, isNew)
            }
            if isNew || announced {
                hooks.rejected(failure)
                logger.warning(
                    "config.fetch_failed: \(failure.message)",
                    metadata: [
                        "config.source": "\(fetcher.sourceDescription)", "code": "\(failure.code)",
                        "config.version": "\(store.current.config?.version ?? "none")",
                        "retry_in": "\(delay)",
                    ]
                )
            }
        }
        log(transition, delay: delay)
        // A label due sooner than the next poll (or a Langfuse retry) brings the next poll forward.
        let wait = nextResolutionWait().map { min(delay, $0) } ?? delay
        let generation = state.withLock { state in
            state.polledOnce = true
            state.timerGeneration &+= 1
            return state.timerGeneration
        }
        scheduleContinuation.yield((generation, ContinuousClock.now + wait))
    }

    /// Applies a fetched document unless it is the one in use or one already rejected. A document with Langfuse
    /// prompts is checked offline first, then applied once every prompt version it uses is resolved.
    private func consider(_ document: FetchedDocument, at time: Timestamp, force: Bool) async {
        let version = LoadedConfig.version(of: document.bytes)
        let source = fetcher.sourceDescription
        let current = store.current
        let seen = state.current
        // A newer document waiting for its Langfuse prompts is no longer served: the one in use is again. Without
        // Langfuse prompts it needs nothing; with them, it is parsed again below to take over their re-resolution.
        let supersedesPending = seen.langfuse.pending.map { $0.sourceVersion != version } ?? false
        if let config = current.config,
            config.version == version || (seen.langfuse.appliedSourceVersion == version && !supersedesPending)
        {
            // The bytes in use, perhaps under a new ETag, or confirming a cached copy: no parse, no validation.
            let relabelled = config.relabelled(sourceVersion: document.sourceVersion, fetchedAt: time, fromCache: false)
            let failure = supersedesPending ? nil : seen.langfuse.failure
            store.update { snapshot in
                let polled = snapshot.polled(.ok, at: time, lastError: failure, config: relabelled)
                return supersedesPending ? polled.withPromptSources([]) : polled
            }
            state.withLock { state in
                state.lastSeenVersion = version
                state.lastDocumentFailure = nil
                if supersedesPending { state.langfuse = LangfuseState(appliedSourceVersion: version) }
                if state.langfuse.pending?.sourceVersion == version {
                    state.langfuse.pending?.fromCache = false
                    state.langfuse.pending?.document = document
                    state.langfuse.pending?.fetchedAt = time
                }
            }
            if config.fromCache {
                logger.info(
                    "config.confirmed: the source serves the cached document",
                    metadata: ["config.version": "\(config.version)", "config.source": "\(source)"]
                )
            }
            return
        }
        if !force, seen.lastSeenVersion == version, let failure = seen.lastDocumentFailure {
            store.update { $0.polled(.ok, at: time, lastError: failure) }
            return
        }
        if !force, seen.langfuse.pending?.sourceVersion == version {
            // Waiting for its Langfuse prompts: retried on the resolution's own schedule, not parsed again.
            store.update { $0.polled(.ok, at: time, lastError: seen.langfuse.failure) }
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
            let pending = PendingDocument(
                references: references, document: document, sourceVersion: version, fetchedAt: time, fromCache: false)
            state.withLock { state in
                state.lastSeenVersion = version
                state.lastDocumentFailure = nil
                state.langfuse.pending = pending
            }
            await resolveAndApply(pending, at: time)
            return
        }
        // Without Langfuse prompts the parse validated the document itself.
        guard let validated = references.inlineDocument else { return }
        let loaded = LoadedConfig(
            document: validated,
            version: version,
            source: source,
            loadedAt: time,
            sourceVersion: document.sourceVersion,
            fetchedAt: time
        )
        store.update { $0.applying(loaded).withPromptSources([]) }
        state.withLock { state in
            state.lastSeenVersion = version
            state.lastDocumentFailure = nil
            state.langfuse = LangfuseState(appliedSourceVersion: version)
        }
        hooks.applied(loaded)
        var metadata: Logger.Metadata = [
            "config.version": "\(version)", "config.source": "\(source)",
            "config.experiments": "\(validated.experiments.count)", "config.prompts": "\(validated.prompts.count)",
        ]
        if let sourceVersion = document.sourceVersion { metadata["config.source_version"] = "\(sourceVersion)" }
        logger.info("config.applied", metadata: metadata)
        storeInCache(document, version: version, at: time)
    }

    /// Records a document that failed validation; the config in use stays.
    private func reject(_ error: ConfigValidationError, version: String, at time: Timestamp) {
        let source = fetcher.sourceDescription
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
        logger.error(
            "config.rejected: \(failure.message)",
            metadata: [
                "config.source": "\(source)", "code": "\(failure.code)",
                "config.version": "\(store.current.config?.version ?? "none")",
                "problems": .array(failure.problems.map { .string($0.description) }),
            ]
        )
    }

    func storeInCache(_ document: FetchedDocument, version: String, at time: Timestamp) {
        guard let cache else { return }
        do {
            try cache.store(document.bytes, version: version, sourceVersion: document.sourceVersion, fetchedAt: time)
            let recovered = state.withLock { state in
                defer { state.cacheFailing = false }
                return state.cacheFailing
            }
            if recovered { logger.info("config.cache.recovered", metadata: ["path": "\(cache.documentPath)"]) }
        } catch {
            let first = state.withLock { state in
                defer { state.cacheFailing = true }
                return !state.cacheFailing
            }
            if first {
                logger.warning(
                    "config.cache.write_failed: \(error); serving goes on, but a restart during an outage will have no copy",
                    metadata: ["path": "\(cache.documentPath)"]
                )
            }
        }
    }

    /// Starts from the last-known-good copy, when the source gave nothing usable at start-up.
    private func applyCachedCopy() async {
        guard let cache, let entry = cache.load(maximumBytes: configuration.maximumBytes) else {
            if fetcher.usesCache {
                logger.warning(
                    "config.none: no cached copy either; serving no_config until the source answers",
                    metadata: ["config.source": "\(fetcher.sourceDescription)"]
                )
            }
            return
        }
        let time = now()
        let version = LoadedConfig.version(of: entry.bytes)
        guard let references = try? PromptReferences.parse(entry.bytes) else {
            logger.warning(
                "config.cache.invalid: the cached copy does not validate",
                metadata: ["path": "\(cache.documentPath)"]
            )
            return
        }
        if !references.uses.isEmpty {
            // Its Langfuse prompts come from the disk copies if Langfuse cannot be reached.
            let pending = PendingDocument(
                references: references,
                document: FetchedDocument(bytes: entry.bytes, sourceVersion: entry.sourceVersion),
                sourceVersion: version, fetchedAt: entry.fetchedAt ?? time, fromCache: true)
            state.withLock { $0.langfuse.pending = pending }
            await resolveAndApply(pending, at: time)
            return
        }
        guard let document = references.inlineDocument else { return }
        let loaded = LoadedConfig(
            document: document,
            version: version,
            source: fetcher.sourceDescription,
            loadedAt: time,
            sourceVersion: entry.sourceVersion,
            fetchedAt: entry.fetchedAt ?? time,
            fromCache: true
        )
        store.update { $0.polled($0.sourceState, at: time, lastError: $0.lastError, config: loaded) }
        state.withLock { $0.langfuse.appliedSourceVersion = version }
        hooks.applied(loaded)
        logFromCache(loaded, path: cache.documentPath)
    }

    func logFromCache(_ loaded: LoadedConfig, path: String) {
        logger.warning(
            "config.from_cache: the source gave no usable document; serving the last-known-good copy",
            metadata: [
                "config.version": "\(loaded.version)", "config.source": "\(fetcher.sourceDescription)",
                "path": "\(path)", "config.fetched_at": "\(loaded.fetchedAt.rfc3339)",
            ]
        )
    }

    private func log(_ transition: PollSchedule.Transition?, delay: Duration) {
        let source = fetcher.sourceDescription
        switch transition {
        case nil, .startedFailing:
            // A first failure is logged with its error, above.
            break
        case .reachedCap:
            logger.warning(
                "config.source.backoff_at_cap: polling at the maximum backoff until the source recovers",
                metadata: ["config.source": "\(source)", "retry_in": "\(delay)"]
            )
        case .recovered(let failures):
            logger.info(
                "config.source.recovered",
                metadata: ["config.source": "\(source)", "failed_attempts": "\(failures)"]
            )
        }
    }
}
