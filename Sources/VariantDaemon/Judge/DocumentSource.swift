import AsyncHTTPClient
import Glibc
import NIOCore
import NIOHTTP1
import VariantCore

/// Where `variantd-judge` reads the configuration document the fleet follows, and publishes its edits
/// (docs/fleet.md, "The judge").
public protocol DocumentSource: Sendable {
    /// The source as a person reads it (`file:/etc/variantd/config.json`).
    var sourceDescription: String { get }
    /// The document in use now.
    func read() async throws(PublishError) -> [UInt8]
    /// Publishes `edit` of the current document; when the document changes underneath (another writer), the edit
    /// is applied again to the new one, so a concurrent change is never overwritten. Returns the source's name for
    /// the version published.
    func publish(_ edit: @Sendable ([UInt8]) throws(TreatmentDisable.Failure) -> [UInt8]) async throws(PublishError)
        -> String
}

/// Why the judge could not read or publish: a stable code and what to do.
public struct PublishError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The source cannot be written (plain HTTP): the decision is reported, not published.
        case notWritable = "source_not_writable"
        case readFailed = "source_read_failed"
        case writeFailed = "source_write_failed"
        /// The document (or the edited one) does not validate: nothing is published.
        case invalidConfig = "invalid_config"
        /// The edit itself is impossible (the experiment or variant is gone, or it is the control).
        case editRefused = "edit_refused"
        /// Another writer kept changing the document; retried on the next round.
        case conflict = "source_conflict"
        /// AWS AppConfig answered an error (its type in the message).
        case appConfigError = "appconfig_error"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    init(_ failure: TreatmentDisable.Failure) {
        switch failure.code {
        case .invalidConfig:
            let problems = failure.issues.prefix(5).map { "\($0.path): \($0.code.rawValue): \($0.message)" }
            self.init(.invalidConfig, failure.message + (problems.isEmpty ? "" : ": " + problems.joined(separator: "; ")))
        default:
            self.init(.editRefused, failure.description)
        }
    }
}

/// A document in a file: read it, edit it, and replace it atomically (the daemons following the file see the
/// whole new document or the old one). Compare and swap: the file is read again just before the rename, and an
/// edit made in between by someone else is kept (the edit is applied to it).
public struct FileDocumentSource: DocumentSource {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    public var sourceDescription: String { "file:" + path }

    public func read() async throws(PublishError) -> [UInt8] {
        do {
            return try FileIdentity.read(path: path, maximumBytes: 16 << 20)
        } catch {
            throw PublishError(.readFailed, "cannot read \(path): \(error)")
        }
    }

    public func publish(_ edit: @Sendable ([UInt8]) throws(TreatmentDisable.Failure) -> [UInt8]) async throws(PublishError)
        -> String
    {
        for _ in 0..<5 {
            let before = try await read()
            let after: [UInt8]
            do { after = try edit(before) } catch { throw PublishError(error) }
            // Someone else's write between our read and now would be lost by the rename: start again on theirs.
            guard try await read() == before else { continue }
            var status = stat()
            let mode = stat(path, &status) == 0 ? status.st_mode & 0o777 : 0o644
            do {
                try AtomicFile.write(after, to: path, mode: mode)
            } catch {
                throw PublishError(.writeFailed, "cannot write \(path): \(error.description)")
            }
            return LoadedConfig.version(of: after)
        }
        throw PublishError(.conflict, "\(path) kept changing while the judge edited it; trying again on the next round")
    }
}

/// A source the judge can read but not write (a plain HTTP(S) endpoint): decisions are reported, not published.
public struct ReadOnlyDocumentSource: DocumentSource {
    public let url: String
    let client: HTTPClient

    public init(url: String, client: HTTPClient = .shared) {
        self.url = url
        self.client = client
    }

    public var sourceDescription: String { url }

    public func read() async throws(PublishError) -> [UInt8] {
        do {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 16 << 20)
            guard response.status == .ok else {
                throw PublishError(.readFailed, "GET \(url) answered \(response.status.code)")
            }
            return Array(body.readableBytesView)
        } catch let error as PublishError {
            throw error
        } catch {
            throw PublishError(.readFailed, "GET \(url): \(error)")
        }
    }

    public func publish(_ edit: @Sendable ([UInt8]) throws(TreatmentDisable.Failure) -> [UInt8]) async throws(PublishError)
        -> String
    {
        throw PublishError(
            .notWritable,
            "\(url) is a plain HTTP source, which the judge cannot write: publish the decision through whatever serves that URL, or point the fleet at a file or AppConfig source")
    }
}
