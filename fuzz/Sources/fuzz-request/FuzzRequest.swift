// libFuzzer target: one request line from an untrusted client, answered by `Responder.respond`.
//
// Every input is answered twice, from a snapshot serving the bundled example configuration (so assignment and
// prompt code is reached) and from a snapshot with no configuration and a recorded load failure. Invariants:
//  - the answer is exactly one line ending in "\n", valid JSON, an object starting with "id" whose "ok" is a
//    boolean, and when "ok" is false "error.code" is a documented code (ProtocolError.Code.all);
//  - the "id" is echoed: the request's id when the line is an object whose id is a string, number or null
//    (absent = null), otherwise null with "ok": false;
//  - names are compared as bytes (PROTOCOL.md: no Unicode normalisation): a successful answer names exactly
//    the experiment and prompt the request asked for, byte for byte;
//  - the answer is deterministic (the same line gives the same bytes).
import FuzzSupport
import VariantCore

let example = loadExampleConfig()
let configuredSnapshot = ServingSnapshot(
    config: LoadedConfig(
        document: example.document, version: LoadedConfig.version(of: example.bytes),
        source: "file:/etc/variantd/config.json",
        loadedAt: Timestamp(secondsSinceEpoch: fuzzNow.secondsSinceEpoch - 61.25)),
    source: "file:/etc/variantd/config.json", lastError: nil,
    startedAt: Timestamp(secondsSinceEpoch: fuzzNow.secondsSinceEpoch - 3600.5))
let unconfiguredSnapshot = ServingSnapshot(
    config: nil, source: "file:/etc/variantd/\"odd\"\nname.json",
    lastError: ConfigLoadFailure(
        code: "invalid_config", message: "invalid configuration (1 problem)\u{0}\u{1F}", at: fuzzNow,
        problems: [ValidationIssue(path: "$.experiments[0].\"x\\\u{7}", code: .weightsSum, message: "sum\t\r\n")]),
    startedAt: fuzzNow)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let line = count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count))

    // What the id echo must be, decided independently of Request.parse.
    var expectedID: JSONValue? = .null  // nil: the request's id is not echoable, the answer's id must be null
    var isObject = false
    var request = JSONObject()
    if case .object(let object)? = try? JSONParser.parse(line) {
        isObject = true
        request = object
        switch object["id"] ?? .null {
        case let id where id == .null || id.stringValue != nil || id.numberValue != nil: expectedID = id
        default: expectedID = nil
        }
    }

    for (name, snapshot) in [("configured", configuredSnapshot), ("unconfigured", unconfiguredSnapshot)] {
        let response = respondChecked(line, snapshot: snapshot, now: fuzzNow, context: name)
        let id = response["id"] ?? .null
        let ok = response["ok"]?.boolValue ?? false
        if let expectedID {
            guard id == expectedID else {
                fuzzFail("\(name): id not echoed: expected \(expectedID), got \(id)", input: line)
            }
        } else {
            guard id == .null, !ok else {
                fuzzFail("\(name): a non-scalar id must give an error with id null, got ok=\(ok) id=\(id)", input: line)
            }
        }
        if !isObject {
            let code = response["error"]?.objectValue?["code"]?.stringValue
            guard !ok, code == "invalid_json" || code == "invalid_request" else {
                fuzzFail("\(name): a line that is not a JSON object must give invalid_json/invalid_request, got \(code ?? "ok")", input: line)
            }
        }
        if ok {
            for key in ["experiment", "prompt"] {
                guard case .string(let asked)? = request[key] else { continue }
                guard case .string(let answered)? = response[key], answered.utf8.elementsEqual(asked.utf8) else {
                    fuzzFail("\(name): asked for \(key) '\(asked)', answered for \(response[key] ?? .null)", input: line)
                }
            }
        }
        // Determinism: equal requests give equal bytes.
        var first = JSONWriter()
        var second = JSONWriter()
        line.withUnsafeBufferPointer { buffer in
            Responder.respond(to: buffer, snapshot: snapshot, now: fuzzNow, context: .detached(), into: &first)
            Responder.respond(to: buffer, snapshot: snapshot, now: fuzzNow, context: .detached(), into: &second)
        }
        guard first.bytes == second.bytes else {
            fuzzFail("\(name): two answers to the same line differ", input: line)
        }
    }
    return 0
}
