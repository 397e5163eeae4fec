import Foundation
@testable import VariantCore

/// The repository's root, found from this file's path, for the shared files under `protocol/` and `examples/`.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

func repositoryFile(_ relativePath: String) throws -> [UInt8] {
    Array(try Data(contentsOf: repositoryRoot.appendingPathComponent(relativePath)))
}

func parseJSON(_ text: String) throws -> JSONValue {
    try JSONParser.parse(Array(text.utf8))
}

/// Validates a document given as text, returning the issues (empty when it is valid).
func issues(of text: String) -> [ValidationIssue] {
    do {
        _ = try ConfigDocument.validate(Array(text.utf8))
        return []
    } catch {
        return error.issues
    }
}

func validDocument(_ text: String) throws -> ConfigDocument {
    try ConfigDocument.validate(Array(text.utf8))
}

/// A two-prompt document with one experiment whose fields the caller writes (as JSON members).
func documentWithExperiment(_ experimentMembers: String) -> String {
    """
    {"schema_version":1,
     "prompts":{"p":{"versions":[{"version":1,"template":"one"},{"version":2,"template":"two"}]}},
     "experiments":[{\(experimentMembers)}]}
    """
}

/// A running experiment with the given weights (percent), variant 0 the control, all on prompt p v1.
func experiment(salt: String, weights: [Double], exposure: Double = 100) throws -> Experiment {
    let variants = weights.enumerated().map { index, weight in
        #"{"name":"v\#(index)","weight":\#(weight),"prompt":"p","prompt_version":1\#(index == 0 ? #","control":true"# : "")}"#
    }
    let saltJSON = String(decoding: { var w = JSONWriter(); w.string(salt); return w.bytes }(), as: UTF8.self)
    let document = try validDocument(
        documentWithExperiment(
            #""name":"e","salt":\#(saltJSON),"status":"running","exposure":\#(exposure),"variants":[\#(variants.joined(separator: ","))]"#
        ))
    return document.experiments[0]
}

let noAttributes = JSONObject()
let someInstant = Timestamp(rfc3339: "2026-11-23T12:00:00Z")!
