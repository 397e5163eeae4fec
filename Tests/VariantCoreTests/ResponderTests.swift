import Testing
@testable import VariantCore

@Suite struct ResponderTests {
    static let document = """
        {"schema_version":1,
         "prompts":{"p":{"versions":[
            {"version":1,"template":"Hello {{name}}","variables":{"required":["name"]}},
            {"version":2,"template":"Hi {{name}}\\n","variables":{"required":["name"],"optional":["tone"]}}]},
          "q":{"versions":[{"version":1,"template":"other"}]}},
         "experiments":[
          {"name":"e","salt":"s","status":"running","variants":[
            {"name":"control","control":true,"weight":0,"prompt":"p","prompt_version":1},
            {"name":"treatment","weight":100,"prompt":"p","prompt_version":2,"params":{"model":"m","temperature":0.2}}]},
          {"name":"paused","salt":"s","status":"paused","variants":[
            {"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},
            {"name":"other","weight":50,"prompt":"q","prompt_version":1}]}]}
        """

    static let loadedAt = Timestamp(rfc3339: "2026-11-23T11:59:00Z")!
    static let startedAt = Timestamp(rfc3339: "2026-11-23T11:00:00Z")!

    static func servingSnapshot() throws -> ServingSnapshot {
        let bytes = Array(document.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "file:/x.json",
            loadedAt: loadedAt)
        return ServingSnapshot(config: config, source: "file:/x.json", lastError: nil, startedAt: startedAt)
    }

    static var version: String { LoadedConfig.version(of: Array(document.utf8)) }

    func answer(_ line: String, snapshot: ServingSnapshot? = nil) throws -> String {
        Responder.respond(to: line, snapshot: try snapshot ?? Self.servingSnapshot(), now: someInstant, context: .detached())
    }

    @Test func assignAnswersWithEveryFieldInTheDocumentedOrder() throws {
        let v = Self.version
        #expect(
            try answer(#"{"id":7,"op":"assign","experiment":"e","unit":"u1"}"#)
                == #"{"id":7,"ok":true,"experiment":"e","variant":"treatment","prompt":"p","prompt_version":2,"params":{"model":"m","temperature":0.2},"enrolled":true,"reason":"assigned","config_version":"\#(v)","metadata":{"experiment":"e","variant":"treatment","prompt":"p","prompt_version":2,"config_version":"\#(v)"}}"#
        )
    }

