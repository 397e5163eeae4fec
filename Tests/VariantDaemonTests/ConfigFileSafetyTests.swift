import Foundation
import Glibc
import Synchronization
import Testing
import VariantCore

@testable import VariantDaemon

/// Issue 16, item 9: a FIFO at the config path hung the poller in `open()` (while `config` said all was well) and
/// then shutdown. Only regular files are read, each read has a deadline, and a stuck read never holds up shutdown.
@Suite struct ConfigFileSafetyTests {
    /// Puts a FIFO at `path` (made beside it and renamed over it, as a deploy would replace the file).
    static func putFIFO(at path: String) throws {
        let staging = path + ".fifo"
        guard mkfifo(staging, 0o644) == 0 else { throw FixtureError("mkfifo: \(String(cString: strerror(errno)))") }
        guard rename(staging, path) == 0 else { throw FixtureError("rename: \(String(cString: strerror(errno)))") }
    }

    /// A FIFO replacing the config of a running daemon: `read_failed` naming it at the next check, the config in
    /// use keeps serving, and SIGTERM stops the daemon with status 0.
    @Test func aFIFOReplacingTheConfigIsRefusedAndShutdownStillCompletes() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        try Self.putFIFO(at: daemon.configPath)
        var failure: JSONObject?
        #expect(
            eventually {
                failure = (try? daemon.ask(#"{"op":"config"}"#))?["last_error"]?.objectValue
                return failure != nil
            })
        #expect(failure?["code"] == .string("read_failed"))
        let message = failure?["message"]?.stringValue ?? ""
        #expect(message.contains(daemon.configPath) && message.contains("a FIFO (named pipe), not a regular file"), "\(message)")
        #expect(try daemon.ask(#"{"op":"config"}"#)["source_state"] == .string("failing"))
        #expect(try daemon.ask(#"{"op":"health"}"#)["status"] == .string("serving"))
        // SIGHUP forces a read of the same FIFO: refused again, never waited on.
        daemon.send(signal: SIGHUP)
        #expect(try daemon.ask(#"{"op":"health"}"#)["ok"] == .bool(true))
        #expect(daemon.stop() == 0, "\(daemon.logs)")
        #expect(daemon.logs.contains("state.saved"))
    }

    /// A FIFO at the config path at start: the daemon listens (answering no_config) instead of hanging before its
    /// socket is bound, says why, and stops on SIGTERM.
    @Test func aFIFOAtTheConfigPathAtStartIsRefused() throws {
        let directory = try TemporaryDirectory()
        try Self.putFIFO(at: directory.path + "/config.json")
        // The later --config wins; the fixture's own config file is never written.
        let daemon = try DaemonFixture(config: nil, arguments: ["--config", directory.path + "/config.json"])
        let failure = try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue
        #expect(failure?["code"] == .string("read_failed"))
        #expect(failure?["message"]?.stringValue?.contains("not a regular file") == true, "\(String(describing: failure))")
        #expect(try daemon.ask(#"{"op":"health"}"#)["status"] == .string("no_config"))
        #expect(daemon.stop() == 0, "\(daemon.logs)")
    }

    @Test func aDirectoryOrADeviceIsNotReadAsAFile() throws {
        #expect(throws: FileIdentity.ReadError.self) { try FileIdentity.read(path: "/tmp", maximumBytes: 1 << 20) }
        do {
            _ = try FileIdentity.read(path: "/dev/zero", maximumBytes: 1 << 20)
            Issue.record("/dev/zero was read")
        } catch {
            #expect("\(error)".contains("a character device, not a regular file"))
        }
    }

    /// A read that never returns (a hung network file system; here a thread blocked on a semaphore) is given up at
    /// the deadline; while it is stuck no second read starts; a cancelled wait ends at once; once the stuck read
    /// returns, reads work again.
    @Test func aStuckReadIsAbandonedAtItsDeadlineAndNeverBlocksCancellation() async throws {
        let reads = DeadlineRead()
        let release = DispatchSemaphore(value: 0)
        let returned = Atomic<Bool>(false)
        await #expect(throws: DeadlineRead.Failure.timedOut(.milliseconds(50))) {
            try await reads.run(deadline: .milliseconds(50)) {
                release.wait()
                returned.store(true, ordering: .sequentiallyConsistent)
                return 1
            }
        }
        do {
            _ = try await reads.run(deadline: .seconds(60)) { 2 }
            Issue.record("a second read started while the first was stuck")
        } catch DeadlineRead.Failure.earlierReadStuck {
        }

        // Cancellation (graceful shutdown cancels the poller) ends the wait without the read returning.
        let other = DeadlineRead()
        let blocked = DispatchSemaphore(value: 0)
        let waiting = Task { try await other.run(deadline: .seconds(3600)) { blocked.wait() } }
        waiting.cancel()
        await #expect(throws: DeadlineRead.Failure.cancelled) { try await waiting.value }
        blocked.signal()

        release.signal()
        #expect(await eventually { returned.load(ordering: .sequentiallyConsistent) })
        // The thread forgets its read just after it returns: poll until the next read starts.
        var value: Int?
        let deadline = ContinuousClock.now + patience
        while value == nil, ContinuousClock.now < deadline {
            value = try? await reads.run(deadline: .seconds(60)) { 3 }
            if value == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(value == 3)
    }
}
