import Logging
import VariantCore

/// The poller's side of Langfuse prompts (README "Langfuse prompt source"): a document that uses them is applied
/// only once every prompt version it names is resolved (from Langfuse, the disk copies or the fallback file), and
/// is applied again, under a new config version, when a label it uses moves.
extension ConfigPoller.PollState {
    /// The error that stays recorded while the source serves the same document.
    var standingFailure: ConfigLoadFailure? { lastDocumentFailure ?? langfuse.failure }
}

extension ConfigPoller {
    /// Resolves the latest Langfuse document again when a label is due or a version is still unresolved, and
    /// Langfuse is not being backed off from. A poll that changes nothing costs no request otherwise.
    func resolvePendingIfDue(at time: Timestamp) async {
        let langfuse = state.current.langfuse
        guard let pending = langfuse.pending else { return }
        if let retryAt = langfuse.retryAt, ContinuousClock.now < retryAt { return }
        let due = pending.unresolved || (promptResolver?.isDue(pending.references.references) ?? false)
        guard due else { return }
        await resolveAndApply(pending, at: time)
    }

    /// How long until the latest Langfuse document must be resolved again (a label's TTL, or the retry after a
    /// failure), so that the next poll comes no later; nil when nothing is due.
    func nextResolutionWait() -> Duration? {
        let langfuse = state.current.langfuse
        guard let pending = langfuse.pending else { return nil }
        var wait = promptResolver?.untilDue(pending.references.references)
        if pending.unresolved { wait = .zero }
        guard var wait else { return nil }
        if let retryAt = langfuse.retryAt { wait = max(wait, retryAt - .now) }
        return max(wait, .milliseconds(20))
    }

    /// Resolves every Langfuse reference of a document and applies the result if anything served changes; if a
    /// reference is unresolved, the config in use stays and the failure is recorded, announced once per state.
    func resolveAndApply(_ pending: PendingDocument, at time: Timestamp) async {
        let source = fetcher.sourceDescription
        let references = pending.references.references
        let resolutions: [LangfuseReference: LangfusePromptResolver.Resolution]
        if let promptResolver {
            resolutions = await promptResolver.resolve(references, at: time)
        } else {
            let failure = ConfigLoadFailure(
                .langfuseAuth, message: "this daemon has no Langfuse settings (README \"Langfuse prompt source\")",
                at: time)
            resolutions = Dictionary(uniqueKeysWithValues: references.map { ($0, .init(error: failure)) })
        }
        let statuses = pending.references.uses.map { use in
            let resolution = resolutions[use.reference]
            return PromptSourceStatus(
                prompt: use.prompt, reference: use.reference, resolvedVersion: resolution?.prompt?.version,
                origin: resolution?.origin, fetchedAt: resolution?.fetchedAt, lastError: resolution?.error)
        }
        let failed = references.filter { resolutions[$0]?.error != nil }
        let unresolved = references.filter { resolutions[$0]?.prompt == nil }
        let retryAt = noteResolution(failed: !failed.isEmpty)
        let firstError = failed.first.flatMap { resolutions[$0]?.error }

        guard unresolved.isEmpty else {
            let error = resolutions[unresolved[0]]?.error
            let failure = ConfigLoadFailure(
                code: error?.code ?? ConfigLoadFailure.Code.langfuseNotFound.rawValue,
                message:
                    "\(unresolved.count) of \(references.count) Langfuse prompt versions of the document from \(source) (\(pending.sourceVersion)) could not be resolved (\(error?.message ?? "no resolution")); keeping the config in use",
                at: time)
            store.update { snapshot in
                // While the source fails, its failure stays the recorded error; prompt_sources shows Langfuse's.
                (snapshot.sourceState == .failing ? snapshot : snapshot.recording(failure)).withPromptSources(statuses)
            }
            state.withLock { state in
                state.langfuse.pending?.unresolved = true
                state.langfuse.failure = failure
            }
            announce(
                failure, key: "unresolved " + unresolved.map(\.description).joined(separator: ",") + " " + failure.code,
                retryAt: retryAt, level: .error, message: "config.prompts_unresolved")
            return
        }

        let prompts = resolutions.compactMapValues(\.prompt)
        let resolved: (root: JSONValue, canonical: [UInt8])
        do {
            resolved = try pending.references.resolved(with: prompts)
        } catch {
            let failure = ConfigLoadFailure(
                error.code,
                message: "the document from \(source) (\(pending.sourceVersion)): \(error.message); keeping the config in use",
                at: time)
            recordContentFailure(failure, statuses: statuses, retryAt: retryAt)
            return
        }
        let canonical = resolved.canonical
        let document: ConfigDocument
        do {
            state.withLock { $0.validations += 1 }
            document = try ConfigDocument.validate(resolved.root)
        } catch {
            let count = error.issues.count
            let failure = ConfigLoadFailure(
                .invalidConfig,
                message:
                    "\(count) problem\(count == 1 ? "" : "s") in the document from \(source) (\(pending.sourceVersion)) with its Langfuse prompts; keeping the config in use",
                at: time, problems: error.issues)
            recordContentFailure(failure, statuses: statuses, retryAt: retryAt)
            return
        }

        // The config version covers the source's bytes and the prompt contents, so it changes when a label moves.
        let version = LoadedConfig.version(of: pending.document.bytes + [0] + canonical)
        let standing = firstError.map { error in
            ConfigLoadFailure(
                code: error.code,
                message: "Langfuse failed (\(error.message)); serving copies of its prompts (see prompt_sources)",
                at: time)
        }
        let current = store.current
        let relabel = state.current.langfuse.appliedSourceVersion == pending.sourceVersion
        state.withLock { state in
            state.langfuse.pending?.unresolved = false
            state.langfuse.failure = standing
            state.langfuse.appliedSourceVersion = pending.sourceVersion
            state.lastSeenVersion = pending.sourceVersion
            state.lastDocumentFailure = nil
        }
        // While the source fails (a label due between its retries), its failure stays the recorded error.
        let sourceFailing = current.sourceState == .failing
        if current.config?.version == version {
            // Nothing served changes (a label re-resolved to the version in use).
            store.update { snapshot in
                snapshot.polled(snapshot.sourceState, at: time, lastError: sourceFailing ? snapshot.lastError : standing)
                    .withPromptSources(statuses)
            }
        } else {
            let loaded = LoadedConfig(
                document: document, version: version, source: source, loadedAt: time,
                sourceVersion: pending.document.sourceVersion,
                fetchedAt: relabel ? current.config?.fetchedAt ?? pending.fetchedAt : pending.fetchedAt,
                fromCache: pending.fromCache)
            store.update { snapshot in
                let applied = pending.fromCache || sourceFailing
                    ? snapshot.polled(snapshot.sourceState, at: time, lastError: snapshot.lastError, config: loaded)
                    : snapshot.applying(loaded)
                let recorded = sourceFailing ? nil : standing
                return (recorded.map { applied.recording($0) } ?? applied).withPromptSources(statuses)
            }
            hooks.applied(loaded)
            if pending.fromCache, let cache {
                logFromCache(loaded, path: cache.documentPath)
            } else {
                var metadata: Logger.Metadata = [
                    "config.version": "\(version)", "config.source": "\(source)",
                    "config.experiments": "\(document.experiments.count)", "config.prompts": "\(document.prompts.count)",
                    "config.langfuse": .array(
                        statuses.map { .string(Self.describe($0)) }),
                ]
                if let sourceVersion = pending.document.sourceVersion {
                    metadata["config.source_version"] = "\(sourceVersion)"
                }
                if relabel { metadata["config.reason"] = "langfuse_label_moved" }
                logger.info("config.applied", metadata: metadata)
                if !relabel { storeInCache(pending.document, version: pending.sourceVersion, at: time) }
            }
        }
        if let standing {
            announce(
                standing, key: "copies " + failed.map(\.description).joined(separator: ",") + " " + standing.code,
                retryAt: retryAt, level: .warning, message: "config.prompts.langfuse_failing")
        } else if state.current.langfuse.announced != nil {
            state.withLock { $0.langfuse.announced = nil }
            logger.info("config.prompts.langfuse_recovered", metadata: ["config.source": "\(source)"])
        }
    }

