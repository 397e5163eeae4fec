import Glibc
import Synchronization
import Logging
import ServiceLifecycle
import UnixSignals
import VariantCore

/// Serves configuration from a local file, the embedded default source: loads it at start, re-reads it when it
/// changes (checked every `checkInterval`) or on SIGHUP, and applies a new document only once it validates.
///
/// A bad document is logged once with every problem and recorded as the last error; the previous good one stays
/// in force.
public final class FileConfigSource: Service, Sendable {
    public struct Configuration: Sendable {
        public var path: String
        /// How often the file's identity (inode, size, modification time) is checked for a change.
        public var checkInterval: Duration = .seconds(1)
        /// The largest document accepted.
        public var maximumBytes: Int = 16 << 20

        public init(path: String) {
            self.path = path
        }

        public var sourceDescription: String { "file:" + path }
    }

    /// Why a reload happens.
    public enum Trigger: Sendable {
        /// The timer: reload only if the file changed.
        case check
        /// SIGHUP or an operator: reload even if the file looks unchanged.
        case reload
    }

    private let configuration: Configuration
    private let store: ServingStateStore
    private let logger: Logger
    private let hooks: ConfigSourceHooks
    private let lastSeen = Mutex<FileIdentity?>(nil)

    public init(
        configuration: Configuration, store: ServingStateStore, logger: Logger, hooks: ConfigSourceHooks = .init()
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.hooks = hooks
    }

    /// Loads once, so a caller can wait for the first config before declaring readiness.
    @discardableResult
    public func loadInitial() -> Bool {
        load(force: true)
        return store.current.config != nil
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        let interval = configuration.checkInterval
        let (triggers, continuation) = AsyncStream.makeStream(of: Trigger.self, bufferingPolicy: .bufferingNewest(1))
        // On graceful shutdown every child ends: the sleep throws, and both sequences finish when cancelled.
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while (try? await Task.sleep(for: interval)) != nil {
                        continuation.yield(.check)
                    }
                    continuation.finish()
                }
                group.addTask {
                    for await _ in signals { continuation.yield(.reload) }
                }
                group.addTask {
                    await self.run(triggers: triggers)
                }
            }
        }
    }

    /// Applies each trigger in turn until the sequence ends; tests drive this directly.
    public func run(triggers: some AsyncSequence<Trigger, Never>) async {
        for await trigger in triggers {
            switch trigger {
            case .check:
                load(force: false)
            case .reload:
                logger.info("config.reload", metadata: ["config.source": "\(configuration.sourceDescription)"])
                hooks.reloadStarted()
                load(force: true)
                hooks.reloadFinished()
            }
        }
    }

    /// Reads, validates and applies the file if it changed (or always, when forced).
    func load(force: Bool) {
        let now = SystemClock.now()
        let identity = FileIdentity(path: configuration.path)
        let changed = lastSeen.withLock { last in
            defer { last = identity }
            return last != identity
        }
        guard force || changed else { return }
        let bytes: [UInt8]
        do {
            bytes = try FileIdentity.read(path: configuration.path, maximumBytes: configuration.maximumBytes)
        } catch {
            record(ConfigLoadFailure(code: "read_failed", message: "\(configuration.path): \(error)", at: now))
            return
        }
        let version = LoadedConfig.version(of: bytes)
        if store.current.config?.version == version && store.current.lastError == nil { return }
        do {
            let document = try ConfigDocument.validate(bytes)
            let loaded = LoadedConfig(
                document: document, version: version, source: configuration.sourceDescription, loadedAt: now)
            store.update { $0.applying(loaded) }
            hooks.applied(loaded)
            logger.info(
                "config.applied",
                metadata: [
                    "config.version": "\(version)", "config.source": "\(configuration.sourceDescription)",
                    "config.experiments": "\(document.experiments.count)", "config.prompts": "\(document.prompts.count)",
                ])
        } catch {
            let failure = ConfigLoadFailure(
                code: "invalid_config",
                message: "\(error.issues.count) problem\(error.issues.count == 1 ? "" : "s") in \(configuration.path) (\(version)); keeping the config in use",
                at: now, problems: error.issues)
            record(failure)
        }
    }

    private func record(_ failure: ConfigLoadFailure) {
        let snapshot = store.update { $0.recording(failure) }
        hooks.rejected(failure)
        var metadata: Logger.Metadata = [
            "config.source": "\(configuration.sourceDescription)", "code": "\(failure.code)",
            "config.version": "\(snapshot.config?.version ?? "none")",
        ]
        if !failure.problems.isEmpty {
            metadata["problems"] = .array(failure.problems.map { .string($0.description) })
        }
        logger.error("config.rejected: \(failure.message)", metadata: metadata)
    }
}

/// What identifies a version of a file without reading it: a change to any of these means "read it again".
struct FileIdentity: Equatable, Sendable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modifiedSeconds = info.st_mtim.tv_sec
        modifiedNanoseconds = info.st_mtim.tv_nsec
    }

    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads a whole file, refusing one larger than `maximumBytes`.
    static func read(path: String, maximumBytes: Int) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ReadError(description: String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ReadError(description: String(cString: strerror(errno)))
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumBytes {
                throw ReadError(description: "larger than the limit of \(maximumBytes) bytes")
            }
        }
    }
}
