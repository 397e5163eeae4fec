import AsyncHTTPClient
import Foundation
import Logging
import ServiceLifecycle
import Testing
import VariantCore

@testable import VariantDaemon

/// The poller's two timers, driven through `run(triggers:)` and read from the waits it sets, never slept through:
/// the source's (interval, backoff) and the Langfuse labels' (TTL, retry), each apart from the other.
@Suite(.serialized) struct ConfigPollerTimerTests {
    /// A poller on a file holding a document with a Langfuse label, and a fake Langfuse that serves it.
    struct Rig {
        let langfuse: LangfuseServerFixture
        let directory: String
        let client: HTTPClient
        let fetcher: CountingFetcher
        let store: ServingStateStore
        let poller: ConfigPoller

        init(labelTTL: Duration, interval: Duration = .seconds(3600)) throws {
            langfuse = try LangfuseServerFixture(prompts: [
                langfuseText("movie-critic", version: 1, "Review {{movie}}.", labels: ["production"])
            ])
            directory = try temporaryDirectory("variantd-source")
            try Data(
                langfuseDocument(control: #""prompt_version":1"#, treatment: #""prompt_label":"production""#).utf8
            ).write(to: URL(fileURLWithPath: directory + "/config.json"))
            client = HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: HTTPConfigFetcher.clientConfiguration(caBundle: nil, requestTimeout: .seconds(10)))
            var resolverConfiguration = LangfusePromptResolver.Configuration()
            resolverConfiguration.labelTTL = labelTTL
            let resolver = LangfusePromptResolver(
                configuration: resolverConfiguration,
                client: LangfuseClient(
                    baseURL: langfuse.url,
                    credentials: .init(
                        publicKey: LangfuseServerFixture.publicKey, secretKey: LangfuseServerFixture.secretKey),
                    client: client, requestTimeout: .seconds(10), maximumBytes: 1 << 20),
                logger: Logger(label: "test"))
            fetcher = CountingFetcher(FileConfigFetcher(path: directory + "/config.json"))
            var configuration = ConfigPoller.Configuration()
            configuration.interval = interval
            store = ConfigPollerTests.emptyStore(fetcher.sourceDescription)
            poller = ConfigPoller(
                configuration: configuration, fetcher: fetcher, store: store, logger: Logger(label: "test"),
                promptResolver: resolver, random: { 0 })
        }

        var labelRequests: Int { langfuse.requests.filter { $0.contains("label=production") }.count }

        /// Runs the loop over `triggers` to the end.
        func drive(_ triggers: [ConfigPoller.Trigger]) async {
            let (stream, continuation) = AsyncStream.makeStream(of: ConfigPoller.Trigger.self)
            for trigger in triggers { continuation.yield(trigger) }
            continuation.finish()
            await poller.run(triggers: stream)
        }