    @Test(arguments: [
        #""abc""#, "12.5", "null", "-3", "9007199254740993", "1.0", "1E2", "-0", "0.10", "123456789012345678901234567890",
    ])
    func echoesTheIdVerbatim(id: String) throws {
        for op in ["health", "launch"] {  // an answer and an error
            let answer = try answer(#"{"id":\#(id),"op":"\#(op)"}"#)
            #expect(answer.hasPrefix(#"{"id":\#(id),"ok":"#), "\(answer)")
        }
        for op in [#""op":"assign","experiment":"e","unit":"u1""#, #""op":"assign","experiment":"nope","unit":"u1""#] {
            #expect(try answer(#"{"id":\#(id),\#(op)}"#).hasPrefix(#"{"id":\#(id),"ok":"#))
        }
    }

    @Test func aPausedExperimentServesTheControlAndSaysWhy() throws {
        let response = try parseJSON(try answer(#"{"op":"assign","experiment":"paused","unit":"u1"}"#)).objectValue!
        #expect(response["variant"] == .string("control"))
        #expect(response["enrolled"] == .bool(false))
        #expect(response["reason"] == .string("paused"))
        #expect(response["params"] == .object(JSONObject()))
    }

    @Test func promptReturnsANumberedTheLatestOrTheAssignedVersion() throws {
        let numbered = try parseJSON(try answer(#"{"op":"prompt","prompt":"p","prompt_version":1}"#)).objectValue!
        #expect(numbered["template"] == .string("Hello {{name}}"))
        #expect(numbered["variables"] == (try parseJSON(#"{"required":["name"],"optional":[]}"#)))
        let latest = try parseJSON(try answer(#"{"op":"prompt","prompt":"p"}"#)).objectValue!
        #expect(latest["prompt_version"] == .number(2))
        #expect(latest["template"] == .string("Hi {{name}}\n"))
        let assigned = try parseJSON(try answer(#"{"op":"prompt","experiment":"paused","unit":"u"}"#)).objectValue!
        #expect(assigned["prompt"] == .string("p"))
        #expect(assigned["prompt_version"] == .number(1))
        #expect(assigned["variant"] == .string("control"))
        #expect(assigned["reason"] == .string("paused"))
    }

    @Test func configReportsVersionSourceAndAge() throws {
        #expect(
            try answer(#"{"id":1,"op":"config"}"#)
                == #"{"id":1,"ok":true,"loaded":true,"config_version":"\#(Self.version)","source":"file:/x.json","loaded_at":"2026-11-23T11:59:00Z","age_seconds":60,"experiments":2,"prompts":2,"last_error":null,"source_version":null,"fetched_at":"2026-11-23T11:59:00Z","from_cache":false,"source_state":"starting","last_success_at":null,"experiment_states":[{"name":"e","status":"running","mode":"live","enrolling":true},{"name":"paused","status":"paused","mode":"live","enrolling":false}],"disabled_treatments":[],"state_error":null,"prompt_sources":[]}"#
        )
        let disabled = try Self.servingSnapshot().withDisabled([.init(experiment: "e", variant: "treatment")])
        #expect(try answer(#"{"op":"config"}"#, snapshot: disabled).hasSuffix(#""disabled_treatments":[{"experiment":"e","variant":"treatment"}],"state_error":null,"prompt_sources":[]}"#))
    }

    @Test func configReportsTheLastErrorWhileServingTheLastGoodDocument() throws {
        let failure = ConfigLoadFailure(
            code: "invalid_config", message: "1 problem", at: someInstant,
            problems: [ValidationIssue(path: "$.experiments", code: .wrongType, message: "bad")])
        let snapshot = try Self.servingSnapshot().recording(failure)
        let response = try parseJSON(try answer(#"{"op":"config"}"#, snapshot: snapshot)).objectValue!
        #expect(response["config_version"] == .string(Self.version))
        #expect(
            response["last_error"]
                == (try parseJSON(
                    #"{"code":"invalid_config","message":"1 problem","at":"2026-11-23T12:00:00Z","problems":[{"path":"$.experiments","code":"wrong_type","message":"bad"}]}"#
                )))
        #expect(try answer(#"{"op":"assign","experiment":"e","unit":"u"}"#, snapshot: snapshot).contains(#""reason":"assigned""#))
    }

    @Test func withoutAConfigAssignSaysNoConfigAndPromptFails() {
        let empty = ServingSnapshot(config: nil, source: "file:/missing.json", lastError: nil, startedAt: Self.startedAt)
        #expect(
            Responder.respond(to: #"{"id":1,"op":"assign","experiment":"e","unit":"u"}"#, snapshot: empty, now: someInstant, context: .detached())
                == #"{"id":1,"ok":true,"experiment":"e","variant":null,"prompt":null,"prompt_version":null,"params":{},"enrolled":false,"reason":"no_config","config_version":null,"metadata":{"experiment":"e","variant":null,"prompt":null,"prompt_version":null,"config_version":null}}"#
        )
        #expect(
            Responder.respond(to: #"{"op":"prompt","prompt":"p"}"#, snapshot: empty, now: someInstant, context: .detached()).contains(#""code":"no_config""#))
        #expect(
            Responder.respond(to: #"{"op":"health"}"#, snapshot: empty, now: someInstant, context: .detached())
                == #"{"id":null,"ok":true,"status":"no_config","config_version":null,"uptime_seconds":3600,"state_error":null}"#)
    }

    @Test(arguments: [
        ("not json", "null", "invalid_json"),
        ("[1,2]", "null", "invalid_request"),
        (#"{"id":1}"#, "1", "missing_field"),
        (#"{"id":1,"op":3}"#, "1", "invalid_field"),
        (#"{"id":[1],"op":"health"}"#, "null", "invalid_field"),
        (#"{"id":2,"op":"launch"}"#, "2", "unknown_op"),
        (#"{"id":3,"op":"assign","experiment":"e"}"#, "3", "missing_field"),
        (#"{"id":4,"op":"assign","experiment":"e","unit":""}"#, "4", "invalid_field"),
        (#"{"id":4,"op":"assign","experiment":"e","unit":"a\u0000b"}"#, "4", "invalid_field"),
        (#"{"id":5,"op":"assign","experiment":"e","unit":"u","attributes":{"a":[1]}}"#, "5", "invalid_field"),
        (#"{"id":6,"op":"assign","experiment":"e","unit":"u","experiement":"x"}"#, "6", "unknown_field"),
        (#"{"id":7,"op":"assign","experiment":"nope","unit":"u"}"#, "7", "unknown_experiment"),
        (#"{"id":8,"op":"prompt","prompt":"nope"}"#, "8", "unknown_prompt"),
        (#"{"id":9,"op":"prompt","prompt":"p","prompt_version":3}"#, "9", "unknown_prompt_version"),
        (#"{"id":10,"op":"prompt","prompt":"q","experiment":"e","unit":"u"}"#, "10", "prompt_mismatch"),
        (#"{"id":11,"op":"prompt","prompt":"p","unit":"u"}"#, "11", "invalid_field"),
        (#"{"id":12,"op":"health","verbose":true}"#, "12", "unknown_field"),
    ])
    func errorsAreAnswersWithAStableCode(line: String, id: String, code: String) throws {
        let response = try parseJSON(try answer(line)).objectValue!
        #expect(response["ok"] == .bool(false))
        #expect(response["id"] == (try parseJSON(id)))
        #expect(response["error"]?.objectValue?["code"] == .string(code))
        #expect(response["error"]?.objectValue?["message"]?.stringValue?.isEmpty == false)
    }

    @Test func responsesAreOneLineEndingInANewline() throws {
        var writer = JSONWriter()
        let line = Array(#"{"op":"prompt","prompt":"p"}"#.utf8)
        line.withUnsafeBufferPointer {
            Responder.respond(to: $0, snapshot: try! Self.servingSnapshot(), now: someInstant, context: .detached(), into: &writer)
        }
        #expect(writer.bytes.last == UInt8(ascii: "\n"))
        #expect(writer.bytes.filter { $0 == UInt8(ascii: "\n") }.count == 1)
    }
}
