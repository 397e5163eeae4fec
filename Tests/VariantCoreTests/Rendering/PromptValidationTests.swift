import Testing
@testable import VariantCore

@Suite struct PromptValidationTests {
    /// A document with one prompt `p` whose members the caller writes, and an experiment serving its version 1
    /// with `params`.
    static func document(prompt members: String, params: String = #"{"model":"gpt-4o"}"#) -> String {
        """
        {"schema_version":1,"prompts":{"p":{\(members)}},
         "experiments":[{"name":"e","salt":"s","status":"running","variants":[
           {"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1,"params":\(params)},
           {"name":"t","weight":50,"prompt":"p","prompt_version":1}]}]}
        """
    }

    /// The issues as "path code", those of the experiment left out unless asked for (a prompt version that
    /// fails makes its variants name an unknown prompt too).
    func codes(_ text: String, experiments: Bool = false) -> [String] {
        issues(of: text).filter { experiments || $0.path.hasPrefix("$.prompts") }.map { "\($0.path) \($0.code)" }
    }

    @Test func theExampleConfigurationStillValidates() throws {
        let document = try ConfigDocument.validate(try repositoryFile("examples/variantd.json"))
        #expect(document.prompts.values.contains { $0.versions.contains { $0.messages != nil } })
        #expect(document.prompts.values.contains { $0.versions.contains { !$0.rules.isEmpty } })
    }

    @Test func aChatVersionKeepsItsMessagesInOrder() throws {
        let document = try validDocument(
            Self.document(prompt: #""versions":[{"version":1,"messages":[{"role":"system","content":"Be {{tone}}."},{"role":"user","content":"Hi"}],"variables":{"optional":["tone"]}}]"#))
        let version = try #require(document.prompt(named: "p")?.version(1))
        #expect(version.messages == [PromptMessage(role: "system", content: "Be {{tone}}."), PromptMessage(role: "user", content: "Hi")])
        #expect(version.template == "")
    }

    @Test func templateAndMessagesTogetherOrNeitherAreProblems() {
        #expect(
            codes(Self.document(prompt: #""versions":[{"version":1,"template":"x","messages":[{"role":"user","content":"y"}]}]"#))
                == ["$.prompts.p.versions[0].messages conflicting_fields"])
        #expect(codes(Self.document(prompt: #""versions":[{"version":1}]"#)) == ["$.prompts.p.versions[0].template missing_field"])
        #expect(
            codes(Self.document(prompt: #""versions":[{"version":1,"messages":[{"role":"","content":"y","name":"n"}]}]"#))
                == ["$.prompts.p.versions[0].messages[0].name unknown_field", "$.prompts.p.versions[0].messages[0].role invalid_value"])
    }

    @Test func templateProblemsAreReportedAtTheTemplatesPath() {
        let text = Self.document(prompt: #"""
            "versions":[{"version":1,"template":"Hi {{name}"},
                        {"version":2,"messages":[{"role":"user","content":"ok"},{"role":"user","content":"{{> partial}} {{who}}"}]}]
            """#)
        #expect(
            codes(text) == [
                "$.prompts.p.versions[0].template invalid_template",
                "$.prompts.p.versions[1].messages[1].content unsupported_template",
                "$.prompts.p.versions[1].messages[1].content undeclared_variable",
            ])
    }

    @Test func everyGuardrailProblemIsReportedAtOnce() {
        let text = Self.document(prompt: #"""
            "rules":[{"name":"dup","type":"keywords","action":"warn","keywords":["x"]}],
            "versions":[{"version":1,"template":"x","rules":[
              {"name":"bad-regex","type":"regex","action":"block","pattern":"(unclosed"},
              {"name":"kind","type":"sentiment","action":"block"},
              {"name":"act","type":"keywords","action":"shout","keywords":["a"]},
              {"name":"empty","type":"keywords","action":"log","keywords":[]},
              {"name":"len","type":"max_length","action":"warn"},
              {"name":"len0","type":"max_length","action":"warn","max_tokens":0},
              {"name":"stray","type":"regex","action":"warn","pattern":"a","keywords":["b"]},
              {"name":"where","type":"regex","action":"warn","pattern":"a","target":"input"},
              {"name":"m","type":"model","action":"warn","models":["gpt-4o"]},
              {"name":"twice","type":"keywords","action":"log","keywords":["a"]},
              {"name":"twice","type":"keywords","action":"log","keywords":["b"]}]}]
            """#)
        #expect(
            codes(text) == [
                "$.prompts.p.versions[0].rules[0].pattern invalid_pattern",
                "$.prompts.p.versions[0].rules[1].type invalid_value",
                "$.prompts.p.versions[0].rules[2].action invalid_value",
                "$.prompts.p.versions[0].rules[3].keywords invalid_value",
                "$.prompts.p.versions[0].rules[4].max_characters missing_field",
                "$.prompts.p.versions[0].rules[5].max_tokens invalid_value",
                "$.prompts.p.versions[0].rules[6].keywords unknown_field",
                "$.prompts.p.versions[0].rules[7].target invalid_value",
                "$.prompts.p.versions[0].rules[8].action invalid_value",
                "$.prompts.p.versions[0].rules[10].name duplicate_name",
            ])
    }

    @Test func aVersionRuleMayNotReuseTheNameOfAPromptRule() {
        let text = Self.document(prompt: #"""
            "rules":[{"name":"dup","type":"keywords","action":"warn","keywords":["x"]}],
            "versions":[{"version":1,"template":"x","rules":[{"name":"dup","type":"max_length","action":"log","max_characters":9}]}]
            """#)
        #expect(codes(text) == ["$.prompts.p.versions[0].rules[0].name duplicate_name"])
    }

    @Test func aPromptRuleAppliesToEveryVersionBeforeTheVersionsOwn() throws {
        let document = try validDocument(Self.document(prompt: #"""
            "rules":[{"name":"short","type":"max_length","action":"warn","max_characters":100}],
            "versions":[{"version":1,"template":"x","rules":[{"name":"pii","type":"regex","action":"block","pattern":"\\d{3}-\\d{2}-\\d{4}","target":"variables"}]},
                        {"version":2,"template":"y"}]
            """#))
        let prompt = try #require(document.prompt(named: "p"))
        #expect(prompt.version(1)?.rules.map(\.name) == ["short", "pii"])
        #expect(prompt.version(2)?.rules.map(\.name) == ["short"])
        #expect(prompt.version(1)?.rules.map(\.target) == [.output, .variables])
    }

    @Test func aModelRuleIsCheckedAgainstEveryVariantServingTheVersion() {
        let prompt = #"""
            "versions":[{"version":1,"template":"x","rules":[{"name":"models","type":"model","action":"block","models":["gpt-4o","claude-sonnet"]}]}]
            """#
        // Variant "t" names no model: a problem too.
        #expect(codes(Self.document(prompt: prompt), experiments: true) == ["$.experiments[0].variants[1].params.model model_not_allowed"])
        #expect(
            codes(Self.document(prompt: prompt, params: #"{"model":"gpt-3.5"}"#), experiments: true) == [
                "$.experiments[0].variants[0].params.model model_not_allowed",
                "$.experiments[0].variants[1].params.model model_not_allowed",
            ])
    }
}
