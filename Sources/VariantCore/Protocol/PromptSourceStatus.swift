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

    /// One element of the `config` answer's `prompt_sources`.
    func writeMembers(into object: inout JSONObjectWriter) {
        object.field("prompt", prompt)
        object.field("langfuse_name", reference.name)
        if case .version(let number) = reference.selector { object.field("version", number) } else { object.field("version", nil as Int?) }
        if case .label(let label) = reference.selector { object.field("label", label) } else { object.field("label", nil as String?) }
        object.field("resolved_version", resolvedVersion)
        object.field("from", origin?.rawValue)
        object.field("fetched_at", fetchedAt?.rfc3339)
        object.object("last_error", lastError) { failure, object in failure.writeMembers(into: &object, withProblems: false) }
    }
}
