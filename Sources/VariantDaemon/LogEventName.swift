import Logging
import VariantCore

/// Every event the daemon and the judge log, named once. A log entry's message is its event's name, optionally
/// followed by `: ` and words for a person; what a machine needs is in the metadata, under a `LogMetadataKey`.
/// docs/operations.md ("Log events") lists the same names, and a test keeps the two equal.
public enum LogEventName: String, CaseIterable, Sendable {
    // The daemon's life.
    case variantdReady = "variantd.ready"
    case adminGroupUnmapped = "admin.group_unmapped"
    case descriptorsRaised = "descriptors.raised"
    case serverListening = "server.listening"
    case serverStopped = "server.stopped"
    case metricsListening = "metrics.listening"
    case metricsStopped = "metrics.stopped"
    case metricsAcceptFailed = "metrics.accept_failed"
    case metricsConnectionError = "metrics.connection_error"
    case systemdReady = "systemd.ready"
    case systemdWatchdog = "systemd.watchdog"
    case systemdWatchdogMissed = "systemd.watchdog.missed"
    case systemdWatchdogResumed = "systemd.watchdog.resumed"
    case systemdNotifyFailed = "systemd.notify_failed"

    // Connections.
    case connectionAcceptFailed = "connection.accept_failed"
    case connectionAcceptResumed = "connection.accept_resumed"
    case connectionLimitLowered = "connection.limit_lowered"
    case connectionRefused = "connection.refused"
    case connectionRefusalsEnded = "connection.refusals_ended"
    case connectionAdminSlot = "connection.admin_slot"
    case connectionIdleClosed = "connection.idle_closed"
    case connectionLineTooLong = "connection.line_too_long"
    case connectionDurableRequestFailed = "connection.durable_request_failed"
    case connectionStopTimeout = "connection.stop_timeout"
    case connectionError = "connection.error"

    // The configuration.
    case configApplied = "config.applied"
    case configConfirmed = "config.confirmed"
    case configRejected = "config.rejected"
    case configFetchFailed = "config.fetch_failed"
    case configNone = "config.none"
    case configReload = "config.reload"
    case configFromCache = "config.from_cache"
    case configCacheInvalid = "config.cache.invalid"
    case configCacheWriteFailed = "config.cache.write_failed"
    case configCacheRecovered = "config.cache.recovered"
    case configSourceBackoffAtCap = "config.source.backoff_at_cap"
    case configSourceRecovered = "config.source.recovered"
    case configAppConfigSessionStarted = "config.appconfig.session_started"
    case configPromptsUnresolved = "config.prompts_unresolved"
    case configPromptsLangfuseFailing = "config.prompts.langfuse_failing"
    case configPromptsLangfuseRecovered = "config.prompts.langfuse_recovered"
    case langfuseFetched = "langfuse.fetched"
    case langfuseCacheInvalid = "langfuse.cache.invalid"
    case langfuseCacheWriteFailed = "langfuse.cache.write_failed"
    case langfuseCacheRecovered = "langfuse.cache.recovered"

    // Treatments.
    case treatmentAutoDisabled = "treatment.auto_disabled"
    case treatmentDisabled = "treatment.disabled"
    case treatmentEnabled = "treatment.enabled"
    /// Any other event of the `events` op logged as a treatment change (`event` names its kind).
    case treatmentChanged = "treatment.changed"

    // The state file.
    case stateNone = "state.none"
    case stateRestored = "state.restored"
    case stateRestoredInPart = "state.restored_in_part"
    case stateUnreadable = "state.unreadable"
    case stateStagingRemoved = "state.staging_removed"
    case stateDirectoryFailed = "state.directory_failed"
    case stateWriteFailed = "state.write_failed"
    case stateWriteRecovered = "state.write_recovered"
    case stateSaved = "state.saved"
    case stateSaveFailed = "state.save_failed"

