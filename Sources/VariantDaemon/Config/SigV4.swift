import Crypto
import VariantCore

/// AWS Signature Version 4 for one request, pure: the canonical request, the string to sign, the signing key
/// (HMAC-SHA256 chain over date, region, service) and the `Authorization` header, for a fixed time.
///
/// Signs what botocore's `SigV4Auth` signs (a test compares the two byte for byte): every header given plus
/// `host` and `x-amz-date` (and `x-amz-security-token` with session credentials), the SHA-256 of the body, and
/// the query sorted by encoded name and value, and the path encoded twice (every service but S3).
public struct SigV4Signer: Sendable {
    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    public var credentials: Credentials
    public var region: String
    public var service: String

    public init(credentials: Credentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The request as signed.
    public struct Request: Sendable {
        public var method: String
        /// `host` or `host:port`, as sent in the Host header.
        public var host: String
        /// The path, not yet percent-encoded (`/configuration`).
        public var path: String
        /// Query parameters, not yet encoded.
        public var query: [(name: String, value: String)]
        /// Headers besides `host` and the ones the signer adds.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(
            method: String,
            host: String,
            path: String,
            query: [(name: String, value: String)] = [],
            headers: [(name: String, value: String)] = [],
            body: [UInt8] = []
        ) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }

        /// The encoded query as it must appear in the URL for the signature to hold.
        public var encodedQuery: String {
            query.map { SigV4Signer.encode($0.name) + "=" + SigV4Signer.encode($0.value) }.joined(separator: "&")
        }
    }

    /// The headers to add to the request (`X-Amz-Date`, `X-Amz-Security-Token`, `Authorization`), in that order.
    public func sign(_ request: Request, at time: Timestamp) -> [(name: String, value: String)] {
        let stamp = Self.timestamp(time)
        let day = String(stamp.prefix(8))
        var added: [(name: String, value: String)] = [("X-Amz-Date", stamp)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        let canonical = canonicalRequest(request, adding: added)
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign =
            "AWS4-HMAC-SHA256\n\(stamp)\n\(scope)\n\(Self.hex(SHA256.hash(data: Array(canonical.text.utf8))))"
        let signature = Self.hex(
            HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey(day: day))
        )
        added.append(
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
            )
        )
        return added
    }

    /// The canonical request and its signed-header list.
    func canonicalRequest(
        _ request: Request,
        adding added: [(name: String, value: String)]
    ) -> (text: String, signedHeaders: String) {
        var headers: [String: [String]] = [:]
        for (name, value) in request.headers + added {
            let name = name.lowercased()
            if Self.unsignedHeaders.contains(name) { continue }
            headers[name, default: []].append(
                value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            )
        }
        if headers["host"] == nil { headers["host"] = [request.host] }
        let names = headers.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(headers[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let query = request.query.map { (Self.encode($0.name), Self.encode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        // The path as sent is encoded once; services other than S3 sign it encoded twice (as botocore does).
        let path = Self.encode(
            Self.encode(request.path.isEmpty ? "/" : request.path, keepingSlashes: true),
            keepingSlashes: true
        )
        let payload = Self.hex(SHA256.hash(data: request.body))
        let text = [request.method.uppercased(), path, query, canonicalHeaders, signedHeaders, payload]
            .joined(separator: "\n")
        return (text, signedHeaders)
    }

    func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)))
        }
        let secret = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        return hmac(hmac(hmac(hmac(secret, day), region), service), "aws4_request")
    }

    /// Hop-by-hop and client-chosen headers that botocore leaves out of the signature.
    static let unsignedHeaders: Set<String> = [
        "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id", "authorization",
    ]

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    static func timestamp(_ time: Timestamp) -> String {
        // RFC 3339 is `YYYY-MM-DDTHH:MM:SS[.fff]Z`: keep the digits of the whole seconds.
        let text = Timestamp(secondsSinceEpoch: time.secondsSinceEpoch.rounded(.down)).rfc3339
        let digits = text.prefix(19).filter { $0 != "-" && $0 != ":" }
        return digits + "Z"
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` in a path).
    static func encode(_ text: String, keepingSlashes: Bool = false) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepingSlashes:
                result.append("/")
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (byte < 16 ? "0" : "") + hex
            }
        }
        return result
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
