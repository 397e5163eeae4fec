import Crypto
import Glibc
import VariantCore

/// The last-known-good copy of a source's document on disk, so that a restart during an outage at the source
/// serves what was served before it.
///
/// Two files per source in `directory`, named after a hash of the source (so changing `--config` never serves
/// another source's document): `variantd-HASH.json`, the bytes exactly as served (their config version is
/// therefore the same), and `variantd-HASH.meta.json`, the source metadata. Each is written atomically: a
/// temporary file in the same directory, `fsync`, `rename`, `fsync` of the directory.
public struct ConfigCache: Sendable {
    public let directory: String
    public let source: String

    /// What the cache holds.
    public struct Entry: Sendable {
        public var bytes: [UInt8]
        public var sourceVersion: String?
        public var fetchedAt: Timestamp?
    }

    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(directory: String, source: String) {
        self.directory = directory
        self.source = source
    }

    var documentPath: String { directory + "/variantd-" + Self.name(of: source) + ".json" }
    var metadataPath: String { directory + "/variantd-" + Self.name(of: source) + ".meta.json" }

    static func name(of source: String) -> String {
        SHA256.hash(data: Array(source.utf8)).prefix(8).map { byte in
            (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
    }

    /// Stores a document that was just applied.
    ///
    /// - Throws: `WriteError` naming the step and the system's reason.
    public func store(_ bytes: [UInt8], version: String, sourceVersion: String?, fetchedAt: Timestamp) throws {
        var writer = JSONWriter()
        writer.raw("{\"source\":")
        writer.string(source)
        writer.raw(",\"version\":")
        writer.string(version)
        writer.raw(",\"source_version\":")
        writer.optionalString(sourceVersion)
        writer.raw(",\"fetched_at\":")
        writer.string(fetchedAt.rfc3339)
        writer.raw("}\n")
        try makeDirectory()
        // The document first: a crash between the two leaves metadata whose version does not match, which
        // `load` notices and ignores, keeping the document.
        try writeAtomically(bytes, to: documentPath)
        try writeAtomically(writer.bytes, to: metadataPath)
    }

    /// The stored document, or nil if there is none or it cannot be read. Metadata that does not belong to the
    /// document (a crash between the two writes) is ignored.
    public func load(maximumBytes: Int) -> Entry? {
        guard let bytes = try? FileIdentity.read(path: documentPath, maximumBytes: maximumBytes) else { return nil }
        var entry = Entry(bytes: bytes)
        if let meta = try? FileIdentity.read(path: metadataPath, maximumBytes: 1 << 16),
            let object = (try? JSONParser.parse(meta))?.objectValue,
            object["version"]?.stringValue == LoadedConfig.version(of: bytes)
        {
            entry.sourceVersion = object["source_version"]?.stringValue
            entry.fetchedAt = object["fetched_at"]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
        }
        return entry
    }

    private func makeDirectory() throws {
        do {
            try AtomicFile.createDirectory(directory, mode: 0o755)
        } catch {
            throw WriteError(description: error.description)
        }
    }

    private func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        do {
            try AtomicFile.write(bytes, to: path, mode: 0o644)
        } catch {
            throw WriteError(description: error.description)
        }
    }
}
