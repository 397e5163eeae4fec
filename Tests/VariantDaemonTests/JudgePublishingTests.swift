import Foundation
import Testing
import VariantCore
import VariantDaemon

/// How `variantd-judge` publishes a disable: through AWS AppConfig (a loopback control-plane API that checks every
/// SigV4 signature with botocore, and a concurrent edit), a file, and not through plain HTTP.
@Suite(.serialized) struct JudgePublishingTests {
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let credentials = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": secret]

    static let disableConcise: @Sendable ([UInt8]) throws(TreatmentDisable.Failure) -> [UInt8] = { bytes throws(TreatmentDisable.Failure) in
        try TreatmentDisable.apply(
            to: bytes, experiment: "checkout-prompt", variant: "concise",
            at: Timestamp(rfc3339: "2026-12-02T10:00:00Z")!, by: "variantd-judge@test", reason: "fleet: error rate +10 points",
            evidence: JSONObject([("metric", .string("error_rate")), ("p_value", .number(0.001))]))
    }

    static func disabledBy(_ bytes: [UInt8], variant: String = "concise") -> String? {
        let experiments = (try? JSONParser.parse(bytes))?.objectValue?["experiments"]?.arrayValue ?? []
        let experiment = experiments.first { $0.objectValue?["name"] == .string("checkout-prompt") }?.objectValue
        let found = experiment?["variants"]?.arrayValue?.first { $0.objectValue?["name"] == .string(variant) }?.objectValue
        return found?["disabled"]?.objectValue?["by"]?.stringValue
    }

    func appConfigSource(port: Int) throws -> AppConfigDocumentSource {
        try AppConfigDocumentSource(
            url: "appconfig://app1/env1/prof1?region=eu-west-1&endpoint=http://127.0.0.1:\(port)",
            deploymentStrategy: "immediate1", environment: Self.credentials)
    }

    @Test func appConfigGetsANewSignedVersionBasedOnTheLatestAndDeploysIt() async throws {
        let server = try FixtureServerProcess(script: "appconfig_control_server.py") { directory in
            try Data(exampleConfig.utf8).write(to: directory.appendingPathComponent("doc"))
        }
        let source = try appConfigSource(port: server.port)
        #expect(try await source.read() == Array(exampleConfig.utf8))
        let published = try await source.publish(Self.disableConcise)
        #expect(published == "prof1 version 2")
        let created = try Data(contentsOf: server.directory.appendingPathComponent("version-2"))
        #expect(Self.disabledBy(Array(created)) == "variantd-judge@test")
        _ = try ConfigDocument.validate(Array(created))
        let deployments = try String(contentsOf: server.directory.appendingPathComponent("deployments"), encoding: .utf8)
        #expect(deployments == "env1 prof1 2 immediate1\n")
        let requests = server.requests
        #expect(requests.allSatisfy { $0.contains("signature=ok") }, "\(requests)")
        #expect(requests.contains("POST /applications/app1/configurationprofiles/prof1/hostedconfigurationversions 201 signature=ok latest=1"), "\(requests)")
        #expect(requests.last?.hasPrefix("POST /applications/app1/environments/env1/deployments 201") == true)
    }

    /// Someone creates a version between the judge's read and its write: AppConfig answers 409 to the stale
    /// Latest-Version-Number, and the judge applies its edit to the new version, keeping the other change.
    @Test func aConcurrentVersionIsNeverOverwritten() async throws {
        let concurrent = exampleConfig.replacingOccurrences(of: "\"exposure\": 100", with: "\"exposure\": 90")
        #expect(concurrent != exampleConfig)
        let server = try FixtureServerProcess(script: "appconfig_control_server.py") { directory in
            try Data(exampleConfig.utf8).write(to: directory.appendingPathComponent("doc"))
            try Data(concurrent.utf8).write(to: directory.appendingPathComponent("conflict"))
        }
        let published = try await appConfigSource(port: server.port).publish(Self.disableConcise)
        #expect(published == "prof1 version 3")
        let requests = server.requests
        #expect(requests.contains { $0.hasSuffix("hostedconfigurationversions 409 signature=ok latest=1") }, "\(requests)")
        #expect(requests.contains { $0.hasSuffix("hostedconfigurationversions 201 signature=ok latest=2") }, "\(requests)")
        let third = Array(try Data(contentsOf: server.directory.appendingPathComponent("version-3")))
        #expect(Self.disabledBy(third) == "variantd-judge@test")
        let exposures = (try JSONParser.parse(third)).objectValue?["experiments"]?.arrayValue?.compactMap { $0.objectValue?["exposure"]?.numberValue }
        #expect(exposures?.contains(90) == true, "the concurrent edit was lost")
        let deployments = try String(contentsOf: server.directory.appendingPathComponent("deployments"), encoding: .utf8)
        #expect(deployments == "env1 prof1 3 immediate1\n")
    }

    @Test func badCredentialsAreAnAppConfigErrorAndNothingIsCreated() async throws {
        let server = try FixtureServerProcess(script: "appconfig_control_server.py") { directory in
            try Data(exampleConfig.utf8).write(to: directory.appendingPathComponent("doc"))
        }
        let source = try AppConfigDocumentSource(
            url: "appconfig://app1/env1/prof1?region=eu-west-1&endpoint=http://127.0.0.1:\(server.port)",
            deploymentStrategy: "immediate1",
            environment: ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "not-the-secret"])
        do {
            _ = try await source.publish(Self.disableConcise)
            Issue.record("published with a wrong secret")
        } catch {
            #expect(error.code == .appConfigError)
            #expect(error.message.contains("403"), "\(error.message)")
        }
        #expect(!FileManager.default.fileExists(atPath: server.directory.appendingPathComponent("version-2").path))
    }

    @Test func aFileIsRewrittenAtomicallyWithTheDecisionRecorded() async throws {
        let directory = try temporaryDirectory("variantd-judge-file")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config.json"
        try Data(exampleConfig.utf8).write(to: URL(fileURLWithPath: path))
        let source = FileDocumentSource(path: path)
        let version = try await source.publish(Self.disableConcise)
        let written = try await source.read()
        #expect(version == LoadedConfig.version(of: written))
        #expect(Self.disabledBy(written) == "variantd-judge@test")
        #expect(Self.disabledBy(written, variant: "control") == nil)
        // Publishing the same decision again changes nothing.
        _ = try await source.publish(Self.disableConcise)
        #expect(try await source.read() == written)
        // The control cannot be disabled; the file is untouched.
        do {
            _ = try await source.publish { bytes throws(TreatmentDisable.Failure) in
                try TreatmentDisable.apply(
                    to: bytes, experiment: "checkout-prompt", variant: "control", at: someTime, by: "j", reason: "r",
                    evidence: JSONObject())
            }
            Issue.record("the control was disabled")
        } catch {
            #expect(error.code == .editRefused && error.message.hasPrefix("control_cannot_be_disabled"))
        }
        #expect(try await source.read() == written)
    }

    @Test func aPlainHTTPSourceCannotBeWritten() async throws {
        let server = try ConfigServerFixture(document: exampleConfig)
        let source = ReadOnlyDocumentSource(url: server.url)
        #expect(try await source.read() == Array(exampleConfig.utf8))
        do {
            _ = try await source.publish(Self.disableConcise)
            Issue.record("published to plain HTTP")
        } catch {
            #expect(error.code == .notWritable)
        }
    }
}

private let someTime = Timestamp(rfc3339: "2026-12-02T10:00:00Z")!
