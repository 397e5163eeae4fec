import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import VariantCore

/// Keeps the ledger (aggregates, disabled treatments, events) in `STATE_DIRECTORY/state.json` so that it
/// survives restarts: restored at start, written atomically at most every `flushInterval` when something
/// changed, at once when a treatment is disabled or enabled, and a last time on graceful shutdown.
///
/// So a clean stop loses nothing that was acknowledged, a SIGKILL loses at most `flushInterval` of records, and
/// the file is never left half-written (see `AtomicFile`).
public final class LedgerPersistence: Service, Sendable {
    public struct Configuration: Sendable {
        public var stateDirectory: String
        /// How often changed state is written.
        public var flushInterval: Duration = .seconds(1)

        public init(stateDirectory: String) {
            self.stateDirectory = stateDirectory
        }

        public var statePath: String { stateDirectory + "/state.json" }
    }

    /// What `restore()` found.
    public enum RestoreOutcome: Sendable, Equatable {
        case restored
        case noStateFile
        /// The file could not be used; it was moved aside to `preservedAt` and the ledger starts empty.
        case unreadable(reason: String, preservedAt: String)
    }

    private let configuration: Configuration
    private let ledger: ExperimentLedger
    private let logger: Logger
    /// The generation last written, and the failure of the writes since (nil while they succeed); the lock also
    /// keeps two writers from interleaving.
    private let written = Mutex<(generation: UInt64?, failure: StateWriteFailure?)>((nil, nil))

    /// Told of every failed write (for metrics); the write is retried on the next tick.
    private let writeFailed: @Sendable () -> Void
    /// Told when writes start failing (the failure) and when one succeeds again (nil), once per change, so
    /// `health`, `config` and systemd's `STATUS=` show it.
    private let failureChanged: @Sendable (StateWriteFailure?) -> Void

    public init(
        configuration: Configuration, ledger: ExperimentLedger, logger: Logger,
        writeFailed: @escaping @Sendable () -> Void = {},
        failureChanged: @escaping @Sendable (StateWriteFailure?) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.ledger = ledger
        self.logger = logger
        self.writeFailed = writeFailed
        self.failureChanged = failureChanged
    }

    /// Loads the state file into the ledger, if there is one, after removing the staging files of writes that a
    /// kill interrupted (`state.json.tmp-XXXXXX`: nothing else writes them, and no write runs yet).
    @discardableResult
    public func restore() -> RestoreOutcome {
        let path = configuration.statePath
        removeInterruptedWrites(of: path)
        guard access(path, F_OK) == 0 else {
            logger.log(.info, .stateNone, metadata: [.statePath: "\(path)"])
            return .noStateFile
        }
        let bytes: [UInt8]
        do {
            bytes = try FileIdentity.read(path: path, maximumBytes: 256 << 20)
        } catch {
            return preserveUnreadable(reason: "\(error)")
        }
        let problems: [ExperimentLedger.RestoreProblem]
        do {
            problems = try ledger.restore(from: bytes, at: SystemClock.now())
        } catch {
            return preserveUnreadable(reason: error.description)
        }
        if !problems.isEmpty {
            // The rest of the file was restored (disabled treatments above all); the damaged parts start afresh.
            logger.log(.error, .stateRestoredInPart, "damaged parts start afresh",
                metadata: [
                    .statePath: "\(path)", .stateProblems: "\(problems.count)",
                    .stateFirstProblem: "\(problems[0])",
                ])
        }
        written.withLock { $0.generation = ledger.generation }
        logger.log(.info, .stateRestored,
            metadata: [.statePath: "\(path)", .stateDisabled: "\(ledger.disabled.count)"])
        return .restored
    }

