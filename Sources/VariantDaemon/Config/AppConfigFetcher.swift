import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import VariantCore

/// Fetches the document from the AWS AppConfig Data API, as the AppConfig Agent does: `StartConfigurationSession`
/// once, then `GetLatestConfiguration` with the token each answer hands out for the next poll, honouring the
/// answer's `Next-Poll-Interval-In-Seconds`. An empty body means "unchanged". Requests are signed with SigV4
/// (service `appconfig`) with credentials from `AWSCredentialResolver`.
///
/// Source URL: `appconfig://APPLICATION/ENVIRONMENT/PROFILE?region=REGION[&endpoint=URL]` (identifiers or
/// names; the region defaults to `AWS_REGION`, then `AWS_DEFAULT_REGION`; the endpoint to
/// `https://appconfigdata.REGION.amazonaws.com`, and is overridden for tests or a VPC endpoint).
public struct AppConfigFetcher: ConfigFetcher {
    public struct Location: Sendable, Equatable {
        public var application: String
        public var environment: String
        public var profile: String
        public var region: String
        /// `https://appconfigdata.REGION.amazonaws.com` unless overridden; no trailing slash.
        public var endpoint: String

        public struct ParseError: Error, CustomStringConvertible {
            public var description: String
        }

        /// - Throws: `ParseError` saying what is wrong with the URL.
        public static func parse(_ url: String, environment: [String: String]) throws(ParseError) -> Location {
            let form = "appconfig://APPLICATION/ENVIRONMENT/PROFILE?region=REGION"
            guard url.hasPrefix("appconfig://") else { throw ParseError(description: "expected \(form), not '\(url)'") }
            let rest = url.dropFirst("appconfig://".count)
            let pathPart = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let names = pathPart[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard names.count == 3, names.allSatisfy({ !$0.isEmpty }) else {
                throw ParseError(description: "expected \(form) (three names), not '\(url)'")
            }
            var parameters: [String: String] = [:]
            if pathPart.count == 2 {
                for pair in pathPart[1].split(separator: "&") {
                    let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2, ["region", "endpoint"].contains(parts[0]) else {
                        throw ParseError(
                            description: "unknown parameter '\(pair)' in '\(url)': only region and endpoint"
                        )
                    }
                    parameters[String(parts[0])] = String(parts[1])
                }
            }
            guard
                let region = parameters["region"] ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"],
                !region.isEmpty
            else {
                throw ParseError(description: "no region: add ?region=REGION to '\(url)' or set AWS_REGION")
            }
            var endpoint = parameters["endpoint"] ?? "https://appconfigdata.\(region).amazonaws.com"
            while endpoint.hasSuffix("/") { endpoint.removeLast() }
            guard endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://") else {
                throw ParseError(description: "endpoint must be an http or https URL, not '\(endpoint)'")
            }
            return Location(
                application: names[0],
                environment: names[1],
                profile: names[2],
                region: region,
                endpoint: endpoint
            )
        }

        /// The Host header for the endpoint: `host` or `host:port`.
        var host: String {
            let afterScheme = endpoint.split(separator: "://", maxSplits: 1).last.map(String.init) ?? endpoint
            return String(afterScheme.split(separator: "/", maxSplits: 1).first ?? "")
        }
    }

    public let location: Location
    public let sourceDescription: String
    private let client: HTTPClient
    private let credentials: AWSCredentialResolver
    private let requestTimeout: Duration
    private let maximumBytes: Int
    private let requiredMinimumPollInterval: Duration
    private let now: @Sendable () -> Timestamp
    /// The token for the next `GetLatestConfiguration`; nil before a session and after any failure, so that the
    /// next poll starts a new session (a token is single-use, and may have been spent by a failed request).
    private let nextToken = SharedBox<String?>(nil)

    public init(
        url: String,
        location: Location,
        client: HTTPClient,
        credentials: AWSCredentialResolver,
        requestTimeout: Duration,
        maximumBytes: Int,
        pollInterval: Duration,
        now: @escaping @Sendable () -> Timestamp = SystemClock.now
    ) {
        self.sourceDescription = url
        self.location = location
        self.client = client
        self.credentials = credentials
        self.requestTimeout = requestTimeout
        self.maximumBytes = maximumBytes
        self.requiredMinimumPollInterval = pollInterval
        self.now = now
    }

    public var usesCache: Bool { true }

