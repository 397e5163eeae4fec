import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The real `variantd` binary polling a real HTTP server on loopback (`config_server.py`) that misbehaves on
/// command: routing never stops, failures are recorded and backed off from, and recovery applies the next good
/// document.
@Suite(.serialized) struct HostedConfigIntegrationTests {
    /// A source failure, the code the `config` op must show for it, and whether the source counts as failing
    /// (a document that fails validation came from a working source).
    struct Failure: Sendable, CustomTestStringConvertible {
        var mode: String
        var code: String
        var sourceFailing = true
        var testDescription: String { mode }
    }

    static let failures: [Failure] = [
        Failure(mode: "500", code: "http_status"),
        Failure(mode: "404", code: "http_status"),
        Failure(mode: "hang", code: "timeout"),
        Failure(mode: "stall", code: "timeout"),
        Failure(mode: "truncated", code: "connection_failed"),
        Failure(mode: "nonjson", code: "invalid_config", sourceFailing: false),
        Failure(mode: "invalid", code: "invalid_config", sourceFailing: false),
        Failure(mode: "oversized", code: "too_large"),
        Failure(mode: "refuse", code: "connection_failed"),
        Failure(mode: "redirect", code: "redirect_loop"),
    ]

    static func startDaemon(
        server: ConfigServerFixture,
        cacheDirectory: String,
        interval: String = "0.1",
        extra: [String] = []
    ) throws -> DaemonFixture {
        try DaemonFixture(
            config: nil,
            arguments: [
                "--config", server.url, "--cache-dir", cacheDirectory, "--poll-interval", interval,
                "--poll-jitter", "0.2", "--max-backoff", "0.4", "--request-timeout", "0.5",
                "--max-config-bytes", "65536",
            ] + extra
        )
    }

