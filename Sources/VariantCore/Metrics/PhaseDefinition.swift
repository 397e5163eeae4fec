/// What an experiment's statistics are about: the parts of its configuration whose change starts a new phase
/// (PROTOCOL.md, "Phases"). Records of two phases are never mixed: a change to who is enrolled or what they are
/// served makes the earlier records a different experiment (mixing them is Simpson's paradox).
///
/// Kept as canonical lines (`weight concise=50`), so that the reason for a new phase can name what changed, and
/// hashed into a `fingerprint` that is the same on every host for the same configuration.
public struct PhaseDefinition: Sendable, Hashable {
    /// One line per part, sorted: `salt`, `exposure`, `mode`, `targeting`, `control`, and per variant (in
    /// document order, which is part of the bucket mapping) `variant`, `weight`, `prompt`, `params`.
    public let lines: [String]
    /// `sha256:` and the first 16 hex digits of the SHA-256 of the lines joined by newlines.
    public let fingerprint: String
    /// The variants' names in document order (from the `variants` line).
    public let variantNames: [String]

    public init(lines: [String]) {
        self.lines = lines
        fingerprint = LoadedConfig.version(of: Array(lines.joined(separator: "\n").utf8))
        let variants = lines.first { $0.hasPrefix("variants ") }?.dropFirst("variants ".count) ?? ""
        variantNames = variants.split(separator: ",").map(String.init)
    }

    /// The definition of an experiment as configured. Starting a phase: the salt, the exposure, the mode, the
    /// targeting rules, which variant is the control, the variants (names and order), their weights, their prompts
    /// and prompt versions, and their params (a model or temperature change is a change of treatment). Not: the
    /// status, the time window, the guardrail tolerances, descriptions, or the text of an unchanged prompt version.
    public init(_ experiment: Experiment) {
        var lines = [
            "salt \(experiment.salt)",
            "exposure \(experiment.exposureBasisPoints)",
            "mode \(experiment.mode.rawValue)",
            "control \(experiment.control.name)",
        ]
        var targeting = JSONWriter()
        targeting.raw("[")
        for (index, rule) in experiment.targeting.enumerated() {
            if index > 0 { targeting.raw(",") }
            targeting.raw("{\"attribute\":")
            targeting.string(rule.attribute)
            targeting.raw(",\"op\":")
            targeting.string(rule.op.rawValue)
            targeting.raw(",\"value\":")
            switch rule.operand {
            case .scalar(let value): targeting.value(value)
            case .set(let values): targeting.value(.array(values))
            case .number(let number): targeting.number(number)
            }
            targeting.raw("}")
        }
        targeting.raw("]")
        lines.append("targeting " + String(decoding: targeting.bytes, as: UTF8.self))
        lines.append("variants " + experiment.variants.map(\.name).joined(separator: ","))
        for variant in experiment.variants {
            lines.append("weight \(variant.name)=\(variant.weightBasisPoints)")
            lines.append("prompt \(variant.name)=\(variant.prompt)@\(variant.promptVersion)")
            var params = JSONWriter()
            params.value(.object(variant.params))
            lines.append("params \(variant.name)=" + String(decoding: params.bytes, as: UTF8.self))
        }
        self.init(lines: lines.sorted())
    }

    /// The kinds of part (`weight`, `prompt`, ...) that differ between two definitions, in a stable order, each
    /// once; for the reason of a new phase.
    public func changedParts(from earlier: PhaseDefinition) -> [String] {
        let before = Set(earlier.lines)
        let after = Set(lines)
        let changed = before.symmetricDifference(after).map { line in
            String(line.prefix { $0 != " " })
        }
        let order = ["salt", "exposure", "mode", "targeting", "control", "variants", "weight", "prompt", "params"]
        return order.filter(Set(changed).contains)
    }
}
