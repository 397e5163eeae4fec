import Crypto
import Logging
import VariantCore

/// Resolves the Langfuse prompt versions and labels a document uses, from Langfuse, the disk cache or the fallback
/// file, so that a config is applied only when every prompt it names can be served.
///
/// - A numbered version is immutable: once read it is kept for good, in memory and on disk
///   (`CACHE/langfuse/PROJECT/NAME-vN.json`, written with `AtomicFile`), and never fetched again, across restarts.
/// - A label is re-resolved when its resolution is older than the label TTL. The last resolution is kept on disk
///   (`NAME-label-LABEL.json`, with the version's contents), so a restart during an outage serves what was served;
///   while Langfuse fails, the last resolution serves and the failure is recorded.
/// - The fallback file (a JSON array of prompts in the API's shape) is the last resort, read only when needed.
///
/// `PROJECT` is a hash of the base URL and the public key, `NAME` and `LABEL` hashes of the names, so another
/// Langfuse project never serves this one's copies.
public final class LangfusePromptResolver: Sendable {
    public struct Configuration: Sendable {
        /// How long a label's resolution is used before Langfuse is asked again.
        public var labelTTL: Duration = .seconds(60)
        /// The daemon's cache directory (`--cache-dir`); copies go under `langfuse/`. Nil: memory only.
        public var cacheDirectory: String?
        /// The fallback file (`--langfuse-fallback`), if any.
        public var fallbackPath: String?
        /// The largest fallback file read.
        public var maximumBytes: Int = 16 << 20

        public init() {}
    }

    /// One reference's outcome: the prompt served (nil when unresolved) and the last failure to reach Langfuse.
    public struct Resolution: Sendable {
        public var prompt: LangfusePrompt?
        public var origin: PromptSourceStatus.Origin?
        public var fetchedAt: Timestamp?
        public var error: ConfigLoadFailure?
    }

    private struct Copy: Sendable {
        var prompt: LangfusePrompt
        var origin: PromptSourceStatus.Origin
        var fetchedAt: Timestamp?
        /// For a label: when Langfuse last answered it (nil: from disk or the fallback, so due at once).
        var resolvedAt: ContinuousClock.Instant?
    }

    private struct State: Sendable {
        var versions: [LangfuseReference: Copy] = [:]
        var labels: [LangfuseReference: Copy] = [:]
        var cacheFailing = false
    }

    public let configuration: Configuration
    public let client: LangfuseClient
    private let state = SharedBox(State())
    private let logger: Logger

    public init(configuration: Configuration, client: LangfuseClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
    }

    /// Where this project's copies are kept, nil without a cache directory.
    var directory: String? {
        configuration.cacheDirectory.map { directory in
            let project = ConfigCache.name(of: client.baseURL + "\u{0}" + (client.credentials?.publicKey ?? ""))
            return directory + "/langfuse/" + project
        }
    }

    /// Whether some label among `references` is due for re-resolution (older than the TTL, or never answered by
    /// Langfuse in this process).
    public func isDue(_ references: [LangfuseReference], now: ContinuousClock.Instant = .now) -> Bool {
        guard let wait = untilDue(references, now: now) else { return false }
        return wait <= .zero
    }

    /// How long until the first label among `references` is due; nil without labels.
    public func untilDue(_ references: [LangfuseReference], now: ContinuousClock.Instant = .now) -> Duration? {
        let labels = references.filter { if case .label = $0.selector { true } else { false } }
        guard !labels.isEmpty else { return nil }
        let copies = state.current.labels
        return labels.map { reference in
            guard let resolvedAt = copies[reference]?.resolvedAt else { return Duration.zero }
            return configuration.labelTTL - (now - resolvedAt)
        }.min()
    }

    /// Resolves every reference, concurrently; a reference whose copy is good enough costs no request.
    public func resolve(_ references: [LangfuseReference], at time: Timestamp) async -> [LangfuseReference: Resolution] {
        await withTaskGroup(of: (LangfuseReference, Resolution).self) { group in
            for reference in references {
                group.addTask { (reference, await self.resolve(reference, at: time)) }
            }
            var resolutions: [LangfuseReference: Resolution] = [:]
            for await (reference, resolution) in group { resolutions[reference] = resolution }
            return resolutions
        }
    }

    private func resolve(_ reference: LangfuseReference, at time: Timestamp) async -> Resolution {
        switch reference.selector {
        case .version:
            if let copy = state.current.versions[reference] ?? loadFromDisk(reference) {
                return Resolution(prompt: copy.prompt, origin: copy.origin, fetchedAt: copy.fetchedAt)
            }
            do {
                let prompt = try await client.fetch(reference, logger: logger)
                remember(prompt, for: reference, at: time)
                return Resolution(prompt: prompt, origin: .langfuse, fetchedAt: time)
            } catch {
                return fallback(for: reference, failure: makeFailure(error, at: time))
            }
        case .label:
            let now = ContinuousClock.now
            let known = state.current.labels[reference]
            if let known, let resolvedAt = known.resolvedAt, now - resolvedAt < configuration.labelTTL {
                return Resolution(prompt: known.prompt, origin: known.origin, fetchedAt: known.fetchedAt)
            }
            do {
                let prompt = try await client.fetch(reference, logger: logger)
                remember(prompt, for: reference, at: time)
                return Resolution(prompt: prompt, origin: .langfuse, fetchedAt: time)
            } catch {
                let failure = makeFailure(error, at: time)
                // The last resolution keeps serving while Langfuse fails; it is asked again on the next poll.
                if let copy = known ?? loadFromDisk(reference) {
                    return Resolution(prompt: copy.prompt, origin: copy.origin, fetchedAt: copy.fetchedAt, error: failure)
                }
                return fallback(for: reference, failure: failure)
            }
        }
    }

