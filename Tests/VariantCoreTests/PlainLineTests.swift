import PropertyBased
import Testing
@testable import VariantCore

/// The decoder's plain-line reader is only a shortcut: every line must decode, and be answered, the same as through
/// the general parser.
@Suite struct PlainLineTests {
    static let ids = [#"86666666666666666666666666"#, #"7"#, #"-12"#, #"0"#, #"-0"#, #"007"#, #"1.5"#, #"1e3"#, #"1234567890123456"#, #""req-1""#, #""a\"b""#, #""é""#, "null", "[1]", "true"]
    static let experiments = [#""e""#, #""missing""#, #""\u0065""#, #""paused""#, "3", #""K""#]
    static let units = [#""u1""#, #""user 42""#, #""""#, #""ユーザー""#, #""a\nb""#, #""tab\there""#, "12", "\"" + String(repeating: "x", count: 1025) + "\""]
    static let ops = [#""assign""#, #""prompt""#, #""ASSIGN""#, #""assign ""#, #""render""#, #""render""#]
    /// `variables` members (for `render`, and refused with `assign`); index 0 is none.
    static let variables = [
        "", #""variables":{}"#, #""variables":{"ticket":"t-1","product":"Acme"}"#, #""variables":{ "ticket" : "x" }"#,
        #""variables":{"ticket":"a","ticket":"b"}"#, #""variables":{"ticket":"café"}"#,
        #""variables":{"ticket":1,"product":"p"}"#, #""variables":{"ticket":true}"#, #""variables":[]"#,
        #""variables":{"ticket":"t","product":"p","language":"de","extra":"x"}"#, #""variables":{"ticket":"t",}"#,
        #""variables":{"product":"p"}"#, #""variables":{"product":"p","ticket":"t"}"#,
    ]
    static let spacing = ["", " ", "\t", "\r\n "]

    static func line(
        order: [Int], id: Int, experiment: Int, unit: Int, op: Int, space: Int, extra: Int, variables: Int = 0
    ) -> String {
        let gap = spacing[space]
        var members = [
            #""id""# + gap + ":" + gap + ids[id], #""op""# + ":" + ops[op], #""experiment":"# + gap + experiments[experiment],
            #""unit":"# + units[unit],
        ]
        if variables > 0 { members.insert(Self.variables[variables], at: order[0] % 4) }
        switch extra {
        case 1: members.append(#""attributes":{"plan":"pro"}"#)
        case 2: members.append(#""unit":"again""#)
        case 3: members.removeFirst()  // no id
        case 4: members.removeLast()  // no unit
        default: break
        }
        let ordered = order.filter { $0 < members.count }.map { members[$0] } + members.dropFirst(4)
        return gap + "{" + gap + ordered.joined(separator: gap + "," + gap) + gap + "}" + gap
    }

    @Test func bothPathsAnswerEveryLineWithTheSameBytes() async throws {
        let snapshot = try ResponderTests.servingSnapshot()
        await propertyCheck(
            count: 2000, input: Gen.shuffled([0, 1, 2, 3]), Gen.int(in: 0...(Self.ids.count - 1)),
            Gen.int(in: 0...(Self.experiments.count - 1)), Gen.int(in: 0...(Self.units.count - 1)),
            Gen.int(in: 0...(Self.ops.count - 1)), Gen.int(in: 0...(Self.spacing.count - 1)),
            Gen.int(in: 0...(7 * Self.variables.count - 1))
        ) { order, id, experiment, unit, op, space, extraAndVariables in
            // One generator for both: `extra % 7` as before, `extra / 7` the variables member.
            let line = Array(
                Self.line(
                    order: order, id: id, experiment: experiment, unit: unit, op: op, space: space,
                    extra: extraAndVariables % 7, variables: extraAndVariables / 7
                ).utf8)
            var fast = JSONWriter()
            var general = JSONWriter()
            line.withUnsafeBufferPointer {
                Responder.respond(to: $0, fastPath: true, snapshot: snapshot, now: someInstant, context: .detached(), into: &fast)
                Responder.respond(to: $0, fastPath: false, snapshot: snapshot, now: someInstant, context: .detached(), into: &general)
            }
            #expect(fast.bytes == general.bytes, "\(String(decoding: line, as: UTF8.self))")
        }
    }

    @Test(arguments: [
        #"{"id":1,"op":"assign","experiment":"e","unit":"user-000123"}"#,
        #"{"op":"assign","unit":"u","experiment":"e"}"#,
        #" { "experiment" : "e" , "unit" : "u" , "op" : "assign" , "id" : "x-1" } "#,
        #"{"id":2,"op":"render","experiment":"e","unit":"u","variables":{"name":"Ada","store":"Acme"}}"#,
        #"{"variables":{},"op":"render","experiment":"e","unit":"u"}"#,
        #"{"op":"render","experiment":"e","unit":"u"}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":{}}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":"u","attributes":{"plan":"pro"}}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":"u","variables":{}}"#,
        #"{"id":1,"op":"render","prompt":"p","variables":{}}"#,
        #"{"id":1,"op":"render","prompt":"p","prompt_version":2}"#,
        #"{"id":"h","op":"health"}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":""}"#,
    ])
    func theCommonShapesTakeTheShortcut(line: String) {
        let bytes = Array(line.utf8)
        #expect(bytes.withUnsafeBufferPointer { PlainLine.isPlain($0) })
        let (fast, general) = bytes.withUnsafeBufferPointer {
            (Request.canonicalDecode($0, fastPath: true), Request.canonicalDecode($0, fastPath: false))
        }
        #expect(fast == general)
    }

    @Test(arguments: [
        #"{"id":1.0,"op":"assign","experiment":"e","unit":"u"}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":"caf\u00e9"}"#,
        #"{"id":1,"op":"assign","op":"assign","experiment":"e","unit":"u"}"#,
        #"{"id":1,"op":"assign","experiment":"e","unit":"u"} x"#,
        #"{"id":1234567890123456,"op":"assign","experiment":"e","unit":"u"}"#,
        #"{"id":86666666666666666666666666,"op":"assign","experiment":"e","unit":"u"}"#,
        #"{"id":1,"op":"render","experiment":"e","unit":"u","variables":{"n":1}}"#,
        #"{"id":1,"op":"render","experiment":"e","unit":"u","variables":{"a":"x","a":"y"}}"#,
        #"{"id":1,"op":"render","experiment":"e","unit":"u","variables":{"a":"x\"y"}}"#,
        #"{"id":1,"op":"render","experiment":"e","unit":"u","attributes":{"a":{}}}"#,
        #"{"id":1,"op":"record","experiment":"e","variant":"v","metrics":{"error":true}}"#,
        #"{"id":1,"op":"render","prompt":"p","version":2}"#,
    ])
    func anythingElseTakesTheGeneralPath(line: String) {
        let bytes = Array(line.utf8)
        #expect(bytes.withUnsafeBufferPointer { !PlainLine.isPlain($0) })
    }

    @Test func variablesBeyondTheScannersLimitTakeTheGeneralPath() {
        func line(variables count: Int) -> [UInt8] {
            let members = (0..<count).map { #""v\#($0)":"x""# }.joined(separator: ",")
            return Array(#"{"op":"render","experiment":"e","unit":"u","variables":{\#(members)}}"#.utf8)
        }
        let atTheLimit = line(variables: PlainLine.maximumNestedMembers)
        let overTheLimit = line(variables: PlainLine.maximumNestedMembers + 1)
        #expect(atTheLimit.withUnsafeBufferPointer { PlainLine.isPlain($0) })
        #expect(overTheLimit.withUnsafeBufferPointer { !PlainLine.isPlain($0) })
    }
}
