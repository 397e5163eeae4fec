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
/// `VARIANTD_MAX_LINE_BYTES`, `VARIANTD_MAX_CONNECTIONS`, `VARIANTD_CHECK_INTERVAL`, `VARIANTD_LOG_LEVEL`); a flag
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
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "variantd")

        // An absolute path, so that `source` in the `config` op says which file, whatever the working directory.
        let configPath = config.hasPrefix("/") ? config : FileManager.default.currentDirectoryPath + "/" + config
        var sourceConfiguration = FileConfigSource.Configuration(path: configPath)
        sourceConfiguration.checkInterval = .milliseconds(Int(checkInterval * 1000))
        let store = ServingStateStore(
            ServingSnapshot(
                config: nil, source: sourceConfiguration.sourceDescription, lastError: nil,
                startedAt: SystemClock.now()))
        let source = FileConfigSource(configuration: sourceConfiguration, store: store, logger: logger)
        if !source.loadInitial() {
            logger.warning(
                "config.none: serving no_config until a valid document appears",
                metadata: ["config.source": "\(sourceConfiguration.sourceDescription)"])
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
        try await group.run()
    }
}

enum Environment {
    static func string(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
