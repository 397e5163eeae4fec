import VariantCore

/// What a config source tells the rest of the daemon, so that the systemd notifier (`RELOADING=1`, `READY=1`,
/// `STATUS=`) and the event log can follow it without knowing how the source fetches.
///
/// The `ConfigPoller` calls these for every source (file, HTTP, AppConfig), on its own task, in this order for one
/// poll: `reloadStarted` (only for a forced reload: SIGHUP, `reloadNow()` or the `reload` admin op, never for a
/// timer tick), then `applied` or `rejected` (or neither when the document is unchanged), then `reloadFinished`.
/// `applied` is also called once at start-up for a document taken from the on-disk cache. A fetch that fails the
/// same way as the previous one is not reported again on a timer tick (an outage is one `rejected`, not one per
/// attempt); a forced reload always reports its outcome.
public struct ConfigSourceHooks: Sendable {
    /// A forced reload begins.
    public var reloadStarted: @Sendable () -> Void
    /// A forced reload has ended, whatever its outcome.
    public var reloadFinished: @Sendable () -> Void
    /// A validated document replaced the one in use.
    public var applied: @Sendable (LoadedConfig) -> Void
    /// A document was rejected or could not be fetched; the previous one stays in use.
    public var rejected: @Sendable (ConfigLoadFailure) -> Void
    /// Every poll of the source, unlike `rejected` not deduplicated (for metrics): nil when the source answered
    /// and its document is in use (or unchanged), else why not (a failed fetch, or the document's rejection).
    public var polled: @Sendable (ConfigLoadFailure?) -> Void
    /// Every Langfuse prompt reference whose resolution failed, each time (for metrics), whether or not a copy
    /// served in its place.
    public var promptResolutionFailed: @Sendable (ConfigLoadFailure) -> Void

    public init(
        reloadStarted: @escaping @Sendable () -> Void = {},
        reloadFinished: @escaping @Sendable () -> Void = {},
        applied: @escaping @Sendable (LoadedConfig) -> Void = { _ in },
        rejected: @escaping @Sendable (ConfigLoadFailure) -> Void = { _ in },
        polled: @escaping @Sendable (ConfigLoadFailure?) -> Void = { _ in },
        promptResolutionFailed: @escaping @Sendable (ConfigLoadFailure) -> Void = { _ in }
    ) {
        self.reloadStarted = reloadStarted
        self.reloadFinished = reloadFinished
        self.applied = applied
        self.rejected = rejected
        self.polled = polled
        self.promptResolutionFailed = promptResolutionFailed
    }

    /// Hooks that call each of `hooks` in turn.
    public static func combining(_ hooks: ConfigSourceHooks...) -> ConfigSourceHooks {
        ConfigSourceHooks(
            reloadStarted: { hooks.forEach { $0.reloadStarted() } },
            reloadFinished: { hooks.forEach { $0.reloadFinished() } },
            applied: { config in hooks.forEach { $0.applied(config) } },
            rejected: { failure in hooks.forEach { $0.rejected(failure) } },
            polled: { failure in hooks.forEach { $0.polled(failure) } },
            promptResolutionFailed: { failure in hooks.forEach { $0.promptResolutionFailed(failure) } })
    }
}
