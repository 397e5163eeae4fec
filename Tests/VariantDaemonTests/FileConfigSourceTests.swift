import Foundation
import Logging
import Synchronization
import Testing
import VariantCore
@testable import VariantDaemon

/// The file source driven by an injected trigger stream instead of its timer and SIGHUP.
@Suite struct FileConfigSourceTests {
    @Test func appliesChangesOnCheckAndKeepsTheLastGoodDocumentOnAFailure() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("variantd-source-\(UUID()).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(exampleConfig.utf8).write(to: URL(fileURLWithPath: path))
        let store = ServingStateStore(
            ServingSnapshot(config: nil, source: "file:" + path, lastError: nil, startedAt: SystemClock.now()))
        let calls = Mutex<[String]>([])
        let hooks = ConfigSourceHooks(
            reloadStarted: { calls.withLock { $0.append("reloadStarted") } },
            reloadFinished: { calls.withLock { $0.append("reloadFinished") } },
            applied: { config in calls.withLock { $0.append("applied \(config.version)") } },
            rejected: { failure in calls.withLock { $0.append("rejected \(failure.code)") } })
        let source = FileConfigSource(
            configuration: FileConfigSource.Configuration(path: path), store: store, logger: Logger(label: "test"),
            hooks: hooks)
        let (triggers, continuation) = AsyncStream.makeStream(of: FileConfigSource.Trigger.self)
        let running = Task { await source.run(triggers: triggers) }

        #expect(source.loadInitial())
        let firstVersion = try #require(store.current.config?.version)

        try Data("{ broken".utf8).write(to: URL(fileURLWithPath: path))
        continuation.yield(.check)
        try await waitUntil { store.current.lastError != nil }
        #expect(store.current.config?.version == firstVersion)
        #expect(store.current.lastError?.problems.first?.code == .invalidJSON)

        let paused = exampleConfig.replacingOccurrences(of: #""status": "running""#, with: #""status": "paused""#)
        try Data(paused.utf8).write(to: URL(fileURLWithPath: path))
        continuation.yield(.reload)
        try await waitUntil { store.current.config?.version == LoadedConfig.version(of: Array(paused.utf8)) }
        #expect(store.current.lastError == nil)
        try await waitUntil { calls.withLock { $0.last } == "reloadFinished" }

        #expect(
            calls.withLock { $0 } == [
                "applied \(firstVersion)", "rejected invalid_config", "reloadStarted",
                "applied \(LoadedConfig.version(of: Array(paused.utf8)))", "reloadFinished",
            ])
        continuation.finish()
        await running.value
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(condition())
    }
}
