import Logging
import NIOCore
import NIOPosix
import VariantCore

/// Splits the bytes of one connection into request lines and answers each through the core's `Responder`, in
/// order; a thin handler over `ConnectionStateMachine`, which decides when lines wait, when reading pauses, when
/// the connection closes and when its timers are due.
///
/// Lines are framed here, by `NewlineFrameDecoder` driven through a
/// `NIOSingleStepByteToMessageProcessor`, rather than by a `ByteToMessageHandler` in front of this handler: that
/// saves a pipeline hop, an `NIOAny` and a dynamic cast for every line, which is measurable at one request in
/// flight. Lines are answered synchronously on the connection's event loop (the core is pure and fast, and a hop
/// to another executor would double the round trip), and the answers to one read are written with one flush, so a
/// pipelining client gets batched writes. Every read of the connection comes to it and every write is its own, so
/// the idle timeout and back-pressure need no handler of their own.
///
/// The exception is a request whose answer waits for the state file to be written (`disable`, `enable`,
/// `new_phase`: an `fsync` or two): it is answered on `threadPool`, and the lines read meanwhile wait for it, so
/// that the connection's answers stay in order and its event loop keeps serving every other connection.
final class RequestLineHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let store: ServingStateStore
    private let requestContext: RequestContext
    private let logger: Logger
    private let metrics: DaemonMetrics?
    /// The bytes read so far, cut into lines; it throws `PayloadTooLargeError` once an unfinished line is longer
    /// than the limit (a complete line arriving in one read is checked in `channelRead`).
    private let lines: NIOSingleStepByteToMessageProcessor<NewlineFrameDecoder>
    private let maximumLineBytes: Int
    private var pending = JSONWriter(reservingCapacity: 4096)
    /// The buffer of the last answers written, kept for the next ones unless it grew past `reusedBufferCapacity`
    /// (as `pending` is: one large answer, such as a long `events` list, does not pin its memory to the connection).
    private var outbound: ByteBuffer?
    static let reusedBufferCapacity = 64 * 1024
    /// Where requests that write the state file are answered.
    private let threadPool: NIOThreadPool
    private var state: ConnectionStateMachine<ContinuousClock, ByteBuffer>
    private var idleCheck: Scheduled<Void>?
    private var stopCheck: Scheduled<Void>?

    /// How long a closing connection waits for its client to read the last answers (the stop timeout).
    static let stopTimeout: Duration = .seconds(5)

    /// - Parameter maximumLineBytes: the most bytes of an unfinished line kept; a longer line is answered with
    ///   `line_too_long` and the connection closed.
    /// - Parameter idleTimeout: a connection with nothing read or written for this long is closed; nil keeps it.
    /// - Parameter metrics: where each answered line is counted and timed; nil counts nothing.
    init(
        store: ServingStateStore, context: RequestContext, maximumLineBytes: Int, logger: Logger,
        idleTimeout: Duration? = nil, metrics: DaemonMetrics? = nil, threadPool: NIOThreadPool = .singleton
    ) {
        self.store = store
        self.threadPool = threadPool
        var context = context
        if let metrics { context.recordsRefused = { code, count in metrics.recordsRefused(code, count: count) } }
        self.requestContext = context
        self.lines = NIOSingleStepByteToMessageProcessor(NewlineFrameDecoder(), maximumBufferSize: maximumLineBytes)
        self.maximumLineBytes = maximumLineBytes
        self.logger = logger
        self.metrics = metrics
        self.state = ConnectionStateMachine(idleTimeout: idleTimeout, stopTimeout: Self.stopTimeout, clock: ContinuousClock())
    }

    // MARK: Events, handed to the state machine

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { perform(state.activated(), context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(state.activated(), context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.deactivated()
        cancelTimers()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state.bytesRead() else { return }
        do {
            try lines.process(buffer: unwrapInboundIn(data)) { line in
                // The processor bounds only the unfinished tail; a whole line read at once is bounded here, so
                // the limit holds for every line however the bytes arrive.
                guard line.readableBytes <= maximumLineBytes else { throw ByteToMessageDecoderError.PayloadTooLargeError() }
                answer(line, context: context)
            }
        } catch is ByteToMessageDecoderError.PayloadTooLargeError {
            switch state.lineTooLong() {
            case .answer(let then):
                answerLineTooLong()
                perform(then, context: context)
            case .hold(let then):
                perform(then, context: context)
            }
        } catch {
            // NewlineFrameDecoder throws nothing else; should that change, the connection closes like on any
            // other error.
            errorCaught(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending(context: context)
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if state.readRequested() { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if state.writabilityChanged(isWritable: context.channel.isWritable) { context.read() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Every line read so far has been answered: stop reading, and hang up once those answers are sent.
            perform(state.closeRequested(), context: context)
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client half-closed (shutdown(SHUT_WR)): every line it sent has been answered; send those answers,
            // then close. (Without half-closure NIO would close at once and cut the answers still queued.)
            perform(state.closeRequested(), context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.log(.debug, .connectionError, metadata: [.error: "\(error)"])
        perform(state.closeRequested(), context: context)
    }

    // MARK: Answering

    private func answerLineTooLong() {
        Responder.writeError(
            ProtocolError(.lineTooLong, "request line longer than the limit; closing the connection"), id: .null,
            into: &pending)
        metrics?.count(RequestOutcome(op: .unknown, error: .lineTooLong))
        logger.log(.notice, .connectionLineTooLong)
    }

    /// Answers one request line (without its `\n`; a `\r` before it is dropped too) into `pending`, or starts
    /// answering it on `threadPool` when its answer waits for the state file; holds it while another does.
    private func answer(_ line: ByteBuffer, context: ChannelHandlerContext) {
        guard state.lineRead(line) == .answer else { return }
        let snapshot = store.current
        let now = SystemClock.now()
        let started = metrics == nil ? nil : ContinuousClock.now
        let disposition = line.withUnsafeReadableBytes { raw in
            var bytes = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            if bytes.last == UInt8(ascii: "\r") { bytes = UnsafeBufferPointer(rebasing: bytes.dropLast()) }
            return Responder.respondUnlessDurable(to: bytes, snapshot: snapshot, now: now, context: requestContext, into: &pending)
        }
        switch disposition {
        case .answered(let outcome):
            if let metrics, let started { metrics.requestAnswered(outcome, duration: ContinuousClock.now - started) }
        case .durable(let request):
            answerOnThreadPool(request, snapshot: snapshot, now: now, context: context)
        }
    }

    /// Answers `request` on `threadPool`; its answer, then those to the lines read meanwhile, follow the answers
    /// written so far.
    private func answerOnThreadPool(
        _ request: Request, snapshot: ServingSnapshot, now: Timestamp, context: ChannelHandlerContext
    ) {
        state.durableStarted()
        flushPending(context: context)
        let requestContext = self.requestContext
        let started = ContinuousClock.now
        let answered = threadPool.runIfActive(eventLoop: context.eventLoop) { () -> ([UInt8], RequestOutcome) in
            var writer = JSONWriter(reservingCapacity: 512)
            let outcome = Responder.respond(durable: request, snapshot: snapshot, now: now, context: requestContext, into: &writer)
            return (writer.bytes, outcome)
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        answered.whenComplete { result in
            let (handler, context) = bound.value
            handler.finishAnswerOnThreadPool(result, request: request, started: started, context: context)
        }
    }

    private func finishAnswerOnThreadPool(
        _ result: Result<([UInt8], RequestOutcome), any Error>, request: Request, started: ContinuousClock.Instant,
        context: ChannelHandlerContext
    ) {
        guard state.durableFinished() else { return }
        switch result {
        case .success(let (answer, outcome)):
            pending.append(answer)
            metrics?.requestAnswered(outcome, duration: ContinuousClock.now - started)
        case .failure(let error):
            // The thread pool is not running (the process is stopping): the change was not made.
            Responder.writeError(
                ProtocolError(.unavailable, "the daemon is stopping and did not make the change; repeat the request once it is back"),
                id: request.id, into: &pending)
            metrics?.count(RequestOutcome(op: request.operation.op, error: .unavailable))
            logger.log(.notice, .connectionDurableRequestFailed, metadata: [.error: "\(error)"])
        }
        while let input = state.nextHeld() {
            switch input {
            case .line(let line): answer(line, context: context)
            case .tooLong: answerLineTooLong()
            }
        }
        flushPending(context: context)
        switch state.heldAnswered() {
        case .none: break
        case .read: context.read()
        case .close(let action): perform(action, context: context)
        }
    }

    // MARK: Actions

    private func perform(_ action: ConnectionStateMachine<ContinuousClock, ByteBuffer>.CloseAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .stopReading:
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        case .drain(let stopDeadline):
            // A close with writes still queued (a client reading slower than it writes) would cut them off, so the
            // connection closes after the last write, but no later than the stop timeout for a client that
            // stopped reading; the empty write gives it a write to wait for.
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            flushPending(context: context)
            write(context.channel.allocator.buffer(capacity: 0), context: context)
            schedule(.stop, at: stopDeadline, context: context)
        }
    }

    private func perform(_ action: ConnectionStateMachine<ContinuousClock, ByteBuffer>.TimerAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .schedule(let timer, let deadline):
            schedule(timer, at: deadline, context: context)
        case .closeIdle:
            logger.log(.debug, .connectionIdleClosed, metadata: [.idleTimeout: "\(state.idleTimeout ?? .zero)"])
            context.close(promise: nil)
        case .closeUnread(let writesPending):
            logger.log(.notice, .connectionStopTimeout, "the client did not read its last answers; closing",
                metadata: [.writesPending: "\(writesPending)"])
            context.close(promise: nil)
        }
    }

    private func schedule(
        _ timer: ConnectionStateMachine<ContinuousClock, ByteBuffer>.Timer, at deadline: ContinuousClock.Instant,
        context: ChannelHandlerContext
    ) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(in: TimeAmount(deadline - ContinuousClock.now)) {
            let (handler, context) = bound.value
            switch timer {
            case .idle: handler.idleCheck = nil
            case .stop: handler.stopCheck = nil
            }
            handler.perform(handler.state.timerDue(timer), context: context)
        }
        switch timer {
        case .idle:
            idleCheck?.cancel()
            idleCheck = task
        case .stop:
            stopCheck?.cancel()
            stopCheck = task
        }
    }

    private func cancelTimers() {
        idleCheck?.cancel()
        idleCheck = nil
        stopCheck?.cancel()
        stopCheck = nil
    }

    private func flushPending(context: ChannelHandlerContext) {
        guard !pending.bytes.isEmpty else { return }
        // Once NIO has sent the previous answers, this handler holds their buffer's only reference, so `clear()`
        // reuses its storage; if they are still queued, `clear()` allocates a new one.
        var buffer = outbound ?? context.channel.allocator.buffer(capacity: pending.bytes.count)
        buffer.clear()
        buffer.writeBytes(pending.bytes)
        outbound = buffer.capacity <= Self.reusedBufferCapacity ? buffer : nil
        if pending.bytes.capacity <= Self.reusedBufferCapacity {
            pending.reset()
        } else {
            pending = JSONWriter(reservingCapacity: 4096)
        }
        write(buffer, context: context)
    }

    /// Writes and flushes `buffer`; while closing, the connection closes when the last such write is done.
    private func write(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        switch state.answersWritten() {
        case .write:
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        case .writeTracked:
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in
                let (handler, context) = bound.value
                if handler.state.writeCompleted() { context.close(promise: nil) }
            }
        }
    }
}

/// Answers `too_many_connections` on a connection over the limit and closes it.
final class ConnectionRefusalHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        var writer = JSONWriter()
        Responder.writeError(
            ProtocolError(.tooManyConnections, "the daemon already serves \(limit) connections; try again later"),
            id: .null, into: &writer)
        let buffer = context.channel.allocator.buffer(bytes: writer.bytes)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in boundContext.value.close(promise: nil) }
    }
}
