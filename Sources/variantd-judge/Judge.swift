import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VariantCore
import VariantDaemon
import VariantFleet

/// `variantd-judge`: decides on fleet-wide evidence from Prometheus and disables a harmful treatment for every
/// host through the configuration source they follow (docs/fleet.md, "The judge").
///
/// Every option can also be set in the environment (`VARIANTD_JUDGE_PROMETHEUS`, `VARIANTD_JUDGE_CONFIG`,
/// `VARIANTD_JUDGE_DEPLOYMENT_STRATEGY`, `VARIANTD_JUDGE_INTERVAL`, `VARIANTD_JUDGE_MAX_BACKOFF`, `VARIANTD_JUDGE_STATE_DIR`, `VARIANTD_JUDGE_TIMEOUT`,
/// `VARIANTD_LOG_LEVEL`, `VARIANTD_LOG_FORMAT`); a flag overrides the environment.
@main
struct Judge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "variantd-judge",
        abstract: "Disable harmful treatments on fleet-wide evidence, through the configuration source.",
        discussion: """
            Judges the experiments whose guardrails have scope "fleet": every --interval it reads the document from \
            --config, reads each experiment's fleet statistics from --prometheus (the queries of `variantctl stats \
            --prometheus`), runs the daemon's own guardrail tests on them, and publishes a disable through the \
            source (a file: rewritten atomically). A source it cannot write (plain HTTP): it reports the decision \
            and exits 1. SIGTERM or SIGINT stop it; its state file lets a restart resume where it was.
            """)

    @Option(help: "Prometheus' base URL. Env: VARIANTD_JUDGE_PROMETHEUS.")
    var prometheus: String = Environment.string("VARIANTD_JUDGE_PROMETHEUS") ?? "http://127.0.0.1:9090"

    /// The config source (`--config`, as the daemon names it).
    @Option(name: .customLong("config"), help: "The document the fleet follows: a path, file:PATH, appconfig://APP_ID/ENV_ID/PROFILE_ID?region=R, or http(s)://URL (read only). Env: VARIANTD_JUDGE_CONFIG.")
    var source: String = Environment.string("VARIANTD_JUDGE_CONFIG") ?? "/etc/variantd/config.json"

    @Option(help: "With an appconfig:// source: the deployment strategy id of the deployments (one with no bake time). Env: VARIANTD_JUDGE_DEPLOYMENT_STRATEGY.")
    var deploymentStrategy: String?

    @Option(help: "Seconds between rounds. Env: VARIANTD_JUDGE_INTERVAL.")
    var interval: Double = Environment.string("VARIANTD_JUDGE_INTERVAL").flatMap { Double($0) } ?? 30

    @Option(help: "Longest wait in seconds between rounds while Prometheus or the source fails. Env: VARIANTD_JUDGE_MAX_BACKOFF.")
    var maxBackoff: Double = Environment.string("VARIANTD_JUDGE_MAX_BACKOFF").flatMap { Double($0) } ?? 300

    @Option(help: "Seconds each Prometheus query may take. Env: VARIANTD_JUDGE_TIMEOUT.")
    var timeout: Double = Environment.string("VARIANTD_JUDGE_TIMEOUT").flatMap { Double($0) } ?? 10

    @Option(help: "Directory of the judge's state (decisions and evidence). Env: VARIANTD_JUDGE_STATE_DIR.")
    var stateDir: String = Environment.string("VARIANTD_JUDGE_STATE_DIR") ?? "/var/lib/variantd-judge"

    @Flag(help: "Print what would be published; publish nothing.")
    var dryRun = false

    @Flag(help: "Run one round and exit (0 when every experiment was judged, 1 when the document or some experiment's statistics could not be read).")
    var once = false

    @Option(help: "trace, debug, info, notice, warning, error or critical. Env: VARIANTD_LOG_LEVEL.")
    var logLevel: String = Environment.string("VARIANTD_LOG_LEVEL") ?? "info"

    @Option(help: "auto, journal or text. Env: VARIANTD_LOG_FORMAT.")
    var logFormat: String = Environment.string("VARIANTD_LOG_FORMAT") ?? "auto"

    /// `--deployment-strategy`, else `VARIANTD_JUDGE_DEPLOYMENT_STRATEGY`.
    private var effectiveDeploymentStrategy: String? {
        deploymentStrategy ?? Environment.string("VARIANTD_JUDGE_DEPLOYMENT_STRATEGY")
    }

    func validate() throws {
        guard prometheus.hasPrefix("http://") || prometheus.hasPrefix("https://") else {
            throw ValidationError("--prometheus must be an http:// or https:// URL, not '\(prometheus)'")
        }
        for (flag, seconds) in [("--interval", interval), ("--max-backoff", maxBackoff), ("--timeout", timeout)]
        where !(seconds.isFinite && seconds >= 0.1 && seconds <= 86_400) {
            throw ValidationError("\(flag) must be from 0.1 to 86400 seconds, not \(seconds)")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be auto, journal or text, not '\(logFormat)'")
        }
        if source.hasPrefix("appconfig://"), effectiveDeploymentStrategy == nil {
            throw ValidationError("an appconfig:// source needs --deployment-strategy (a strategy with no bake time; docs/fleet.md)")
        }
    }

    func run() async throws {
        (LogFormat(rawValue: logFormat) ?? .auto).bootstrapLogging(level: Logger.Level(rawValue: logLevel) ?? .info)
        let logger = Logger(label: "variantd-judge")
        let documentSource: any DocumentSource
        if source.hasPrefix("appconfig://") {
            documentSource = try AppConfigDocumentSource(
                url: source, deploymentStrategy: effectiveDeploymentStrategy ?? "",
                environment: ProcessInfo.processInfo.environment, timeout: .milliseconds(Int(timeout * 1000)))
        } else if source.hasPrefix("http://") || source.hasPrefix("https://") {
            documentSource = ReadOnlyDocumentSource(url: source)
        } else {
            documentSource = FileDocumentSource(
                path: Environment.absolutePath(source.hasPrefix("file:") ? String(source.dropFirst(5)) : source))
        }
        var queryConfiguration = FleetQuery.Configuration(baseURL: prometheus)
        queryConfiguration.timeout = .milliseconds(Int(timeout * 1000))
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        var configuration = JudgeService.Configuration(
            statePath: Environment.absolutePath(stateDir) + "/judge.json",
            actor: "variantd-judge@" + ProcessInfo.processInfo.hostName)
        configuration.interval = .milliseconds(Int(interval * 1000))
        configuration.maximumBackoff = .milliseconds(Int(maxBackoff * 1000))
        configuration.dryRun = dryRun
        let service = JudgeService(
            configuration: configuration, query: FleetQuery(configuration: queryConfiguration), source: documentSource,
            logger: logger)
        logger.log(.info, .judgeStarted,
            metadata: [.configSource: "\(documentSource.sourceDescription)", .prometheus: "\(prometheus)", .dryRun: "\(dryRun)"])

        if once {
            let round: JudgeService.Round
            do {
                round = try await service.round(at: Timestamp(secondsSinceEpoch: Date().timeIntervalSince1970))
            } catch {
                printError("variantd-judge: \(error.description)")
                throw ExitCode(1)
            }
            if let error = round.documentError { printError("variantd-judge: \(documentSource.sourceDescription): \(error)") }
            for (experiment, error) in round.failed.sorted(by: { $0.key < $1.key }) {
                printError("variantd-judge: \(experiment): \(error.code.rawValue): \(error.message)")
            }
            throw ExitCode(round.failed.isEmpty && round.documentError == nil ? 0 : 1)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as JudgeService.Fatal {
            printError("variantd-judge: \(error.description)")
            throw ExitCode(1)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

