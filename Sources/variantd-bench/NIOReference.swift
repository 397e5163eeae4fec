import Foundation
import NIOCore
import NIOExtras
import NIOPosix

/// The least a SwiftNIO server costs per request on this machine: a connection pipeline like variantd's (NIO's
/// `BackPressureHandler`, where variantd's one handler pauses reading itself, then one handler that frames lines
/// with NIOExtras' `LineBasedFrameDecoder` and writes the answers to one read with one flush) answering every line
/// with udsfloor's fixed answer and parsing nothing.
///
/// The benchmark runs it in a child process, as it runs variantd, and measures it with the same client. Its
/// figures split the distance from the floor in two: what any NIO server pays for a round trip (event loop,
/// pipeline, buffers), and what variantd adds to that (the core, the answer).
enum NIOReferenceServer {
    /// udsfloor.c's answer, byte for byte.
    static let answer = Array(
        #"{"id":1,"ok":true,"experiment":"checkout-prompt","variant":"treatment","prompt":"checkout","prompt_version":4,"enrolled":true,"reason":"hash"}"#
            .utf8) + [UInt8(ascii: "\n")]

    /// Serves on a new socket at `socketPath` until the process is terminated.
    static func serve(at socketPath: String) throws -> Never {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(BackPressureHandler())
                    try channel.pipeline.syncOperations.addHandler(FixedAnswerHandler())
                }
            }
            .bind(unixDomainSocketPath: socketPath, cleanupExistingSocketFile: true)
            .wait()
        try channel.closeFuture.wait()
        exit(0)
    }
}

/// Answers every complete line with `NIOReferenceServer.answer`; the answers to one read leave in one write.
private final class FixedAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let lines = NIOSingleStepByteToMessageProcessor(LineBasedFrameDecoder(), maximumBufferSize: 65536)
    private var pendingAnswers = 0
    private var outbound: ByteBuffer?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try lines.process(buffer: unwrapInboundIn(data)) { _ in pendingAnswers += 1 }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard pendingAnswers > 0 else { return }
        var buffer = outbound ?? context.channel.allocator.buffer(capacity: 4096)
        buffer.clear()
        for _ in 0..<pendingAnswers { buffer.writeBytes(NIOReferenceServer.answer) }
        pendingAnswers = 0
        outbound = buffer
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }
}
