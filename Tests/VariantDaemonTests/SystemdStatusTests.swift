import Foundation
import NIOCore
import NIOPosix
import Testing
import VariantCore
import VariantDaemon

/// The STATUS= text and the watchdog's event-loop probe, without systemd.
@Suite struct SystemdStatusTests {
    /// A document with four experiments: running (no window), running with a window that ended, running with one
    /// not yet started, and paused.
    static let document = #"""
        {"schema_version": 1,
         "prompts": {"p": {"versions": [{"version": 1, "template": "a"}, {"version": 2, "template": "b"}]}},
         "experiments": [
           {"name": "now", "salt": "s1", "status": "running", "exposure": 100, "variants": [
             {"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
             {"name": "b", "weight": 50, "prompt": "p", "prompt_version": 2}]},
           {"name": "ended", "salt": "s2", "status": "running", "exposure": 100,
            "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "variants": [
             {"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
             {"name": "b", "weight": 50, "prompt": "p", "prompt_version": 2}]},
           {"name": "later", "salt": "s3", "status": "running", "exposure": 100,
            "start": "2026-12-01T00:00:00Z", "variants": [
             {"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
             {"name": "b", "weight": 50, "prompt": "p", "prompt_version": 2}]},
           {"name": "stopped", "salt": "s4", "status": "paused", "exposure": 100, "variants": [
             {"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
             {"name": "b", "weight": 50, "prompt": "p", "prompt_version": 2}]}
         ]}
        """#

    static let now = Timestamp(rfc3339: "2026-11-23T12:00:00Z")!

    func snapshot(config: Bool, failure: ConfigLoadFailure? = nil) throws -> ServingSnapshot {
        let bytes = Array(Self.document.utf8)
        let loaded = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes),
            source: "file:/etc/variantd/config.json", loadedAt: Self.now)
        return ServingSnapshot(
            config: config ? loaded : nil, source: "file:/etc/variantd/config.json", lastError: failure,
            startedAt: Self.now)
    }

    @Test func statusNamesTheVersionSourceAndRunningExperiments() throws {
        let version = LoadedConfig.version(of: Array(Self.document.utf8))
        #expect(
            SystemdStatus.text(for: try snapshot(config: true), now: Self.now)
                == "serving config \(version) from file:/etc/variantd/config.json; experiments running 1/4")
    }

    @Test func statusShowsTheLastConfigErrorOnOneLine() throws {
        let failure = ConfigLoadFailure(
            code: "invalid_config", message: "two\nlines", at: Timestamp(rfc3339: "2026-11-23T11:59:00Z")!,
            problems: [
                ValidationIssue(path: "$.a", code: .missingField, message: "m"),
                ValidationIssue(path: "$.b", code: .wrongType, message: "n"),
            ])
        let text = SystemdStatus.text(for: try snapshot(config: true, failure: failure), now: Self.now)
        #expect(text.hasSuffix("; last config error invalid_config (2 problems) at 2026-11-23T11:59:00Z"))
        #expect(!text.contains("\n"))
    }

    /// While the state file's writes fail, the status says the state is not durable, since when and why.
    @Test func statusShowsThatTheStateIsNotDurable() throws {
        let failing = try snapshot(config: true).withStateFailure(
            StateWriteFailure(message: "cannot rename …: Read-only file system", since: Self.now))
        let text = SystemdStatus.text(for: failing, now: Self.now)
        #expect(
            text.hasSuffix(
                "; state not durable since 2026-11-23T12:00:00Z (state file writes fail: cannot rename …: Read-only file system)"),
            "\(text)")
        #expect(!SystemdStatus.text(for: failing.withStateFailure(nil), now: Self.now).contains("state"))
    }

    @Test func withoutAConfigTheStatusSaysClientsGetNoConfig() throws {
        let failure = ConfigLoadFailure(code: "read_failed", message: "missing", at: Self.now)
        #expect(
            SystemdStatus.text(for: try snapshot(config: false, failure: failure), now: Self.now)
                == "no config: answering no_config (clients serve their control) until a valid document loads from file:/etc/variantd/config.json; last config error read_failed at 2026-11-23T12:00:00Z"
        )
    }

    @Test func theProbeSucceedsWhenEveryLoopRunsTasks() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        #expect(await EventLoopProbe.allRespond(group, within: .seconds(2)))
        try await group.shutdownGracefully()
    }

    @Test func theProbeFailsByItsDeadlineWhenOneLoopIsWedged() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        // Wedge the second loop: a task that blocks its thread for 4 s.
        loops[1].execute { Thread.sleep(forTimeInterval: 4) }
        // False is only possible if the probe decided before the loop came free 4 s later: by its 200 ms deadline.
        #expect(await EventLoopProbe.allRespond(group, within: .milliseconds(200)) == false)
        // Once the loop is free again, the probe succeeds.
        try await loops[1].submit {}.get()
        #expect(await EventLoopProbe.allRespond(group, within: .seconds(2)))
        try await group.shutdownGracefully()
    }
}
