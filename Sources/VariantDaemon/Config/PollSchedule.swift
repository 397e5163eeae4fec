/// When to poll the config source next, and which outcomes change its state: pure, driven by outcomes and a
/// random number the caller passes in, so tests decide both.
///
/// Healthy, the delay is the interval shortened by up to `jitter` of itself (never longer, so a change published
/// at the source is served within one interval), so that a fleet started together does not poll in lockstep.
/// After a failure it backs off with decorrelated jitter (`min(cap, random(base, previous × 3))`) up to
/// `maximumBackoff`, then keeps polling near the cap until a poll succeeds.
struct PollSchedule: Sendable {
    struct Configuration: Sendable {
        /// The time between polls while the source answers.
        var interval: Duration = .seconds(30)
        /// The share of the interval (0–1) by which each delay is randomly shortened.
        var jitter: Double = 0.1
        /// The longest wait between attempts while the source fails.
        var maximumBackoff: Duration = .seconds(300)

        /// The first wait after a failure: the interval, but at most one second.
        var baseBackoff: Duration { min(interval, .seconds(1), maximumBackoff) }
    }

    enum State: Equatable, Sendable {
        case healthy
        /// `failures` attempts in a row have failed; `atCap` once the backoff has reached the cap.
        case failing(failures: Int, atCap: Bool)
    }

    /// A change of state worth one log line; nothing is reported for an attempt that changes nothing.
    enum Transition: Equatable, Sendable {
        case startedFailing
        case reachedCap
        case recovered(afterFailures: Int)
    }

    let configuration: Configuration
    private(set) var state: State = .healthy
    private var previousBackoff: Duration = .zero

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// After a poll that reached the source. `suggestedInterval` is the source's own minimum (AppConfig's
    /// `Next-Poll-Interval-In-Seconds`): the delay is never shorter than it. `random` is uniform in 0..<1.
    mutating func succeeded(
        suggestedInterval: Duration? = nil,
        random: Double
    ) -> (delay: Duration, transition: Transition?) {
        var transition: Transition?
        if case .failing(let failures, _) = state { transition = .recovered(afterFailures: failures) }
        state = .healthy
        previousBackoff = .zero
        let interval = max(configuration.interval, suggestedInterval ?? .zero)
        let jitter = min(max(configuration.jitter, 0), 1)
        return (interval * (1 - jitter * clamp(random)), transition)
    }

    /// After a poll that failed. `random` is uniform in 0..<1.
    mutating func failed(random: Double) -> (delay: Duration, transition: Transition?) {
        let base = configuration.baseBackoff
        let cap = configuration.maximumBackoff
        let upper = max(base, previousBackoff * 3)
        let delay = min(cap, base + (upper - base) * clamp(random))
        previousBackoff = delay
        switch state {
        case .healthy:
            state = .failing(failures: 1, atCap: delay >= cap)
            return (delay, .startedFailing)
        case .failing(let failures, let atCap):
            let reached = !atCap && delay >= cap
            state = .failing(failures: failures + 1, atCap: atCap || delay >= cap)
            return (delay, reached ? .reachedCap : nil)
        }
    }

    private func clamp(_ random: Double) -> Double {
        random.isFinite ? min(max(random, 0), 1) : 0
    }
}
