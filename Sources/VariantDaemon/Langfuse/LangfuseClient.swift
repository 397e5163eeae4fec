import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import VariantCore

/// Fetches one prompt version from Langfuse's public API: `GET {base}/api/public/v2/prompts/{name}?version=N` or
/// `?label=L`, with HTTP basic auth (public key : secret key), within the request timeout and a body limit.
public struct LangfuseClient: Sendable {
    public struct Credentials: Sendable, Equatable {
        public var publicKey: String
        public var secretKey: String

        public init(publicKey: String, secretKey: String) {
            self.publicKey = publicKey
            self.secretKey = secretKey
        }
    }

    /// The API's base URL without a trailing slash (`https://cloud.langfuse.com`).
    public let baseURL: String
    public let credentials: Credentials?
    private let client: HTTPClient?
    private let requestTimeout: Duration
    private let maximumBytes: Int

    /// `client` is shared and shut down by its owner; nil when there are no credentials (nothing can be fetched).
    public init(
        baseURL: String, credentials: Credentials?, client: HTTPClient?, requestTimeout: Duration, maximumBytes: Int
    ) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.credentials = credentials
        self.client = client
        self.requestTimeout = requestTimeout
        self.maximumBytes = maximumBytes
    }

    /// The request URL for a reference; the name and label are percent-encoded (a Langfuse name may hold `/`).
    public func url(for reference: LangfuseReference) -> String {
        let query: String
        switch reference.selector {
        case .version(let number): query = "version=\(number)"
        case .label(let label): query = "label=" + Self.percentEncoded(label)
        }
        return baseURL + "/api/public/v2/prompts/" + Self.percentEncoded(reference.name) + "?" + query
    }

    /// Fetches and reads the prompt version a reference names.
    ///
    /// - Throws: `PromptSourceError`: `langfuse_auth` (401, 403, or no keys), `langfuse_not_found` (404),
    ///   `langfuse_status` (another status), `langfuse_timeout`, `langfuse_unreachable`, `langfuse_invalid` (not
    ///   the API's shape, another version, too large), `langfuse_unsupported`.
    public func fetch(_ reference: LangfuseReference, logger: Logger) async throws(PromptSourceError) -> LangfusePrompt {
        guard let credentials, let client else {
            throw PromptSourceError(
                .langfuseAuth,
                "\(reference): no Langfuse keys are configured (LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, or --langfuse-credentials)"
            )
        }
        let url = url(for: reference)
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "variantd")
        request.headers.add(
            name: "Authorization",
            value: HTTPClient.Authorization.basic(username: credentials.publicKey, password: credentials.secretKey)
                .headerValue)
        let status: HTTPResponseStatus
        let body: [UInt8]
        do {
            let response = try await HTTPConfigFetcher.execute(
                request, client: client, timeout: requestTimeout, maximumBytes: maximumBytes, logger: logger)
            status = response.0
            body = response.2
        } catch {
            switch error.code {
            case .timeout: throw PromptSourceError(.langfuseTimeout, "\(reference): \(error.message)")
            case .tooLarge: throw PromptSourceError(.langfuseInvalid, "\(reference): \(error.message)")
            default: throw PromptSourceError(.langfuseUnreachable, "\(reference): \(error.message)")
            }
        }
        logger.log(.debug, .langfuseFetched,
            metadata: [.langfuseURL: "\(url)", .httpStatus: "\(status.code)", .bytes: "\(body.count)"])
        switch status.code {
        case 200:
            break
        case 401, 403:
            throw PromptSourceError(
                .langfuseAuth, "\(reference): Langfuse refused the keys (\(status.code)); check the public and secret key")
        case 404:
            throw PromptSourceError(.langfuseNotFound, "\(reference): Langfuse has no such prompt (404)")
        default:
            throw PromptSourceError(.langfuseStatus, "\(reference): GET \(url) answered \(status.code) \(status.reasonPhrase)")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(body, maximumDepth: 64)
        } catch {
            throw PromptSourceError(.langfuseInvalid, "\(reference): the answer is not JSON (\(error))")
        }
        return try LangfusePrompt(json, for: reference)
    }

    /// Percent-encodes everything but RFC 3986's unreserved characters.
    static func percentEncoded(_ text: String) -> String {
        var encoded = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                encoded += "%" + (byte < 16 ? "0" : "") + hex
            }
        }
        return encoded
    }
}
