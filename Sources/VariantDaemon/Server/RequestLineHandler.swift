import Logging
import NIOCore
import NIOExtras
import NIOPosix
import VariantCore

/// Splits the bytes of one connection into request lines and answers each through the core's `Responder`, in
/// order.
///
/// Lines are framed here, by NIOExtras' `LineBasedFrameDecoder` driven through a
/// `NIOSingleStepByteToMessageProcessor`, rather than by a `ByteToMessageHandler` in front of this handler: that
/// saves a pipeline hop, an `NIOAny` and a dynamic cast for every line, which is measurable at one request in
/// flight. Lines are answered synchronously on the connection's event loop (the core is pure and fast, and a hop
/// to another executor would double the round trip), and the answers to one read are written with one flush, so a
/// pipelining client gets batched writes.
///
/// The exception is a request whose answer waits for the state file to be written (`disable`, `enable`,
/// `new_phase`: an `fsync` or two): it is answered on `threadPool`, and the lines read meanwhile wait for it, so
/// that the connection's answers stay in order and its event loop keeps serving every other connection.
final class RequestLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let store: ServingStateStore
    private let requestContext: RequestContext
    private let logger: Logger
    private let metrics: DaemonMetrics?
    /// The bytes read so far, cut into lines; it throws `PayloadTooLargeError` once an unfinished line is longer
    /// than the limit (a complete line arriving in one read is checked in `channelRead`).
    private let lines: NIOSingleStepByteToMessageProcessor<LineBasedFrameDecoder>
    private let maximumLineBytes: Int
    private var pending = JSONWriter(reservingCapacity: 4096)
    /// The buffer of the last answers written, kept for the next ones unless it grew past `reusedBufferCapacity`
    /// (as `pending` is: one large answer, such as a long `events` list, does not pin its memory to the connection).
    private var outbound: ByteBuffer?
    static let reusedBufferCapacity = 64 * 1024
    /// Set once a line was too long: the rest of the connection's input is dropped.
    private var discardingInput = false
    /// Set by graceful shutdown: the connection closes once every answer written so far has been sent.
    private var quiescing = false
    /// Writes not yet sent while quiescing; the connection closes when this reaches zero.
    private var writesInFlight = 0
    /// Where requests that write the state file are answered.
    private let threadPool: NIOThreadPool
    /// Set while such a request is answered on `threadPool`; the input read meanwhile waits in `held`, in order.
    private var durableInFlight = false
    private var held = CircularBuffer<HeldInput>()
    /// Set when the connection was to close while a request was answered on `threadPool`: it closes after that
    /// answer and those to the lines held.
    private var closeWhenDurableDone = false
    /// Set once the channel is inactive: an answer from `threadPool` then has nowhere to go.
    private var ended = false

    /// Input read while a request is answered on `threadPool`.
    private enum HeldInput {
        case line(ByteBuffer)
        case tooLong
    }

    /// - Parameter maximumLineBytes: the most bytes of an unfinished line kept; a longer line is answered with
    ///   `line_too_long` and the connection closed.
    /// - Parameter metrics: where each answered line is counted and timed; nil counts nothing.
    init(
        store: ServingStateStore, context: RequestContext, maximumLineBytes: Int, logger: Logger,
        metrics: DaemonMetrics? = nil, threadPool: NIOThreadPool = .singleton
    ) {
        self.store = store
        self.threadPool = threadPool
        var context = context
        if let metrics { context.recordsRefused = { code, count in metrics.recordsRefused(code, count: count) } }
        self.requestContext = context
        self.lines = NIOSingleStepByteToMessageProcessor(LineBasedFrameDecoder(), maximumBufferSize: maximumLineBytes)
        self.maximumLineBytes = maximumLineBytes
        self.logger = logger
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discardingInput else { return }
        do {
            try lines.process(buffer: unwrapInboundIn(data)) { line in
                // The processor bounds only the unfinished tail; a whole line read at once is bounded here, so
                // the limit holds for every line however the bytes arrive.
                guard line.readableBytes <= maximumLineBytes else { throw ByteToMessageDecoderError.PayloadTooLargeError() }
                answer(line, context: context)
            }
        } catch is ByteToMessageDecoderError.PayloadTooLargeError {
            discardingInput = true
            if durableInFlight {
                held.append(.tooLong)
            } else {
                answerLineTooLong()
            }
            closeAfterPendingAnswers(context: context)
        } catch {
            // LineBasedFrameDecoder throws nothing else; should that change, the connection closes like on any
            // other error.
            errorCaught(context: context, error: error)
        }
    }

    private func answerLineTooLong() {
        Responder.writeError(
            ProtocolError(.lineTooLong, "request line longer than the limit; closing the connection"), id: .null,
            into: &pending)
        metrics?.count(RequestOutcome(op: .unknown, error: .lineTooLong))
        logger.notice("connection.line_too_long")
    }

    /// Answers one request line (without its `\n`; a `\r` before it is dropped too) into `pending`, or starts
    /// answering it on `threadPool` when its answer waits for the state file; holds it while another does.
    private func answer(_ line: ByteBuffer, context: ChannelHandlerContext) {
        guard !durableInFlight else { return held.append(.line(line)) }
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
        durableInFlight = true
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
        durableInFlight = false
        guard !ended else { return }
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
            logger.notice("connection.durable_request_failed", metadata: ["error": "\(error)"])
        }
        while !durableInFlight, let input = held.popFirst() {
            switch input {
            case .line(let line): answer(line, context: context)
            case .tooLong: answerLineTooLong()
            }
        }
        flushPending(context: context)
        if !durableInFlight, closeWhenDurableDone {
            closeWhenDurableDone = false
            closeAfterPendingAnswers(context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ended = true
        context.fireChannelInactive()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushPending(context: context)
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Every line read so far has been answered: stop reading, and hang up once those answers are sent.
            closeAfterPendingAnswers(context: context)
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            // The client half-closed (shutdown(SHUT_WR)): every line it sent has been answered; send those answers,
            // then close. (Without half-closure NIO would close at once and cut the answers still queued.)
            closeAfterPendingAnswers(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection.error", metadata: ["error": "\(error)"])
        closeAfterPendingAnswers(context: context)
    }

    /// Stops reading and closes the connection once every answer written so far has been sent. A close with
    /// writes still queued (a client reading slower than it writes) would cut them off, so this waits for the last
    /// write, but no longer than `quiesceGracePeriod` for a client that stopped reading.
    private func closeAfterPendingAnswers(context: ChannelHandlerContext) {
        guard !quiescing else { return }
        if durableInFlight {
            // Its answer, and those to the lines held, go out first.
            closeWhenDurableDone = true
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
            return
        }
        quiescing = true
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        flushPending(context: context)
        track(context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))), context)
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: Self.quiesceGracePeriod) {
            let (handler, context) = bound.value
            guard handler.writesInFlight > 0 else { return }
            handler.logger.notice(
                "connection.stop_timeout: the client did not read its last answers; closing",
                metadata: ["writes.pending": "\(handler.writesInFlight)"])
            context.close(promise: nil)
        }
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
        if quiescing {
            track(context.writeAndFlush(wrapOutboundOut(buffer)), context)
        } else {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
    }

    /// How long a quiescing connection waits for its client to read the last answers.
    static let quiesceGracePeriod: TimeAmount = .seconds(5)

    /// Counts a write made while quiescing and closes the connection when the last one is done.
    private func track(_ write: EventLoopFuture<Void>, _ context: ChannelHandlerContext) {
        writesInFlight += 1
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        write.whenComplete { _ in
            let (handler, context) = bound.value
            handler.writesInFlight -= 1
            if handler.writesInFlight == 0 { context.close(promise: nil) }
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