        func shutdown() async throws {
            try await client.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// The known flaw, mended: the poller's own timers (a `ServiceGroup`, no injected triggers) re-resolve a label
    /// on its 100 ms TTL, and the source, an hour from its next poll, is not asked again. Before the mend every
    /// label due brought the source poll forward (4 fetches where 1 was due).
    @Test func aLangfuseLabelDueBeforeTheNextSourcePollDoesNotBringThatPollForward() async throws {
        let rig = try Rig(labelTTL: .milliseconds(100))
        let group = ServiceGroup(services: [rig.poller], logger: Logger(label: "test"))
        try await withThrowingTaskGroup { tasks in
            tasks.addTask { try await group.run() }
            #expect(await eventually { rig.store.current.config != nil }, "\(rig.langfuse.requests)")
            // The label is asked again on its TTL, several times over.
            #expect(await eventually { rig.labelRequests >= 4 }, "\(rig.langfuse.requests)")
            // The source was asked once, at start-up: its next poll is an hour away.
            #expect(rig.fetcher.fetches == 1)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        try await rig.shutdown()
    }

    @Test func aDueLabelIsResolvedOnTheLangfuseTimerWithoutAskingTheSource() async throws {
        let rig = try Rig(labelTTL: .zero)
        #expect(await rig.poller.loadInitial())
        // One source fetch; the label asked as the document is applied (and again as the poll ends: always due here).
        #expect(rig.fetcher.fetches == 1)
        let asked = rig.labelRequests
        let waits = rig.poller.state.current.waits
        // The source waits its whole interval; the label (always due here) is resolved again at once.
        #expect(waits[.poll] == .seconds(3600))
        #expect(try #require(waits[.prompts]) < .seconds(1))

        await rig.drive([.prompts, .prompts, .prompts])
        #expect(rig.labelRequests == asked + 3, "\(rig.langfuse.requests)")
        #expect(rig.fetcher.fetches == 1)
        // The source's timer was not touched.
        #expect(rig.poller.state.current.waits[.poll] == .seconds(3600))
        #expect(rig.poller.state.current.generations[.poll] == 1)
        try await rig.shutdown()
    }

    @Test func aLabelCostsOneRequestPerTTL() async throws {
        let rig = try Rig(labelTTL: .seconds(600), interval: .seconds(30))
        #expect(await rig.poller.loadInitial())
        // Due again one TTL after it was resolved: the timer is set to what is left of the TTL (10 minutes), not the
        // interval (30 s). (Less by however long this task waited for a thread since; under load, that can be long.)
        let wait = try #require(rig.poller.state.current.waits[.prompts])
        #expect(wait > .seconds(60) && wait <= .seconds(600), "\(wait)")
        #expect(rig.poller.state.current.waits[.poll] == .seconds(30))
        // Source polls and an early wake-up of the Langfuse timer ask Langfuse nothing before the label is due.
        await rig.drive([.poll, .prompts, .poll, .prompts])
        #expect(rig.labelRequests == 1, "\(rig.langfuse.requests)")
        #expect(rig.fetcher.fetches == 3)
        try await rig.shutdown()
    }

    @Test func failedPollsBackOffToTheCapAreAnnouncedOnceAndRecover() async throws {
        let directory = try temporaryDirectory("variantd-source")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config.json"
        let calls = SharedBox<[String]>([])
        var configuration = ConfigPoller.Configuration()
        configuration.interval = .milliseconds(100)
        configuration.jitter = 0.2
        configuration.maximumBackoff = .milliseconds(400)
        let store = ConfigPollerTests.emptyStore("file:" + path)
        let poller = ConfigPoller(
            configuration: configuration, fetcher: FileConfigFetcher(path: path), store: store,
            logger: Logger(label: "test"), hooks: ConfigPollerTests.hooksRecording(into: calls), random: { 0.9 })
        var waits: [Duration] = []
        for _ in 0..<8 {
            await poller.poll(announced: false, force: false)
            waits.append(try #require(poller.state.current.waits[.poll]))
        }
        // Growing from the base (the interval, at most 1 s) up to the cap, then at it; never the 0.1 s interval.
        #expect(waits.first == .milliseconds(100))
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 <= $1 }, "\(waits)")
        #expect(waits.suffix(3).allSatisfy { $0 == .milliseconds(400) }, "\(waits)")
        #expect(calls.current == ["rejected read_failed"])
        #expect(store.current.sourceState == .failing)

        try Data(exampleConfig.utf8).write(to: URL(fileURLWithPath: path))
        await poller.poll(announced: false, force: false)
        #expect(store.current.config?.version == configVersion(exampleConfig))
        #expect(store.current.sourceState == .ok)
        // Healthy again: the interval less the jitter drawn (20% × 0.9).
        #expect(poller.state.current.waits[.poll] == .milliseconds(100) * (1 - 0.2 * 0.9))
        // A failure after the recovery is announced again.
        try FileManager.default.removeItem(atPath: path)
        await poller.poll(announced: false, force: false)
        #expect(calls.current.filter { $0 == "rejected read_failed" }.count == 2, "\(calls.current)")
    }
}
