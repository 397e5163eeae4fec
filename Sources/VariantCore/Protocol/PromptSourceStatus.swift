/// How one Langfuse prompt version or label of the latest document was resolved, as the `config` op shows it in
/// `prompt_sources` (PROTOCOL.md, "Langfuse prompt source").
public struct PromptSourceStatus: Sendable, Equatable {
    /// Where a resolved version came from.
    public enum Origin: String, Sendable {
        /// Fetched from Langfuse (for a label: within the label TTL, or Langfuse answered the last re-resolution).
        case langfuse
        /// The copy under `--cache-dir` (after a restart, or while Langfuse fails).
        case diskCache = "disk_cache"
        /// The `--langfuse-fallback` file, the last resort.
        case fallback
    }

    /// The prompt's key in the document.
    public var prompt: String
    public var reference: LangfuseReference
    /// The version served, nil while unresolved.
    public var resolvedVersion: Int?
    public var origin: Origin?
    /// When the version served was fetched from Langfuse (for a fallback copy: nil).
    public var fetchedAt: Timestamp?
    /// Why the last attempt to reach Langfuse for this reference failed, nil once it succeeds.
    public var lastError: ConfigLoadFailure?

    public init(
        prompt: String, reference: LangfuseReference, resolvedVersion: Int? = nil, origin: Origin? = nil,
        fetchedAt: Timestamp? = nil, lastError: ConfigLoadFailure? = nil
    ) {
        self.prompt = prompt
        self.reference = reference
        self.resolvedVersion = resolvedVersion
        self.origin = origin
        self.fetchedAt = fetchedAt
        self.lastError = lastError
    }

    /// Writes `,"prompt_sources":[...]`, the member the `config` answer ends with.
    static func write(_ statuses: [PromptSourceStatus], into writer: inout JSONWriter) {
        writer.raw(",\"prompt_sources\":[")
        for (index, status) in statuses.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw("{\"prompt\":")
            writer.string(status.prompt)
            writer.raw(",\"langfuse_name\":")
            writer.string(status.reference.name)
            writer.raw(",\"version\":")
            if case .version(let number) = status.reference.selector { writer.integer(number) } else { writer.null() }
            writer.raw(",\"label\":")
            if case .label(let label) = status.reference.selector { writer.string(label) } else { writer.null() }
            writer.raw(",\"resolved_version\":")
            if let version = status.resolvedVersion { writer.integer(version) } else { writer.null() }
            writer.raw(",\"from\":")
            writer.optionalString(status.origin?.rawValue)
            writer.raw(",\"fetched_at\":")
            writer.optionalString(status.fetchedAt?.rfc3339)
            writer.raw(",\"last_error\":")
            if let failure = status.lastError { failure.write(into: &writer, withProblems: false) } else { writer.null() }
            writer.raw("}")
        }
        writer.raw("]")
    }
}
