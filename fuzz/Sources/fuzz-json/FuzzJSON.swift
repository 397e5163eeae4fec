// libFuzzer target: `JSONParser.parse` and `JSONWriter.value`. Invariants, for any bytes:
//  - parsing never crashes, whatever the depth limit;
//  - anything that parses, written back, parses again to an equal JSONValue (object members in order), and
//    writing that again gives the same bytes (the writer's output is a fixed point);
//  - the writer's output is one line (no raw control characters) and parses under the same depth limit;
//  - a value that parses with depth limit d also parses with any larger limit, to the same value.
import FuzzSupport
import VariantCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count))
    for depth in [JSONParser.defaultMaximumDepth, 64] {
        let value: JSONValue
        do {
            value = try JSONParser.parse(input, maximumDepth: depth)
        } catch {
            guard error.offset >= 0, error.offset <= input.count else {
                fuzzFail("error offset \(error.offset) outside the input of \(input.count) bytes", input: input)
            }
            continue
        }
        if depth == JSONParser.defaultMaximumDepth {
            // A larger limit accepts it too, as the same value.
            guard let deeper = try? JSONParser.parse(input, maximumDepth: 64), deeper == value else {
                fuzzFail("parses with depth 32 but not (or differently) with depth 64", input: input)
            }
        }
        var writer = JSONWriter()
        writer.value(value)
        let written = writer.bytes
        if let control = written.first(where: { $0 < 0x20 }) {
            fuzzFail("written JSON contains raw control byte \(control): \(printable(written.prefix(2000)))", input: input)
        }
        let reparsed: JSONValue
        do {
            reparsed = try JSONParser.parse(written, maximumDepth: depth)
        } catch {
            fuzzFail("written JSON does not parse (\(error)): \(printable(written.prefix(2000)))", input: input)
        }
        guard reparsed == value else {
            fuzzFail("round trip changed the value: \(printable(written.prefix(2000)))\n  before: \(value)\n  after: \(reparsed)", input: input)
        }
        var again = JSONWriter()
        again.value(reparsed)
        guard again.bytes == written else {
            fuzzFail("writing is not a fixed point: \(printable(written.prefix(1000))) vs \(printable(again.bytes.prefix(1000)))", input: input)
        }
    }
    return 0
}