    private func makeFailure(_ error: PromptSourceError, at time: Timestamp) -> ConfigLoadFailure {
        ConfigLoadFailure(error.code, message: error.message, at: time)
    }

    /// Keeps a prompt fetched from Langfuse: its version for good, and for a label the resolution.
    private func remember(_ prompt: LangfusePrompt, for reference: LangfuseReference, at time: Timestamp) {
        let versionReference = LangfuseReference(name: prompt.name, selector: .version(prompt.version))
        let copy = Copy(prompt: prompt, origin: .langfuse, fetchedAt: time, resolvedAt: .now)
        let isNewVersion = state.withLock { state in
            let isNew = state.versions[versionReference] == nil
            if isNew { state.versions[versionReference] = copy }
            if case .label = reference.selector { state.labels[reference] = copy }
            return isNew
        }
        if isNewVersion { writeToDisk(prompt, for: versionReference, at: time) }
        if case .label = reference.selector { writeToDisk(prompt, for: reference, at: time) }
    }

    // MARK: Disk

    func path(for reference: LangfuseReference) -> String? {
        guard let directory else { return nil }
        let name = ConfigCache.name(of: reference.name)
        switch reference.selector {
        case .version(let number): return directory + "/\(name)-v\(number).json"
        case .label(let label): return directory + "/\(name)-label-\(ConfigCache.name(of: label)).json"
        }
    }

    /// `{"name":..,"version"|"label":..,"fetched_at":..,"prompt":API ANSWER}`.
    private func writeToDisk(_ prompt: LangfusePrompt, for reference: LangfuseReference, at time: Timestamp) {
        guard let directory, let path = path(for: reference) else { return }
        var writer = JSONWriter()
        writer.raw("{\"name\":")
        writer.string(reference.name)
        switch reference.selector {
        case .version(let number):
            writer.raw(",\"version\":")
            writer.integer(number)
        case .label(let label):
            writer.raw(",\"label\":")
            writer.string(label)
        }
        writer.raw(",\"fetched_at\":")
        writer.string(time.rfc3339)
        writer.raw(",\"prompt\":")
        writer.value(prompt.raw)
        writer.raw("}\n")
        do {
            try AtomicFile.createDirectory(directory, mode: 0o755)
            try AtomicFile.write(writer.bytes, to: path, mode: 0o644)
            if state.withLock({ state in defer { state.cacheFailing = false }; return state.cacheFailing }) {
                logger.log(.info, .langfuseCacheRecovered, metadata: [.path: "\(path)"])
            }
        } catch {
            if state.withLock({ state in defer { state.cacheFailing = true }; return !state.cacheFailing }) {
                logger.log(
                    .warning, .langfuseCacheWriteFailed, "\(error); serving goes on, but a restart during an outage will have no copy",
                    metadata: [.path: "\(path)"])
            }
        }
    }

    private func loadFromDisk(_ reference: LangfuseReference) -> Copy? {
        guard let path = path(for: reference),
            let bytes = try? FileIdentity.read(path: path, maximumBytes: configuration.maximumBytes)
        else { return nil }
        guard let object = (try? JSONParser.parse(bytes, maximumDepth: 64))?.objectValue,
            let raw = object["prompt"], let prompt = try? LangfusePrompt(raw, for: reference)
        else {
            logger.log(
                .warning, .langfuseCacheInvalid, "a cached prompt does not read; ignoring it", metadata: [.path: "\(path)"])
            return nil
        }
        let fetchedAt = object["fetched_at"]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
        let copy = Copy(prompt: prompt, origin: .diskCache, fetchedAt: fetchedAt, resolvedAt: nil)
        state.withLock { state in
            switch reference.selector {
            case .version: state.versions[reference] = copy
            case .label: state.labels[reference] = state.labels[reference] ?? copy
            }
        }
        return copy
    }

    // MARK: Fallback file

    /// The fallback file's prompt for a reference (for a label, the highest version carrying it), or the failure.
    private func fallback(for reference: LangfuseReference, failure: ConfigLoadFailure) -> Resolution {
        guard let path = configuration.fallbackPath else { return Resolution(error: failure) }
        let prompts: [JSONValue]
        do {
            let bytes = try FileIdentity.read(path: path, maximumBytes: configuration.maximumBytes)
            guard case .array(let elements) = try JSONParser.parse(bytes, maximumDepth: 64) else {
                throw FileIdentity.ReadError(description: "not a JSON array of prompts")
            }
            prompts = elements
        } catch {
            var failure = failure
            failure.message += " (and the fallback file \(path) cannot be used: \(error))"
            return Resolution(error: failure)
        }
        let candidates = prompts.compactMap { try? LangfusePrompt($0) }.filter { $0.name == reference.name }
        let match: LangfusePrompt?
        switch reference.selector {
        case .version(let number): match = candidates.first { $0.version == number }
        case .label(let label): match = candidates.filter { $0.labels.contains(label) }.max { $0.version < $1.version }
        }
        guard let match else {
            var failure = failure
            failure.message += " (and the fallback file has no such prompt)"
            return Resolution(error: failure)
        }
        return Resolution(prompt: match, origin: .fallback, fetchedAt: nil, error: failure)
    }
}
