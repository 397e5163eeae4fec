import Logging
import NIOCore

/// When an idle connection is closed: after `timeout` with nothing read from it and nothing written to it. The
/// clock is passed in, so tests step time instead of sleeping (hummingbird's `HTTPConnectionStateHandler`).
struct IdleTimeoutStateMachine<C: Clock> where C.Duration == Duration {
    let timeout: Duration
    let clock: C
    private(set) var lastActivity: C.Instant
    private(set) var isActive = false

    init(timeout: Duration, clock: C) {
        self.timeout = timeout
        self.clock = clock
        self.lastActivity = clock.now
    }

    enum Action: Equatable {
        /// Check again at this instant.
        case schedule(deadline: C.Instant)
        /// The connection has been idle for `timeout`: close it.
        case close
        case none
    }

    /// The connection became active: the first check is due one timeout from now.
    mutating func activated() -> Action {
        isActive = true
        lastActivity = clock.now
        return .schedule(deadline: lastActivity.advanced(by: timeout))
    }

    /// Bytes were read or written.
    mutating func activity() {
        lastActivity = clock.now
    }

    /// A scheduled check came due: close if idle for the whole timeout, else check again when it would be.
    mutating func checkDue() -> Action {
        guard isActive else { return .none }
        let deadline = lastActivity.advanced(by: timeout)
        guard clock.now >= deadline else { return .schedule(deadline: deadline) }
        isActive = false
        return .close
    }

    mutating func deactivated() {
        isActive = false
    }
}

/// Closes a connection idle for the daemon's `--idle-timeout`, so idle clients cannot hold every connection
/// slot; a thin handler over `IdleTimeoutStateMachine`. It sits first in the pipeline and sees every read and
/// write, whatever its type.
final class IdleTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var state: IdleTimeoutStateMachine<ContinuousClock>
    private var scheduled: Scheduled<Void>?
    private let logger: Logger

    init(timeout: Duration, logger: Logger) {
        self.state = IdleTimeoutStateMachine(timeout: timeout, clock: ContinuousClock())
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { perform(state.activated(), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        scheduled?.cancel()
        scheduled = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(state.activated(), context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.deactivated()
        scheduled?.cancel()
        scheduled = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        state.activity()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        state.activity()
        context.write(data, promise: promise)
    }

    private func perform(_ action: IdleTimeoutStateMachine<ContinuousClock>.Action, context: ChannelHandlerContext) {
        switch action {
        case .schedule(let deadline):
            scheduled?.cancel()
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            scheduled = context.eventLoop.scheduleTask(in: TimeAmount(deadline - ContinuousClock.now)) {
                let (handler, context) = bound.value
                handler.scheduled = nil
                handler.perform(handler.state.checkDue(), context: context)
            }
        case .close:
            logger.debug("connection.idle_closed", metadata: ["idle.timeout": "\(state.timeout)"])
            context.close(promise: nil)
        case .none:
            break
        }
    }
}
