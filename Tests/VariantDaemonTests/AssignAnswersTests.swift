import Testing
@testable import VariantClient
import VariantCore

/// The Swift shim's decoding shortcuts give what decoding the whole answer gives: answers matched by their leading
/// `{"id":N,`, assignments kept by their answer's bytes (`AssignAnswers`), and a `render` answer split into its
/// assignment part and its rendering.
@Suite struct AssignAnswersTests {
    @Test func theLeadingIDIsReadOnlyInTheDaemonsOwnShape() {
        #expect(AnswerLine.leadingID(of: Array(#"{"id":12,"ok":true}"#.utf8)).map { [$0.id, $0.afterID] } == [12, 8])
        #expect(AnswerLine.leadingID(of: Array(#"{"id":0,"ok":true}"#.utf8))?.id == 0)
        for other in [#"{"id":null,"ok":false}"#, #"{"id":12}"#, #"{"id": 12,"ok":true}"#, #"{"ok":true,"id":12}"#,
                      #"{"id":"12","ok":true}"#, #"{"id":-1,"ok":true}"#, #"{"id":1234567890123456789012,"ok":true}"#, #"{"id":"#] {
            #expect(AnswerLine.leadingID(of: Array(other.utf8)) == nil, "\(other)")
        }
    }

    @Test func theRenderingStartsAtTheLastTypeMemberOutsideStrings() {
        let answer = Array(#"{"id":3,"ok":true,"experiment":"e","prompt":"p","type":"text","text":"say \",\"type\":\" here","warnings":[]}"#.utf8)
        let start = VariantClient.renderingStart(in: answer, after: 7)
        #expect(start.map { String(decoding: answer[$0...].prefix(14), as: UTF8.self) } == #","type":"text""#)
        #expect(VariantClient.renderingStart(in: Array(#"{"id":3,"ok":false,"error":{}}"#.utf8), after: 7) == nil)
        // Found 8 bytes at a time: texts of every length around a few words, with escaped quotes and commas.
        for length in 0...40 {
            for filler in ["a", #"\""#, ",", #",\""#] {
                let head = #"{"id":3,"ok":true,"metadata":{"k":1,"type":"x"},"prompt":"p""#
                let text = String(repeating: filler, count: length)
                let answer = Array((head + #","type":"text","text":""# + text + #"","warnings":[]}"#).utf8)
                #expect(VariantClient.renderingStart(in: answer, after: 7) == head.utf8.count, "\(length) × \(filler)")
            }
        }
    }

    /// The members of a rendering, each read in place and by the parser: the same text and warnings, or refused
    /// in place (nil) and left to the parser.
    @Test(arguments: [
        #","type":"text","text":"plain","warnings":[]}"#,
        #","type":"text","text":"","warnings":[]}"#,
        #","type":"text","text":"line one\nline \"two\"\tand \\ \/ \b\f\r, twelve bytes or more","warnings":[]}"#,
        #","type":"text","text":"Grüße, 日本, 🙂 and a \n","warnings":[]}"#,
        #","type":"text","text":"a \u00e9 and \ud83d\ude42","warnings":[]}"#,
        #","type":"text","text":"say \",\"type\":\"chat\" here","warnings":[{"code":"extra_variable","variable":"tone"}]}"#,
        #","type":"text","text":"x","warnings":[{"code":"extra_variable","variable":"a"},{"code":"rule_warning","rule":"r"}]}"#,
        #","type":"text","text":"x","warnings":[1]}"#,
        #","type":"text","text":"x","warnings":[] }"#,
        #","type":"text","text":"x","warnings": []}"#,
        #","type":"text","text":"x","warnings":[]}}"#,
        #","type":"text","text":"x","warnings":[],"more":1}"#,
        #","type":"text","text":"x","text":"y","warnings":[]}"#,
        #","type":"text","text":"x"}"#,
        #","type":"text","text":"cut short"#,
        #","type":"text","text":"a raw\#ttab","warnings":[]}"#,
        #","type":"text","text":"a bad \x escape","warnings":[]}"#,
        #","type":"chat","messages":[{"role":"user","content":"hi"}],"warnings":[]}"#,
    ])
    func aTextRenderingReadInPlaceIsWhatTheParserReads(members: String) throws {
        let line = Array(#"{"id":1,"ok":true,"prompt":"p""#.utf8) + Array(members.utf8)
        let start = try #require(VariantClient.renderingStart(in: line, after: 7))
        let parsed = (try? JSONParser.parse([UInt8(ascii: "{")] + line[(start + 1)...]))?.objectValue
        guard let inPlace = VariantClient.textRendering(in: line, from: start) else {
            // Refused in place: the parser reads it (a chat rendering, another shape) or refuses it.
            return
        }
        let answer = try #require(parsed, "read in place but refused by the parser: \(members)")
        #expect(answer["type"]?.stringValue == "text")
        #expect(inPlace.text == answer["text"]?.stringValue)
        #expect(inPlace.warnings == (answer["warnings"]?.arrayValue ?? []).compactMap(\.objectValue))
    }

    @Test func textsTheDaemonWritesAreReadInPlaceAndInvalidUTF8IsNot() throws {
        // Every length around the 8-byte words, with escapes and non-ASCII at every position.
        for length in 0...24 {
            for filler in ["a", #"\n"#, #"\""#, "é", #"\\"#] {
                let text = String(repeating: filler, count: length)
                let line = Array((#"{"id":1,"ok":true,"type":"text","text":""# + text + #"","warnings":[]}"#).utf8)
                let start = try #require(VariantClient.renderingStart(in: line, after: 7))
                let parsed = try #require((try JSONParser.parse([UInt8(ascii: "{")] + line[(start + 1)...])).objectValue)
                #expect(VariantClient.textRendering(in: line, from: start)?.text == parsed["text"]?.stringValue, "\(length) × \(filler)")
            }
        }
        for bytes: [UInt8] in [[0xC3], [0xFF, 0x41], [0xE6, 0x97], [0xC3, 0x5C, 0x6E, 0xA9]] {  // the last: é cut by \n
            let line = Array(#"{"id":1,"ok":true,"type":"text","text":"ab"#.utf8) + bytes + Array(#"cd","warnings":[]}"#.utf8)
            let start = try #require(VariantClient.renderingStart(in: line, after: 7))
            #expect(VariantClient.textRendering(in: line, from: start) == nil, "\(bytes)")
            #expect((try? JSONParser.parse([UInt8(ascii: "{")] + line[(start + 1)...])) == nil, "\(bytes)")
        }
    }

    @Test func aFullTableIsEmptiedBeforeTheNextIsKept() {
        let answers = AssignAnswers(limit: 2)
        let assignment = VariantClient.Assignment(
            experiment: "e", variant: "v", prompt: nil, promptVersion: nil, params: JSONObject(), enrolled: true,
            reason: "assigned", configVersion: "c", metadata: JSONObject(), template: nil, variables: nil, shadow: nil,
            error: nil)
        for text in ["a", "b", "c"] { answers.keep(assignment, for: .init(bytes: ArraySlice(text.utf8))) }
        #expect(answers.count == 1)
        #expect(answers.assignment(.init(bytes: ArraySlice("c".utf8)), unit: "u")?.unit == "u")
        #expect(answers.assignment(.init(bytes: ArraySlice("a".utf8)), unit: "u") == nil)
    }
}

/// Against the real daemon: every `assign` and `render`, from the table or decoded, equals the answer decoded whole.
@Suite(.serialized) struct AssignAnswersEndToEndTests {
    @Test func keptAssignmentsEqualTheWholeAnswersDecoded() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let client = VariantClient(socketPath: daemon.socketPath, timeout: 2, fallback: try Fallback(json: Array(exampleConfig.utf8)))
        defer { client.close() }
        let connection = try daemon.connect()
        let cases: [(experiment: String, attributes: JSONObject)] = [
            ("checkout-prompt", JSONObject()),
            ("support-reply", JSONObject([("language", .string("en")), ("plan", .string("pro"))])),  // 60% exposed
            ("support-reply", JSONObject([("language", .string("fr"))])),  // not targeted
        ]
        for (experiment, attributes) in cases {
            for unit in (0..<60).map({ "user-\($0)" }) {
                var fields = VariantClient.assignFields(experiment, unit: unit, attributes: attributes)
                fields.insert(("id", .number(1)), at: 0)
                let whole = try #require(try JSONParser.parse(Array(connection.request(VariantConnection.requestLine(fields)).utf8)).objectValue)
                let expected = client.assignment(experiment, from: whole, unit: unit)
                #expect(client.assign(experiment, unit: unit, attributes: attributes) == expected)
                #expect(client.assign(experiment, unit: unit, attributes: attributes) == expected)  // from the table
            }
        }
        // A handful of distinct answers: one per variant and reason and experiment.
        #expect((1...12).contains(client.assignAnswers.count), "\(client.assignAnswers.count)")
        #expect(client.counters.fallbacks == 0)

        let variables = JSONObject([("store_name", .string("Acme")), ("customer_name", .string("Ada")), ("tone", .string("warm"))])
        for unit in (0..<40).map({ "user-\($0)" }) {
            var fields = VariantClient.renderFields("checkout-prompt", unit: unit, variables: variables, attributes: JSONObject())
            fields.insert(("id", .number(1)), at: 0)
            let whole = try #require(try JSONParser.parse(Array(connection.request(VariantConnection.requestLine(fields)).utf8)).objectValue)
            let expected = client.rendered("checkout-prompt", unit: unit, variables: variables, Result<JSONObject, VariantClient.Failure>.success(whole))
            let rendered = client.render("checkout-prompt", unit: unit, variables: variables)
            #expect(rendered == expected)
            #expect(rendered.isRendered && rendered.text?.contains("Acme") == true)
        }
        #expect(daemon.stop() == 0)
    }
}
