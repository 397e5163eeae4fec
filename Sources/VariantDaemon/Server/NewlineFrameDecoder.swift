import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Cuts a connection's bytes into lines: each ends at a newline, which is dropped with a carriage return before it
/// (the same frames as NIOExtras' `LineBasedFrameDecoder`).
///
/// Written here for one reason: finding the newline. `LineBasedFrameDecoder` looks for it with
/// `firstIndex(of:)` over the buffer's byte view, about seven instructions a byte (524 of the daemon's ~13,000
/// instructions per pipelined `assign`, more for a long `render`); `memchr` reads a word or a vector at a time.
/// Like it, a search that finds no newline is not repeated over the same bytes when more arrive.
struct NewlineFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    /// How many of the readable bytes are known to hold no newline.
    private var scanned = 0

    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let newline: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard bytes.count > scanned, let base = bytes.baseAddress else { return nil }
            guard let found = memchr(base + scanned, 0x0A, bytes.count - scanned) else { return nil }
            return base.distance(to: UnsafeRawPointer(found))
        }
        guard let newline else {
            scanned = buffer.readableBytes
            return nil
        }
        scanned = 0
        let dropsCarriageReturn = newline > 0 && buffer.getInteger(at: buffer.readerIndex + newline - 1, as: UInt8.self) == 0x0D
        let line = buffer.readSlice(length: dropsCarriageReturn ? newline - 1 : newline)
        buffer.moveReaderIndex(forwardBy: dropsCarriageReturn ? 2 : 1)
        return line
    }

    /// At the end of the input, a last line without its newline is not a line (nor is it for the daemon, which
    /// answers only whole lines).
    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
