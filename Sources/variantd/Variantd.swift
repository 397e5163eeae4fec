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
/// `VARIANTD_MAX_LINE_BYTES`, `VARIANTD_MAX_CONNECTIONS`, `VARIANTD_CHECK_INTERVAL`, `VARIANTD_LOG_LEVEL`, and for
/// the config source `VARIANTD_SOURCE`, `VARIANTD_CACHE_DIR`, `VARIANTD_POLL_INTERVAL`, `VARIANTD_POLL_JITTER`,
/// `VARIANTD_MAX_BACKOFF`, `VARIANTD_REQUEST_TIMEOUT`, `VARIANTD_MAX_CONFIG_BYTES`, `VARIANTD_CA_BUNDLE`); a flag
/// overrides the environment, which overrides the built-in default.
@main
struct Variantd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd",
        abstract: "Serve deterministic prompt-experiment assignments over a Unix socket.",
        discussion: "Send SIGHUP to re-read the configuration; SIGTERM or SIGINT to stop gracefully.")

    @Option(help: "The configuration document (JSON). Env: VARIANTD_CONFIG.")
    var config: String = Environment.string("VARIANTD_CONFIG") ?? "/etc/variantd/config.json"

    @Option(help: "The Unix socket to listen on. Env: VARIANTD_SOCKET.")
    var socket: String = Environment.string("VARIANTD_SOCKET") ?? "/run/variantd/variantd.sock"

    @Option(help: "Permission bits of the socket file, in octal. Env: VARIANTD_SOCKET_MODE.")
    var socketMode: String = Environment.string("VARIANTD_SOCKET_MODE") ?? "0660"

    @Option(help: "The longest request line in bytes. Env: VARIANTD_MAX_LINE_BYTES.")
    var maxLineBytes: Int = Environment.string("VARIANTD_MAX_LINE_BYTES").flatMap { Int($0) } ?? 65536

    @Option(help: "The most connections served at once. Env: VARIANTD_MAX_CONNECTIONS.")
    var maxConnections: Int = Environment.string("VARIANTD_MAX_CONNECTIONS").flatMap { Int($0) } ?? 1024

    @Option(help: "Seconds between checks of the config file for a change. Env: VARIANTD_CHECK_INTERVAL.")
    var checkInterval: Double = Environment.string("VARIANTD_CHECK_INTERVAL").flatMap { Double($0) } ?? 1

    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: VARIANTD_LOG_LEVEL.")
    var logLevel: String = Environment.string("VARIANTD_LOG_LEVEL") ?? "info"

    // MARK: Config source (hosted configuration; README "Hosted configuration")

    @Option(help: "Where the configuration comes from: a path, file:PATH, http(s)://URL or appconfig://APP/ENV/PROFILE?region=R (default: --config). Env: VARIANTD_SOURCE.")
    var source: String? = Environment.string("VARIANTD_SOURCE")

    @Option(help: "Directory for the last-known-good copy of a network source's document. Env: VARIANTD_CACHE_DIR.")
    var cacheDir: String = Environment.string("VARIANTD_CACHE_DIR") ?? "/var/cache/variantd"

    @Option(help: "Seconds between polls of a network source. Env: VARIANTD_POLL_INTERVAL.")
    var pollInterval: Double = Environment.string("VARIANTD_POLL_INTERVAL").flatMap { Double($0) } ?? 30

    @Option(help: "Share (0-1) by which each poll interval is randomly shortened. Env: VARIANTD_POLL_JITTER.")
    var pollJitter: Double = Environment.string("VARIANTD_POLL_JITTER").flatMap { Double($0) } ?? 0.1

    @Option(help: "Longest wait in seconds between attempts while the source fails. Env: VARIANTD_MAX_BACKOFF.")
    var maxBackoff: Double = Environment.string("VARIANTD_MAX_BACKOFF").flatMap { Double($0) } ?? 300

    @Option(help: "Seconds one request to the source may take, body included. Env: VARIANTD_REQUEST_TIMEOUT.")
    var requestTimeout: Double = Environment.string("VARIANTD_REQUEST_TIMEOUT").flatMap { Double($0) } ?? 10

    @Option(help: "The largest configuration document accepted, in bytes. Env: VARIANTD_MAX_CONFIG_BYTES.")
    var maxConfigBytes: Int = Environment.string("VARIANTD_MAX_CONFIG_BYTES").flatMap { Int($0) } ?? 16 << 20

    @Option(help: "PEM file of CA certificates trusted for https sources (default: the system's). Env: VARIANTD_CA_BUNDLE.")
    var caBundle: String? = Environment.string("VARIANTD_CA_BUNDLE")

    /// The config-source settings; a relative `--config` or source path is made absolute so the `config` op names
    /// the file whatever the working directory.
    var sourceOptions: ConfigSourceOptions {
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        }
        var sourceURL = source ?? absolute(config)
        if let kind = try? ConfigSourceOptions(source: sourceURL).kind(), case .file(let path) = kind {
            sourceURL = absolute(path)
        }
        func duration(_ seconds: Double) -> Duration { .milliseconds(Int((seconds * 1000).rounded())) }
        var options = ConfigSourceOptions(source: sourceURL)
        options.cacheDirectory = cacheDir
        options.pollInterval = duration(pollInterval)
        options.fileCheckInterval = duration(checkInterval)
        options.jitter = pollJitter
        options.maximumBackoff = duration(maxBackoff)
        options.requestTimeout = duration(requestTimeout)
        options.maximumBytes = maxConfigBytes
        options.caBundle = caBundle
        options.environment = ProcessInfo.processInfo.environment
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
        guard checkInterval > 0 else { throw ValidationError("--check-interval must be positive") }
        for (flag, seconds) in [("--poll-interval", pollInterval), ("--max-backoff", maxBackoff), ("--request-timeout", requestTimeout)]
        where !(seconds.isFinite && seconds >= 0.001 && seconds <= 86_400) {
            throw ValidationError("\(flag) must be a positive number of seconds, at most a day, not \(seconds)")
        }
        do { try sourceOptions.validate() } catch { throw ValidationError(error.description) }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "variantd")

        let sourceOptions = self.sourceOptions
        let store = ServingStateStore(
            ServingSnapshot(
                config: nil, source: try sourceOptions.sourceDescription, lastError: nil, startedAt: SystemClock.now()))
        let (source, shutdownSource) = try sourceOptions.makePoller(store: store, logger: logger)
        if !(await source.loadInitial()) {
            logger.warning(
                "config.none: serving no_config until a valid document appears",
                metadata: ["config.source": "\(source.sourceDescription)"])
        }

        var serverConfiguration = SocketServer.Configuration(socketPath: socket)
        serverConfiguration.socketMode = mode_t(UInt32(socketMode, radix: 8) ?? 0o660)
        serverConfiguration.maximumLineBytes = maxLineBytes
        serverConfiguration.maximumConnections = maxConnections
        let socketPath = socket
        let server = SocketServer(configuration: serverConfiguration, store: store, logger: logger) {
            logger.info("variantd.ready", metadata: ["socket": "\(socketPath)"])
        }

        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: source), .init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            await shutdownSource()
            throw error
        }
        await shutdownSource()
    }
}

enum Environment {
    static func string(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
