import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The real `variantd` binary taking prompt versions from a fake Langfuse on loopback (`langfuse_server.py`):
/// numbered versions fetched once and cached for good, labels re-resolved on their TTL, and a config applied only
/// when every prompt version it names can be served (from Langfuse, the disk cache or the fallback file).
@Suite(.serialized) struct LangfuseIntegrationTests {
    static let v1 = langfuseText("movie-critic", version: 1, "Review {{movie}}.", labels: ["production"])
    static let v2 = langfuseText("movie-critic", version: 2, "As a {{level}} critic, review {{movie}}.")
    static let numbered = langfuseDocument(control: #""prompt_version":1"#, treatment: #""prompt_version":2"#)
    static let labelled = langfuseDocument(control: #""prompt_version":1"#, treatment: #""prompt_label":"production""#)

    static func start(
        _ langfuse: LangfuseServerFixture, config: String?, cache: String, ttl: String = "60", extra: [String] = [],
        environment: [String: String]? = nil
    ) throws -> DaemonFixture {
        try DaemonFixture(
            config: config,
            arguments: ["--cache-dir", cache, "--request-timeout", "0.5", "--langfuse-label-ttl", ttl] + extra,
            environment: environment ?? langfuse.environment)
    }

    static func promptSources(_ daemon: DaemonFixture) throws -> [JSONObject] {
        (try daemon.ask(#"{"op":"config"}"#)["prompt_sources"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    @Test func numberedVersionsAreFetchedOnceAndServedFromTheDiskCacheAfterARestartWithoutAnyRequest() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let first = try Self.start(langfuse, config: Self.numbered, cache: cache)
        let config = try first.ask(#"{"op":"config"}"#)
        #expect(config["loaded"] == .bool(true), "\(config)\n\(first.logs)")
        let version = try #require(config["config_version"]?.stringValue)
        // The config version covers the prompt contents, not just the document's bytes.
        #expect(version != configVersion(Self.numbered))
        let prompt = try first.ask(#"{"op":"prompt","prompt":"critic","prompt_version":2}"#)
        #expect(prompt["template"] == .string("As a {{level}} critic, review {{movie}}."))
        #expect(prompt["variables"] == (try JSONParser.parse(Array(#"{"required":["level","movie"],"optional":[]}"#.utf8))))
        #expect(
            Set(langfuse.requests) == ["GET movie-critic version=1 200", "GET movie-critic version=2 200"],
            "\(langfuse.requests)")
        let sources = try Self.promptSources(first)
        #expect(sources.map { $0["from"] } == [.string("langfuse"), .string("langfuse")])
        #expect(sources.map { $0["resolved_version"] } == [.number(1), .number(2)])

        // Another document using the same versions: applied without asking Langfuse again.
        let paused = Self.numbered.replacingOccurrences(of: #""status":"running""#, with: #""status":"paused""#)
        try first.writeConfig(paused)
        #expect(
            try await eventually { try first.ask(#"{"op":"config"}"#)["experiment_states"]?.arrayValue?.first?.objectValue?["status"] == .string("paused") })
        // Prompts are resolved before a document is applied: a request for this one would already be counted.
        #expect(langfuse.requests.count == 2, "\(langfuse.requests)")
        try first.writeConfig(Self.numbered)
        #expect(try await eventually { try first.ask(#"{"op":"config"}"#)["config_version"] == .string(version) })
        #expect(first.stop() == 0)
        let files = try FileManager.default.subpathsOfDirectory(atPath: cache + "/langfuse")
        #expect(files.filter { $0.hasSuffix("-v1.json") || $0.hasSuffix("-v2.json") }.count == 2, "\(files)")

        // Langfuse down: the restarted daemon serves the same config from its disk copies, without a request.
        try langfuse.setMode("refuse")
        let requestsBefore = langfuse.requests.count
        let second = try Self.start(langfuse, config: Self.numbered, cache: cache)
        let restarted = try second.ask(#"{"op":"config"}"#)
        #expect(restarted["config_version"] == .string(version), "\(restarted)\n\(second.logs)")
        #expect(restarted["last_error"] == .null)
        #expect(try Self.promptSources(second).map { $0["from"] } == [.string("disk_cache"), .string("disk_cache")])
        #expect(try second.ask(#"{"op":"prompt","prompt":"critic","prompt_version":1}"#)["template"] == .string("Review {{movie}}."))
        #expect(langfuse.requests.count == requestsBefore)
        #expect(second.stop() == 0)
    }

    @Test func aMovedLabelIsServedUnderANewConfigVersionAndItsLastResolutionOutlivesAnOutage() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.start(langfuse, config: Self.labelled, cache: cache, ttl: "0.5")
        let before = try daemon.ask(#"{"op":"config"}"#)
        let firstVersion = try #require(before["config_version"]?.stringValue, "\(before)\n\(daemon.logs)")
        func treatmentPromptVersion() throws -> JSONValue? {
            // A unit in the treatment: find one by trying a few.
            for unit in 0..<64 {
                let answer = try daemon.ask(#"{"op":"assign","experiment":"critic-test","unit":"u\#(unit)"}"#)
                if answer["variant"] == .string("treatment") { return answer["prompt_version"] }
            }
            return nil
        }
        #expect(try treatmentPromptVersion() == .number(1))

        // Steady state: the label is asked again on its TTL (how often is pinned by `ConfigPollerTests`), the
        // numbered version never after the first time, and nothing is applied again while the label stays.
        #expect(
            await eventually { langfuse.requests.filter { $0.contains("label=production") }.count >= 3 },
            "\(langfuse.requests)")
        #expect(langfuse.requests.filter { $0.contains("version=1") }.count == 1, "\(langfuse.requests)")
        #expect(daemon.logs.components(separatedBy: "config.applied").count - 1 == 1, "\(daemon.logs)")

        // Move production to version 2.
        let moved = [
            langfuseText("movie-critic", version: 1, "Review {{movie}}."),
            langfuseText("movie-critic", version: 2, "As a {{level}} critic, review {{movie}}.", labels: ["production"]),
        ]
        let movedAt = ContinuousClock.now
        try langfuse.setPrompts(moved)
        #expect(try await eventually { try treatmentPromptVersion() == .number(2) }, "\(daemon.logs)")
        // Within about one TTL on an idle machine; that the label's timer is the TTL is pinned by `ConfigPollerTests`.
        let took = ContinuousClock.now - movedAt
        let after = try daemon.ask(#"{"op":"config"}"#)
        #expect(after["config_version"] != .string(firstVersion))
        #expect(try Self.promptSources(daemon).last?["resolved_version"] == .number(2))
        #expect(daemon.logs.contains("langfuse_label_moved"), "\(daemon.logs)")
        print("measured: moved label served after \(took) (TTL 0.5 s)")

        // Langfuse down: the last resolution keeps serving, and the failure shows in prompt_sources.
        try langfuse.setMode("500")
        #expect(
            try await eventually {
                try Self.promptSources(daemon).last?["last_error"]?.objectValue?["code"] == .string("langfuse_status")
            })
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == after["config_version"])
        #expect(try treatmentPromptVersion() == .number(2))
        #expect(try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["code"] == .string("langfuse_status"))
        // Retried while failing (backing off up to the TTL), but logged once.
        let failingSince = langfuse.requests.count
        #expect(await eventually { langfuse.requests.count >= failingSince + 2 }, "\(langfuse.requests)")
        #expect(daemon.logs.components(separatedBy: "config.prompts.langfuse_failing").count - 1 == 1, "\(daemon.logs)")
        #expect(daemon.stop() == 0)

        // A restart while Langfuse is down serves the label's last resolution from disk.
        try langfuse.setMode("refuse")
        let restarted = try Self.start(langfuse, config: Self.labelled, cache: cache, ttl: "0.5")
        let config = try restarted.ask(#"{"op":"config"}"#)
        #expect(config["config_version"] == after["config_version"], "\(config)\n\(restarted.logs)")
        let label = try #require(try Self.promptSources(restarted).last)
        #expect(label["from"] == .string("disk_cache"))
        #expect(label["resolved_version"] == .number(2))
        #expect(label["last_error"]?.objectValue?["code"] == .string("langfuse_unreachable"))
        let status = try runProduct("variantctl", ["status", "--socket", restarted.socketPath]).output
        #expect(status.contains("PROMPT") && status.contains("disk_cache") && status.contains("langfuse_unreachable"), "\(status)")
        #expect(restarted.stop() == 0)
    }

    @Test func withLangfuseDownAndNoCopyTheNewConfigIsNotAppliedAndThePreviousOneKeepsServing() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        try langfuse.setMode("500")
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.start(langfuse, config: exampleConfig, cache: cache)
        let inUse = configVersion(exampleConfig)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(inUse))

        try daemon.writeConfig(Self.numbered)
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["code"] == .string("langfuse_status")
            }, "\(daemon.logs)")
        let config = try daemon.ask(#"{"op":"config"}"#)
        #expect(config["config_version"] == .string(inUse))
        #expect(try daemon.ask(#"{"op":"assign","experiment":"critic-test","unit":"u"}"#)["ok"] == .bool(false))
        #expect(try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)["ok"] == .bool(true))
        let sources = try Self.promptSources(daemon)
        #expect(sources.count == 2 && sources.allSatisfy { $0["resolved_version"] == .null && $0["from"] == .null })
        // Retried (two versions an attempt; the backoff is pinned by `ConfigPollerTests`), and logged once, not
        // once per attempt.
        #expect(await eventually { langfuse.requests.count >= 4 }, "\(langfuse.requests)")
        #expect(daemon.logs.components(separatedBy: "config.prompts_unresolved").count - 1 == 1, "\(daemon.logs)")

        // Langfuse answers again: the document is applied on the next retry.
        try langfuse.setMode("ok")
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"assign","experiment":"critic-test","unit":"u"}"#)["ok"] == .bool(true)
            }, "\(daemon.logs)")
        #expect(try daemon.ask(#"{"op":"config"}"#)["last_error"] == .null)
        #expect(daemon.stop() == 0)
    }

    @Test func theFallbackFileIsTheLastResort() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [])
        try langfuse.setMode("refuse")
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let fallback = cache + "/fallback.json"
        try Data("[\(Self.v1),\(Self.v2)]".utf8).write(to: URL(fileURLWithPath: fallback))
        let daemon = try Self.start(langfuse, config: Self.labelled, cache: cache, extra: ["--langfuse-fallback", fallback])
        let config = try daemon.ask(#"{"op":"config"}"#)
        #expect(config["loaded"] == .bool(true), "\(config)\n\(daemon.logs)")
        let sources = try Self.promptSources(daemon)
        #expect(sources.map { $0["from"] } == [.string("fallback"), .string("fallback")])
        #expect(sources.last?["resolved_version"] == .number(1))  // production is on version 1 in the file
        #expect(sources.allSatisfy { $0["last_error"]?.objectValue?["code"] == .string("langfuse_unreachable") })
        #expect(try daemon.ask(#"{"op":"prompt","prompt":"critic","prompt_version":1}"#)["template"] == .string("Review {{movie}}."))
        #expect(daemon.stop() == 0)
    }

    @Test func aMovedLabelIsServedWhileTheConfigSourceItselfFails() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.start(langfuse, config: Self.labelled, cache: cache, ttl: "0.5")
        let firstVersion = try #require(try daemon.ask(#"{"op":"config"}"#)["config_version"]?.stringValue, "\(daemon.logs)")
        // The config file goes away: the source fails, the document in use keeps serving.
        try FileManager.default.removeItem(atPath: daemon.configPath)
        #expect(try await eventually { try daemon.ask(#"{"op":"config"}"#)["source_state"] == .string("failing") })

        try langfuse.setPrompts([
            langfuseText("movie-critic", version: 1, "Review {{movie}}."),
            langfuseText("movie-critic", version: 2, "As a {{level}} critic, review {{movie}}.", labels: ["production"]),
        ])
        #expect(
            try await eventually { try Self.promptSources(daemon).last?["resolved_version"] == .number(2) },
            "\(daemon.logs)")
        let config = try daemon.ask(#"{"op":"config"}"#)
        #expect(config["config_version"] != .string(firstVersion))
        // The source's failure is still what the daemon reports.
        #expect(config["source_state"] == .string("failing"), "\(config)")
        #expect(config["last_error"]?.objectValue?["code"] == .string("read_failed"), "\(config)")
        #expect(daemon.stop() == 0)
    }

    @Test func aLangfuseChatPromptRendersWithItsGuardrailsLikeAnInlineOne() throws {
        let chat = #"{"name":"movie-critic","version":3,"type":"chat","prompt":[{"role":"system","content":"You are a {{level}} critic."},{"role":"user","content":"Review {{movie}}."}],"config":{},"labels":[],"tags":[]}"#
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, chat])
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let document = """
            {"schema_version":1,
             "prompts":{"critic":{"langfuse":{"name":"movie-critic"},
               "rules":[{"name":"no-spoilers","type":"keywords","action":"block","target":"variables","keywords":["spoiler"]}]}},
             "experiments":[{"name":"critic-test","salt":"critic-1","status":"running","variants":[
               {"name":"control","control":true,"weight":50,"prompt":"critic","prompt_version":1},
               {"name":"treatment","weight":50,"prompt":"critic","prompt_version":3}]}]}
            """
        let daemon = try Self.start(langfuse, config: document, cache: cache)
        let config = try daemon.ask(#"{"op":"config"}"#)
        #expect(config["loaded"] == .bool(true), "\(config)\n\(daemon.logs)")

        let chatUnit = try #require((0..<100).map { "user-\($0)" }.first {
            try daemon.ask(#"{"op":"assign","experiment":"critic-test","unit":"\#($0)"}"#)["variant"] == .string("treatment")
        })
        let rendered = try daemon.ask(
            #"{"op":"render","experiment":"critic-test","unit":"\#(chatUnit)","variables":{"level":"harsh","movie":"Heat"}}"#)
        #expect(rendered["type"] == .string("chat"), "\(rendered)")
        #expect(rendered["prompt_version"] == .number(3))
        let messages = (rendered["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
        #expect(messages.map { $0["role"] } == [.string("system"), .string("user")])
        #expect(messages.map { $0["content"] } == [.string("You are a harsh critic."), .string("Review Heat.")])

        let text = try daemon.ask(#"{"op":"render","prompt":"critic","prompt_version":1,"variables":{"movie":"Heat"}}"#)
        #expect(text["type"] == .string("text") && text["text"] == .string("Review Heat."), "\(text)")
        // The prompt's guardrail applies to the versions Langfuse supplied, and the variables Langfuse's template
        // uses are required.
        let blocked = try daemon.ask(#"{"op":"render","prompt":"critic","prompt_version":1,"variables":{"movie":"Heat, spoiler: ..."}}"#)
        #expect(blocked["error"]?.objectValue?["code"] == .string("rule_blocked"), "\(blocked)")
        let missing = try daemon.ask(#"{"op":"render","prompt":"critic","prompt_version":3,"variables":{"movie":"Heat"}}"#)
        #expect(missing["error"]?.objectValue?["code"] == .string("missing_variable"), "\(missing)")
        #expect(daemon.stop() == 0)
    }

    struct Failure: Sendable, CustomTestStringConvertible {
        var mode: String
        var code: String
        var message: String
        var testDescription: String { mode }
    }

    @Test(arguments: [
        Failure(mode: "bad-keys", code: "langfuse_auth", message: "refused the keys (401)"),
        Failure(mode: "no-keys", code: "langfuse_auth", message: "no Langfuse keys are configured"),
        Failure(mode: "not-found", code: "langfuse_not_found", message: "no such prompt (404)"),
        Failure(mode: "500", code: "langfuse_status", message: "answered 500"),
        Failure(mode: "hang", code: "langfuse_timeout", message: "no complete answer"),
        Failure(mode: "garbage", code: "langfuse_invalid", message: "not JSON"),
        Failure(mode: "refuse", code: "langfuse_unreachable", message: "movie-critic"),
        Failure(mode: "placeholder", code: "langfuse_unsupported", message: "placeholder"),
    ])
    func eachLangfuseFailureHasAClearCodeAndNothingIsServedFromIt(_ failure: Failure) async throws {
        let placeholder =
            #"{"name":"movie-critic","version":2,"type":"chat","prompt":[{"role":"system","content":"x"},{"type":"placeholder","name":"history"}],"config":{},"labels":[],"tags":[]}"#
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, failure.mode == "not-found" ? Self.v1 : failure.mode == "placeholder" ? placeholder : Self.v2])
        var environment = langfuse.environment
        switch failure.mode {
        case "bad-keys": environment["LANGFUSE_SECRET_KEY"] = "sk-lf-wrong"
        case "no-keys":
            environment["LANGFUSE_PUBLIC_KEY"] = ""
            environment["LANGFUSE_SECRET_KEY"] = ""
        case "not-found", "placeholder": break
        default: try langfuse.setMode(failure.mode)
        }
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.start(langfuse, config: Self.numbered, cache: cache, environment: environment)
        let config = try daemon.ask(#"{"op":"config"}"#)
        #expect(config["loaded"] == .bool(false), "\(config)")
        let lastError = config["last_error"]?.objectValue
        #expect(lastError?["code"] == .string(failure.code), "\(config)\n\(daemon.logs)")
        let message = lastError?["message"]?.stringValue ?? ""
        #expect(message.contains(failure.message), "\(message)")
        #expect(try daemon.ask(#"{"op":"assign","experiment":"critic-test","unit":"u"}"#)["reason"] == .string("no_config"))
        #expect(daemon.stop() == 0)
    }

    @Test func unchangedPollsOfAnHTTPSourceCostNoLangfuseRequestForNumberedVersions() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        let server = try ConfigServerFixture(document: Self.numbered)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.start(
            langfuse, config: nil, cache: cache,
            extra: ["--config", server.url, "--poll-interval", "0.1", "--poll-jitter", "0"])
        #expect(try daemon.ask(#"{"op":"config"}"#)["loaded"] == .bool(true), "\(daemon.logs)")
        #expect(await eventually { server.requests.count >= 8 }, "\(server.requests)")
        let polls = server.requests.count
        #expect(langfuse.requests.count == 2, "\(langfuse.requests)")
        print("measured: \(polls) polls of the source, \(langfuse.requests.count) Langfuse requests in all")
        // The source document is cached as served; its Langfuse copies beside it.
        #expect(daemon.stop() == 0)
        try server.setMode("refuse")
        try langfuse.setMode("refuse")
        let restarted = try Self.start(
            langfuse, config: nil, cache: cache, extra: ["--config", server.url, "--poll-interval", "0.1"])
        let config = try restarted.ask(#"{"op":"config"}"#)
        #expect(config["from_cache"] == .bool(true) && config["loaded"] == .bool(true), "\(config)\n\(restarted.logs)")
        #expect(restarted.stop() == 0)
    }

    @Test func variantctlValidateChecksALangfuseDocumentOfflineAndNamesWhatWasNotFetched() throws {
        let directory = try temporaryDirectory("variantd-validate")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(Self.labelled.utf8).write(to: URL(fileURLWithPath: directory + "/good.json"))
        let good = try runProduct("variantctl", ["validate", directory + "/good.json"])
        #expect(good.status == 0, "\(good.output)")
        #expect(good.output.contains("not fetched"), "\(good.output)")
        #expect(good.output.contains("critic: langfuse 'movie-critic' label 'production'"), "\(good.output)")
        let json = try runProduct("variantctl", ["validate", "--json", directory + "/good.json"])
        let answer = try #require(parseObject(json.output.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(answer["valid"] == .bool(true))
        #expect(answer["unfetched"]?.arrayValue?.count == 2, "\(json.output)")

        let bad = Self.labelled.replacingOccurrences(of: #""prompt_label":"production""#, with: #""prompt_label":"Prod""#)
        try Data(bad.utf8).write(to: URL(fileURLWithPath: directory + "/bad.json"))
        let invalid = try runProduct("variantctl", ["validate", directory + "/bad.json"])
        #expect(invalid.status == 1)
        #expect(invalid.output.contains("$.experiments[0].variants[1].prompt_label: invalid_value"), "\(invalid.output)")
    }

    @Test func badLangfuseOptionsStopTheDaemonWithAClearMessage() throws {
        let directory = try temporaryDirectory("variantd-options")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("LANGFUSE_PUBLIC_KEY=pk\nSECRET=x\n".utf8).write(to: URL(fileURLWithPath: directory + "/bad"))
        for (arguments, environment, message) in [
            (["--langfuse-url", "ftp://x"], [:], "--langfuse-url: 'ftp://x' is not an http:// or https:// URL"),
            ([], ["LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": ""], "LANGFUSE_PUBLIC_KEY is set but not LANGFUSE_SECRET_KEY"),
            (["--langfuse-credentials", directory + "/bad"], [:], "line 2: unknown name 'SECRET'"),
            (["--langfuse-label-ttl", "0"], [:], "--langfuse-label-ttl must be a positive number of seconds"),
            (["--langfuse-fallback", "/nonexistent.json"], [:], "--langfuse-fallback: cannot read /nonexistent.json"),
        ] as [([String], [String: String], String)] {
            let refused = try runProduct(
                "variantd", ["--socket", "/tmp/variantd-never.sock"] + arguments,
                environment: ["LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": ""].merging(environment) { $1 })
            #expect(refused.status != 0)
            #expect(refused.output.contains(message), "\(arguments): \(refused.output)")
        }
    }

    @Test func aCredentialsFileGivesTheKeysAndTheHost() async throws {
        let langfuse = try LangfuseServerFixture(prompts: [Self.v1, Self.v2])
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        try Data(
            """
            # Langfuse project "critics"
            LANGFUSE_PUBLIC_KEY=\(LangfuseServerFixture.publicKey)
            LANGFUSE_SECRET_KEY="\(LangfuseServerFixture.secretKey)"
            LANGFUSE_HOST=\(langfuse.url)

            """.utf8
        ).write(to: URL(fileURLWithPath: cache + "/langfuse.env"))
        let daemon = try Self.start(
            langfuse, config: Self.numbered, cache: cache, extra: ["--langfuse-credentials", cache + "/langfuse.env"],
            environment: ["LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": "", "LANGFUSE_HOST": ""])
        #expect(try daemon.ask(#"{"op":"config"}"#)["loaded"] == .bool(true), "\(daemon.logs)")
        #expect(daemon.stop() == 0)
    }
}
