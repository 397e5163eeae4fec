import Glibc
import Logging
import NIOCore

/// Which new connections are served and which are answered `too_many_connections`, and when that is logged.
///
/// Up to `limit` connections are served; one more slot is kept for admin peers (root, the daemon's user, the admin
/// group), so `variantctl` still gets in when clients hold every other one. Refusals come in episodes: the first
/// refusal of an episode is logged and the rest counted; an episode ends once `quietPeriod` passed without a
/// refusal, and its count is logged then (at the next connection), so a limit that stays reached while slots come
/// and go is one episode, not a line per refusal (1,954 refusals logged 1,954 warnings before).
struct ConnectionAdmission: Sendable, Equatable {
    /// How long without a refusal ends an episode.
    static let quietPeriod: Duration = .seconds(5)

    /// Connections served at once, besides the admin slot.
    var limit: Int
    /// Connections being served, the admin slot included.
    private(set) var open = 0
    /// Refusals in the current episode.
    private(set) var refusedInEpisode = 0
    private(set) var lastRefusal: ContinuousClock.Instant?

    init(limit: Int) {
        self.limit = limit
    }

    enum Decision: Equatable {
        /// Serve it. `endedEpisode`: the refusals of an episode that ended (log them).
        case serve(endedEpisode: Int?)
        /// Serve it in the admin slot.
        case serveInAdminSlot
        /// Only the admin slot is free: say whether the peer is an admin (`admit` again).
        case askWhetherAdmin
        /// Answer `too_many_connections` and close. `startsEpisode`: the first refusal of an episode (log it);
        /// `endedEpisode`: the refusals of an earlier episode that had ended (log them).
        case refuse(startsEpisode: Bool, endedEpisode: Int?)
    }

    /// - Parameter isAdmin: whether the peer may run admin ops; nil when not known yet (it costs a read of the
    ///   peer's groups, so it is asked for only when the admin slot is the only one left).
    mutating func admit(isAdmin: Bool?, now: ContinuousClock.Instant) -> Decision {
        if open < limit {
            open += 1
            return .serve(endedEpisode: endEpisodeIfQuiet(now))
        }
        if open == limit {
            switch isAdmin {
            case nil: return .askWhetherAdmin
            case true?:
                open += 1
                return .serveInAdminSlot
            case false?: break
            }
        }
        let ended = endEpisodeIfQuiet(now)
        refusedInEpisode += 1
        lastRefusal = now
        return .refuse(startsEpisode: refusedInEpisode == 1, endedEpisode: ended)
    }

    /// A served connection closed.
    mutating func closed() {
        open -= 1
    }

    /// Ends the episode if `quietPeriod` passed since its last refusal, and returns its refusals.
    private mutating func endEpisodeIfQuiet(_ now: ContinuousClock.Instant) -> Int? {
        guard refusedInEpisode > 0, let lastRefusal, now - lastRefusal >= Self.quietPeriod else { return nil }
        defer {
            refusedInEpisode = 0
            self.lastRefusal = nil
        }
        return refusedInEpisode
    }
}

/// Waits before accepting again when an accept fails for want of descriptors (EMFILE, ENFILE) or memory, and logs
/// such a run of failures once when it starts and once when it is over (no failure for `quietPeriod`).
///
/// NIO retries a failed accept at once for as long as connections wait in the backlog (the listening socket stays
/// readable and the read stays pending, so `AcceptBackoffHandler`, which delays the next `read()`, is never asked):
/// that spun a CPU at 100% and logged nothing. So this stops watching the listening socket (`autoRead` off) for
/// `backoff`, then accepts again.
final class AcceptBackoff: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    /// How long to wait before accepting again after a failed accept.
    static let backoff: TimeAmount = .milliseconds(100)
    /// How long without a failed accept ends an episode.
    static let quietPeriod: TimeAmount = .seconds(5)

    private let logger: Logger
    /// Failed accepts in the current episode, and when the last one failed.
    private var failures = 0
    private var lastFailure: NIODeadline?
    private var resume: Scheduled<Void>?
    private var endCheck: Scheduled<Void>?

    init(logger: Logger) {
        self.logger = logger
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let failure = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(failure.errnoCode) else {
            return context.fireErrorCaught(error)
        }
        failures += 1
        lastFailure = .now()
        if failures == 1 {
            logger.log(
                .error, .connectionAcceptFailed, "out of descriptors; new connections wait in the backlog, accepted again every 100 ms",
                metadata: [.error: "\(failure)"])
        }
        guard resume == nil else { return }
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        resume = context.eventLoop.scheduleTask(in: Self.backoff) {
            let (handler, context) = bound.value
            handler.resume = nil
            try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let lastFailure, endCheck == nil { scheduleEndCheck(context: context, at: lastFailure + Self.quietPeriod) }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    private func cancelTimers() {
        resume?.cancel()
        resume = nil
        endCheck?.cancel()
        endCheck = nil
    }

    private func scheduleEndCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        endCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = bound.value
            handler.endCheck = nil
            guard let last = handler.lastFailure else { return }
            guard NIODeadline.now() >= last + Self.quietPeriod else {
                return handler.scheduleEndCheck(context: context, at: last + Self.quietPeriod)
            }
            handler.logger.log(.notice, .connectionAcceptResumed, metadata: [.acceptFailures: "\(handler.failures)"])
            handler.failures = 0
            handler.lastFailure = nil
        }
    }
}
