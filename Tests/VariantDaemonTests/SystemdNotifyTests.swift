import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The real daemon under a `NOTIFY_SOCKET` that the test listens on, as systemd's manager does for Type=notify.
@Suite(.serialized) struct SystemdNotifyTests {
    /// Starts `variantd` with `NOTIFY_SOCKET` (and `WATCHDOG_USEC` when given) in a fresh folder.
    private func start(
        config: String?, watchdogMicroseconds: Int? = nil, arguments: [String] = []
    ) throws -> (daemon: ChildProcess, notify: NotifyListener, directory: String) {
        let directory = try SystemdTools.temporaryDirectory()
        if let config { try config.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8) }
        let notify = try NotifyListener(path: directory + "/notify.sock")
        var environment = ["NOTIFY_SOCKET": notify.path]
        if let watchdogMicroseconds { environment["WATCHDOG_USEC"] = String(watchdogMicroseconds) }
        let daemon = try ChildProcess(
            executable: DaemonFixture.product("variantd"),
            arguments: [
                "--config", directory + "/config.json", "--socket", directory + "/variantd.sock",
                "--poll-interval", "0.1", "--log-level", "debug", "--log-format", "text",
            ] + arguments,
            environment: environment, logPath: directory + "/variantd.log")
        return (daemon, notify, directory)
    }

    @Test func readyStatusWatchdogReloadingAndStoppingArriveInOrder() throws {
        let started = ContinuousClock.now
        let (daemon, notify, directory) = try start(config: exampleConfig, watchdogMicroseconds: 200_000)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var log: [String] = []

        // READY=1 only once the socket accepts connections and the config is in use.
        let ready = notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 20, log: &log)
        let readyFields = try #require(ready, "no READY=1 within 20 s: \(log)\n\(daemon.logs)").notifyFields
        let connection = try VariantConnection(socketPath: directory + "/variantd.sock", timeoutSeconds: 2)
        let version = LoadedConfig.version(of: Array(exampleConfig.utf8))
        #expect(readyFields["STATUS"]?.contains("serving config \(version)") == true)
        #expect(readyFields["STATUS"]?.contains("experiments running") == true)
        #expect(parseObject(try connection.request(#"{"op":"health"}"#))?["status"] == .string("serving"))
        #expect(!log.dropLast().contains { $0.notifyFields["READY"] != nil || $0.notifyFields["STATUS"] != nil })

        // WATCHDOG=1 at half of WATCHDOG_USEC (100 ms): several come, and no more often than that. Every ping was
        // sent since the daemon started, so they fit in that time (which a loaded machine only makes longer).
        var pings = 0
        let pinged = notify.receive(
            until: { message in
                if message.notifyFields["WATCHDOG"] == "1" { pings += 1 }
                return pings >= 5
            }, timeout: 60, log: &log)
        #expect(pinged != nil, "expected WATCHDOG=1 every 100 ms, got \(pings): \(log)")
        let elapsed = ContinuousClock.now - started
        #expect(.milliseconds(90) * (pings - 1) <= elapsed, "\(pings) WATCHDOG=1 in \(elapsed)")

        // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 with the status.
        daemon.send(SIGHUP)
        let reloading = notify.receive(until: { $0.notifyFields["RELOADING"] == "1" }, timeout: 10, log: &log)
        let reloadingFields = try #require(reloading, "no RELOADING=1 after SIGHUP: \(log)").notifyFields
        let monotonic = try #require(reloadingFields["MONOTONIC_USEC"].flatMap { UInt64($0) })
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowMicroseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        #expect(monotonic <= nowMicroseconds && nowMicroseconds - monotonic < 10_000_000)
        let readyAgain = notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 10, log: &log)
        #expect(readyAgain?.notifyFields["STATUS"]?.contains(version) == true, "no READY=1 after the reload: \(log)")

        // SIGTERM: STOPPING=1, then a clean exit.
        daemon.send(SIGTERM)
        let stopping = notify.receive(until: { $0.notifyFields["STOPPING"] == "1" }, timeout: 10, log: &log)
        #expect(stopping != nil, "no STOPPING=1 after SIGTERM: \(log)")
        #expect(daemon.wait() == 0, "\(daemon.logs)")

        // The order, over everything received (watchdog pings interleave).
        let kinds = log.compactMap { message -> String? in
            let fields = message.notifyFields
            for key in ["READY", "RELOADING", "STOPPING"] where fields[key] == "1" { return key }
            return nil
        }
        #expect(kinds == ["READY", "RELOADING", "READY", "STOPPING"], "\(log)")
    }

    @Test func anInvalidConfigShowsInTheStatusAndKeepsTheOldOne() throws {
        let (daemon, notify, directory) = try start(config: exampleConfig)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var log: [String] = []
        #expect(notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 20, log: &log) != nil)
        try #"{"prompts": {}, "experiments": [{"name": "x"}]}"#.write(
            toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let status = notify.receive(
            until: { $0.notifyFields["STATUS"]?.contains("last config error invalid_config") == true }, timeout: 10,
            log: &log)
        let version = LoadedConfig.version(of: Array(exampleConfig.utf8))
        #expect(status?.notifyFields["STATUS"]?.contains("serving config \(version)") == true, "\(log)")
        daemon.send(SIGTERM)
        #expect(daemon.wait() == 0)
    }

    /// While the state file cannot be written, `systemctl status` says so (STATUS=), and stops saying so once a
    /// write succeeds.
    @Test func aStateThatCannotBeWrittenShowsInTheStatusUntilAWriteSucceeds() throws {
        let state = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let (daemon, notify, directory) = try start(
            config: exampleConfig, arguments: ["--state-dir", state, "--state-flush-interval", "0.05"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var log: [String] = []
        #expect(notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 20, log: &log) != nil)
        let unblock = try StateDurabilityTests.blockStateFile(in: state)
        let answer = try VariantConnection(socketPath: directory + "/variantd.sock").request(StateDurabilityTests.disable)
        #expect(answer.contains("state_not_durable"), "\(answer)")
        let failing = notify.receive(
            until: { $0.notifyFields["STATUS"]?.contains("state not durable since") == true }, timeout: 10, log: &log)
        #expect(failing?.notifyFields["STATUS"]?.contains("Is a directory") == true, "\(log)")
        unblock()
        let recovered = notify.receive(
            until: { $0.notifyFields["STATUS"].map { !$0.contains("state not durable") } == true }, timeout: 10,
            log: &log)
        #expect(
            recovered?.notifyFields["STATUS"]?.contains("checkout-prompt/concise") == true,
            "\(log)")
        daemon.send(SIGTERM)
        #expect(daemon.wait() == 0)
    }

    @Test func withoutAConfigItWaitsForOneBeforeReady() throws {
        let (daemon, notify, directory) = try start(config: nil)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var log: [String] = []
        #expect(daemon.eventuallyListening(at: directory + "/variantd.sock"))
        #expect(notify.receive(until: { $0.notifyFields["READY"] != nil }, timeout: 1, log: &log) == nil)
        try exampleConfig.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let ready = notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 10, log: &log)
        let version = LoadedConfig.version(of: Array(exampleConfig.utf8))
        #expect(ready?.notifyFields["STATUS"]?.contains(version) == true, "\(log)\n\(daemon.logs)")
        daemon.send(SIGTERM)
        #expect(daemon.wait() == 0)
    }

    @Test func withoutAConfigItIsReadyAfterTheReadyTimeoutAndSaysSo() throws {
        let (daemon, notify, directory) = try start(config: nil, arguments: ["--ready-timeout", "0.5"])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var log: [String] = []
        let started = Date()
        let ready = notify.receive(until: { $0.notifyFields["READY"] == "1" }, timeout: 20, log: &log)
        let status = try #require(ready?.notifyFields["STATUS"], "\(log)\n\(daemon.logs)")
        #expect(Date().timeIntervalSince(started) >= 0.4)
        #expect(status.hasPrefix("no config: answering no_config"))
        #expect(status.contains("last config error read_failed"))
        let answer = parseObject(
            try VariantConnection(socketPath: directory + "/variantd.sock").request(
                #"{"op":"assign","experiment":"checkout-prompt","unit":"u1"}"#))
        #expect(answer?["reason"] == .string("no_config"))
        daemon.send(SIGTERM)
        #expect(daemon.wait() == 0)
    }

    @Test func outsideSystemdNothingIsSentAndTheDaemonStillServes() throws {
        // NOTIFY_SOCKET unset: the daemon must neither fail nor wait for anything.
        let daemon = try DaemonFixture(config: exampleConfig)
        #expect(parseObject(try daemon.connect().request(#"{"op":"health"}"#))?["status"] == .string("serving"))
        #expect(!daemon.logs.contains("systemd.ready"))
        #expect(daemon.stop() == 0)
    }
}

extension ChildProcess {
    /// Polls until a connection to `socketPath` succeeds.
    func eventuallyListening(at socketPath: String) -> Bool {
        var connected = false
        _ = eventually {
            connected = (try? VariantConnection(socketPath: socketPath, timeoutSeconds: 1)) != nil
            return connected || !process.isRunning
        }
        return connected
    }
}
