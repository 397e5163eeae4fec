import NIOCore
import NIOExtras
import Testing
import VariantCore
@testable import VariantDaemon

/// `NewlineFrameDecoder` cuts the same lines as NIOExtras' `LineBasedFrameDecoder`, which it replaces, however the
/// bytes are split into reads.
@Suite struct NewlineFrameDecoderTests {
    /// The lines each decoder cuts from `reads`, fed one after another through the processor the daemon uses.
    static func lines<Decoder: NIOSingleStepByteToMessageDecoder>(_ decoder: Decoder, reads: [[UInt8]]) throws -> [[UInt8]]
    where Decoder.InboundOut == ByteBuffer {
        let processor = NIOSingleStepByteToMessageProcessor(decoder, maximumBufferSize: 1 << 20)
        var lines: [[UInt8]] = []
        for read in reads {
            try processor.process(buffer: ByteBuffer(bytes: read)) { line in lines.append(Array(line.readableBytesView)) }
        }
        return lines
    }

    @Test func cutsTheSameLinesAsLineBasedFrameDecoderForAnySplitOfTheBytes() throws {
        // A fixed seed: the same cases on every run.
        var generator = SplitMix64(seed: 20261207)
        let alphabet: [UInt8] = [0x0A, 0x0D, 0x7B, 0x22, 0x61, 0x20, 0x00, 0xE9]
        for _ in 0..<2000 {
            let length = Int.random(in: 0...200, using: &generator)
            let bytes = (0..<length).map { _ in alphabet.randomElement(using: &generator)! }
            var reads: [[UInt8]] = []
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int.random(in: 1...40, using: &generator))
                reads.append(Array(bytes[start..<end]))
                start = end
            }
            let expected = try Self.lines(LineBasedFrameDecoder(), reads: reads)
            #expect(try Self.lines(NewlineFrameDecoder(), reads: reads) == expected, "reads: \(reads)")
        }
    }

    @Test func dropsTheNewlineAndACarriageReturnBeforeIt() throws {
        let reads = [Array("a\r\nb\n\r\n\nc\rd\n tail".utf8)]
        #expect(try Self.lines(NewlineFrameDecoder(), reads: reads) == ["a", "b", "", "", "c\rd"].map { Array($0.utf8) })
    }

    @Test func aLineSplitAcrossReadsComesOutWhole() throws {
        let reads = [Array(#"{"op":"#.utf8), Array(#""health"}"#.utf8), Array("\r".utf8), Array("\n".utf8)]
        #expect(try Self.lines(NewlineFrameDecoder(), reads: reads) == [Array(#"{"op":"health"}"#.utf8)])
    }
}
