import Testing
@testable import VariantCore

/// An experiment is found by its name's exact bytes, whether the document is small enough to compare each name
/// in turn or large enough for the dictionary.
@Suite struct ExperimentLookupTests {
    /// A document with `count` experiments named `e0`, `e1`, ... (names of the same length, so a lookup must
    /// compare more than lengths).
    static func document(experiments count: Int) throws -> ConfigDocument {
        let experiments = (0..<count).map { index in
            #"{"name":"e\#(index)","salt":"s","status":"running","variants":[{"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"treatment","weight":50,"prompt":"p","prompt_version":1}]}"#
        }
        return try validDocument(
            #"{"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"Hi"}]}},"experiments":[\#(experiments.joined(separator: ","))]}"#)
    }

    @Test(arguments: [3, ConfigDocument.experimentsLookedUpInTurn, ConfigDocument.experimentsLookedUpInTurn + 1, 40])
    func everyNameFindsItsExperimentAndNothingElseDoes(count: Int) throws {
        let document = try Self.document(experiments: count)
        #expect(document.experiments.count == count)
        for (index, experiment) in document.experiments.enumerated() {
            #expect(document.experimentIndex(named: experiment.name) == index)
        }
        for name in ["e\(count)", "E1", "e1 ", "e", "", "\u{E9}1"] {
            #expect(document.experimentIndex(named: name) == nil, "\(name)")
        }
    }
}