    /// Removes `PATH.tmp-XXXXXX` files left by writes a kill interrupted, and says how many.
    private func removeInterruptedWrites(of path: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let prefix = (slash.map { String(path[path.index(after: $0)...]) } ?? path) + ".tmp-"
        guard let listing = opendir(directory.isEmpty ? "/" : directory) else { return }
        defer { closedir(listing) }
        var removed = 0
        while let entry = readdir(listing) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix), name.count == prefix.count + 6 else { continue }
            if unlink(directory + "/" + name) == 0 { removed += 1 }
        }
        if removed > 0 {
            logger.log(.info, .stateStagingRemoved, metadata: [.statePath: "\(path)", .stateFiles: "\(removed)"])
        }
    }

    private func preserveUnreadable(reason: String) -> RestoreOutcome {
        let path = configuration.statePath
        let preserved = path + ".unreadable-\(Int(SystemClock.now().secondsSinceEpoch))"
        rename(path, preserved)
        logger.log(.error, .stateUnreadable, "starting with empty statistics",
            metadata: [.statePath: "\(path)", .statePreserved: "\(preserved)", .reason: "\(reason)"])
        return .unreadable(reason: reason, preservedAt: preserved)
    }

    /// Writes the state every `flushInterval` while it changes, and a last time once graceful shutdown begins.
    /// - Throws: `FinalWriteError` when that last write fails: what was acknowledged since the last good write is
    ///   lost, and the daemon must not exit as if it were saved.
    public func run() async throws {
        do {
            try AtomicFile.createDirectory(configuration.stateDirectory)
        } catch {
            logger.log(
                .error, .stateDirectoryFailed, metadata: [.stateDirectory: "\(configuration.stateDirectory)", .reason: "\(error)"])
        }
        let interval = configuration.flushInterval
        await cancelWhenGracefulShutdown {
            while (try? await Task.sleep(for: interval)) != nil {
                self.flush()
            }
        }
        // The server stops before this service (reverse start order), so this write holds every answered record.
        if let failure = flush() {
            logger.log(
                .critical, .stateSaveFailed, "the final write failed; what changed since the last good write is lost",
                metadata: [.statePath: "\(configuration.statePath)", .reason: "\(failure)"])
            throw FinalWriteError(path: configuration.statePath, reason: failure)
        }
        logger.log(.info, .stateSaved, metadata: [.statePath: "\(configuration.statePath)"])
    }

    /// The state could not be written at graceful shutdown.
    public struct FinalWriteError: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String {
            "the final write of the state file \(path) failed (\(reason)); the records, disables and events since its last good write are lost"
        }
    }

    /// Writes the ledger if it changed since the last write, and says why the state file does not hold it (nil
    /// when it does). A failure is logged when writes start failing and retried on the next tick; the first
    /// success after failures is logged too.
    @discardableResult
    public func flush() -> String? {
        let (reason, change) = written.withLock { written -> (String?, StateWriteFailure??) in
            guard written.generation != ledger.generation else { return (written.failure?.message, nil) }
            let (bytes, generation) = ledger.encodedState(savedAt: SystemClock.now())
            do {
                try AtomicFile.write(bytes, to: configuration.statePath)
                written.generation = generation
                guard let failure = written.failure else { return (nil, nil) }
                written.failure = nil
                logger.log(.notice, .stateWriteRecovered, "the state file holds the state again",
                    metadata: [
                        .statePath: "\(configuration.statePath)", .stateFailingSince: "\(failure.since.rfc3339)",
                    ])
                return (nil, .some(nil))
            } catch {
                writeFailed()
                let message = "\(error)"
                if written.failure == nil {
                    written.failure = StateWriteFailure(message: message, since: SystemClock.now())
                    logger.log(.error, .stateWriteFailed, "changes are kept in memory only until a write succeeds",
                        metadata: [.statePath: "\(configuration.statePath)", .reason: "\(message)"])
                    return (message, .some(written.failure))
                }
                written.failure?.message = message
                return (message, nil)
            }
        }
        if let change { failureChanged(change) }
        return reason
    }
}
