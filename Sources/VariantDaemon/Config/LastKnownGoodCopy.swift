import Logging
import VariantCore

/// The poller's cache stage: keeps each applied document on disk (`ConfigCache`) and reads it back when the source
/// gives nothing usable at start-up. A write that fails does not stop serving; it is logged once until a write
/// succeeds again.
final class LastKnownGoodCopy: Sendable {
    let cache: ConfigCache
    private let writeFailure = Announcement()
    private let logger: Logger

    init(cache: ConfigCache, logger: Logger) {
        self.cache = cache
        self.logger = logger
    }

    var path: String { cache.documentPath }

    /// Keeps a document that was just applied, under the config version of its bytes.
    func store(_ document: FetchedDocument, version: String, at time: Timestamp) {
        do {
            try cache.store(document.bytes, version: version, sourceVersion: document.sourceVersion, fetchedAt: time)
            if writeFailure.clear() { logger.log(.info, .configCacheRecovered, metadata: [.path: "\(path)"]) }
        } catch {
            if writeFailure.isNew("write_failed") {
                logger.log(
                    .warning, .configCacheWriteFailed, "\(error); serving goes on, but a restart during an outage will have no copy",
                    metadata: [.path: "\(path)"]
                )
            }
        }
    }

    /// The stored document, nil if there is none or it cannot be read.
    func load(maximumBytes: Int) -> ConfigCache.Entry? {
        cache.load(maximumBytes: maximumBytes)
    }

    /// Says that a config from this copy is served, since the source gave nothing usable.
    func logServed(_ loaded: LoadedConfig) {
        logger.log(.warning, .configFromCache, "the source gave no usable document; serving the last-known-good copy",
            metadata: [
                .configVersion: "\(loaded.version)", .configSource: "\(loaded.source)",
                .path: "\(path)", .configFetchedAt: "\(loaded.fetchedAt.rfc3339)",
            ]
        )
    }
}