    // The judge.
    case judgeStarted = "judge.started"
    case judgeStateRestored = "judge.state_restored"
    case judgeStateUnreadable = "judge.state_unreadable"
    case judgeDecided = "judge.decided"
    case judgeDryRun = "judge.dry_run"
    case judgePublished = "judge.published"
    case judgeNotWritable = "judge.not_writable"
    case judgeSourceFailed = "judge.source_failed"
    case judgeFleetUnreadable = "judge.fleet_unreadable"
    case judgePublishFailed = "judge.publish_failed"
    case judgeStateWriteFailed = "judge.state_write_failed"
    case judgeRecovered = "judge.recovered"

    /// The event logged for a treatment change of the event log.
    public static func treatment(_ kind: LedgerEvent.Kind) -> LogEventName {
        switch kind {
        case .autoDisabled: .treatmentAutoDisabled
        case .disabled: .treatmentDisabled
        case .enabled: .treatmentEnabled
        default: .treatmentChanged
        }
    }
}

/// Every metadata key of the daemon's and the judge's log entries, named once (journald upper-cases them:
/// `config.version` is `CONFIG_VERSION`).
public enum LogMetadataKey: String, CaseIterable, Sendable {
    case about
    case acceptFailures = "accept.failures"
    case actor
    case adminGid = "admin.gid"
    case adminGroup = "admin.group"
    case bytes
    case code
    case configExperiments = "config.experiments"
    case configFetchedAt = "config.fetched_at"
    case configFingerprint = "config.fingerprint"
    case configLangfuse = "config.langfuse"
    case configPrompts = "config.prompts"
    case configReason = "config.reason"
    case configSource = "config.source"
    case configSourceVersion = "config.source_version"
    case configVersion = "config.version"
    case connectionsAsked = "connections.asked"
    case connectionsLimit = "connections.limit"
    case connectionsRefused = "connections.refused"
    case decisions
    case descriptorsHardLimit = "descriptors.hard_limit"
    case descriptorsReserved = "descriptors.reserved"
    case descriptorsSoftLimit = "descriptors.soft_limit"
    case descriptorsWas = "descriptors.was"
    case dryRun = "dry_run"
    case error
    case event
    case evidence
    case experiment
    case failedAttempts = "failed_attempts"
    case httpStatus = "http.status"
    case idleTimeout = "idle.timeout"
    case langfuseURL = "langfuse.url"
    case metricsAddress = "metrics.address"
    case metricsPath = "metrics.path"
    case path
    case peer
    case prometheus
    case problems
    case reason
    case retryIn = "retry_in"
    case socket
    case socketActivated = "socket.activated"
    case socketFD = "socket.fd"
    case socketMode = "socket.mode"
    case state
    case stateDirectory = "state.directory"
    case stateDisabled = "state.disabled"
    case stateFailingSince = "state.failing_since"
    case stateFiles = "state.files"
    case stateFirstProblem = "state.first_problem"
    case statePath = "state.path"
    case statePreserved = "state.preserved"
    case stateProblems = "state.problems"
    case status
    case variant
    case watchdogInterval = "watchdog.interval"
    case writesPending = "writes.pending"
}

extension Logger {
    /// Logs `event` (its name, then `: detail` when given) with `metadata` under keys of the one list.
    /// `dataKeys` holds keys named by the data itself (a treatment event's statistics, `stats.NAME`).
    @inlinable
    public func log(
        _ level: Logger.Level, _ event: LogEventName, _ detail: @autoclosure () -> String? = nil,
        metadata: @autoclosure () -> [LogMetadataKey: Logger.MetadataValue] = [:],
        dataKeys: @autoclosure () -> Logger.Metadata = [:],
        file: String = #fileID, function: String = #function, line: UInt = #line
    ) {
        guard level >= logLevel else { return }
        let message = detail().map { "\(event.rawValue): \($0)" } ?? event.rawValue
        var merged = dataKeys()
        for (key, value) in metadata() { merged[key.rawValue] = value }
        self.log(
            level: level, "\(message)", metadata: merged.isEmpty ? nil : merged, source: nil, file: file,
            function: function, line: line)
    }
}
