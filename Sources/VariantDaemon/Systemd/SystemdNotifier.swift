import CSystemd
import Glibc
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VariantCore

/// Tells systemd how the daemon is doing, through `sd_notify(3)`: readiness, status, reloads, the watchdog and
/// stopping. Does nothing when the daemon was not started by systemd (`NOTIFY_SOCKET` unset).
///
/// - `READY=1` once the socket is bound (`serverListening()`) and a valid config is in use; or, when no config
///   has loaded by `readyTimeout`, without one: the daemon then answers `no_config` (clients serve their control),
///   which is better than systemd killing it at `TimeoutStartSec`; the `STATUS=` line says so.
/// - `STATUS=` (`SystemdStatus.text`) whenever a config is applied or rejected, or the state file's writes start
///   failing or succeed again (`statusChanged()`).
/// - `RELOADING=1` with `MONOTONIC_USEC=` when a forced reload begins and `READY=1` when it ends (through the
///   config source's hooks, `configHooks`).
/// - `WATCHDOG=1` every half `WATCHDOG_USEC`, only after every event loop of `eventLoops` ran a task, so a wedged
///   loop stops the pings.
/// - `STOPPING=1` as soon as graceful shutdown begins.
public final class SystemdNotifier: Service, Sendable {
    public struct Configuration: Sendable {
        /// How long after start the daemon declares readiness without a config (its socket bound); nil waits for
        /// a config however long it takes. Keep it below the unit's `TimeoutStartSec`.
        public var readyTimeout: Duration? = .seconds(30)

        public init() {}
    }

    private enum Event: Sendable {
        case listening
        case statusChanged
        case reloadStarted
        case reloadFinished
        case readyTimeout
    }

    private let configuration: Configuration
    private let store: ServingStateStore
    private let eventLoops: any EventLoopGroup
    private let logger: Logger
    private let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation

    /// - Parameter eventLoops: the group serving the socket (`SocketServer`'s), whose loops the watchdog probes.
    public init(
        configuration: Configuration, store: ServingStateStore,
        eventLoops: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.eventLoops = eventLoops
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: Event.self)
    }

    /// Whether systemd listens for notifications (`NOTIFY_SOCKET` is set).
    public static var isUnderSystemd: Bool {
        getenv("NOTIFY_SOCKET").map { $0.pointee != 0 } ?? false
    }

    /// The socket is bound and accepting: pass to `SocketServer`'s `onListening`.
    public func serverListening() {
        continuation.yield(.listening)
    }

    /// Something `SystemdStatus.text` shows changed besides the config (the state file's writes failing or
    /// succeeding again): sends the new `STATUS=`.
    public func statusChanged() {
        continuation.yield(.statusChanged)
    }

    /// The hooks a config source calls, so reloads and config changes reach systemd.
    public var configHooks: ConfigSourceHooks {
        let continuation = continuation
        return ConfigSourceHooks(
            reloadStarted: { continuation.yield(.reloadStarted) },
            reloadFinished: { continuation.yield(.reloadFinished) },
            applied: { _ in continuation.yield(.statusChanged) },
            rejected: { _ in continuation.yield(.statusChanged) })
    }

    public func run() async throws {
        guard Self.isUnderSystemd else {
            // Not started by systemd: nothing to tell; stay up so the group does not read an early return as an end.
            try? await gracefulShutdown()
            return
        }
        let watchdog = Self.watchdogTimeout()
        if let watchdog {
            logger.log(.info, .systemdWatchdog, metadata: [.watchdogInterval: "\(watchdog / 2)"])
        }
        let continuation = continuation
        let logger = logger
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                if let watchdog {
                    group.addTask { await self.pingWatchdog(every: watchdog / 2) }
                }
                if let timeout = configuration.readyTimeout {
                    group.addTask {
                        if (try? await Task.sleep(for: timeout)) != nil { continuation.yield(.readyTimeout) }
                    }
                }
                await handleEvents()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            Self.notify("STOPPING=1\nSTATUS=stopping: answering the requests in flight", logger: logger)
            continuation.finish()
        }
    }

    /// Turns events into notifications, in order, until graceful shutdown ends the stream.
    private func handleEvents() async {
        var listening = false
        var ready = false
        var timedOut = false
        var reloading = false
        for await event in events {
            switch event {
            case .listening: listening = true
            case .readyTimeout: timedOut = true
            case .statusChanged: break
            case .reloadStarted:
                // Before READY=1 a reload is part of starting up; systemd only knows reloads of a ready service.
                guard ready else { continue }
                reloading = true
                Self.notify(
                    "RELOADING=1\nMONOTONIC_USEC=\(Self.monotonicMicroseconds())\nSTATUS=reloading the configuration from \(store.current.source)",
                    logger: logger)
                continue
            case .reloadFinished:
                guard reloading else { continue }
                reloading = false
                Self.notify("READY=1\nSTATUS=\(status())", logger: logger)
                continue
            }
            if !ready, listening, timedOut || store.current.config != nil {
                ready = true
                let text = status()
                Self.notify("READY=1\nSTATUS=\(text)", logger: logger)
                logger.log(.info, .systemdReady, metadata: [.status: "\(text)"])
            } else if ready {
                Self.notify("STATUS=\(status())", logger: logger)
            }
        }
    }

    private func status() -> String {
        SystemdStatus.text(for: store.current, now: SystemClock.now())
    }

    /// Pings every `interval` while every event loop answers within half of it; logs once per change of state.
    private func pingWatchdog(every interval: Duration) async {
        var healthy = true
        while (try? await Task.sleep(for: interval)) != nil {
            let responsive = await EventLoopProbe.allRespond(eventLoops, within: interval / 2)
            if responsive {
                Self.notify("WATCHDOG=1", logger: logger)
            }
            if responsive != healthy {
                healthy = responsive
                if responsive {
                    logger.log(.notice, .systemdWatchdogResumed)
                } else {
                    logger.log(.error, .systemdWatchdogMissed, "an event loop did not answer; not pinging the watchdog")
                }
            }
        }
    }

    /// The watchdog timeout systemd set for this process (`WATCHDOG_USEC`, `WATCHDOG_PID`), or nil.
    static func watchdogTimeout() -> Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds))
    }

    static func monotonicMicroseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
    }

    private static func notify(_ state: String, logger: Logger) {
        let result = sd_notify(0, state)
        if result < 0 {
            logger.log(.debug, .systemdNotifyFailed,
                metadata: [.error: "\(String(cString: strerror(-result)))", .state: "\(state.prefix(40))"])
        }
    }
}
