// libFuzzer target: prompt templates and the variables they are rendered with. The input is a template, then
// NUL-separated values of the declared variables `a`, `b`, `c` (missing ones are not given). Invariants:
//  - compiling any text never crashes: it gives a template or problems;
//  - a compiled template with a render plan renders exactly what swift-mustache renders from it;
//  - the JSON string written from the plan (pre-escaped literals, escaped values) is the JSON string of the
//    rendered text, byte for byte, and parses back to it;
//  - the rendering does not depend on anything but the values (rendering twice gives the same text).
import FuzzSupport
import VariantCore

let declared = ["a", "b", "c"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRender(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count))
    let parts = input.split(separator: 0, maxSplits: declared.count, omittingEmptySubsequences: false)
    let source = String(decoding: parts.first ?? [], as: UTF8.self)
    guard let template = try? PromptTemplate(source, declaredVariables: declared) else { return 0 }
    var values: [String: String] = [:]
    for (index, part) in parts.dropFirst().prefix(declared.count).enumerated() {
        values[declared[index]] = String(decoding: part, as: UTF8.self)
    }
    let (rendered, reference) = template.render(values, declaredVariables: declared)
    if let rendered, rendered != reference {
        fuzzFail("the plan renders \(rendered.debugDescription), swift-mustache \(reference.debugDescription)", input: input)
    }
    guard template.render(values, declaredVariables: declared).mustache == reference else {
        fuzzFail("two renderings differ", input: input)
    }
    var planned = JSONWriter()
    template.writeRendered(values, declaredVariables: declared, into: &planned)
    var escaped = JSONWriter()
    escaped.string(reference)
    guard planned.bytes == escaped.bytes else {
        fuzzFail("the written JSON string differs from the escaped rendering", input: input)
    }
    guard case .string(let back)? = try? JSONParser.parse(planned.bytes), back == reference else {
        fuzzFail("the written JSON string does not parse back to the rendering", input: input)
    }
    return 0
}
