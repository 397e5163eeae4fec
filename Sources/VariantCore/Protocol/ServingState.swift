import Crypto

/// A configuration document in use, with where and when it came from.
public struct LoadedConfig: Sendable {
    public let document: ConfigDocument
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the bytes as served (PROTOCOL.md, "Config version").
    public let version: String
    public let source: String
    public let loadedAt: Timestamp
    /// The fixed parts of every `assign` answer, by experiment and variant, written once when the config is
    /// applied instead of once per request.
    let assignmentAnswers: [[AssignmentAnswerParts]]

    public init(document: ConfigDocument, version: String, source: String, loadedAt: Timestamp) {
        self.document = document
        self.version = version
        self.source = source
        self.loadedAt = loadedAt
        self.assignmentAnswers = document.experiments.map { experiment in
            experiment.variants.map { AssignmentAnswerParts(experiment: experiment, variant: $0, configVersion: version) }
        }
    }

    /// The config version of a document's bytes.
    public static func version(of bytes: some Sequence<UInt8>) -> String {
        let digest = SHA256.hash(data: Array(bytes))
        let hex = digest.prefix(8).map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }
        return "sha256:" + hex.joined()
    }
}

/// Why the last attempt to load a configuration failed.
public struct ConfigLoadFailure: Sendable {
    /// `invalid_config` (the document was read and rejected) or `read_failed` (it could not be read).
    public var code: String
    public var message: String
    public var at: Timestamp
    public var problems: [ValidationIssue]

    public init(code: String, message: String, at: Timestamp, problems: [ValidationIssue] = []) {
        self.code = code
        self.message = message
        self.at = at
        self.problems = problems
    }
}

/// Everything a request is answered from, immutable so that one reference is one consistent view.
///
/// The daemon swaps whole snapshots when a configuration is applied or fails, or a treatment is disabled or
/// enabled; a request never sees half of one.
public final class ServingSnapshot: Sendable {
    public let config: LoadedConfig?
    /// Where configuration comes from, even before anything was loaded (`file:/etc/variantd/config.json`).
    public let source: String
    public let lastError: ConfigLoadFailure?
    public let startedAt: Timestamp
    /// Treatments that serve the control to their units (by name, so they outlive config changes).
    public let disabled: Set<ExperimentLedger.VariantKey>
    /// `disabled` resolved against `config`: by experiment index, then variant index.
    private let disabledByIndex: [[Bool]]

    public init(
        config: LoadedConfig?, source: String, lastError: ConfigLoadFailure?, startedAt: Timestamp,
        disabled: Set<ExperimentLedger.VariantKey> = []
    ) {
        self.config = config
        self.source = source
        self.lastError = lastError
        self.startedAt = startedAt
        self.disabled = disabled
        self.disabledByIndex = (config?.document.experiments ?? []).map { experiment in
            experiment.variants.map { disabled.contains(.init(experiment: experiment.name, variant: $0.name)) }
        }
    }

    /// The same snapshot with a newly applied configuration; the last error is cleared.
    public func applying(_ config: LoadedConfig) -> ServingSnapshot {
        ServingSnapshot(config: config, source: config.source, lastError: nil, startedAt: startedAt, disabled: disabled)
    }

    /// The same snapshot, still serving what it served, with the failure recorded.
    public func recording(_ failure: ConfigLoadFailure) -> ServingSnapshot {
        ServingSnapshot(config: config, source: source, lastError: failure, startedAt: startedAt, disabled: disabled)
    }

    /// The same snapshot with another set of disabled treatments.
    public func withDisabled(_ disabled: Set<ExperimentLedger.VariantKey>) -> ServingSnapshot {
        ServingSnapshot(config: config, source: source, lastError: lastError, startedAt: startedAt, disabled: disabled)
    }

    /// Whether the variant at these indexes of `config` is a disabled treatment.
    public func isDisabled(experimentIndex: Int, variantIndex: Int) -> Bool {
        disabledByIndex[experimentIndex][variantIndex]
    }

    /// The unit's assignment with disabled treatments sent to the control (PROTOCOL.md, "Decision order").
    func assignment(experimentIndex: Int, unit: String, attributes: JSONObject, now: Timestamp, in config: LoadedConfig)
        -> Assignment
    {
        let experiment = config.document.experiments[experimentIndex]
        var assignment = experiment.assign(unit: unit, attributes: attributes, now: now)
        if let shadow = assignment.shadowVariantIndex, isDisabled(experimentIndex: experimentIndex, variantIndex: shadow) {
            assignment.shadowVariantIndex = nil  // a disabled treatment stops running in the shadow too
        }
        guard assignment.inExperiment, isDisabled(experimentIndex: experimentIndex, variantIndex: assignment.variantIndex)
        else { return assignment }
        return Assignment(variantIndex: experiment.controlIndex, inExperiment: false, reason: .disabled)
    }
}

/// An `assign` answer around its only per-request parts, the id, `in_experiment` and `reason`:
/// `{"id":ID` + `head` + `true|false,"reason":"R"` + `tail` (PROTOCOL.md, `assign`).
struct AssignmentAnswerParts: Sendable {
    /// From `,"ok":true` to `"in_experiment":`.
    let head: [UInt8]
    /// From `,"config_version":` to the closing braces and the newline.
    let tail: [UInt8]
    /// `{"variant":..,"prompt":..,"prompt_version":..,"params":{..}}`: this variant as a shadow to run.
    let asShadow: [UInt8]

    init(experiment: Experiment, variant: Variant, configVersion: String) {
        var writer = JSONWriter()
        // The same four fields open the answer and its trace metadata.
        func writeIdentity() {
            writer.raw("\"experiment\":")
            writer.string(experiment.name)
            writer.raw(",\"variant\":")
            writer.string(variant.name)
            writer.raw(",\"prompt\":")
            writer.string(variant.prompt)
            writer.raw(",\"prompt_version\":")
            writer.integer(variant.promptVersion)
        }
        writer.raw(",\"ok\":true,")
        writeIdentity()
        writer.raw(",\"params\":")
        writer.value(.object(variant.params))
        writer.raw(",\"in_experiment\":")
        head = writer.bytes
        writer.reset()
        writer.raw(",\"config_version\":")
        writer.string(configVersion)
        writer.raw(",\"metadata\":{")
        writeIdentity()
        writer.raw(",\"config_version\":")
        writer.string(configVersion)
        writer.raw("}}\n")
        tail = writer.bytes
        writer.reset()
        writer.raw("{\"variant\":")
        writer.string(variant.name)
        writer.raw(",\"prompt\":")
        writer.string(variant.prompt)
        writer.raw(",\"prompt_version\":")
        writer.integer(variant.promptVersion)
        writer.raw(",\"params\":")
        writer.value(.object(variant.params))
        writer.raw("}")
        asShadow = writer.bytes
    }
}
