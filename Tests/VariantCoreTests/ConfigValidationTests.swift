import Foundation
import Testing
@testable import VariantCore

@Suite struct ConfigValidationTests {
    static let twoVariants =
        #""variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#

    /// One broken document per code, and the single issue it must produce.
    static let brokenDocuments: [(document: String, path: String, code: ValidationIssue.Code)] = [
        (#"{"schema_version":1,"prompts":{},"experiments":[}"#, "$", .invalidJSON),
        (#"{"schema_version":1,"prompts":[],"experiments":[]}"#, "$.prompts", .wrongType),
        (#"{"schema_version":1,"experiments":[]}"#, "$.prompts", .missingField),
        (#"{"schema_version":1,"prompts":{},"experiments":[],"experimentz":[]}"#, "$.experimentz", .unknownField),
        (#"{"schema_version":2,"prompts":{},"experiments":[]}"#, "$.schema_version", .unsupportedSchemaVersion),
        (
            #"{"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"a"},{"version":1,"template":"b"}]}},"experiments":[]}"#,
            "$.prompts.p.versions[1].version", .duplicateVersion
        ),
        (
            #"{"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"a","variables":{"required":["x"],"optional":["x"]}}]}},"experiments":[]}"#,
            "$.prompts.p.versions[0].variables.optional[0]", .duplicateName
        ),
        (documentWithExperiment(#""name":"e","salt":"s","status":"running","exposure":100.5,"# + twoVariants), "$.experiments[0].exposure", .invalidValue),
        (documentWithExperiment(#""name":"e","salt":"s","status":"running","exposure":12.345,"# + twoVariants), "$.experiments[0].exposure", .invalidValue),
        (documentWithExperiment(#""name":"-e","salt":"s","status":"running","# + twoVariants), "$.experiments[0].name", .invalidValue),
        (documentWithExperiment(#""name":"e","salt":"s","status":"live","# + twoVariants), "$.experiments[0].status", .invalidValue),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":100,"prompt":"p","prompt_version":1}]"#),
            "$.experiments[0].variants", .tooFewVariants
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":40,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants", .weightsSum
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants", .missingControl
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","control":true,"weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants", .multipleControls
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"a","weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants[1].name", .duplicateName
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"q","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants[0].prompt", .unknownPrompt
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":3},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants[0].prompt_version", .unknownPromptVersion
        ),
        (documentWithExperiment(#""name":"e","salt":"s","status":"running","start":"2026-11-01","# + twoVariants), "$.experiments[0].start", .invalidTimestamp),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","start":"2026-11-02T00:00:00Z","end":"2026-11-01T00:00:00Z","# + twoVariants),
            "$.experiments[0].end", .windowInverted
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","start":"2026-11-01T00:00:00Z","end":"2027-11-03T00:00:00Z","# + twoVariants),
            "$.experiments[0].end", .windowTooLong
        ),
        (documentWithExperiment(#""name":"e","salt":"s","status":"completed","# + twoVariants), "$.experiments[0].winner", .missingWinner),
        (documentWithExperiment(#""name":"e","salt":"s","status":"running","winner":"b","# + twoVariants), "$.experiments[0].winner", .unexpectedWinner),
        (documentWithExperiment(#""name":"e","salt":"s","status":"completed","winner":"z","# + twoVariants), "$.experiments[0].winner", .unknownWinner),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","targeting":[{"attribute":"age","op":"lt","value":"18"}],"# + twoVariants),
            "$.experiments[0].targeting[0].value", .invalidRule
        ),
        (promptDocument(#"{"version":1,"template":"Hi {{name"}"#), "$.prompts.p.versions[0].template", .invalidTemplate),
        (promptDocument(#"{"version":1,"template":"Hi {{> footer}}"}"#), "$.prompts.p.versions[0].template", .unsupportedTemplate),
        (
            promptDocument(#"{"version":1,"messages":[{"role":"user","content":"Hi {{name}}"}]}"#),
            "$.prompts.p.versions[0].messages[0].content", .undeclaredVariable
        ),
        (
            promptDocument(#"{"version":1,"template":"a","messages":[{"role":"user","content":"b"}]}"#),
            "$.prompts.p.versions[0].messages", .conflictingFields
        ),
        (
            promptDocument(#"{"version":1,"template":"a","rules":[{"name":"g","type":"regex","action":"block","pattern":"(a"}]}"#),
            "$.prompts.p.versions[0].rules[0].pattern", .invalidPattern
        ),
        (
            #"""
            {"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"a","rules":[{"name":"g","type":"model","action":"block","models":["m"]}]}]}},
             "experiments":[{"name":"e","salt":"s","status":"running","variants":[
               {"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1,"params":{"model":"m"}},
               {"name":"b","weight":50,"prompt":"p","prompt_version":1,"params":{"model":"x"}}]}]}
            """#,
            "$.experiments[0].variants[1].params.model", .modelNotAllowed
        ),
        (
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1,"disabled":{"at":"2026-11-20T08:30:00Z","by":"j","reason":"r"}},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#),
            "$.experiments[0].variants[0].disabled", .controlCannotBeDisabled
        ),
    ]

    /// A document with one prompt `p` of one version, given as JSON, and no experiments.
    static func promptDocument(_ version: String) -> String {
        #"{"schema_version":1,"prompts":{"p":{"versions":[\#(version)]}},"experiments":[]}"#
    }

    @Test(arguments: brokenDocuments.indices)
    func reportsEachProblemWithItsPathAndCode(index: Int) {
        let (document, path, code) = Self.brokenDocuments[index]
        let found = issues(of: document)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.path == path)
        #expect(found.first?.code == code)
    }

    @Test func everyValidationCodeIsPinnedByABrokenDocument() {
        let pinned = Set(Self.brokenDocuments.map(\.code.rawValue))
        #expect(pinned == Set(ValidationIssue.Code.all.map(\.rawValue)))
    }

    @Test func reportsEveryProblemAtOnce() {
        let document = """
            {"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"x"}]}},
             "experiments":[
               {"name":"e","salt":"s","status":"running","colour":"red","exposure":120,
                "variants":[{"name":"a","weight":30,"prompt":"p","prompt_version":9},{"name":"a","weight":"x","prompt":"q","prompt_version":1}]},
               {"name":"e","salt":"","status":"completed","variants":[]}]}
            """
        let found = issues(of: document).map { "\($0.path) \($0.code)" }
        #expect(
            Set(found) == [
                "$.experiments[0].colour unknown_field", "$.experiments[0].exposure invalid_value",
                "$.experiments[0].variants[0].prompt_version unknown_prompt_version",
                "$.experiments[0].variants[1].name duplicate_name", "$.experiments[0].variants[1].weight wrong_type",
                "$.experiments[0].variants[1].prompt unknown_prompt", "$.experiments[0].variants missing_control",
                "$.experiments[1].salt invalid_value", "$.experiments[1].variants too_few_variants",
                "$.experiments[1].winner missing_winner", "$.experiments[1].name duplicate_name",
            ])
        #expect(found.count == 11)
    }

    @Test func acceptsTwoDecimalWeightsThatSumToExactlyOneHundred() throws {
        let variants = [33.33, 33.33, 33.34].enumerated().map { index, weight in
            #"{"name":"v\#(index)","weight":\#(weight),"prompt":"p","prompt_version":1\#(index == 0 ? #","control":true"# : "")}"#
        }
        let document = try validDocument(
            documentWithExperiment(#""name":"e","salt":"s","status":"running","variants":[\#(variants.joined(separator: ","))]"#))
        #expect(document.experiments[0].variants.map(\.weightBasisPoints) == [3333, 3333, 3334])
    }

    @Test func theBundledExampleIsValid() throws {
        let document = try ConfigDocument.validate(try repositoryFile("examples/variantd.json"))
        #expect(document.experiments.count >= 2)
        #expect(document.experiments.contains { $0.variants.count == 3 })
        #expect(document.prompts.values.contains { $0.versions.count >= 2 })
    }

    @Test func aWindowOfExactlyTheLimitIsAllowed() {
        let document = documentWithExperiment(
            #""name":"e","salt":"s","status":"running","start":"2026-01-01T00:00:00Z","end":"2027-01-02T00:00:00Z","#
                + Self.twoVariants)
        #expect(issues(of: document).isEmpty)
    }

    @Test func everyCodeIsDocumentedInTheProtocol() throws {
        let protocolText = String(decoding: try repositoryFile("protocol/PROTOCOL.md"), as: UTF8.self)
        for code in ValidationIssue.Code.all {
            #expect(protocolText.contains("| `\(code.rawValue)` |"), "PROTOCOL.md does not list \(code)")
        }
        for code in ProtocolError.Code.all {
            #expect(protocolText.contains("| `\(code.rawValue)` |"), "PROTOCOL.md does not list \(code)")
        }
        for code in ConfigLoadFailure.Code.all {
            #expect(protocolText.contains("| `\(code.rawValue)` |"), "PROTOCOL.md does not list \(code)")
        }
    }
}

/// Names are matched byte for byte: Swift's `==` would match "K" with the Kelvin sign (U+212A), which no other
/// client language does (found by review of the fuzzing harness's invariants; see fuzz/regressions/config).
@Suite struct ByteExactNameTests {
    @Test func aPromptReferenceMustMatchThePromptNameByteForByte() {
        let document = """
            {"schema_version":1,"prompts":{"K":{"versions":[{"version":1,"template":"x"}]}},
             "experiments":[{"name":"e","salt":"s","status":"running","variants":[
               {"name":"a","control":true,"weight":50,"prompt":"\\u212a","prompt_version":1},
               {"name":"b","weight":50,"prompt":"K","prompt_version":1}]}]}
            """
        #expect(issues(of: document).map(\.code) == [.unknownPrompt])
    }

    @Test func aWinnerMustMatchAVariantNameByteForByte() {
        let document = documentWithExperiment(
            #""name":"e","salt":"s","status":"completed","winner":"\u212a","variants":[{"name":"K","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#)
        #expect(issues(of: document).map(\.code) == [.unknownWinner])
    }

    @Test func requestsNameExperimentsAndPromptsByteForByte() throws {
        let bytes = Array(documentWithExperiment(
            #""name":"K","salt":"s","status":"running","variants":[{"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"b","weight":50,"prompt":"p","prompt_version":2}]"#).utf8)
        let config = LoadedConfig(document: try ConfigDocument.validate(bytes), version: "v", source: "s", loadedAt: someInstant)
        let snapshot = ServingSnapshot(config: config, source: "s", lastError: nil, startedAt: someInstant)
        #expect(Responder.respond(to: #"{"op":"assign","experiment":"\u212a","unit":"u"}"#, snapshot: snapshot, now: someInstant, context: .detached()).contains("unknown_experiment"))
        #expect(Responder.respond(to: #"{"op":"assign","experiment":"K","unit":"u"}"#, snapshot: snapshot, now: someInstant, context: .detached()).contains(#""ok":true"#))
    }
}
