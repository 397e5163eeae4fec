import Dispatch
import NIOCore
import Synchronization

/// Whether every event loop of a group still runs tasks: the watchdog pings only after this round trip, so a
/// wedged loop (a handler that blocks, a livelock) stops the pings and systemd restarts the daemon.
public enum EventLoopProbe {
    /// Submits an empty task to each loop of `group` and reports whether all of them ran it within `deadline`.
    ///
    /// Returns false at the deadline even when a loop never answers. The deadline is a Dispatch timer, not a
    /// sleeping task, so the answer is settled on time even when Swift's cooperative pool is busy.
    public static func allRespond(_ group: any EventLoopGroup, within deadline: Duration) async -> Bool {
        let loops = Array(group.makeIterator())
        let gate = Gate(expected: loops.count)
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                gate.install(continuation)
                DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { gate.cancel() }
                for loop in loops {
                    loop.submit {}.whenComplete { _ in gate.arrive() }
                }
            }
        } onCancel: {
            gate.cancel()
        }
    }

    /// Resumes one continuation exactly once: true when every loop arrived, false at the deadline or on cancellation.
    private final class Gate: Sendable {
        private struct State {
            var remaining: Int
            var continuation: CheckedContinuation<Bool, Never>?
            var cancelled = false
            var resumed = false
        }

        private let state: Mutex<State>

        init(expected: Int) {
            state = Mutex(State(remaining: expected))
        }

        func install(_ continuation: CheckedContinuation<Bool, Never>) {
            let resumeWith: Bool? = state.withLock { state in
                if state.cancelled || state.remaining == 0 {
                    state.resumed = true
                    return !state.cancelled
                }
                state.continuation = continuation
                return nil
            }
            if let resumeWith { continuation.resume(returning: resumeWith) }
        }

        func arrive() {
            let continuation: CheckedContinuation<Bool, Never>? = state.withLock { state in
                state.remaining -= 1
                guard state.remaining == 0, !state.resumed, let continuation = state.continuation else { return nil }
                state.resumed = true
                return continuation
            }
            continuation?.resume(returning: true)
        }

        func cancel() {
            let continuation: CheckedContinuation<Bool, Never>? = state.withLock { state in
                state.cancelled = true
                guard !state.resumed, let continuation = state.continuation else { return nil }
                state.resumed = true
                return continuation
            }
            continuation?.resume(returning: false)
        }
    }
}
