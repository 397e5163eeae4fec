import Logging
import ServiceLifecycle
import UnixSignals
import VariantCore

/// Keeps the served configuration in step with its source (a file, an HTTP endpoint, the AWS AppConfig Data
/// API): polls on a jittered interval, on SIGHUP and on `reloadNow()`, and backs off while the source fails.
///
/// This type is the trigger and schedule loop, shaped like swift-configuration's `ReloadingFileProvider`: the
/// public `run()` merges SIGHUP, operator requests and its timers into one trigger sequence and calls
/// `run(triggers:)`, which tests drive directly. What a poll brings back goes to the `ConfigApplier` (validate,
/// apply, announce once), which hands documents with Langfuse prompts to its `LangfuseStage` and keeps the
/// last-known-good copy through `LastKnownGoodCopy`. The source and the Langfuse labels have timers of their own:
/// a label due before the next source poll is re-resolved without asking the source.
///
/// Nothing a source does stops routing: a failed fetch or a rejected document is recorded as the last error
/// (the `config` op shows it), logged once per change of state, and the config in use stays.
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

    /// Why the loop wakes.
    public enum Trigger: Sendable, Hashable {
        /// The source's timer: ask the source, which may answer "unchanged".
        case poll
        /// SIGHUP or an operator (`reloadNow()`): ask at once, announced through the hooks.
        case reload
        /// The Langfuse timer: a label of the document in use is due (or a retry while Langfuse fails); its
        /// prompts are resolved again without asking the source.
        case prompts
    }

    /// What the loop keeps between triggers; only the loop (and `loadInitial`, before it) writes it.
    struct LoopState: Sendable {
        var schedule: PollSchedule
        var polledOnce = false
        /// Each timer's latest schedule: a later one replaces an earlier one, whose sleeper then does nothing.
        var generations: [Trigger: UInt64] = [:]
        /// The wait each timer was last set to (tests read it instead of sleeping through it).
        var waits: [Trigger: Duration] = [:]
    }

    /// One timer's schedule: which trigger, its generation and how long after it was set it fires.
    struct Timer: Sendable {
        var trigger: Trigger
        var generation: UInt64
        var wait: Duration
    }

    private let configuration: Configuration
    let fetcher: any ConfigFetcher
    let applier: ConfigApplier
    private let logger: Logger
    private let hooks: ConfigSourceHooks
    private let now: @Sendable () -> Timestamp
    private let random: @Sendable () -> Double
    /// What the timers sleep on: the continuous clock, or a test's clock that the test steps.
    private let clock: any Clock<Duration>
    let state: SharedBox<LoopState>
    private let requests: AsyncStream<Trigger>
    private let requestContinuation: AsyncStream<Trigger>.Continuation
    private let timers: AsyncStream<Timer>
    private let timerContinuation: AsyncStream<Timer>.Continuation

    public init(
        configuration: Configuration,
        fetcher: any ConfigFetcher,
        store: ServingStateStore,
        logger: Logger,
        hooks: ConfigSourceHooks = .init(),
        promptResolver: LangfusePromptResolver? = nil,
        now: @escaping @Sendable () -> Timestamp = SystemClock.now,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.clock = clock
        self.configuration = configuration
        self.fetcher = fetcher
        self.logger = logger
        self.hooks = hooks
        self.now = now
        self.random = random
        let copy = configuration.cacheDirectory.flatMap { directory in
            fetcher.usesCache
                ? LastKnownGoodCopy(
                    cache: ConfigCache(directory: directory, source: fetcher.sourceDescription), logger: logger)
                : nil
        }
        self.applier = ConfigApplier(
            store: store, hooks: hooks, logger: logger, source: fetcher.sourceDescription, copy: copy,
            promptResolver: promptResolver)
        var schedule = PollSchedule.Configuration()
        schedule.interval = configuration.interval
        schedule.jitter = configuration.jitter
        schedule.maximumBackoff = configuration.maximumBackoff
        self.state = SharedBox(LoopState(schedule: PollSchedule(configuration: schedule)))
        (requests, requestContinuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(1))
        // Unbounded: dropping a schedule would stop its timer for good; a replaced one costs a sleeper that does nothing.
        (timers, timerContinuation) = AsyncStream.makeStream(of: Timer.self)
    }

    public var sourceDescription: String { fetcher.sourceDescription }

    /// How many fetched documents were parsed and validated so far.
    var validations: Int { applier.validations }

    /// Polls once and, if that gives no config, starts from the last-known-good copy on disk; a caller waits
    /// for this before declaring readiness. Returns whether a config is in use.
    @discardableResult
    public func loadInitial() async -> Bool {
        await poll(announced: false, force: true)
        if applier.store.current.config == nil {
            await applier.applyCachedCopy(
                maximumBytes: configuration.maximumBytes, at: now(), usesCache: fetcher.usesCache)
            schedulePrompts()
        }
        return applier.store.current.config != nil
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
                    // One sleeper per scheduled timer; a sleeper whose schedule was replaced wakes and does nothing.
                    await withDiscardingTaskGroup { sleepers in
                        for await timer in self.timers {
                            sleepers.addTask {
                                guard (try? await Self.sleep(on: self.clock, for: timer.wait)) != nil else { return }
                                if self.state.current.generations[timer.trigger] == timer.generation {
                                    continuation.yield(timer.trigger)
                                }
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
        timerContinuation.finish()
    }

    /// Acts once per trigger until the sequence ends; tests drive this directly.
    public func run(triggers: some AsyncSequence<Trigger, Never>) async {
        for await trigger in triggers {
            switch trigger {
            case .poll:
                await poll(announced: false, force: false)
            case .reload:
                logger.log(.info, .configReload, metadata: [.configSource: "\(fetcher.sourceDescription)"])
                hooks.reloadStarted()
                await poll(announced: true, force: true)
                hooks.reloadFinished()
            case .prompts:
                await applier.resolvePromptsIfDue(at: now())
                schedulePrompts()
            }
        }
    }

    /// One poll: fetch, hand the outcome to the applier, then schedule the next poll and the next resolution of
    /// Langfuse labels, each on its own timer.
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
                applier.unchanged(at: time)
            case .document(let document):
                suggested = document.suggestedInterval
                await applier.consider(document, at: time, force: force)
            }
            hooks.polled(applier.documentFailure)
            await applier.resolvePromptsIfDue(at: time)
            applier.fetchSucceeded()
            let draw = random()
            (delay, transition) = state.withLock { $0.schedule.succeeded(suggestedInterval: suggested, random: draw) }
        } catch {
            // Shutting down: the request was cancelled, which says nothing about the source.
            if Task.isCancelled { return }
            let failure = ConfigLoadFailure(error.code, message: error.message, at: time)
            hooks.polled(failure)
            let draw = random()
            (delay, transition) = state.withLock { $0.schedule.failed(random: draw) }
            applier.fetchFailed(failure, retryIn: delay, always: announced)
            // The document in use still names its Langfuse labels: a label that moves is served even while the
            // source itself cannot be reached (the source's failure stays the recorded error).
            await applier.resolvePromptsIfDue(at: time)
        }
        log(transition, delay: delay)
        state.withLock { $0.polledOnce = true }
        schedule(.poll, in: delay)
        schedulePrompts()
    }

    /// Schedules the Langfuse timer when the document in use has prompts to resolve again.
    private func schedulePrompts() {
        guard let wait = applier.prompts.nextResolutionWait() else { return }
        schedule(.prompts, in: wait)
    }

    /// Sleeps `wait` on `clock` (opened from the poller's existential, whose instants have no type here).
    private static func sleep<C: Clock<Duration>>(on clock: C, for wait: Duration) async throws {
        try await clock.sleep(until: clock.now.advanced(by: wait), tolerance: nil)
    }

    /// Replaces `trigger`'s timer with one that fires after `wait`.
    private func schedule(_ trigger: Trigger, in wait: Duration) {
        let generation = state.withLock { state in
            let generation = (state.generations[trigger] ?? 0) &+ 1
            state.generations[trigger] = generation
            state.waits[trigger] = wait
            return generation
        }
        timerContinuation.yield(Timer(trigger: trigger, generation: generation, wait: wait))
    }

    private func log(_ transition: PollSchedule.Transition?, delay: Duration) {
        let source = fetcher.sourceDescription
        switch transition {
        case nil, .startedFailing:
            // A first failure is logged with its error, by the applier.
            break
        case .reachedCap:
            logger.log(.warning, .configSourceBackoffAtCap, "polling at the maximum backoff until the source recovers",
                metadata: [.configSource: "\(source)", .retryIn: "\(delay)"]
            )
        case .recovered(let failures):
            logger.log(.info, .configSourceRecovered,
                metadata: [.configSource: "\(source)", .failedAttempts: "\(failures)"]
            )
        }
    }
}
