import Logging
import NIOCore
import NIOEmbedded
import Testing
import VariantCore
@testable import VariantDaemon

/// Framing and answering on an `EmbeddedChannel`: the same pipeline the server builds, with bytes fed by hand.
@Suite struct RequestLineHandlerTests {
    static func store() throws -> ServingStateStore {
        let bytes = Array(exampleConfig.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "test",
            loadedAt: SystemClock.now())
        return ServingStateStore(ServingSnapshot(config: config, source: "test", lastError: nil, startedAt: SystemClock.now()))
    }

    static func channel(maximumLineBytes: Int = 65536) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            RequestLineHandler(
                store: try store(), context: .detached(), maximumLineBytes: maximumLineBytes, logger: Logger(label: "test")))
        return channel
    }

    /// Everything written back, as lines.
    static func answers(_ channel: EmbeddedChannel) throws -> [String] {
        var text = ""
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func linesSplitAcrossReadsAreAnsweredOnceCompleteAndInOrder() throws {
        let channel = try Self.channel()
        let input = Array(
            (#"{"id":1,"op":"health"}"# + "\r\n" + #"{"id":2,"op":"assign","experiment":"checkout-prompt","unit":"u"}"# + "\n").utf8)
        for byte in input {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            channel.pipeline.fireChannelReadComplete()
        }
        let answers = try Self.answers(channel)
        #expect(answers.count == 2)
        #expect(parseObject(answers[0])?["id"] == .number(1))
        #expect(parseObject(answers[1])?["id"] == .number(2))
        #expect(parseObject(answers[1])?["ok"] == .bool(true))
    }

    @Test func answersToOneReadLeaveInOneWrite() throws {
        let channel = try Self.channel()
        let batch = (0..<50).map { #"{"id":\#($0),"op":"health"}"# + "\n" }.joined()
        try channel.writeInbound(ByteBuffer(string: batch))
        channel.pipeline.fireChannelReadComplete()
        var writes = 0
        var lines = 0
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            writes += 1
            lines += buffer.readableBytesView.filter { $0 == UInt8(ascii: "\n") }.count
        }
        #expect(writes == 1)
        #expect(lines == 50)
    }

    @Test func anOversizedLineIsAnsweredAndTheChannelClosed() throws {
        let channel = try Self.channel(maximumLineBytes: 1024)
        // The handler answers the decoder's error itself, so nothing reaches the end of the pipeline.
        try channel.writeInbound(ByteBuffer(string: String(repeating: "x", count: 5000)))
        let answers = try Self.answers(channel)
        #expect(parseObject(answers.first ?? "")?["error"]?.objectValue?["code"] == .string("line_too_long"))
        #expect(!channel.isActive)
    }
}
