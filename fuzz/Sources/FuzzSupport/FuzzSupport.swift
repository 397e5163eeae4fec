// Shared helpers of the fuzz harnesses: failing loudly, reading the example configuration, and the invariant every
// response line must satisfy. No Foundation, so that the harnesses stay small and fast under ASan.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import VariantCore

/// Reports a broken invariant and aborts, which libFuzzer records as a crash (with the input saved).
public func fuzzFail(_ message: String, input: [UInt8]? = nil) -> Never {
    var text = "\n==== INVARIANT BROKEN: \(message)\n"
    if let input {
        text += "==== input (\(input.count) bytes): \(printable(input.prefix(2000)))\n"
    }
    var utf8 = Array(text.utf8)
    _ = utf8.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

/// Bytes as a readable, single-line string (non-printable bytes as \xNN).
public func printable(_ bytes: some Sequence<UInt8>) -> String {
    var result = ""
    for byte in bytes {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
            result.append(Character(Unicode.Scalar(byte)))
        } else {
            let hex = String(byte, radix: 16)
            result += "\\x" + (byte < 16 ? "0" : "") + hex
        }
    }
    return result
}

/// The whole contents of a file, or nil.
public func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if count <= 0 { break }
        result.append(contentsOf: chunk[0..<count])
    }
    return result
}

/// `examples/variantd.json` of the repository (or `$VARIANTD_FUZZ_CONFIG`), validated. Aborts if it is unusable:
/// a harness that silently fuzzed an empty configuration would miss most of the code.
public func loadExampleConfig() -> (bytes: [UInt8], document: ConfigDocument) {
    let path: String
    if let override = getenv("VARIANTD_FUZZ_CONFIG") {
        path = String(cString: override)
    } else {
        // #filePath is fuzz/Sources/FuzzSupport/FuzzSupport.swift; the example is at examples/variantd.json.
        var components = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        components.removeLast(4)
        path = components.joined(separator: "/") + "/examples/variantd.json"
    }
    guard let bytes = readFile(path) else { fuzzFail("cannot read the example configuration at \(path)") }
    do {
        return (bytes, try ConfigDocument.validate(bytes))
    } catch {
        fuzzFail("the example configuration at \(path) does not validate: \(error)")
    }
}

public let knownErrorCodes: Set<String> = Set(ProtocolError.Code.all.map(\.rawValue))

/// `2026-12-01T00:00:00Z`: inside the windows of the bundled example's experiments.
public let fuzzNow = Timestamp(rfc3339: "2026-12-01T00:00:00Z")!

/// Checks the invariant of one response (PROTOCOL.md section 3): exactly one line ending in "\n", valid JSON,
/// an object whose "ok" is a boolean, and when "ok" is false an "error" object whose "code" is a documented code
/// and whose "message" is a string. Returns the parsed response.
@discardableResult
public func checkResponse(_ output: [UInt8], request: [UInt8], context: String) -> JSONObject {
    guard output.last == UInt8(ascii: "\n") else {
        fuzzFail("\(context): response does not end in a newline: \(printable(output.suffix(300)))", input: request)
    }
    let newlines = output.lazy.filter { $0 == UInt8(ascii: "\n") }.count
    guard newlines == 1 else {
        fuzzFail("\(context): response has \(newlines) newlines, expected 1: \(printable(output.prefix(2000)))", input: request)
    }
    let value: JSONValue
    do {
        value = try JSONParser.parse(output.dropLast())
    } catch {
        fuzzFail("\(context): response is not JSON (\(error)): \(printable(output.prefix(2000)))", input: request)
    }
    guard case .object(let object) = value else {
        fuzzFail("\(context): response is not an object: \(printable(output.prefix(2000)))", input: request)
    }
    guard object.keys.first == "id" else {
        fuzzFail("\(context): response does not start with \"id\": \(printable(output.prefix(2000)))", input: request)
    }
    guard case .bool(let ok)? = object["ok"] else {
        fuzzFail("\(context): response has no boolean \"ok\": \(printable(output.prefix(2000)))", input: request)
    }
    if !ok {
        guard case .object(let error)? = object["error"], case .string(let code)? = error["code"],
            case .string? = error["message"]
        else {
            fuzzFail("\(context): error response without error.code/message: \(printable(output.prefix(2000)))", input: request)
        }
        guard knownErrorCodes.contains(code) else {
            fuzzFail("\(context): undocumented error code '\(code)': \(printable(output.prefix(2000)))", input: request)
        }
    }
    return object
}

/// One request line (without its newline) answered from a snapshot, checked with `checkResponse`.
@discardableResult
public func respondChecked(
    _ line: [UInt8], snapshot: ServingSnapshot, now: Timestamp, context: String
) -> JSONObject {
    var writer = JSONWriter()
    line.withUnsafeBufferPointer { Responder.respond(to: $0, snapshot: snapshot, now: now, context: .detached(), into: &writer) }
    return checkResponse(writer.bytes, request: line, context: context)
}
