import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import VariantCore

@testable import VariantDaemon

/// The poller driven by an injected trigger stream, and in a real `ServiceGroup` with its own timer.
@Suite struct ConfigPollerTests {
    static func hooksRecording(into calls: SharedBox<[String]>) -> ConfigSourceHooks {
        ConfigSourceHooks(
            reloadStarted: { calls.withLock { $0.append("reloadStarted") } },
            reloadFinished: { calls.withLock { $0.append("reloadFinished") } },
            applied: { config in calls.withLock { $0.append("applied \(config.version)") } },
            rejected: { failure in calls.withLock { $0.append("rejected \(failure.code)") } }
        )
    }

    static func emptyStore(_ source: String) -> ServingStateStore {
        ServingStateStore(ServingSnapshot(config: nil, source: source, lastError: nil, startedAt: SystemClock.now()))
    }

    @Test func aFileSourceAppliesChangesOnPollAndKeepsTheLastGoodDocumentOnAFailure() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("variantd-source-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(exampleConfig.utf8).write(to: URL(fileURLWithPath: path))
        let store = Self.emptyStore("file:" + path)
        let calls = SharedBox<[String]>([])
        let poller = ConfigPoller(
            configuration: .init(),
            fetcher: FileConfigFetcher(path: path),
            store: store,
            logger: Logger(label: "test"),
            hooks: Self.hooksRecording(into: calls)
        )
        let (triggers, continuation) = AsyncStream.makeStream(of: ConfigPoller.Trigger.self)
        let running = Task { await poller.run(triggers: triggers) }

        #expect(await poller.loadInitial())
        let firstVersion = try #require(store.current.config?.version)

        try Data("{ broken".utf8).write(to: URL(fileURLWithPath: path))
        continuation.yield(.poll)
        try await waitUntil { store.current.lastError != nil }
        #expect(store.current.config?.version == firstVersion)
        #expect(store.current.lastError?.problems.first?.code == .invalidJSON)

        let paused = exampleConfig(status: "paused")
        try Data(paused.utf8).write(to: URL(fileURLWithPath: path))
        continuation.yield(.reload)
        try await waitUntil { store.current.config?.version == configVersion(paused) }
        #expect(store.current.lastError == nil)
        try await waitUntil { calls.withLock { $0.last } == "reloadFinished" }

        #expect(
            calls.current == [
                "applied \(firstVersion)", "rejected invalid_config", "reloadStarted",
                "applied \(configVersion(paused))", "reloadFinished",
            ]
        )