    public func fetch(force: Bool, logger: Logger) async throws(ConfigFetchError) -> ConfigFetchResult {
        do throws(ConfigFetchError) {
            let token: String
            if let current = nextToken.exchange(nil) {
                token = current
            } else {
                token = try await startSession(logger: logger)
            }
            let request = SigV4Signer.Request(
                method: "GET",
                host: location.host,
                path: "/configuration",
                query: [("configuration_token", token)]
            )
            let (status, headers, body) = try await send(request, logger: logger)
            guard status == .ok else { throw apiError("GetLatestConfiguration", status, headers, body) }
            guard let next = headers.first(name: "Next-Poll-Configuration-Token"), !next.isEmpty else {
                throw ConfigFetchError(
                    .invalidResponse,
                    "GetLatestConfiguration answered without Next-Poll-Configuration-Token"
                )
            }
            nextToken.exchange(next)
            let interval = headers.first(name: "Next-Poll-Interval-In-Seconds").flatMap(Int.init).map {
                Duration.seconds($0)
            }
            if body.isEmpty { return .unchanged(suggestedInterval: interval) }
            return .document(
                FetchedDocument(
                    bytes: body,
                    sourceVersion: headers.first(name: "Version-Label"),
                    suggestedInterval: interval
                )
            )
        } catch {
            nextToken.exchange(nil)
            throw error
        }
    }

    /// - Returns: the initial configuration token.
    private func startSession(logger: Logger) async throws(ConfigFetchError) -> String {
        let seconds = min(max(Int(requiredMinimumPollInterval.components.seconds), 15), 86400)
        var writer = JSONWriter()
        writer.raw("{\"ApplicationIdentifier\":")
        writer.string(location.application)
        writer.raw(",\"ConfigurationProfileIdentifier\":")
        writer.string(location.profile)
        writer.raw(",\"EnvironmentIdentifier\":")
        writer.string(location.environment)
        writer.raw(",\"RequiredMinimumPollIntervalInSeconds\":")
        writer.integer(seconds)
        writer.raw("}")
        let request = SigV4Signer.Request(
            method: "POST",
            host: location.host,
            path: "/configurationsessions",
            headers: [("Content-Type", "application/json")],
            body: writer.bytes
        )
        let (status, headers, body) = try await send(request, logger: logger)
        guard status == .created || status == .ok else {
            throw apiError("StartConfigurationSession", status, headers, body)
        }
        guard let answer = (try? JSONParser.parse(body))?.objectValue,
            let token = answer["InitialConfigurationToken"]?.stringValue, !token.isEmpty
        else {
            throw ConfigFetchError(
                .invalidResponse,
                "StartConfigurationSession answered without InitialConfigurationToken"
            )
        }
        logger.log(.debug, .configAppConfigSessionStarted, metadata: [.configSource: "\(sourceDescription)"])
        return token
    }

    private func send(
        _ signed: SigV4Signer.Request,
        logger: Logger
    ) async throws(ConfigFetchError) -> (
        HTTPResponseStatus, HTTPHeaders, [UInt8]
    ) {
        let signer = SigV4Signer(credentials: try credentials.resolve(), region: location.region, service: "appconfig")
        let request = Self.request(signed, endpoint: location.endpoint, signer: signer, at: now(), userAgent: "variantd")
        return try await HTTPConfigFetcher.execute(
            request,
            client: client,
            timeout: requestTimeout,
            maximumBytes: maximumBytes,
            logger: logger
        )
    }

    /// The HTTP request for a request to sign: URL from the endpoint, path and encoded query, its headers, and the
    /// signature's headers (shared with the judge's `AppConfigDocumentSource`).
    static func request(
        _ signed: SigV4Signer.Request, endpoint: String, signer: SigV4Signer, at time: Timestamp, userAgent: String
    ) -> HTTPClientRequest {
        let query = signed.encodedQuery
        var request = HTTPClientRequest(
            url: endpoint + SigV4Signer.encode(signed.path, keepingSlashes: true) + (query.isEmpty ? "" : "?" + query))
        request.method = HTTPMethod(rawValue: signed.method)
        request.headers.add(name: "Host", value: signed.host)
        for (name, value) in signed.headers { request.headers.add(name: name, value: value) }
        for (name, value) in signer.sign(signed, at: time) { request.headers.add(name: name, value: value) }
        request.headers.add(name: "User-Agent", value: userAgent)
        if !signed.body.isEmpty { request.body = .bytes(ByteBuffer(bytes: signed.body)) }
        return request
    }

    private func apiError(
        _ operation: String,
        _ status: HTTPResponseStatus,
        _ headers: HTTPHeaders,
        _ body: [UInt8]
    )
        -> ConfigFetchError
    {
        let type = headers.first(name: "x-amzn-ErrorType").map { " " + $0 } ?? ""
        let message = (try? JSONParser.parse(body))?.objectValue.flatMap {
            $0["Message"]?.stringValue ?? $0["message"]?.stringValue
        }
        return ConfigFetchError(
            .httpStatus,
            "\(operation) answered \(status.code)\(type)\(message.map { ": " + $0 } ?? "")"
        )
    }
}
