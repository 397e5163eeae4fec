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
    }

    private let configuration: Configuration
    private let fetcher: any ConfigFetcher
    private let store: ServingStateStore
    private let logger: Logger
    private let hooks: ConfigSourceHooks
    private let cache: ConfigCache?
    private let now: @Sendable () -> Timestamp
    private let random: @Sendable () -> Double
    private let state: SharedBox<PollState>
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
        now: @escaping @Sendable () -> Timestamp = SystemClock.now,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.configuration = configuration
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
        if store.current.config == nil { applyCachedCopy() }
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
                let failure = state.current.lastDocumentFailure
                store.update { $0.polled(.ok, at: time, lastError: failure) }
            case .document(let document):
                suggested = document.suggestedInterval
                consider(document, at: time, force: force)
            }
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
        let generation = state.withLock { state in
            state.polledOnce = true
            state.timerGeneration &+= 1
            return state.timerGeneration
        }
        scheduleContinuation.yield((generation, ContinuousClock.now + delay))
    }

    /// Applies a fetched document unless it is the one in use or one already rejected.
    private func consider(_ document: FetchedDocument, at time: Timestamp, force: Bool) {
        let version = LoadedConfig.version(of: document.bytes)
        let source = fetcher.sourceDescription
        let current = store.current
        if let config = current.config, config.version == version {
            // The bytes in use, perhaps under a new ETag, or confirming a cached copy: no parse, no validation.
            let relabelled = config.relabelled(sourceVersion: document.sourceVersion, fetchedAt: time, fromCache: false)
            store.update { $0.polled(.ok, at: time, lastError: nil, config: relabelled) }
            state.withLock { state in
                state.lastSeenVersion = version
                state.lastDocumentFailure = nil
            }
            if config.fromCache {
                logger.info(
                    "config.confirmed: the source serves the cached document",
                    metadata: ["config.version": "\(version)", "config.source": "\(source)"]
                )
            }
            return
        }
        let seen = state.current
        if !force, seen.lastSeenVersion == version, let failure = seen.lastDocumentFailure {
            store.update { $0.polled(.ok, at: time, lastError: failure) }
            return
        }
        state.withLock { $0.validations += 1 }
        do {
            let validated = try ConfigDocument.validate(document.bytes)
            let loaded = LoadedConfig(
                document: validated,
                version: version,
                source: source,
                loadedAt: time,
                sourceVersion: document.sourceVersion,
                fetchedAt: time
            )
            store.update { $0.applying(loaded) }
            state.withLock { state in
                state.lastSeenVersion = version
                state.lastDocumentFailure = nil
            }
            hooks.applied(loaded)
            var metadata: Logger.Metadata = [
                "config.version": "\(version)", "config.source": "\(source)",
                "config.experiments": "\(validated.experiments.count)", "config.prompts": "\(validated.prompts.count)",
            ]
            if let sourceVersion = document.sourceVersion { metadata["config.source_version"] = "\(sourceVersion)" }
            logger.info("config.applied", metadata: metadata)
            storeInCache(document, version: version, at: time)
        } catch {
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
    }

    private func storeInCache(_ document: FetchedDocument, version: String, at time: Timestamp) {
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
    private func applyCachedCopy() {
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
        guard let document = try? ConfigDocument.validate(entry.bytes) else {
            logger.warning(
                "config.cache.invalid: the cached copy does not validate",
                metadata: ["path": "\(cache.documentPath)"]
            )
            return
        }
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
        hooks.applied(loaded)
        logger.warning(
            "config.from_cache: the source gave no usable document; serving the last-known-good copy",
            metadata: [
                "config.version": "\(version)", "config.source": "\(fetcher.sourceDescription)",
                "path": "\(cache.documentPath)", "config.fetched_at": "\(loaded.fetchedAt.rfc3339)",
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
