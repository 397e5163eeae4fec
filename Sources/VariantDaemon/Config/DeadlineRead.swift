import Foundation
import Synchronization

/// Runs one kind of blocking read (a file from disk) on a thread of its own and waits for it at most a deadline,
/// so a read that never returns (a hung network file system, a FUSE mount that stopped answering) costs a parked
/// thread, never the poller, a config reload or graceful shutdown: the waiting task gives up at the deadline or
/// when it is cancelled. While an abandoned read is still stuck no other is started, so a hang costs one thread.
final class DeadlineRead: Sendable {
    /// When the read in flight started, if one is.
    private let inFlight = Mutex<ContinuousClock.Instant?>(nil)

    init() {}

    enum Failure: Error, Equatable {
        /// The read did not return within the deadline; it is abandoned, still running on its thread.
        case timedOut(Duration)
        /// An earlier read that timed out has not returned yet (started this long ago); nothing was read.
        case earlierReadStuck(Duration)
        /// The waiting task was cancelled (shutdown).
        case cancelled
    }

    /// Runs `work` on a new thread and returns what it returns, or throws what it throws.
    /// - Throws: `Failure` when `work` does not finish within `deadline`, an earlier `work` is still stuck, or the
    ///   task is cancelled; else `work`'s own error.
    func run<Value: Sendable>(deadline: Duration, _ work: @escaping @Sendable () throws -> Value) async throws -> Value {
        let stuckSince = inFlight.withLock { started -> ContinuousClock.Instant? in
            if let started { return started }
            started = ContinuousClock.now
            return nil
        }
        if let stuckSince { throw Failure.earlierReadStuck(ContinuousClock.now - stuckSince) }
        let outcome = await withTaskGroup(of: Outcome<Value>.self) { group in
            group.addTask { await self.onThread(work) }
            group.addTask {
                guard (try? await Task.sleep(for: deadline)) != nil else { return .cancelled }
                return .timedOut
            }
            let first = await group.next() ?? .cancelled
            group.cancelAll()
            return first
        }
        switch outcome {
        case .finished(let result): return try result.get()
        case .timedOut: throw Failure.timedOut(deadline)
        case .cancelled: throw Failure.cancelled
        }
    }

    private enum Outcome<Value: Sendable>: Sendable {
        case finished(Result<Value, any Error>)
        case timedOut
        case cancelled
    }

    /// `work`'s result from a detached thread, or `.cancelled` as soon as the task is cancelled.
    private func onThread<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async -> Outcome<Value> {
        let resumer = ResumeOnce<Outcome<Value>>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                resumer.install(continuation)
                Thread.detachNewThread { [self] in
                    let result = Result { try work() }
                    self.inFlight.withLock { $0 = nil }
                    resumer.resume(with: .finished(result))
                }
            }
        } onCancel: {
            resumer.resume(with: .cancelled)
        }
    }
}

/// A continuation resumed by whichever comes first (the thread, cancellation), once; a value that arrives before
/// the continuation is installed is handed over when it is.
private final class ResumeOnce<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, Never>?
        var early: Value?
        var resumed = false
    }
    private let state = Mutex(State())

    func install(_ continuation: CheckedContinuation<Value, Never>) {
        let early = state.withLock { state -> Value? in
            guard let early = state.early, !state.resumed else {
                state.continuation = continuation
                return nil
            }
            state.resumed = true
            return early
        }
        if let early { continuation.resume(returning: early) }
    }

    func resume(with value: Value) {
        let continuation = state.withLock { state -> CheckedContinuation<Value, Never>? in
            guard !state.resumed else { return nil }
            guard let continuation = state.continuation else {
                if state.early == nil { state.early = value }
                return nil
            }
            state.resumed = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}