    @Test(arguments: failures)
    func keepsServingTheLastGoodConfigThroughAFailureAndRecovers(_ failure: Failure) async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache)
        let good = configVersion(exampleConfig)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(good))
        let before = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"user-7"}"#)

        if failure.mode == "invalid" {
            try server.publish(invalidConfig)
        } else {
            try server.setMode(failure.mode)
        }
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["code"] == .string(failure.code)
            },
            "\(failure.mode): last_error never became \(failure.code):\n\(daemon.logs)"
        )
        let during = try daemon.ask(#"{"op":"config"}"#)
        #expect(during["config_version"] == .string(good))
        #expect(during["source_state"] == .string(failure.sourceFailing ? "failing" : "ok"))
        if failure.code == "invalid_config" {
            #expect(during["last_error"]?.objectValue?["problems"]?.arrayValue?.isEmpty == false)
        }
        // Routing goes on from the last good document, answer for answer.
        let answer = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"user-7"}"#)
        #expect(answer == before)

        // Let the failure go on for a few more attempts (the backoff itself is pinned by `ConfigPollerTimerTests`):
        // seen by the server, or, where it never answers (refused, too large), in the time of the recorded error.
        let requestsBefore = server.requests.count
        var failedAt: Set<String> = []
        #expect(
            try await eventually {
                failedAt.insert(try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["at"]?.stringValue ?? "")
                return server.requests.count >= requestsBefore + 3 || failedAt.count >= 3
            }, "\(server.requests)")
        if failure.sourceFailing {
            // Logged once, not once per attempt.
            #expect(daemon.logs.components(separatedBy: "config.fetch_failed").count - 1 == 1, "\(daemon.logs)")
        } else {
            // The rejected document is not parsed again while the source keeps serving it.
            #expect(daemon.logs.components(separatedBy: "config.rejected").count - 1 == 1, "\(daemon.logs)")
        }

        let next = exampleConfig(status: "paused")
        try server.publish(next)
        try server.setMode("ok")
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(configVersion(next))
            },
            "\(failure.mode): the next good document was not applied:\n\(daemon.logs)"
        )
        let after = try daemon.ask(#"{"op":"config"}"#)
        #expect(after["last_error"] == .null)
        #expect(after["source_state"] == .string("ok"))
        #expect(after["from_cache"] == .bool(false))
        if failure.sourceFailing {
            // Logged just after the document is applied.
            #expect(await eventually { daemon.logs.contains("config.source.recovered") }, "\(daemon.logs)")
        }
        #expect(daemon.stop() == 0)
    }

    @Test func anUnchangedDocumentCostsOneSmallRequestAndNoReparse() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache)
        #expect(await eventually { server.requests.count >= 5 }, "\(server.requests)")
        let requests = server.requests
        #expect(requests.first?.hasPrefix("GET /config.json 200 ") == true)
        let conditional = requests.dropFirst()
        // Every later poll sent the ETag back and got an empty 304.
        #expect(conditional.allSatisfy { $0.hasPrefix("GET /config.json 304 0 if-none-match=\"") }, "\(requests)")
        #expect(daemon.logs.components(separatedBy: "config.applied").count - 1 == 1)
        let status = try daemon.ask(#"{"op":"config"}"#)
        #expect(status["source_version"]?.stringValue?.hasPrefix("\"") == true)
        #expect(status["last_success_at"] != .null)
        #expect(daemon.stop() == 0)
    }

    @Test func identicalBytesWithoutAnETagAreNotParsedAgain() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        try server.setMode("noetag")
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache)
        #expect(await eventually { server.requests.filter { $0.hasPrefix("GET /config.json 200 ") }.count >= 4 })
        #expect(daemon.logs.components(separatedBy: "config.applied").count - 1 == 1)
        #expect(daemon.stop() == 0)
    }

    @Test func aChangePublishedAtTheSourceIsServedByATimerPoll() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache, interval: "0.5")
        let next = exampleConfig(status: "paused")
        try server.publish(next)
        // Within one interval on an idle machine: that no wait is longer is pinned by `PollScheduleTests`.
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)["config_version"]
                    == .string(configVersion(next))
            }
        )
        #expect(daemon.stop() == 0)
    }

    @Test func aRestartDuringAnOutageServesTheSameAssignmentsFromTheDiskCopy() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let units = (0..<50).map { "user-\($0)" }
        func assignments(_ daemon: DaemonFixture) throws -> [JSONValue?] {
            try units.map {
                try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"\#($0)"}"#)["variant"]
            }
        }
        let first = try Self.startDaemon(server: server, cacheDirectory: cache)
        let before = try assignments(first)
        let fetchedAt = try first.ask(#"{"op":"config"}"#)["fetched_at"]
        #expect(first.stop() == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: cache)
        #expect(files.contains { $0.hasSuffix(".meta.json") } && files.count == 2, "\(files)")

        try server.setMode("refuse")
        let second = try Self.startDaemon(server: server, cacheDirectory: cache)
        let config = try second.ask(#"{"op":"config"}"#)
        #expect(config["from_cache"] == .bool(true))
        #expect(config["config_version"] == .string(configVersion(exampleConfig)))
        #expect(config["fetched_at"] == fetchedAt)
        #expect(config["source_state"] == .string("failing"))
        #expect(config["last_error"]?.objectValue?["code"] == .string("connection_failed"))
        #expect(second.logs.contains("config.from_cache"))
        #expect(try assignments(second) == before)
        let status = try runProduct("variantctl", ["status", "--socket", second.socketPath]).output
        #expect(
            status.contains("from_cache: true") && status.contains("note: serving the last-known-good copy"),
            "\(status)"
        )
        #expect(status.contains("last_error: connection_failed"), "\(status)")

        // The source comes back with the same bytes: confirmed without being applied again.
        try server.setMode("ok")
        #expect(try await eventually { try second.ask(#"{"op":"config"}"#)["from_cache"] == .bool(false) })
        #expect(second.logs.contains("config.confirmed"))
        #expect(!second.logs.contains("config.applied"))
        #expect(second.stop() == 0)
    }

    @Test func withNeitherSourceNorCacheItAnswersNoConfigAndKeepsTrying() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        try server.setMode("500")
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache)
        let answer = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)
        #expect(answer["reason"] == .string("no_config"))
        #expect(try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue?["code"] == .string("http_status"))
        try server.setMode("ok")
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#)["reason"]
                    != .string("no_config")
            }
        )
        #expect(daemon.stop() == 0)
    }

    @Test func sighupPollsAtOnce() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        // A poll interval far longer than the test: only SIGHUP can bring the change in.
        let daemon = try Self.startDaemon(server: server, cacheDirectory: cache, interval: "600")
        let next = exampleConfig(status: "paused")
        try server.publish(next)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(configVersion(exampleConfig)))
        daemon.send(signal: SIGHUP)
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(configVersion(next))
            }
        )
        #expect(daemon.logs.contains("config.reload"))
        #expect(daemon.stop() == 0)
    }

    @Test func theAppConfigDataAPIFlowWithSignedRequests() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        try server.set("version_label", "v1")
        try server.set("poll_interval", "1")
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let credentials = try temporaryDirectory("variantd-aws")
        defer { try? FileManager.default.removeItem(atPath: credentials) }
        // Credentials from the shared credentials file, under a named profile.
        try Data(
            """
            [default]
            aws_access_key_id = AKIDWRONG
            aws_secret_access_key = wrong

            [variantd]
            aws_access_key_id = AKIDEXAMPLE
            aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
            aws_session_token = session+token/==
            """.utf8
        ).write(to: URL(fileURLWithPath: credentials + "/credentials"))
        let source = "appconfig://checkout/production/prompts?region=eu-west-1&endpoint=http://127.0.0.1:\(server.port)"
        let started = ContinuousClock.now
        let daemon = try DaemonFixture(
            config: nil,
            arguments: [
                // A request timeout a loaded machine cannot run out (the outage below answers 500 at once).
                "--config", source, "--cache-dir", cache, "--poll-interval", "0.1", "--request-timeout", "10",
                "--max-backoff", "0.4",
            ],
            environment: [
                "AWS_SHARED_CREDENTIALS_FILE": credentials + "/credentials", "AWS_PROFILE": "variantd",
                "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
            ]
        )
        let status = try daemon.ask(#"{"op":"config"}"#)
        #expect(status["config_version"] == .string(configVersion(exampleConfig)), "\(daemon.logs)\n\(server.requests)")
        #expect(status["source_version"] == .string("v1"))
        #expect(status["source"] == .string(source))

        // The server asks for at least 1 s between polls: the daemon's own 0.1 s gives way. Every poll fell within
        // the time since the daemon started, so the gaps between them (at least 0.9 s: 1 s less the 10% jitter)
        // fit in it; a loaded machine only makes that time longer.
        #expect(await eventually { server.requests.filter { $0.hasPrefix("GET /configuration ") }.count >= 3 })
        let polls = server.requests.filter { $0.hasPrefix("GET /configuration ") }
        let elapsed = ContinuousClock.now - started
        #expect(.milliseconds(900) * (polls.count - 1) <= elapsed, "\(polls.count) polls in \(elapsed)")
        #expect(server.requests.filter { $0.hasPrefix("POST /configurationsessions 201") }.count == 1)
        // After the first, every answer was an empty 200 ("unchanged"), and every token was accepted.
        #expect(polls.dropFirst().allSatisfy { $0.hasPrefix("GET /configuration 200 0 ") }, "\(polls)")
        #expect(server.requests.allSatisfy { $0.hasSuffix("signature=ok") }, "\(server.requests)")
        #expect(daemon.logs.components(separatedBy: "config.applied").count - 1 == 1)

        let next = exampleConfig(status: "paused")
        try server.set("version_label", "v2")
        try server.publish(next)
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(configVersion(next))
            }
        )
        #expect(try daemon.ask(#"{"op":"config"}"#)["source_version"] == .string("v2"))

        // An outage: the session is dropped and started again once the API answers.
        try server.setMode("500")
        #expect(
            try await eventually {
                try daemon.ask(#"{"op":"config"}"#)["source_state"] == .string("failing")
            }
        )
        try server.setMode("ok")
        #expect(
            try await eventually { try daemon.ask(#"{"op":"config"}"#)["source_state"] == .string("ok") }
        )
        #expect(server.requests.filter { $0.hasPrefix("POST /configurationsessions 201") }.count >= 2)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == .string(configVersion(next)))
        #expect(daemon.stop() == 0)
    }

    @Test func appConfigWithoutCredentialsSaysWhatIsMissing() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let cache = try temporaryDirectory("variantd-cache")
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let source = "appconfig://a/e/p?region=eu-west-1&endpoint=http://127.0.0.1:\(server.port)"
        let daemon = try DaemonFixture(
            config: nil,
            arguments: ["--config", source, "--cache-dir", cache, "--poll-interval", "0.1"],
            environment: [
                "AWS_SHARED_CREDENTIALS_FILE": cache + "/none", "AWS_CONFIG_FILE": cache + "/none",
                "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "",
            ]
        )
        let failure = try daemon.ask(#"{"op":"config"}"#)["last_error"]?.objectValue
        #expect(failure?["code"] == .string("credentials_missing"))
        #expect(failure?["message"]?.stringValue?.contains("not supported") == true)
        #expect(server.requests.isEmpty)
        #expect(daemon.stop() == 0)
    }

    @Test func httpsTrustsOnlyTheConfiguredCABundle() async throws {
        let directory = try temporaryDirectory("variantd-tls")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        openssl.arguments = [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out",
            directory + "/cert.pem",
        ]
        openssl.standardOutput = FileHandle.nullDevice
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        try #require(openssl.terminationStatus == 0)
        let server = try ConfigServerFixture(
            document: exampleConfig,
            tls: (directory + "/cert.pem", directory + "/key.pem")
        )
        let url = "https://127.0.0.1:\(server.port)/config.json"
        let arguments = [
            "--config", url, "--cache-dir", directory + "/cache", "--poll-interval", "0.1", "--max-backoff", "0.4",
            "--request-timeout", "2",
        ]
        let untrusting = try DaemonFixture(config: nil, arguments: arguments)
        let failure = try untrusting.ask(#"{"op":"config"}"#)
        #expect(failure["loaded"] == .bool(false))
        #expect(failure["last_error"]?.objectValue?["code"] == .string("tls_failed"), "\(failure)")
        #expect(untrusting.stop() == 0)

        let trusting = try DaemonFixture(config: nil, arguments: arguments + ["--ca-bundle", directory + "/cert.pem"])
        let status = try trusting.ask(#"{"op":"config"}"#)
        #expect(status["config_version"] == .string(configVersion(exampleConfig)), "\(status)")
        #expect(trusting.stop() == 0)
    }

    @Test func badSourceOptionsStopTheDaemonWithAClearMessage() async throws {
        for (arguments, message) in [
            (["--config", "ftp://example.com/x"], "unknown scheme 'ftp'"),
            (["--config", "appconfig://only/two"], "three names"),
            (["--poll-jitter", "2"], "--poll-jitter must be between 0 and 1"),
            (["--max-backoff", "0"], "--max-backoff must be a positive number of seconds"),
            (["--poll-interval", "1e300"], "--poll-interval must be a positive number of seconds, at most a day"),
            (["--ca-bundle", "/nonexistent.pem"], "--ca-bundle: cannot read /nonexistent.pem"),
        ] {
            let refused = try runProduct("variantd", ["--socket", "/tmp/variantd-never.sock"] + arguments)
            #expect(refused.status != 0)
            #expect(refused.output.contains(message), "\(arguments): \(refused.output)")
        }
    }
}

