import VariantCore

/// Decodes request lines as the daemon does and prints each decode's canonical form (`Request.canonicalDecode`),
/// for the differential check against the protocol's Python reference (`fuzz/differential-requests`).
///
/// Input: one request line per input line, hex-encoded, so that any bytes (a NUL, invalid UTF-8, a `\r`) pass
/// unchanged. Output: one line of compact JSON per input line, in order.
@main
struct Decode {
    static func main() {
        var writer = JSONWriter(reservingCapacity: 1 << 16)
        while let hex = readLine(strippingNewline: true) {
            let line = bytes(fromHex: hex)
            let canonical = line.withUnsafeBufferPointer { Request.canonicalDecode($0) }
            writer.value(canonical)
            writer.raw("\n")
            if writer.bytes.count > 1 << 15 { flush(&writer) }
        }
        flush(&writer)
    }

    static func bytes(fromHex hex: String) -> [UInt8] {
        func nibble(_ digit: UInt8) -> UInt8 {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: fatalError("variantd-decode: '\(hex)' is not hex")
            }
        }
        let digits = Array(hex.utf8)
        precondition(digits.count % 2 == 0, "variantd-decode: an odd number of hex digits")
        return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
    }

    static func flush(_ writer: inout JSONWriter) {
        print(String(decoding: writer.bytes, as: UTF8.self), terminator: "")
        writer.reset()
    }
}
