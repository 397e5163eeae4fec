import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import VariantCore

/// Fetches the document from an `http:` or `https:` URL: a static JSON endpoint, or the AWS AppConfig Agent's
/// `http://localhost:2772/applications/APP/environments/ENV/configurations/PROFILE`.
///
/// Conditional: the `ETag` and `Last-Modified` of the last document come back as `If-None-Match` and
/// `If-Modified-Since`, so an unchanged document is one small request answered 304 and is not parsed again.
public struct HTTPConfigFetcher: ConfigFetcher {
    public let url: String
    private let client: HTTPClient
    private let requestTimeout: Duration
    private let maximumBytes: Int
    private let validators = SharedBox<(etag: String?, lastModified: String?)>((nil, nil))

    /// `client` is shared and shut down by its owner; its configuration sets TLS and redirects
    /// (`HTTPConfigFetcher.clientConfiguration`).
    public init(url: String, client: HTTPClient, requestTimeout: Duration, maximumBytes: Int) {
        self.url = url
        self.client = client
        self.requestTimeout = requestTimeout
        self.maximumBytes = maximumBytes
    }

    public var sourceDescription: String { url }
    public var usesCache: Bool { true }

    /// The configuration of the one client the daemon shares: a CA bundle for TLS (nil: the system's roots),
    /// at most 5 redirects and no cycles, connect and read timeouts at most the request timeout.
    public static func clientConfiguration(caBundle: String?, requestTimeout: Duration) -> HTTPClient.Configuration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caBundle { tls.trustRoots = .file(caBundle) }
        let timeout = TimeAmount(requestTimeout)
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .follow(max: 5, allowCycles: false),
            timeout: .init(connect: timeout, read: timeout)
        )
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        return configuration
    }

    public func fetch(force: Bool, logger: Logger) async throws(ConfigFetchError) -> ConfigFetchResult {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "variantd")
        let (etag, lastModified) = validators.current
        if let etag { request.headers.add(name: "If-None-Match", value: etag) }
        if let lastModified { request.headers.add(name: "If-Modified-Since", value: lastModified) }
        let (status, headers, body) = try await Self.execute(
            request,
            client: client,
            timeout: requestTimeout,
            maximumBytes: maximumBytes,
            logger: logger
        )
        switch status.code {
        case 304:
            return .unchanged(suggestedInterval: nil)
        case 200:
            let newETag = headers.first(name: "ETag")
            validators.exchange((newETag, headers.first(name: "Last-Modified")))
            // The AppConfig Agent names its version in `Configuration-Version` rather than an ETag.
            let sourceVersion = newETag ?? headers.first(name: "Configuration-Version")
            return .document(FetchedDocument(bytes: body, sourceVersion: sourceVersion))
        default:
            throw ConfigFetchError(.httpStatus, "GET \(url) answered \(status.code) \(status.reasonPhrase)")
        }
    }

    /// Runs one request to the end of its body within `timeout`, at most `maximumBytes` of body.
    ///
    /// - Throws: `ConfigFetchError`: `timeout`, `too_large`, `connection_failed`, `redirect_loop`, `tls_failed`.
    static func execute(
        _ request: HTTPClientRequest,
        client: HTTPClient,
        timeout: Duration,
        maximumBytes: Int,
        logger: Logger
    ) async throws(ConfigFetchError) -> (HTTPResponseStatus, HTTPHeaders, [UInt8]) {
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        do {
            let response = try await client.execute(request, deadline: deadline, logger: logger)
            // An error answer's body is read (a little of it) only to free the connection.
            let limit = response.status == .ok ? maximumBytes : 65536
            let buffer = try await response.body.collect(upTo: limit)
            return (response.status, response.headers, Array(buffer.readableBytesView))
        } catch {
            throw ConfigFetchError(error, url: request.url, maximumBytes: maximumBytes, timeout: timeout)
        }
    }
}

extension ConfigFetchError {
    /// Classifies what the HTTP client threw into a stable code.
    init(_ error: any Error, url: String, maximumBytes: Int, timeout: Duration) {
        if let error = error as? ConfigFetchError {
            self = error
            return
        }
        if error is NIOTooManyBytesError {
            self.init(.tooLarge, "\(url): the body is larger than the limit of \(maximumBytes) bytes")
            return
        }
        if let error = error as? HTTPClientError {
            switch error {
            case .readTimeout, .deadlineExceeded, .connectTimeout, .tlsHandshakeTimeout, .getConnectionFromPoolTimeout,
                .writeTimeout:
                self.init(.timeout, "\(url): no complete answer within \(timeout) (\(error.shortDescription))")
            case .redirectLimitReached, .redirectCycleDetected:
                self.init(.redirectLoop, "\(url): \(error.shortDescription)")
            default:
                self.init(.connectionFailed, "\(url): \(error.shortDescription)")
            }
            return
        }
        if error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError {
            self.init(.tlsFailed, "\(url): TLS failed: \(error)")
            return
        }
        if error is CancellationError {
            self.init(.timeout, "\(url): cancelled")
            return
        }
        self.init(.connectionFailed, "\(url): \(error)")
    }
}
