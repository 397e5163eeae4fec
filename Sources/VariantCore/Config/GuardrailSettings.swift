/// An experiment's `guardrails`: when a treatment is bad enough, and proven so, to be disabled automatically
/// (PROTOCOL.md, "Guardrails"). Every running experiment has them; the document only changes the defaults.
public struct GuardrailSettings: Sendable, Equatable {
    /// Whether a breached guardrail disables the treatment (false: it is only reported by `stats`).
    public var autoDisable = true
    /// The chance, over the whole life of the experiment and however often it is checked, of disabling a
    /// treatment that is in truth no worse than the control.
    public var alpha = 0.05
    /// Observations of a metric each variant needs before any decision on that metric.
    public var minimumSamples = 100
    /// The largest tolerated rise of the error rate over the control's, absolute (0.05 = 5 points).
    public var maximumErrorRateIncrease = 0.05
    /// The largest tolerated rise of mean latency over the control's, relative (0.5 = +50%).
    public var maximumLatencyIncrease = 0.5
    /// Guardrails on custom metrics.
    public var metrics: [CustomMetricGuardrail] = []
    /// Whose evidence disables a treatment: this host's (`host`), or the fleet's, through the configuration
    /// document (`fleet`: the daemon still evaluates its own evidence but never disables on it).
    public var scope: Scope = .host

    /// Where guardrail decisions are taken (PROTOCOL.md, "Guardrails").
    public enum Scope: String, Sendable, CaseIterable {
        /// Each daemon disables a treatment on its own evidence (the default).
        case host
        /// A judge decides on the whole fleet's evidence and disables through the document; daemons only evaluate.
        case fleet
    }

    /// Whether a daemon disables a treatment on its own evidence.
    public var disablesOnHost: Bool { autoDisable && scope == .host }
    /// Whether a daemon evaluates its own evidence after each record (for its own decision, or to report it).
    public var evaluatesOnHost: Bool { autoDisable || scope == .fleet }

    public init() {}

    /// The settings as the sequential test takes them.
    public var policy: GuardrailPolicy {
        GuardrailPolicy(
            maximumErrorRateIncrease: maximumErrorRateIncrease, maximumLatencyIncrease: maximumLatencyIncrease,
            customMetrics: metrics, minimumSamplesPerVariant: minimumSamples, alpha: alpha)
    }
}

extension DocumentValidator {
    static let guardrailFields: Set<String> = [
        "auto_disable", "alpha", "min_samples", "max_error_rate_increase", "max_latency_increase", "metrics", "scope",
    ]
    static let customGuardrailFields: Set<String> = ["name", "direction", "tolerance"]

    /// The `guardrails` object of an experiment, defaults filled in.
    mutating func guardrails(_ experiment: JSONObject, at experimentPath: String) -> GuardrailSettings {
        var settings = GuardrailSettings()
        guard let value = experiment["guardrails"] else { return settings }
        let path = experimentPath + ".guardrails"
        guard let object = object(value, at: path, allowed: Self.guardrailFields) else { return settings }
        if let flag = bool(object, "auto_disable", at: path) { settings.autoDisable = flag }
        if let text = string(object, "scope", at: path, required: false) {
            if let scope = GuardrailSettings.Scope(rawValue: text) {
                settings.scope = scope
            } else {
                report("\(path).scope", .invalidValue, "'scope' must be host or fleet, found '\(text)'")
            }
        }
        if let alpha = number(object, "alpha", at: path, in: 0.0001...0.5) { settings.alpha = alpha }
        if let samples = integer(object, "min_samples", at: path, required: false) {
            if samples >= 10 && samples <= 10_000_000 {
                settings.minimumSamples = samples
            } else {
                report("\(path).min_samples", .invalidValue, "'min_samples' must be from 10 to 10000000, found \(samples)")
            }
        }
        if let increase = number(object, "max_error_rate_increase", at: path, in: 0...1) {
            settings.maximumErrorRateIncrease = increase
        }
        if let increase = number(object, "max_latency_increase", at: path, in: 0...100) {
            settings.maximumLatencyIncrease = increase
        }
        for (index, entry) in (array(object, "metrics", at: path, required: false) ?? []).enumerated() {
            let entryPath = "\(path).metrics[\(index)]"
            guard let metric = self.object(entry, at: entryPath, allowed: Self.customGuardrailFields) else { continue }
            let name = string(metric, "name", at: entryPath)
            if let name, !CustomMeasurement.isValidName(name) {
                report("\(entryPath).name", .invalidValue, "a custom metric name is 1 to 64 of A-Z a-z 0-9 _ . -, found '\(name)'")
            }
            var direction: MetricDirection?
            if let text = string(metric, "direction", at: entryPath) {
                direction = MetricDirection(rawValue: text)
                if direction == nil {
                    report("\(entryPath).direction", .invalidValue, "'direction' must be higher_is_better or lower_is_better, found '\(text)'")
                }
            }
            let tolerance = number(metric, "tolerance", at: entryPath, in: 0...Double.greatestFiniteMagnitude, required: true)
            if let name, settings.metrics.contains(where: { $0.name == name }) {
                report("\(entryPath).name", .duplicateName, "a guardrail on '\(name)' is already declared")
            } else if let name, let direction, let tolerance, CustomMeasurement.isValidName(name) {
                settings.metrics.append(CustomMetricGuardrail(name: name, direction: direction, tolerance: tolerance))
            }
        }
        return settings
    }

    /// A number within `range`, reporting `wrong_type` or `invalid_value`.
    mutating func number(
        _ object: JSONObject, _ key: String, at path: String, in range: ClosedRange<Double>, required: Bool = false
    ) -> Double? {
        guard let value = field(object, key, at: path, required: required) else { return nil }
        guard case .number(let number) = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be a number, found \(value.typeName)")
            return nil
        }
        guard range.contains(number) else {
            report("\(path).\(key)", .invalidValue, "'\(key)' must be from \(range.lowerBound) to \(range.upperBound), found \(number)")
            return nil
        }
        return number
    }
}
