import AsyncHTTPClient
import Glibc
import Logging

/// The daemon's config-source settings, from flags and environment (`variantd --help`, docs/configuration.md),
/// and what they build: one `ConfigPoller` over the fetcher the source URL names, and the shared `HTTPClient`
/// for network sources (its owner shuts it down on exit).
///
/// | key | type | default |
/// |---|---|---|
/// | `source` | a path, `file:PATH`, `http(s)://...`, `appconfig://APP/ENV/PROFILE?region=R[&endpoint=URL]` | `--config` |
/// | `cacheDirectory` | path | `/var/cache/variantd` |
/// | `pollInterval` | seconds | 30 (network sources; a file uses `fileCheckInterval`, 1) |
/// | `jitter` | 0–1 | 0.1 |
/// | `maximumBackoff` | seconds | 300 |
/// | `requestTimeout` | seconds | 10 |
/// | `maximumBytes` | bytes | 16 MiB |
/// | `caBundle` | PEM file | the system's roots |
/// | `langfuse` | `LangfuseSettings` | its own defaults |
public struct ConfigSourceOptions: Sendable {
    public var source: String
    public var cacheDirectory: String = "/var/cache/variantd"
    public var pollInterval: Duration = .seconds(30)
    public var fileCheckInterval: Duration = .seconds(1)
    public var jitter: Double = 0.1
    public var maximumBackoff: Duration = .seconds(300)
    public var requestTimeout: Duration = .seconds(10)
    public var maximumBytes: Int = 16 << 20
    public var caBundle: String?
    public var environment: [String: String] = [:]
    /// Where Langfuse prompts come from (`LangfuseSettings`).
    public var langfuse = LangfuseSettings()

    public init(source: String) {
        self.source = source
    }

    public enum Kind: Sendable, Equatable {
        case file(path: String)
        case http(url: String)
        case appConfig(url: String, location: AppConfigFetcher.Location)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// What the source URL names. A plain path or `file:` is a local file.
    ///
    /// - Throws: `Invalid` with a message for the operator.
    public func kind() throws(Invalid) -> Kind {
        if source.hasPrefix("http://") || source.hasPrefix("https://") {
            return .http(url: source)
        }
        if source.hasPrefix("appconfig:") {
            do {
                return .appConfig(
                    url: source,
                    location: try AppConfigFetcher.Location.parse(source, environment: environment)
                )
            } catch {
                throw Invalid(description: "--config: \(error)")
            }
        }
        var path = source
        if path.hasPrefix("file://") {
            path.removeFirst("file://".count)
        } else if path.hasPrefix("file:") {
            path.removeFirst("file:".count)
        }
        if let colon = path.firstIndex(of: ":"), !path.hasPrefix("/"), !path[..<colon].contains("/") {
            throw Invalid(
                description:
                    "--config: unknown scheme '\(path[..<colon])': use a path, file:, http:, https: or appconfig:"
            )
        }
        guard !path.isEmpty else { throw Invalid(description: "--config: an empty path") }
        return .file(path: path)
    }

    /// Where documents come from, as the `config` op shows it (`file:/etc/variantd/config.json`, the URL).
    ///
    /// - Throws: `Invalid`, as `kind()`.
    public var sourceDescription: String {
        get throws(Invalid) {
            switch try kind() {
            case .file(let path): "file:" + path
            case .http(let url), .appConfig(let url, _): url
            }
        }
    }

    /// Checks every setting, so that a mistake stops the daemon at start with a clear message.
    ///
    /// - Throws: `Invalid`.
    public func validate() throws(Invalid) {
        _ = try kind()
        guard pollInterval > .zero else { throw Invalid(description: "--poll-interval must be positive") }
        guard (0...1).contains(jitter) else { throw Invalid(description: "--poll-jitter must be between 0 and 1") }
        guard maximumBackoff > .zero else { throw Invalid(description: "--max-backoff must be positive") }
        guard requestTimeout > .zero else { throw Invalid(description: "--request-timeout must be positive") }
        guard maximumBytes >= 1024 else { throw Invalid(description: "--max-config-bytes must be at least 1024") }
        guard !cacheDirectory.isEmpty else { throw Invalid(description: "--cache-dir must not be empty") }
        if let caBundle, access(caBundle, R_OK) != 0 {
            throw Invalid(description: "--ca-bundle: cannot read \(caBundle): \(String(cString: strerror(errno)))")
        }
        try langfuse.validate(environment: environment)
    }

    /// Builds the poller (and, for a network source, the one HTTP client it uses, which `shutdown` closes: call
    /// it once the service group has stopped).
    public func makePoller(
        store: ServingStateStore,
        logger: Logger,
        hooks: ConfigSourceHooks = .init()
    ) throws(Invalid)
        -> (poller: ConfigPoller, shutdown: @Sendable () async -> Void)
    {
        var configuration = ConfigPoller.Configuration()
        configuration.jitter = jitter
        configuration.maximumBytes = maximumBytes
        configuration.cacheDirectory = cacheDirectory
        configuration.interval = pollInterval
        configuration.maximumBackoff = maximumBackoff
        let fetcher: any ConfigFetcher
        var client: HTTPClient?
        switch try kind() {
        case .file(let path):
            // A local file needs no backoff: it is checked every interval, failing or not.
            configuration.interval = fileCheckInterval
            configuration.maximumBackoff = fileCheckInterval
            configuration.jitter = 0
            fetcher = FileConfigFetcher(path: path, maximumBytes: maximumBytes, readTimeout: requestTimeout)
        case .http(let url):
            let shared = makeClient()
            client = shared
            fetcher = HTTPConfigFetcher(
                url: url,
                client: shared,
                requestTimeout: requestTimeout,
                maximumBytes: maximumBytes
            )
        case .appConfig(let url, let location):
            let shared = makeClient()
            client = shared
            fetcher = AppConfigFetcher(
                url: url,
                location: location,
                client: shared,
                credentials: AWSCredentialResolver(environment: environment),
                requestTimeout: requestTimeout,
                maximumBytes: maximumBytes,
                pollInterval: pollInterval
            )
        }
        // Langfuse prompts: fetched with the same client (one is made if the source is a file and keys are set);
        // without keys, only the disk copies and the fallback file can resolve them.
        let (baseURL, credentials) = try langfuse.resolved(environment: environment)
        if credentials != nil, client == nil { client = makeClient() }
        var resolverConfiguration = LangfusePromptResolver.Configuration()
        resolverConfiguration.labelTTL = langfuse.labelTTL
        resolverConfiguration.cacheDirectory = cacheDirectory
        resolverConfiguration.fallbackPath = langfuse.fallbackPath
        resolverConfiguration.maximumBytes = maximumBytes
        let resolver = LangfusePromptResolver(
            configuration: resolverConfiguration,
            client: LangfuseClient(
                baseURL: baseURL, credentials: credentials, client: credentials == nil ? nil : client,
                requestTimeout: requestTimeout, maximumBytes: maximumBytes),
            logger: logger)
        let poller = ConfigPoller(
            configuration: configuration,
            fetcher: fetcher,
            store: store,
            logger: logger,
            hooks: hooks,
            promptResolver: resolver
        )
        return (poller, { [client] in try? await client?.shutdown() })
    }

    private func makeClient() -> HTTPClient {
        HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: HTTPConfigFetcher.clientConfiguration(caBundle: caBundle, requestTimeout: requestTimeout)
        )
    }
}
