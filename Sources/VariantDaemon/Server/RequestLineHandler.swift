import Logging
import NIOCore
import VariantCore

/// Answers each request line of one connection through the core's `Responder`, in order.
///
/// Lines are answered synchronously on the connection's event loop (the core is pure and fast, and a hop to
/// another executor would double the round trip), and the answers to one read are written with one flush, so a
/// pipelining client gets batched writes.
final class RequestLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let store: ServingStateStore
    private let requestContext: RequestContext
    private let logger: Logger
    private var pending = JSONWriter(reservingCapacity: 4096)
    /// Set by graceful shutdown: the connection closes once every answer written so far has been sent.
    private var quiescing = false
    /// Writes not yet sent while quiescing; the connection closes when this reaches zero.
    private var writesInFlight = 0

    init(store: ServingStateStore, context: RequestContext, logger: Logger) {
        self.store = store
        self.requestContext = context
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let snapshot = store.current
        let now = SystemClock.now()
        line.withUnsafeReadableBytes { raw in
            var bytes = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            if bytes.last == UInt8(ascii: "\r") { bytes = UnsafeBufferPointer(rebasing: bytes.dropLast()) }
            Responder.respond(to: bytes, snapshot: snapshot, now: now, context: requestContext, into: &pending)
        }
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
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is ByteToMessageDecoderError.PayloadTooLargeError {
            Responder.writeError(
                ProtocolError(.lineTooLong, "request line longer than the limit; closing the connection"), id: .null,
                into: &pending)
            logger.notice("connection.line_too_long")
        } else {
            logger.debug("connection.error", metadata: ["error": "\(error)"])
        }
        closeAfterPendingAnswers(context: context)
    }

    /// Stops reading and closes the connection once every answer written so far has been sent. A close with
    /// writes still queued (a client reading slower than it writes) would cut them off, so this waits for the last
    /// write, but no longer than `quiesceGracePeriod` for a client that stopped reading.
    private func closeAfterPendingAnswers(context: ChannelHandlerContext) {
        guard !quiescing else { return }
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
        let buffer = context.channel.allocator.buffer(bytes: pending.bytes)
        pending.reset()
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
