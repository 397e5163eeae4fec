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
            // Every line read so far has been answered; send the answers and hang up.
            flushPending(context: context)
            context.close(promise: nil)
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
        flushPending(context: context)
        context.close(promise: nil)
    }

    private func flushPending(context: ChannelHandlerContext) {
        guard !pending.bytes.isEmpty else { return }
        let buffer = context.channel.allocator.buffer(bytes: pending.bytes)
        pending.reset()
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
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