        // A missing file is recorded once, not once per poll, and the config in use stays: three timer polls,
        // each one awaited.
        continuation.finish()
        await running.value
        try FileManager.default.removeItem(atPath: path)
        for _ in 0..<3 { await poller.poll(announced: false, force: false) }
        #expect(store.current.lastError?.code == "read_failed")
        #expect(calls.withLock { $0.filter { $0 == "rejected read_failed" }.count } == 1)
        #expect(store.current.config?.version == configVersion(paused))
        #expect(store.current.sourceState == .failing)
    }

    @Test func inAServiceGroupItPollsOnItsTimerReloadsOnRequestAndStopsGracefully() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let client = HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: HTTPConfigFetcher.clientConfiguration(caBundle: nil, requestTimeout: .seconds(10))
        )
        let store = Self.emptyStore(server.url)
        let calls = SharedBox<[String]>([])
        var configuration = ConfigPoller.Configuration()
        configuration.interval = .seconds(30)
        configuration.cacheDirectory = cache
        // The timers sleep on a clock this test steps: a poll happens exactly when the test says, however loaded
        // the machine.
        let clock = SteppedClock()
        let poller = ConfigPoller(
            configuration: configuration,
            fetcher: HTTPConfigFetcher(
                url: server.url,
                client: client,
                requestTimeout: .seconds(10),
                maximumBytes: 1 << 20
            ),
            store: store,
            logger: Logger(label: "test"),
            hooks: Self.hooksRecording(into: calls),
            random: { 0.5 },
            clock: clock
        )
        let group = ServiceGroup(services: [poller], logger: Logger(label: "test"))
        try await withThrowingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            // Without loadInitial, run() polls at once.
            try await waitUntil(
                { store.current.config?.version == configVersion(exampleConfig) },
                "\(server.requests) \(String(describing: store.current.lastError))"
            )
            for polls in 2...4 {
                // The next poll waits on its timer, and only the clock reaching it sends it.
                try await waitUntil({ clock.sleeping == 1 }, "\(server.requests)")
                #expect(server.requests.count == polls - 1, "\(server.requests)")
                clock.advance(by: configuration.interval * 2)
                try await waitUntil({ server.requests.count == polls }, "\(server.requests)")
            }
            // Timer polls are conditional, and none parsed the document again.
            #expect(
                server.requests.dropFirst().allSatisfy { $0.hasPrefix("GET /config.json 304 0 ") },
                "\(server.requests)"
            )
            #expect(calls.current == ["applied \(configVersion(exampleConfig))"])
            #expect(poller.validations == 1)

            let paused = exampleConfig(status: "paused")
            try server.publish(paused)
            poller.reloadNow()
            try await waitUntil { calls.withLock { $0.last } == "reloadFinished" }
            #expect(store.current.config?.version == configVersion(paused))
            // No timer came due meanwhile: the reload applied it, once.
            #expect(
                calls.current.suffix(4)
                    == ["applied \(configVersion(exampleConfig))", "reloadStarted", "applied \(configVersion(paused))", "reloadFinished"],
                "\(calls.current)")
            #expect(server.requests.count == 5, "\(server.requests)")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        try await client.shutdown()
        // Applied documents are on disk, byte for byte.
        let cached = ConfigCache(directory: cache, source: server.url).load(maximumBytes: 1 << 20)
        #expect(cached?.bytes == Array(exampleConfig(status: "paused").utf8))
    }

    @Test func an304AnEmptyAnswerOrIdenticalBytesAreNotParsedAgain() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let client = HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: HTTPConfigFetcher.clientConfiguration(caBundle: nil, requestTimeout: .seconds(10))
        )
        let store = Self.emptyStore(server.url)
        let poller = ConfigPoller(
            configuration: .init(),
            fetcher: HTTPConfigFetcher(
                url: server.url,
                client: client,
                requestTimeout: .seconds(10),
                maximumBytes: 1 << 20
            ),
            store: store,
            logger: Logger(label: "test")
        )
        #expect(await poller.loadInitial())
        for _ in 0..<5 { await poller.poll(announced: false, force: false) }
        // ETag: five 304s, one parse.
        #expect(server.requests.filter { $0.hasPrefix("GET /config.json 304 0 ") }.count == 5)
        #expect(poller.validations == 1)
        try server.setMode("noetag")
        for _ in 0..<5 { await poller.poll(announced: false, force: false) }
        // No ETag: five full answers, the same bytes, still one parse.
        #expect(server.requests.filter { $0.hasPrefix("GET /config.json 200 ") }.count == 6)
        #expect(poller.validations == 1)
        try server.publish(exampleConfig(status: "paused"))
        await poller.poll(announced: false, force: false)
        #expect(poller.validations == 2)
        #expect(store.current.config?.version == configVersion(exampleConfig(status: "paused")))
        #expect(store.current.config?.sourceVersion == nil)
        try await client.shutdown()
    }

    /// A Langfuse failure is announced once while it lasts, and again after a document without Langfuse prompts
    /// was served in between (the state announced belongs to the document).
    @Test func aLangfuseFailureIsAnnouncedOncePerDocumentThatMeetsIt() async throws {
        let directory = try temporaryDirectory("variantd-source")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config.json"
        let langfuse = langfuseDocument(control: #""prompt_version":1"#, treatment: #""prompt_version":2"#)
        let calls = SharedBox<[String]>([])
        // No Langfuse settings: its prompts cannot be resolved (langfuse_auth).
        let poller = ConfigPoller(
            configuration: .init(), fetcher: FileConfigFetcher(path: path), store: Self.emptyStore("file:" + path),
            logger: Logger(label: "test"), hooks: Self.hooksRecording(into: calls))
        for text in [langfuse, langfuse, exampleConfig, langfuse] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            await poller.poll(announced: false, force: true)
        }
        #expect(
            calls.current == [
                "rejected langfuse_auth", "applied \(configVersion(exampleConfig))", "rejected langfuse_auth",
            ])
    }

    /// Expects `condition` to come true (`eventually`), with what to show if it does not.
    func waitUntil(
        _ condition: () -> Bool,
        _ comment: @autoclosure () -> String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        #expect(await eventually(condition), Comment(rawValue: comment()), sourceLocation: sourceLocation)
    }
}

/// A real fetcher that counts how often the poller asks it.
final class CountingFetcher: ConfigFetcher {
    let wrapped: any ConfigFetcher
    private let count = SharedBox(0)

    init(_ wrapped: any ConfigFetcher) { self.wrapped = wrapped }

    var fetches: Int { count.current }
    var sourceDescription: String { wrapped.sourceDescription }
    var usesCache: Bool { wrapped.usesCache }

    func fetch(force: Bool, logger: Logger) async throws(ConfigFetchError) -> ConfigFetchResult {
        count.withLock { $0 += 1 }
        return try await wrapped.fetch(force: force, logger: logger)
    }
}

@Suite struct PollScheduleTests {
    static var configuration: PollSchedule.Configuration {
        var configuration = PollSchedule.Configuration()
        configuration.interval = .seconds(10)
        configuration.jitter = 0.2
        configuration.maximumBackoff = .seconds(60)
        return configuration
    }

