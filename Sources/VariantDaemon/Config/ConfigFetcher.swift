import Logging
import VariantCore

/// One way of getting the configuration document's bytes: a file, an HTTP endpoint, the AppConfig Data API.
///
/// A fetcher only transports; the `ConfigPoller` validates, applies, caches and schedules. A fetcher keeps what
/// it needs between polls (an ETag, an AppConfig session token) so that an unchanged document costs little.
public protocol ConfigFetcher: Sendable {
    /// Where the document comes from, as shown by the `config` op (`file:/etc/variantd/config.json`).
    var sourceDescription: String { get }
    /// Whether applied documents are kept on disk as the last-known-good copy (not for a local file).
    var usesCache: Bool { get }
    /// Fetches the document, or reports that it has not changed since the last fetch. `force` asks for the
    /// document even when it looks unchanged, where the fetcher can tell without asking the source (a file).
    ///
    /// - Throws: `ConfigFetchError` with a code of `ConfigLoadFailure.Code`.
    func fetch(force: Bool, logger: Logger) async throws(ConfigFetchError) -> ConfigFetchResult
}

/// What a poll brought back.
public enum ConfigFetchResult: Sendable {
    /// The source says the document has not changed (HTTP 304, an empty AppConfig body, the same file).
    case unchanged(suggestedInterval: Duration?)
    case document(FetchedDocument)
}

/// A document's bytes as the source served them, with the source's own metadata.
public struct FetchedDocument: Sendable {
    public var bytes: [UInt8]
    /// The ETag or AppConfig `Version-Label`, if any.
    public var sourceVersion: String?
    /// The source's minimum poll interval, if it sets one.
    public var suggestedInterval: Duration?

    public init(bytes: [UInt8], sourceVersion: String? = nil, suggestedInterval: Duration? = nil) {
        self.bytes = bytes
        self.sourceVersion = sourceVersion
        self.suggestedInterval = suggestedInterval
    }
}

/// Why a fetch failed, with a stable code.
public struct ConfigFetchError: Error, Sendable, CustomStringConvertible {
    public var code: ConfigLoadFailure.Code
    public var message: String

    public init(_ code: ConfigLoadFailure.Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The local file source: reads the file when its identity (inode, size, modification time) changes.
///
/// Only a regular file is read (a FIFO or a device at the path is `read_failed` at once, never a hang), and each
/// read runs on a thread of its own for at most `readTimeout`, so a read stuck in the kernel never holds up the
/// poller or shutdown.
public struct FileConfigFetcher: ConfigFetcher {
    public let path: String
    public let maximumBytes: Int
    /// How long one read of the file may take (the daemon's `--request-timeout`).
    public let readTimeout: Duration
    private let reads = DeadlineRead()
    /// The file's identity when last read, and whether that read failed (or nothing was read yet): then it is read
    /// again whatever its identity, so a missing file is reported until it appears.
    private let lastSeen = SharedBox<(identity: FileIdentity?, mustRead: Bool)>((nil, true))

    public init(path: String, maximumBytes: Int = 16 << 20, readTimeout: Duration = .seconds(10)) {
        self.path = path
        self.maximumBytes = maximumBytes
        self.readTimeout = readTimeout
    }

    public var sourceDescription: String { "file:" + path }
    public var usesCache: Bool { false }

    public func fetch(force: Bool, logger: Logger) async throws(ConfigFetchError) -> ConfigFetchResult {
        let identity = FileIdentity(path: path)
        let previous = lastSeen.exchange((identity, false))
        guard force || previous.mustRead || previous.identity != identity else {
            return .unchanged(suggestedInterval: nil)
        }
        let (path, maximumBytes) = (self.path, self.maximumBytes)
        do {
            let bytes = try await reads.run(deadline: readTimeout) {
                try FileIdentity.read(path: path, maximumBytes: maximumBytes)
            }
            return .document(FetchedDocument(bytes: bytes))
        } catch DeadlineRead.Failure.timedOut(let deadline) {
            lastSeen.exchange((identity, true))
            throw ConfigFetchError(
                .readFailed,
                "\(path): the read did not finish within \(deadline) (a hung network file system?); abandoned, the config in use stays")
        } catch DeadlineRead.Failure.earlierReadStuck(let duration) {
            lastSeen.exchange((identity, true))
            throw ConfigFetchError(
                .readFailed, "\(path): an earlier read has not returned for \(duration); not reading again until it does")
        } catch {
            lastSeen.exchange((identity, true))
            throw ConfigFetchError(.readFailed, "\(path): \(error)")
        }
    }
}
