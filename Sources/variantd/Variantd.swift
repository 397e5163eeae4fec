import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VariantCore
import VariantDaemon

/// `variantd`: the prompt-experiment sidecar daemon.
///
/// Every option can also be set in the environment (`VARIANTD_CONFIG`, `VARIANTD_SOCKET`, `VARIANTD_SOCKET_MODE`,
/// `VARIANTD_MAX_LINE_BYTES`, `VARIANTD_MAX_CONNECTIONS`, `VARIANTD_IDLE_TIMEOUT`, `VARIANTD_LOG_LEVEL`,
/// `VARIANTD_LOG_FORMAT`, `VARIANTD_READY_TIMEOUT`, `VARIANTD_STATE_DIR`, `VARIANTD_STATE_FLUSH_INTERVAL`,
/// `VARIANTD_ADMIN_GROUP`, `VARIANTD_METRICS_ADDRESS`, and for the config source `VARIANTD_CACHE_DIR`,
/// `VARIANTD_POLL_INTERVAL`, `VARIANTD_POLL_JITTER`, `VARIANTD_MAX_BACKOFF`, `VARIANTD_REQUEST_TIMEOUT`,
/// `VARIANTD_MAX_CONFIG_BYTES`, `VARIANTD_CA_BUNDLE`, and for Langfuse prompts `VARIANTD_LANGFUSE_URL`,
/// `VARIANTD_LANGFUSE_CREDENTIALS`, `VARIANTD_LANGFUSE_LABEL_TTL`, `VARIANTD_LANGFUSE_FALLBACK`); a flag overrides
/// the environment, which overrides the built-in default.
///
/// Under systemd (see `systemd/`): started with `LISTEN_FDS`, it serves on the passed socket instead of binding
/// `--socket`; with `NOTIFY_SOCKET` it reports readiness, status, reloads and stopping, and pings the watchdog.
@main
struct Variantd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd",
        abstract: "Serve deterministic prompt-experiment assignments over a Unix socket.",
        discussion: "Send SIGHUP to re-read the configuration; SIGTERM or SIGINT to stop gracefully.")

    @Option(help: "Where the configuration document (JSON) comes from: a path, file:PATH, http(s)://URL or appconfig://APP/ENV/PROFILE?region=R. Env: VARIANTD_CONFIG.")
    var config: String = Environment.string("VARIANTD_CONFIG") ?? "/etc/variantd/config.json"

    @Option(help: "The Unix socket to listen on. Env: VARIANTD_SOCKET.")
    var socket: String = Environment.string("VARIANTD_SOCKET") ?? "/run/variantd/variantd.sock"

    @Option(help: "Permission bits of the socket file, in octal. Env: VARIANTD_SOCKET_MODE.")
    var socketMode: String = Environment.string("VARIANTD_SOCKET_MODE") ?? "0660"

    @Option(help: "The longest request line in bytes. Env: VARIANTD_MAX_LINE_BYTES.")
    var maxLineBytes: Int = Environment.string("VARIANTD_MAX_LINE_BYTES").flatMap { Int($0) } ?? 65536

    @Option(help: "The most connections served at once (one more is kept for admin peers; lowered to fit the descriptor limit). Env: VARIANTD_MAX_CONNECTIONS.")
    var maxConnections: Int = Environment.string("VARIANTD_MAX_CONNECTIONS").flatMap { Int($0) } ?? 1024

    @Option(help: "Seconds after which a connection with nothing read or written is closed; 0 keeps idle connections open. Env: VARIANTD_IDLE_TIMEOUT.")
    var idleTimeout: Double = Environment.string("VARIANTD_IDLE_TIMEOUT").flatMap { Double($0) } ?? 300

    @Option(help: "Directory of the state file (statistics, disabled treatments, events). Env: VARIANTD_STATE_DIR.")
    var stateDir: String = Environment.string("VARIANTD_STATE_DIR") ?? "/var/lib/variantd"

    @Option(help: "Seconds between writes of changed state. Env: VARIANTD_STATE_FLUSH_INTERVAL.")
    var stateFlushInterval: Double = Environment.string("VARIANTD_STATE_FLUSH_INTERVAL").flatMap { Double($0) } ?? 1

    @Option(help: "A group (name or id) whose members may run admin ops, besides root and the daemon's user. Env: VARIANTD_ADMIN_GROUP.")
    var adminGroup: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: VARIANTD_LOG_LEVEL.")
    var logLevel: String = Environment.string("VARIANTD_LOG_LEVEL") ?? "info"

    // systemd (issue 6)
    @Option(
        help: "auto (the journal when stderr is connected to it), journal or text. Env: VARIANTD_LOG_FORMAT.")
    var logFormat: String = Environment.string("VARIANTD_LOG_FORMAT") ?? "auto"

    @Option(
        help:
            "Under systemd, seconds after which READY=1 is sent without a valid config (answering no_config). Env: VARIANTD_READY_TIMEOUT."
    )
    var readyTimeout: Double = Environment.string("VARIANTD_READY_TIMEOUT").flatMap { Double($0) } ?? 30

    /// `--admin-group`, else `VARIANTD_ADMIN_GROUP` (read here: an optional option cannot default to it).
    private var effectiveAdminGroup: String? { adminGroup ?? Environment.string("VARIANTD_ADMIN_GROUP") }

    // Metrics endpoint (issue 18; docs/operations.md, "Metrics endpoint")

    @Option(
        help: ArgumentHelp(
            "Serve GET /metrics (Prometheus text format) over HTTP on this address, such as 127.0.0.1:9464; off by default. Env: VARIANTD_METRICS_ADDRESS.",
            valueName: "host:port"))
    var metricsAddress: String?

    @Option(
        help:
            "Which metrics' unit-group totals /metrics exports: all, guardrail (the metrics the guardrails watch) or none (docs/fleet.md). Env: VARIANTD_METRICS_UNIT_GROUPS."
    )
    var metricsUnitGroups: String = Environment.string("VARIANTD_METRICS_UNIT_GROUPS") ?? "all"

    @Option(
        help:
            "The smallest unit hashes /metrics exports per experiment, 0 to 4096: the fleet's sample-ratio check runs on this many units. Env: VARIANTD_METRICS_UNIT_SAMPLE."
    )
    var metricsUnitSample: Int = Environment.string("VARIANTD_METRICS_UNIT_SAMPLE").flatMap { Int($0) } ?? 64

    /// `--metrics-address`, else `VARIANTD_METRICS_ADDRESS`.
    private var effectiveMetricsAddress: String? { metricsAddress ?? Environment.string("VARIANTD_METRICS_ADDRESS") }

    /// The daemon's version, as `variantd_build_info` reports it.
    static let version = "0.1.0"

    // MARK: Config source (hosted configuration; docs/hosted-config.md)

    @Option(help: "Directory for the last-known-good copy of a network source's document. Env: VARIANTD_CACHE_DIR.")
    var cacheDir: String = Environment.string("VARIANTD_CACHE_DIR") ?? "/var/cache/variantd"

    @Option(help: "Seconds between polls of the config source: checks of a file for a change (default 1), fetches from a network source (default 30). Env: VARIANTD_POLL_INTERVAL.")
    var pollInterval: Double?

    @Option(help: "Share (0-1) by which each poll interval is randomly shortened. Env: VARIANTD_POLL_JITTER.")
    var pollJitter: Double = Environment.string("VARIANTD_POLL_JITTER").flatMap { Double($0) } ?? 0.1

    @Option(help: "Longest wait in seconds between attempts while the source fails. Env: VARIANTD_MAX_BACKOFF.")
    var maxBackoff: Double = Environment.string("VARIANTD_MAX_BACKOFF").flatMap { Double($0) } ?? 300

    @Option(help: "Seconds one request to the source (or one read of a config file) may take, body included. Env: VARIANTD_REQUEST_TIMEOUT.")
    var requestTimeout: Double = Environment.string("VARIANTD_REQUEST_TIMEOUT").flatMap { Double($0) } ?? 10

    @Option(help: "The largest configuration document accepted, in bytes. Env: VARIANTD_MAX_CONFIG_BYTES.")
    var maxConfigBytes: Int = Environment.string("VARIANTD_MAX_CONFIG_BYTES").flatMap { Int($0) } ?? 16 << 20

    @Option(help: "PEM file of CA certificates trusted for https sources (default: the system's). Env: VARIANTD_CA_BUNDLE.")
    var caBundle: String?

    // MARK: Langfuse prompt source (docs/langfuse.md); keys from LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY

    @Option(help: "Langfuse base URL (default: LANGFUSE_HOST, else https://cloud.langfuse.com). Env: VARIANTD_LANGFUSE_URL.")
    var langfuseURL: String?

    @Option(help: "File of LANGFUSE_PUBLIC_KEY=, LANGFUSE_SECRET_KEY= (and LANGFUSE_HOST=) lines; the environment wins. Env: VARIANTD_LANGFUSE_CREDENTIALS.")
    var langfuseCredentials: String?

    @Option(help: "Seconds a Langfuse label's resolution is used before it is resolved again. Env: VARIANTD_LANGFUSE_LABEL_TTL.")
    var langfuseLabelTtl: Double = Environment.string("VARIANTD_LANGFUSE_LABEL_TTL").flatMap { Double($0) } ?? 60

    @Option(help: "JSON array of prompts in Langfuse's API shape, the last resort when Langfuse and the disk cache fail. Env: VARIANTD_LANGFUSE_FALLBACK.")
    var langfuseFallback: String?

    /// `--poll-interval`, else `VARIANTD_POLL_INTERVAL` (read here: an optional @Option with a default is
    /// deprecated); nil for the source kind's default.
    var effectivePollInterval: Double? {
        pollInterval ?? Environment.string("VARIANTD_POLL_INTERVAL").flatMap { Double($0) }
    }

    /// The config-source settings; a relative `--config` path is made absolute so the `config` op names the file
    /// whatever the working directory.
    var sourceOptions: ConfigSourceOptions {
        var sourceURL = config
        if let kind = try? ConfigSourceOptions(source: sourceURL).kind(), case .file(let path) = kind {
            sourceURL = Environment.absolutePath(path)
        }
        func duration(_ seconds: Double) -> Duration { .milliseconds(Int((seconds * 1000).rounded())) }
        var options = ConfigSourceOptions(source: sourceURL)
        options.cacheDirectory = cacheDir
        if let interval = effectivePollInterval {
            options.pollInterval = duration(interval)
            options.fileCheckInterval = duration(interval)
        }
        options.jitter = pollJitter
        options.maximumBackoff = duration(maxBackoff)
        options.requestTimeout = duration(requestTimeout)
        options.maximumBytes = maxConfigBytes
        options.caBundle = caBundle ?? Environment.string("VARIANTD_CA_BUNDLE")
        options.environment = ProcessInfo.processInfo.environment
        // These three read their environment variable here: an optional @Option with a default is deprecated.
        options.langfuse.url = langfuseURL ?? Environment.string("VARIANTD_LANGFUSE_URL")
        options.langfuse.credentialsFile = (langfuseCredentials ?? Environment.string("VARIANTD_LANGFUSE_CREDENTIALS"))
            .map(Environment.absolutePath)
        if langfuseLabelTtl.isFinite, langfuseLabelTtl > 0, langfuseLabelTtl <= 86_400 {
            options.langfuse.labelTTL = duration(langfuseLabelTtl)
        } else {
            options.langfuse.labelTTL = .zero  // refused by validate() with a message
        }
        options.langfuse.fallbackPath = (langfuseFallback ?? Environment.string("VARIANTD_LANGFUSE_FALLBACK"))
            .map(Environment.absolutePath)
        return options
    }

    func validate() throws {
        guard let mode = UInt32(socketMode, radix: 8), mode <= 0o777 else {
            throw ValidationError("--socket-mode must be octal permission bits such as 0660, not '\(socketMode)'")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard maxLineBytes >= 1024 else { throw ValidationError("--max-line-bytes must be at least 1024") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard idleTimeout.isFinite, idleTimeout >= 0, idleTimeout <= 86_400 else {
            throw ValidationError("--idle-timeout must be from 0 (off) to 86400 seconds, not \(idleTimeout)")
        }
        guard stateFlushInterval > 0 else { throw ValidationError("--state-flush-interval must be positive") }
        if let adminGroup = effectiveAdminGroup, AdminPolicy.groupID(named: adminGroup) == nil {
            throw ValidationError("--admin-group '\(adminGroup)' is not a group on this host")
        }
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be auto, journal or text, not '\(logFormat)'")
        }
        guard readyTimeout >= 0, readyTimeout.isFinite else { throw ValidationError("--ready-timeout must be 0 or more") }
        let intervals = [effectivePollInterval.map { ("--poll-interval", $0) }, ("--max-backoff", maxBackoff), ("--request-timeout", requestTimeout)]
        for (flag, seconds) in intervals.compactMap({ $0 })
        where !(seconds.isFinite && seconds >= 0.001 && seconds <= 86_400) {
            throw ValidationError("\(flag) must be a positive number of seconds, at most a day, not \(seconds)")
        }
        do { try sourceOptions.validate() } catch { throw ValidationError(error.description) }
        guard ExperimentExposition.Detail.UnitGroups(rawValue: metricsUnitGroups) != nil else {
            throw ValidationError("--metrics-unit-groups must be all, guardrail or none, not '\(metricsUnitGroups)'")
        }
        guard (0...DistinctUnitSample.defaultCapacity).contains(metricsUnitSample) else {
            throw ValidationError("--metrics-unit-sample must be from 0 to \(DistinctUnitSample.defaultCapacity), not \(metricsUnitSample)")
        }
        if let text = effectiveMetricsAddress {
            do {
                _ = try MetricsServer.Address(parsing: text).resolved()
            } catch {
                throw ValidationError("--metrics-address: \(error.description)")
            }
        }
    }

    func run() async throws {
        (LogFormat(rawValue: logFormat) ?? .auto).bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let logger = Logger(label: "variantd")

        if let group = effectiveAdminGroup, let gid = AdminPolicy.groupID(named: group), !AdminPolicy.isMapped(groupID: gid) {
            // PrivateUsers=yes (the shipped unit) maps only root and the daemon's own group: members of the admin
            // group would get forbidden with no hint why.
            logger.log(
                .error, .adminGroupUnmapped, "the admin group is not mapped in this user namespace, so its members are refused admin ops; run without PrivateUsers=yes (systemd/README.md)",
                metadata: [.adminGroup: "\(group)", .adminGid: "\(gid)"])
        }

        // systemd: the socket passed by socket activation, if any (a startup error if it is not a Unix stream).
        let inheritedSocket = try SocketActivation.inheritedListener()

        let sourceOptions = self.sourceOptions
        let store = ServingStateStore(
            ServingSnapshot(
                config: nil, source: try sourceOptions.sourceDescription, lastError: nil, startedAt: SystemClock.now()))

        // Statistics, disabled treatments and events, restored before anything is served.
        let ledger = ExperimentLedger()

        // The metrics endpoint, when asked for; without it nothing is counted.
        let metricsAddress = try effectiveMetricsAddress.map { text in
            do { return try MetricsServer.Address(parsing: text) } catch {
                throw ValidationError("--metrics-address: \(error)")
            }
        }
        let experimentMetrics = ExperimentMetrics(
            ledger: ledger, store: store,
            detail: ExperimentExposition.Detail(
                unitGroups: ExperimentExposition.Detail.UnitGroups(rawValue: metricsUnitGroups) ?? .all,
                unitSampleSize: metricsUnitSample))
        let metrics = metricsAddress.map { _ in
            DaemonMetrics(
                version: Self.version, store: store, ledger: ledger,
                appendExperimentMetrics: { experimentMetrics.append(into: &$0) })
        }

        // systemd: sd_notify readiness, status, reloads (through the source's hooks), watchdog, stopping.
        var notifierConfiguration = SystemdNotifier.Configuration()
        notifierConfiguration.readyTimeout = .milliseconds(Int(readyTimeout * 1000))
        let notifier = SystemdNotifier(configuration: notifierConfiguration, store: store, logger: logger)

        var persistenceConfiguration = LedgerPersistence.Configuration(stateDirectory: Environment.absolutePath(stateDir))
        persistenceConfiguration.flushInterval = .milliseconds(Int(stateFlushInterval * 1000))
        let persistence = LedgerPersistence(
            configuration: persistenceConfiguration, ledger: ledger, logger: logger,
            writeFailed: { metrics?.stateWriteFailed() },
            failureChanged: { failure in
                store.update { $0.withStateFailure(failure) }
                notifier.statusChanged()
            })
        persistence.restore()

        let (source, shutdownSource) = try sourceOptions.makePoller(
            store: store, logger: logger,
            hooks: .combining(
                notifier.configHooks,
                ExperimentControl.configEventHooks(ledger: ledger, persistence: persistence, logger: logger),
                metrics?.configHooks ?? ConfigSourceHooks()))
        let control = ExperimentControl(
            ledger: ledger, store: store, persistence: persistence,
            adminPolicy: AdminPolicy(adminGroupID: effectiveAdminGroup.flatMap(AdminPolicy.groupID(named:))), logger: logger,
            reload: {
                source.reloadNow()
                return true
            })
        control.syncDisabledTreatments()
        if !(await source.loadInitial()) {
            logger.log(.warning, .configNone, "serving no_config until a valid document appears",
                metadata: [.configSource: "\(source.sourceDescription)"])
        }

        var serverConfiguration = SocketServer.Configuration(
            socketPath: socket, socketMode: mode_t(UInt32(socketMode, radix: 8) ?? 0o660))
        if let inheritedSocket { serverConfiguration.listener = .inheritedDescriptor(inheritedSocket) }
        serverConfiguration.maximumLineBytes = maxLineBytes
        serverConfiguration.maximumConnections = maxConnections
        serverConfiguration.idleTimeout = idleTimeout > 0 ? .milliseconds(Int((idleTimeout * 1000).rounded())) : nil
        let socketPath = inheritedSocket.map { "fd \($0) (socket activation)" } ?? socket
        let server = SocketServer(
            configuration: serverConfiguration, store: store, logger: logger, metrics: metrics,
            contextForPeer: { control.context(for: $0) }
        ) {
            logger.log(.info, .variantdReady, metadata: [.socket: "\(socketPath)"])
            notifier.serverListening()
        }

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: source), .init(service: persistence), .init(service: server),
        ]
        if let metrics, let metricsAddress {
            services.append(
                .init(
                    service: MetricsServer(
                        configuration: .init(address: metricsAddress), metrics: metrics, logger: logger)))
        }
        services.append(.init(service: notifier))
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                // Stopped in reverse order: the notifier says STOPPING=1 first, the metrics endpoint closes, the
                // server answers its last lines, then the state's final write holds every answered record.
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch let error as MetricsServerError {
            await shutdownSource()
            throw StartupError("--metrics-address: \(error.description)")
        } catch {
            await shutdownSource()
            throw error
        }
        await shutdownSource()
    }
}

/// A failure to start that names the option at fault.
struct StartupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