    @Test(arguments: [0.0, 0.25, 0.5, 0.999])
    func aHealthyDelayIsTheIntervalShortenedByAtMostTheJitter(random: Double) {
        var schedule = PollSchedule(configuration: Self.configuration)
        let (delay, transition) = schedule.succeeded(random: random)
        #expect(transition == nil)
        #expect(delay <= .seconds(10) && delay >= .seconds(8))
        #expect(delay == .seconds(10) * (1 - 0.2 * random))
    }

    @Test func theSourcesSuggestedIntervalIsAFloor() {
        var schedule = PollSchedule(configuration: Self.configuration)
        #expect(schedule.succeeded(suggestedInterval: .seconds(45), random: 0).delay == .seconds(45))
        #expect(schedule.succeeded(suggestedInterval: .seconds(1), random: 0).delay == .seconds(10))
    }

    @Test func failuresBackOffWithJitterUpToTheCapAndStateChangesAreReportedOnce() {
        var schedule = PollSchedule(configuration: Self.configuration)
        var delays: [Duration] = []
        var transitions: [PollSchedule.Transition] = []
        for attempt in 0..<12 {
            let (delay, transition) = schedule.failed(random: attempt == 0 ? 0 : 0.9)
            delays.append(delay)
            if let transition { transitions.append(transition) }
        }
        #expect(delays[0] == .seconds(1))
        // Growing (decorrelated jitter: up to three times the previous wait) until the cap, then at it.
        #expect(zip(delays, delays.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(delays.allSatisfy { $0 <= .seconds(60) })
        #expect(delays.suffix(4).allSatisfy { $0 == .seconds(60) })
        #expect(transitions == [.startedFailing, .reachedCap])
        #expect(schedule.state == .failing(failures: 12, atCap: true))

        let (delay, transition) = schedule.succeeded(random: 0)
        #expect(transition == .recovered(afterFailures: 12))
        #expect(delay == .seconds(10))
        // After recovery, the backoff starts from the base again.
        #expect(schedule.failed(random: 0).delay == .seconds(1))
    }

    @Test func withRandomNumbersAnywhereTheBackoffStaysWithinItsBounds() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            var schedule = PollSchedule(configuration: Self.configuration)
            var previous = Duration.zero
            for _ in 0..<20 {
                let delay = schedule.failed(random: Double.random(in: 0..<1, using: &generator)).delay
                #expect(delay >= .seconds(1) && delay <= .seconds(60))
                #expect(delay <= max(.seconds(1), previous * 3))
                previous = delay
            }
        }
    }
}

@Suite struct ConfigCacheTests {
    @Test func storesAtomicallyAndLoadsTheSameBytesWithTheirMetadata() throws {
        let directory = try temporaryDirectory("variantd-cache") + "/nested/dir"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = ConfigCache(directory: directory, source: "https://example.com/config.json")
        #expect(cache.load(maximumBytes: 1 << 20) == nil)
        let bytes = Array(exampleConfig.utf8)
        let fetched = Timestamp(rfc3339: "2026-11-23T10:00:00Z")!
        try cache.store(bytes, version: configVersion(exampleConfig), sourceVersion: "\"abc\"", fetchedAt: fetched)
        let entry = try #require(cache.load(maximumBytes: 1 << 20))
        #expect(entry.bytes == bytes)
        #expect(entry.sourceVersion == "\"abc\"")
        #expect(entry.fetchedAt == fetched)
        // No temporary files are left behind.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == [
                "variantd-\(ConfigCache.name(of: cache.source)).json",
                "variantd-\(ConfigCache.name(of: cache.source)).meta.json",
            ]
        )
        // Another source never reads this copy.
        #expect(
            ConfigCache(directory: directory, source: "https://example.com/other.json").load(maximumBytes: 1 << 20)
                == nil
        )
    }

    @Test func metadataThatDoesNotMatchTheDocumentIsIgnored() throws {
        let directory = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = ConfigCache(directory: directory, source: "s")
        try cache.store(
            Array("one".utf8),
            version: configVersion("one"),
            sourceVersion: "v1",
            fetchedAt: SystemClock.now()
        )
        // As if the daemon died between writing the document and its metadata.
        try Data("two".utf8).write(to: URL(fileURLWithPath: cache.documentPath))
        let entry = try #require(cache.load(maximumBytes: 1 << 20))
        #expect(entry.bytes == Array("two".utf8))
        #expect(entry.sourceVersion == nil)
    }

    @Test func anUnwritableDirectoryIsAnErrorNotACrash() {
        let cache = ConfigCache(directory: "/proc/variantd-cannot-exist", source: "s")
        #expect(throws: ConfigCache.WriteError.self) {
            try cache.store(Array("x".utf8), version: "v", sourceVersion: nil, fetchedAt: SystemClock.now())
        }
    }
}
