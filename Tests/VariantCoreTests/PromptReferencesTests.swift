import Testing

@testable import VariantCore

/// Langfuse prompts in a config document: extracting the references, checking their shape offline, reading the
/// API's answers, and substituting them into an ordinary inline document.
@Suite struct PromptReferencesTests {
    static func document(prompts: String, variants: String, extraExperiment: String = "") -> String {
        """
        {"schema_version":1,"prompts":{\(prompts)},
         "experiments":[{"name":"e","salt":"s","status":"running","variants":[\(variants)]}\(extraExperiment)]}
        """
    }

    static let critic = #""critic":{"description":"d","langfuse":{"name":"movie-critic"}}"#

    static func text(_ version: Int, _ template: String, labels: [String] = [], config: String = "{}") throws -> LangfusePrompt {
        let labelList = labels.map { "\"\($0)\"" }.joined(separator: ",")
        return try LangfusePrompt(
            parseJSON(
                #"{"name":"movie-critic","version":\#(version),"type":"text","prompt":"\#(template)","config":\#(config),"labels":[\#(labelList)],"tags":[]}"#
            ))
    }

    @Test func extractsEachVersionAndLabelOnceWithTheLangfuseName() throws {
        let text = Self.document(
            prompts: Self.critic + #","plain":{"langfuse":{}},"inline":{"versions":[{"version":1,"template":"t"}]}"#,
            variants: #"""
                {"name":"a","control":true,"weight":25,"prompt":"critic","prompt_version":3},
                {"name":"b","weight":25,"prompt":"critic","prompt_label":"production"},
                {"name":"c","weight":25,"prompt":"critic","prompt_version":3},
                {"name":"d","weight":15,"prompt":"plain","prompt_label":"staging"},
                {"name":"e","weight":10,"prompt":"inline","prompt_version":1}
                """#)
        let references = try PromptReferences.parse(Array(text.utf8))
        #expect(
            references.uses == [
                .init(prompt: "critic", reference: .init(name: "movie-critic", selector: .version(3))),
                .init(prompt: "critic", reference: .init(name: "movie-critic", selector: .label("production"))),
                .init(prompt: "plain", reference: .init(name: "plain", selector: .label("staging"))),
            ])
        #expect(references.references.count == 3)
        #expect(references.usesLabels)
    }

    @Test func aDocumentWithoutLangfuseHasNoReferencesAndIsUntouched() throws {
        let references = try PromptReferences.parse(try repositoryFile("examples/variantd.json"))
        #expect(references.uses.isEmpty)
        let resolved = try references.resolved(with: [:])
        #expect(resolved.root == references.root)
    }

    @Test func reportsEveryShapeProblemAtOnceWithItsPathTogetherWithTheRestOfTheDocument() {
        let text = Self.document(
            prompts: #"""
                "critic":{"langfuse":{"name":"movie-critic","labels":["x"]}},
                "both":{"langfuse":{"name":"b"},"versions":[{"version":1,"template":"t"}]},
                "typed":{"langfuse":"movie-critic"},
                "unused":{"langfuse":{"name":7}},
                "inline":{"versions":[{"version":1,"template":"t"}]}
                """#,
            variants: #"""
                {"name":"a","control":true,"weight":20,"prompt":"critic","prompt_label":"Production"},
                {"name":"b","weight":20,"prompt":"critic","prompt_version":2,"prompt_label":"production"},
                {"name":"c","weight":20,"prompt":"inline","prompt_label":"production"},
                {"name":"d","weight":20,"prompt":"both","prompt_version":1},
                {"name":"f","weight":10,"prompt":"critic","prompt_label":7}
                """#)
        let found = Set(issues(ofReferences: text).map { "\($0.path) \($0.code)" })
        #expect(
            found == [
                "$.prompts.critic.langfuse.labels unknown_field",
                "$.prompts.both.versions invalid_value",
                "$.prompts.typed.langfuse wrong_type",
                "$.prompts.unused.langfuse.name wrong_type",
                "$.prompts.unused invalid_value",
                "$.experiments[0].variants[0].prompt_label invalid_value",
                "$.experiments[0].variants[1].prompt_label invalid_value",
                "$.experiments[0].variants[2].prompt_label invalid_value",
                "$.experiments[0].variants[4].prompt_label wrong_type",
                // Checked by the ordinary validation, on the document with stand-ins for Langfuse.
                "$.experiments[0].variants weights_sum",
                "$.prompts.typed invalid_value",
            ], "\(found)")
    }

    @Test func anOtherwiseValidDocumentWithLangfusePromptsPassesOffline() {
        let text = Self.document(
            prompts: Self.critic,
            variants: #"""
                {"name":"a","control":true,"weight":50,"prompt":"critic","prompt_version":1},
                {"name":"b","weight":50,"prompt":"critic","prompt_label":"production"}
                """#)
        #expect(issues(ofReferences: text).isEmpty)
        // Without the Langfuse step, the same document is not an inline document.
        #expect(issues(of: text).map(\.code).contains(.unknownField))
    }

    @Test func substitutesTheFetchedVersionsAndTheLabelsResolvedVersionIntoAnInlineDocument() throws {
        let text = Self.document(
            prompts: Self.critic,
            variants: #"""
                {"name":"a","control":true,"weight":50,"prompt":"critic","prompt_version":1,"params":{"m":1}},
                {"name":"b","weight":50,"prompt":"critic","prompt_label":"production"}
                """#)
        let references = try PromptReferences.parse(Array(text.utf8))
        let v1 = try Self.text(1, "Review {{movie}}.")
        let v3 = try Self.text(3, "As a {{level}} critic, review {{ movie }}.", labels: ["production"])
        let resolved = try references.resolved(with: [
            .init(name: "movie-critic", selector: .version(1)): v1,
            .init(name: "movie-critic", selector: .label("production")): v3,
        ])
        var writer = JSONWriter()
        writer.value(resolved.root)
        let expected = #"""
            {"schema_version":1,"prompts":{"critic":{"description":"d","versions":[{"version":1,"template":"Review {{movie}}.","variables":{"required":["movie"],"optional":[]}},{"version":3,"template":"As a {{level}} critic, review {{ movie }}.","variables":{"required":["level","movie"],"optional":[]}}]}},"experiments":[{"name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"critic","prompt_version":1,"params":{"m":1}},{"name":"b","weight":50,"prompt":"critic","prompt_version":3}]}]}
            """#
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
        let document = try ConfigDocument.validate(resolved.root)
        #expect(document.experiments[0].variants.map(\.promptVersion) == [1, 3])
        #expect(document.prompt(named: "critic")?.version(3)?.requiredVariables == ["level", "movie"])

        // A label that moves changes the canonical contents, and so the config version.
        let v4 = try Self.text(4, "Rate {{movie}}.", labels: ["production"])
        let moved = try references.resolved(with: [
            .init(name: "movie-critic", selector: .version(1)): v1,
            .init(name: "movie-critic", selector: .label("production")): v4,
        ])
        #expect(moved.canonical != resolved.canonical)
        // A label on the version also used by number is one version, not two.
        let same = try references.resolved(with: [
            .init(name: "movie-critic", selector: .version(1)): v1,
            .init(name: "movie-critic", selector: .label("production")): v1,
        ])
        #expect(try ConfigDocument.validate(same.root).prompt(named: "critic")?.versions.count == 1)
    }

    @Test func aMissingResolutionIsAnErrorNotASilentGap() throws {
        let text = Self.document(
            prompts: Self.critic,
            variants: #"""
                {"name":"a","control":true,"weight":50,"prompt":"critic","prompt_version":1},
                {"name":"b","weight":50,"prompt":"critic","prompt_version":2}
                """#)
        let references = try PromptReferences.parse(Array(text.utf8))
        #expect(throws: PromptSourceError.self) {
            try references.resolved(with: [.init(name: "movie-critic", selector: .version(1)): try Self.text(1, "x")])
        }
    }

    // MARK: Reading the API's answers

    @Test func declaredConfigVariablesWinOverThePlaceholdersFound() throws {
        let prompt = try Self.text(2, "Hi {{name}} {{tone}}", config: #"{"variables":{"required":["name"],"optional":["tone"]},"model":"x"}"#)
        #expect(
            prompt.inlineVersion
                == (try parseJSON(#"{"version":2,"template":"Hi {{name}} {{tone}}","variables":{"required":["name"],"optional":["tone"]}}"#)))
        #expect(
            throws: PromptSourceError(
                .langfuseInvalid,
                #"langfuse 'movie-critic' version 2: config.variables must be an object {"required": [...], "optional": [...]}"#)
        ) { try Self.text(2, "Hi", config: #"{"variables":["name"]}"#) }
    }

    @Test func aChatPromptBecomesMessagesWithTheVariablesOfEveryMessage() throws {
        let prompt = try LangfusePrompt(
            parseJSON(
                #"{"name":"support","version":4,"type":"chat","prompt":[{"role":"system","content":"You help {{customer}}."},{"type":"chatmessage","role":"user","content":"{{question}} ({{customer}})"}],"config":{},"labels":["production"],"tags":[],"commitMessage":"shorter"}"#
            ), for: .init(name: "support", selector: .label("production")))
        var writer = JSONWriter()
        writer.value(prompt.inlineVersion)
        #expect(
            String(decoding: writer.bytes, as: UTF8.self)
                == #"{"version":4,"messages":[{"role":"system","content":"You help {{customer}}."},{"role":"user","content":"{{question}} ({{customer}})"}],"variables":{"required":["customer","question"],"optional":[]},"description":"shorter"}"#
        )
        #expect(prompt.labels == ["production"])
    }

    @Test func aChatPlaceholderIsRefusedWithItsOwnCode() throws {
        let raw = try parseJSON(
            #"{"name":"support","version":1,"type":"chat","prompt":[{"role":"system","content":"x"},{"type":"placeholder","name":"history"}],"config":{},"labels":[],"tags":[]}"#
        )
        #expect(performing: { try LangfusePrompt(raw) }, throws: { ($0 as? PromptSourceError)?.code == .langfuseUnsupported })
    }

    @Test(arguments: [
        (#"[]"#, "a prompt must be a JSON object"),
        (#"{"version":1,"type":"text","prompt":"x"}"#, "no string 'name'"),
        (#"{"name":"movie-critic","version":0,"type":"text","prompt":"x"}"#, "'version' must be an integer"),
        (#"{"name":"movie-critic","version":1,"type":"text","prompt":["x"]}"#, "'prompt' must be a string"),
        (#"{"name":"movie-critic","version":1,"type":"chat","prompt":[{"role":"user"}]}"#, "needs a string 'role' and 'content'"),
        (#"{"name":"movie-critic","version":1,"type":"text","prompt":"x","labels":"production"}"#, "'labels' must be an array"),
        (#"{"name":"other","version":1,"type":"text","prompt":"x"}"#, "the answer is prompt 'other'"),
        (#"{"name":"movie-critic","version":2,"type":"text","prompt":"x"}"#, "the answer is version 2"),
    ])
    func anAnswerThatIsNotTheVersionAskedForIsInvalid(answer: String, message: String) throws {
        #expect(
            performing: { try LangfusePrompt(parseJSON(answer), for: .init(name: "movie-critic", selector: .version(1))) },
            throws: { error in
                guard let error = error as? PromptSourceError else { return false }
                return error.code == .langfuseInvalid && error.message.contains(message)
            })
    }

    @Test func anUnknownPromptTypeIsUnsupported() throws {
        #expect(
            performing: { try LangfusePrompt(parseJSON(#"{"name":"n","version":1,"type":"audio","prompt":"x"}"#)) },
            throws: { ($0 as? PromptSourceError)?.code == .langfuseUnsupported })
    }

    @Test(arguments: [
        ("Hello {{name}}", ["name"]),
        ("{{ a }}{{b}} and {{a}} again", ["a", "b"]),
        ("{{#section}}x{{/section}} {{not-a-name}} {{ ok_1 }} {{unclosed", ["ok_1"]),
        ("no variables { at } all", []),
    ])
    func findsTheVariablesOfATemplate(text: String, names: [String]) {
        #expect(LangfusePrompt.placeholders(in: text) == names)
    }

    // MARK: The config answer

    @Test func theConfigAnswerEndsWithThePromptSourcesInAStableOrder() throws {
        let at = try #require(Timestamp(rfc3339: "2026-11-23T09:00:00Z"))
        let snapshot = ServingSnapshot(config: nil, source: "file:/c.json", lastError: nil, startedAt: at)
            .withPromptSources([
                PromptSourceStatus(
                    prompt: "critic", reference: .init(name: "movie-critic", selector: .label("production")),
                    resolvedVersion: 3, origin: .diskCache, fetchedAt: at,
                    lastError: ConfigLoadFailure(.langfuseUnreachable, message: "refused", at: at)),
                PromptSourceStatus(prompt: "critic", reference: .init(name: "movie-critic", selector: .version(1))),
            ])
        let answer = Responder.respond(to: #"{"id":1,"op":"config"}"#, snapshot: snapshot, now: at, context: .detached())
        #expect(
            answer.hasSuffix(
                #","disabled_treatments":[],"state_error":null,"prompt_sources":[{"prompt":"critic","langfuse_name":"movie-critic","version":null,"label":"production","resolved_version":3,"from":"disk_cache","fetched_at":"2026-11-23T09:00:00Z","last_error":{"code":"langfuse_unreachable","message":"refused","at":"2026-11-23T09:00:00Z"}},{"prompt":"critic","langfuse_name":"movie-critic","version":1,"label":null,"resolved_version":null,"from":null,"fetched_at":null,"last_error":null}]}"#
            ), "\(answer)")
        // The snapshot's other transitions keep the prompt sources.
        #expect(snapshot.recording(ConfigLoadFailure(.timeout, message: "t", at: at)).promptSources.count == 2)
        #expect(snapshot.withDisabled([]).promptSources.count == 2)
    }
}

/// The issues of a document as the Langfuse-aware parse sees them (empty when it passes offline).
func issues(ofReferences text: String) -> [ValidationIssue] {
    do {
        _ = try PromptReferences.parse(Array(text.utf8))
        return []
    } catch {
        return error.issues
    }
}