    /// A fetched prompt that cannot be served (a chat placeholder, a version that fails validation): the config in
    /// use stays. Not retried before a label is due: a numbered version never changes.
    private func recordContentFailure(
        _ failure: ConfigLoadFailure, statuses: [PromptSourceStatus], retryAt: ContinuousClock.Instant?
    ) {
        store.update { $0.recording(failure).withPromptSources(statuses) }
        state.withLock { state in
            state.langfuse.pending?.unresolved = false
            state.langfuse.failure = failure
        }
        announce(
            failure, key: "content " + failure.code + " " + failure.problems.map(\.description).joined(),
            retryAt: retryAt, level: .error, message: "config.rejected")
    }

    /// Counts resolutions that met a Langfuse failure and returns when to retry (nil after a clean one): 1 s,
    /// doubling, at most the label TTL.
    private func noteResolution(failed: Bool) -> ContinuousClock.Instant? {
        let ttl = promptResolver?.configuration.labelTTL ?? .seconds(60)
        return state.withLock { state in
            guard failed else {
                state.langfuse.failedResolutions = 0
                state.langfuse.retryAt = nil
                return nil
            }
            state.langfuse.failedResolutions += 1
            let doubling = Duration.seconds(1 << min(state.langfuse.failedResolutions - 1, 16))
            let retryAt = ContinuousClock.now + min(doubling, ttl)
            state.langfuse.retryAt = retryAt
            return retryAt
        }
    }

    /// Logs and reports a failure once per state (`key`), not once per attempt.
    private func announce(
        _ failure: ConfigLoadFailure, key: String, retryAt: ContinuousClock.Instant?, level: Logger.Level,
        message: String
    ) {
        let isNew = state.withLock { state in
            defer { state.langfuse.announced = key }
            return state.langfuse.announced != key
        }
        guard isNew else { return }
        hooks.rejected(failure)
        var metadata: Logger.Metadata = [
            "config.source": "\(fetcher.sourceDescription)", "code": "\(failure.code)",
            "config.version": "\(store.current.config?.version ?? "none")",
            "config.langfuse": .array(store.current.promptSources.map { .string(Self.describe($0)) }),
        ]
        if !failure.problems.isEmpty {
            metadata["problems"] = .array(failure.problems.map { .string($0.description) })
        }
        if let retryAt { metadata["retry_in"] = "\(retryAt - .now)" }
        logger.log(level: level, "\(message): \(failure.message)", metadata: metadata)
    }

    /// `critic=langfuse 'movie-critic' label 'production' -> 3 (langfuse)`, for logs.
    static func describe(_ status: PromptSourceStatus) -> String {
        let resolved = status.resolvedVersion.map { "\($0) (\(status.origin?.rawValue ?? "?"))" } ?? "unresolved"
        let error = status.lastError.map { " [\($0.code)]" } ?? ""
        return "\(status.prompt)=\(status.reference) -> \(resolved)\(error)"
    }
}
