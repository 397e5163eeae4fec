import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import VariantCore

/// A document kept as an AWS AppConfig hosted configuration: the judge reads the latest hosted version and
/// publishes an edit as a new version, then deploys it (docs/fleet.md, "Publishing through AppConfig").
///
/// `CreateHostedConfigurationVersion` is sent with `Latest-Version-Number`, so a version someone else created in
/// between is never overwritten: AppConfig answers 409, and the edit is applied again to the new latest version.
/// `StartDeployment` then deploys it with the configured strategy; use one with no bake time (below), so that an
/// alarm on an unrelated metric cannot roll the disable back. Requests are signed with SigV4 (service `appconfig`)
/// like the poller's, with the same credentials.
///
/// Source URL: `appconfig://APPLICATION_ID/ENVIRONMENT_ID/PROFILE_ID?region=R[&endpoint=URL]` (the control-plane
/// API takes identifiers, not names; the endpoint defaults to `https://appconfig.R.amazonaws.com`).
public struct AppConfigDocumentSource: DocumentSource {
    public let location: AppConfigFetcher.Location
    public let deploymentStrategy: String
    public let sourceDescription: String
    private let client: HTTPClient
    private let credentials: AWSCredentialResolver
    private let timeout: Duration
    private let now: @Sendable () -> Timestamp

    /// - Throws: `PublishError` `source_read_failed` for a URL that is not an AppConfig location.
    public init(
        url: String, deploymentStrategy: String, environment: [String: String], client: HTTPClient = .shared,
        timeout: Duration = .seconds(10), now: @escaping @Sendable () -> Timestamp = SystemClock.now
    ) throws(PublishError) {
        do {
            var location = try AppConfigFetcher.Location.parse(url, environment: environment)
            if !url.contains("endpoint=") { location.endpoint = "https://appconfig.\(location.region).amazonaws.com" }
            self.location = location
        } catch {
            throw PublishError(.readFailed, error.description)
        }
        self.sourceDescription = url
        self.deploymentStrategy = deploymentStrategy
        self.client = client
        self.credentials = AWSCredentialResolver(environment: environment)
        self.timeout = timeout
        self.now = now
    }

    private var versionsPath: String {
        "/applications/\(location.application)/configurationprofiles/\(location.profile)/hostedconfigurationversions"
    }

    public func read() async throws(PublishError) -> [UInt8] {
        try await latest().content
    }

    /// The latest hosted version's number and content (`ListHostedConfigurationVersions`, then
    /// `GetHostedConfigurationVersion`).
    func latest() async throws(PublishError) -> (version: Int, content: [UInt8]) {
        let (status, _, body) = try await send(
            SigV4Signer.Request(method: "GET", host: location.host, path: versionsPath, query: [("max_results", "1")]))
        guard status == .ok else { throw apiError("ListHostedConfigurationVersions", status, body) }
        guard let items = (try? JSONParser.parse(body))?.objectValue?["Items"]?.arrayValue,
            let version = items.first?.objectValue?["VersionNumber"]?.integerValue
        else {
            throw PublishError(.readFailed, "ListHostedConfigurationVersions answered no version of profile \(location.profile)")
        }
        let (getStatus, _, content) = try await send(
            SigV4Signer.Request(method: "GET", host: location.host, path: versionsPath + "/\(version)"))
        guard getStatus == .ok else { throw apiError("GetHostedConfigurationVersion", getStatus, content) }
        return (version, content)
    }

    public func publish(_ edit: @Sendable ([UInt8]) throws(TreatmentDisable.Failure) -> [UInt8]) async throws(PublishError)
        -> String
    {
        for _ in 0..<5 {
            let (latest, content) = try await latest()
            let edited: [UInt8]
            do { edited = try edit(content) } catch { throw PublishError(error) }
            var version = latest
            if edited != content {
                let (status, headers, body) = try await send(
                    SigV4Signer.Request(
                        method: "POST", host: location.host, path: versionsPath,
                        headers: [
                            ("Content-Type", "application/json"), ("Latest-Version-Number", String(latest)),
                            ("Description", "variantd-judge: treatment disabled on fleet evidence"),
                        ], body: edited))
                // 409: a version was created since `latest`; apply the edit to it instead of overwriting it.
                if status == .conflict { continue }
                guard status == .created || status == .ok else {
                    throw apiError("CreateHostedConfigurationVersion", status, body)
                }
                guard let created = headers.first(name: "Version-Number").flatMap(Int.init) else {
                    throw PublishError(.appConfigError, "CreateHostedConfigurationVersion answered no Version-Number")
                }
                version = created
            }
            try await deploy(version: version)
            return "\(location.profile) version \(version)"
        }
        throw PublishError(.conflict, "AppConfig profile \(location.profile) kept getting new versions while the judge edited it; trying again next round")
    }

    /// `StartDeployment` of a hosted version to the environment with the configured strategy.
    private func deploy(version: Int) async throws(PublishError) {
        var writer = JSONWriter()
        writer.raw("{\"ConfigurationProfileId\":")
        writer.string(location.profile)
        writer.raw(",\"ConfigurationVersion\":")
        writer.string(String(version))
        writer.raw(",\"DeploymentStrategyId\":")
        writer.string(deploymentStrategy)
        writer.raw(",\"Description\":\"variantd-judge: treatment disabled on fleet evidence\"}")
        let (status, _, body) = try await send(
            SigV4Signer.Request(
                method: "POST", host: location.host,
                path: "/applications/\(location.application)/environments/\(location.environment)/deployments",
                headers: [("Content-Type", "application/json")], body: writer.bytes))
        guard status == .created || status == .ok else { throw apiError("StartDeployment", status, body) }
    }

    private func send(_ signed: SigV4Signer.Request) async throws(PublishError) -> (HTTPResponseStatus, HTTPHeaders, [UInt8]) {
        let resolved: SigV4Signer.Credentials
        do { resolved = try credentials.resolve() } catch { throw PublishError(.appConfigError, error.description) }
        let signer = SigV4Signer(credentials: resolved, region: location.region, service: "appconfig")
        let request = AppConfigFetcher.request(
            signed, endpoint: location.endpoint, signer: signer, at: now(), userAgent: "variantd-judge")
        do {
            return try await HTTPConfigFetcher.execute(
                request, client: client, timeout: timeout, maximumBytes: 16 << 20, logger: Logger(label: "variantd-judge"))
        } catch {
            throw PublishError(.appConfigError, "\(signed.method) \(signed.path): \(error.description)")
        }
    }

    private func apiError(_ operation: String, _ status: HTTPResponseStatus, _ body: [UInt8]) -> PublishError {
        let message = (try? JSONParser.parse(body))?.objectValue.flatMap {
            $0["Message"]?.stringValue ?? $0["message"]?.stringValue
        }
        return PublishError(.appConfigError, "\(operation) answered \(status.code)\(message.map { ": " + $0 } ?? "")")
    }
}
