import Testing
@testable import VariantCore

@Suite struct RenderOpTests {
    static let document = #"""
        {"schema_version":1,
         "prompts":{
          "p":{"rules":[{"name":"no-ssn","type":"regex","action":"block","target":"variables","pattern":"\\d{3}-\\d{2}-\\d{4}"}],
               "versions":[
            {"version":1,"template":"Hello {{name}}","variables":{"required":["name"]}},
            {"version":2,"template":"Hi {{name}}, <b>{{tone}}</b> & \"{{count}}\" {{flag}}\n","variables":{"required":["name"],"optional":["tone","count","flag"]},
             "rules":[{"name":"long","type":"max_length","action":"warn","max_characters":40},
                           {"name":"secret","type":"keywords","action":"log","keywords":["Password"]},
                           {"name":"rude","type":"keywords","action":"block","keywords":["idiot"]}]}]},
          "chat":{"versions":[{"version":3,"messages":[{"role":"system","content":"You are {{persona}}.{{#strict}} Be strict.{{/strict}}"},{"role":"user","content":"{{question}}"}],
                  "variables":{"required":["persona","question"],"optional":["strict"]}}]}},
         "experiments":[
          {"name":"e","salt":"s","status":"running","variants":[
            {"name":"control","control":true,"weight":0,"prompt":"p","prompt_version":1},
            {"name":"treatment","weight":100,"prompt":"p","prompt_version":2,"params":{"model":"m"}}]},
          {"name":"shadowed","salt":"s","status":"running","mode":"shadow","variants":[
            {"name":"control","control":true,"weight":0,"prompt":"chat","prompt_version":3},
            {"name":"treatment","weight":100,"prompt":"p","prompt_version":2}]}]}
        """#

    let snapshot: ServingSnapshot
    let ledger = ExperimentLedger()

    init() throws {
        let bytes = Array(Self.document.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "file:/x.json",
            loadedAt: someInstant)
        snapshot = ServingSnapshot(config: config, source: "file:/x.json", lastError: nil, startedAt: someInstant)
    }

    func answer(_ line: String, at now: Timestamp = someInstant) -> String {
        Responder.respond(to: line, snapshot: snapshot, now: now, context: .detached(ledger: ledger))
    }

    func object(_ line: String, at now: Timestamp = someInstant) throws -> JSONObject {
        try #require(try parseJSON(answer(line, at: now)).objectValue)
    }

    func errorCode(_ line: String) throws -> String? {
        try object(line)["error"]?.objectValue?["code"]?.stringValue
    }

    @Test func renderWithAnExperimentIsTheAssignAnswerFollowedByTheRendering() throws {
        let assign = answer(#"{"id":1,"op":"assign","experiment":"e","unit":"u1"}"#)
        let render = answer(#"{"id":1,"op":"render","experiment":"e","unit":"u1","variables":{"name":"Ada","tone":"warm"}}"#)
        #expect(render.hasPrefix(String(assign.dropLast())))
        #expect(
            render.dropFirst(assign.count - 1)
                == #","type":"text","text":"Hi Ada, <b>warm</b> & \"\" \n","warnings":[]}"#)
        // Both answers enrolled the unit: each is counted, once.
        #expect(ledger.aggregates(experiment: "e")["treatment"]?.assignments == 2)
    }

    @Test func aShadowExperimentRendersTheServedControlAndNamesTheShadow() throws {
        let answer = try object(
            #"{"op":"render","experiment":"shadowed","unit":"u1","variables":{"persona":"a \"tutor\"","question":"Why?","strict":true}}"#)
        #expect(answer["variant"] == .string("control"))
        #expect(answer["shadow"]?.objectValue?["variant"] == .string("treatment"))
        #expect(answer["type"] == .string("chat"))
        #expect(
            answer["messages"]
                == (try parseJSON(#"[{"role":"system","content":"You are a \"tutor\". Be strict."},{"role":"user","content":"Why?"}]"#)))
    }

    @Test func renderByPromptTakesTheVersionOrTheLatest() throws {
        let version = LoadedConfig.version(of: Array(Self.document.utf8))
        #expect(
            answer(#"{"id":"a","op":"render","prompt":"p","prompt_version":1,"variables":{"name":"Bo"}}"#)
                == #"{"id":"a","ok":true,"prompt":"p","prompt_version":1,"config_version":"\#(version)","type":"text","text":"Hello Bo","warnings":[]}"#)
        #expect(try object(#"{"op":"render","prompt":"p","variables":{"name":"Bo"}}"#)["prompt_version"] == .number(2))
        #expect(try errorCode(#"{"op":"render","prompt":"nope"}"#) == "unknown_prompt")
        #expect(try errorCode(#"{"op":"render","prompt":"p","prompt_version":9,"variables":{"name":"x"}}"#) == "unknown_prompt_version")
        #expect(try errorCode(#"{"op":"render","experiment":"nope","unit":"u"}"#) == "unknown_experiment")
        #expect(try errorCode(#"{"op":"render","prompt":"p","unit":"u"}"#) == "invalid_field")
        #expect(try errorCode(#"{"op":"render","experiment":"e","unit":"u","prompt_version":1}"#) == "unknown_field")
    }

    @Test func numbersAndBooleansRenderAsTheirJSONText() throws {
        let answer = try object(#"{"op":"render","prompt":"p","variables":{"name":"N","count":3,"flag":false,"tone":2.5}}"#)
        #expect(answer["text"] == .string("Hi N, <b>2.5</b> & \"3\" false\n"))
    }

    @Test func aMissingRequiredVariableIsAnErrorNamingEveryOneMissing() throws {
        let answer = try object(#"{"op":"render","experiment":"shadowed","unit":"u1","variables":{"strict":true}}"#)
        let error = try #require(answer["error"]?.objectValue)
        #expect(error["code"] == .string("missing_variable"))
        let message = try #require(error["message"]?.stringValue)
        #expect(message.contains("'persona'") && message.contains("'question'"))
        // A refused render enrols no one.
        #expect(ledger.aggregates(experiment: "shadowed").isEmpty)
    }

    @Test(arguments: [
        #"{"op":"render","prompt":"p","variables":["name"]}"#,
        #"{"op":"render","prompt":"p","variables":{"name":null}}"#,
        #"{"op":"render","prompt":"p","variables":{"name":{"first":"A"}}}"#,
        #"{"op":"render","experiment":"e","unit":"u","variables":{"name":[1]}}"#,
    ])
    func variablesThatAreNotAnObjectOfScalarsAreInvalid(line: String) throws {
        #expect(try errorCode(line) == "invalid_variables")
    }

    @Test func anExtraVariableIsAWarningAndIsNotRendered() throws {
        let answer = try object(#"{"op":"render","prompt":"p","prompt_version":1,"variables":{"name":"A","nickname":"B","name2":"C"}}"#)
        #expect(answer["text"] == .string("Hello A"))
        #expect(
            answer["warnings"]
                == (try parseJSON(#"[{"code":"extra_variable","variable":"nickname"},{"code":"extra_variable","variable":"name2"}]"#)))
    }

    @Test func aWarnRuleAddsAWarningAndTheRenderGoesOut() throws {
        let answer = try object(#"{"op":"render","prompt":"p","variables":{"name":"a name long enough to pass forty"}}"#)
        let warnings = try #require(answer["warnings"]?.arrayValue)
        #expect(warnings.count == 1)
        #expect(warnings.first?.objectValue?["code"] == .string("rule_warning"))
        #expect(warnings.first?.objectValue?["rule"] == .string("long"))
        #expect(answer["text"]?.stringValue?.hasPrefix("Hi a name") == true)
    }

    @Test func aBlockRuleRefusesTheRenderNamingTheRule() throws {
        for (line, rule) in [
            (#"{"op":"render","prompt":"p","variables":{"name":"x","tone":"you IDIOT"}}"#, "rude"),
            (#"{"op":"render","experiment":"e","unit":"u1","variables":{"name":"123-45-6789"}}"#, "no-ssn"),
        ] {
            let error = try #require(try object(line)["error"]?.objectValue)
            #expect(error["code"] == .string("rule_blocked"))
            #expect(error["message"]?.stringValue?.contains("'\(rule)'") == true)
        }
        #expect(ledger.aggregates(experiment: "e").isEmpty)
        #expect(ledger.promptRuleCounts(prompt: "p", version: 2, rules: ["rude", "no-ssn"]) == [1, 1])
    }

    @Test func aLogRuleIsCountedInStatsAndLoggedAtMostOncePerMinute() throws {
        let line = #"{"op":"render","experiment":"e","unit":"u1","variables":{"name":"my password is x"}}"#
        for second in 0..<1500 {
            // 1500 renders over 25 minutes and a bit: one event per minute, not one per render.
            let now = Timestamp(secondsSinceEpoch: someInstant.secondsSinceEpoch + Double(second))
            #expect(try object(line, at: now)["ok"] == .bool(true))
        }
        let events = ledger.events(limit: 1000).filter { $0.kind == .promptRule }
        #expect(events.count == 25)
        #expect(events.first?.details["count"] == .number(1))
        #expect(events.dropFirst().allSatisfy { $0.details["count"] == .number(60) })
        #expect(events.first?.details["rule"] == .string("secret") && events.first?.experiment == "e")

        let stats = try object(#"{"op":"stats","experiment":"e"}"#)
        let counts = try #require(stats["prompt_rules"])
        #expect(
            counts
                == (try parseJSON(#"""
                    [{"prompt":"p","prompt_version":1,"rule":"no-ssn","action":"block","triggered":0},
                     {"prompt":"p","prompt_version":2,"rule":"no-ssn","action":"block","triggered":0},
                     {"prompt":"p","prompt_version":2,"rule":"long","action":"warn","triggered":0},
                     {"prompt":"p","prompt_version":2,"rule":"secret","action":"log","triggered":1500},
                     {"prompt":"p","prompt_version":2,"rule":"rude","action":"block","triggered":0}]
                    """#)))
    }

    @Test func aRuleFiringOnEveryRequestCannotEvictATreatmentDecision() throws {
        let small = ExperimentLedger(eventCapacity: 10)
        let disabled = small.disable(
            DisabledTreatment(experiment: "e", variant: "treatment", at: someInstant, automatic: true, reason: "errors"),
            actor: "guardrail")
        let rule = try #require(snapshot.config?.document.prompt(named: "p")?.version(2)?.rules.first { $0.name == "secret" })
        for request in 0..<100_000 {
            small.countPromptRules(
                [rule], prompt: "p", version: 2, experiment: nil,
                at: Timestamp(secondsSinceEpoch: someInstant.secondsSinceEpoch + Double(request) / 1000))
        }
        #expect(small.events(limit: 10).contains { $0.sequence == disabled?.sequence })
    }

    @Test func guardrailCountsAndTheirCoalescedEventsSurviveARestart() throws {
        let ledger = ExperimentLedger()
        let rule = try #require(snapshot.config?.document.prompt(named: "p")?.version(2)?.rules.first { $0.name == "secret" })
        for second in 0..<5 {
            ledger.countPromptRules(
                [rule], prompt: "p", version: 2, experiment: nil,
                at: Timestamp(secondsSinceEpoch: someInstant.secondsSinceEpoch + Double(second)))
        }
        let restored = ExperimentLedger()
        try restored.restore(from: ledger.encodedState(savedAt: someInstant).bytes)
        #expect(restored.promptRuleCounts(prompt: "p", version: 2, rules: ["secret", "rude"]) == [5, 0])
        // The four firings after the first event are still owed to the next one, a minute later.
        let next = restored.countPromptRules(
            [rule], prompt: "p", version: 2, experiment: nil,
            at: Timestamp(secondsSinceEpoch: someInstant.secondsSinceEpoch + 61))
        #expect(next.first?.details["count"] == .number(5))
        #expect(next.first?.details["total"] == .number(6))
    }

    @Test func thePromptOpAnswersAChatVersionWithItsMessages() throws {
        let answer = try object(#"{"op":"prompt","prompt":"chat"}"#)
        #expect(answer["template"] == nil)
        #expect(
            answer["messages"]
                == (try parseJSON(#"[{"role":"system","content":"You are {{persona}}.{{#strict}} Be strict.{{/strict}}"},{"role":"user","content":"{{question}}"}]"#)))
        #expect(try object(#"{"op":"prompt","prompt":"p","prompt_version":1}"#)["template"] == .string("Hello {{name}}"))
    }

    @Test func renderWithoutAConfigurationIsNoConfig() {
        let empty = ServingSnapshot(config: nil, source: "file:/x.json", lastError: nil, startedAt: someInstant)
        let answer = Responder.respond(
            to: #"{"id":2,"op":"render","prompt":"p"}"#, snapshot: empty, now: someInstant, context: .detached())
        #expect(answer.contains(#""code":"no_config""#))
    }
}
