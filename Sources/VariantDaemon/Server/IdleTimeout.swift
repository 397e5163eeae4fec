/// When an idle connection is closed: after `timeout` with nothing read from it and nothing written to it. The
/// clock is passed in, so tests step time instead of sleeping (hummingbird's `HTTPConnectionStateHandler`); part of
/// `ConnectionStateMachine`.
struct IdleTimeoutStateMachine<C: Clock> where C.Duration == Duration {
    let timeout: Duration
    let clock: C
    private(set) var lastActivity: C.Instant
    private(set) var isActive = false

    init(timeout: Duration, clock: C) {
        self.timeout = timeout
        self.clock = clock
        self.lastActivity = clock.now
    }

    enum Action: Equatable {
        /// Check again at this instant.
        case schedule(deadline: C.Instant)
        /// The connection has been idle for `timeout`: close it.
        case close
        case none
    }

    /// The connection became active: the first check is due one timeout from now.
    mutating func activated() -> Action {
        isActive = true
        lastActivity = clock.now
        return .schedule(deadline: lastActivity.advanced(by: timeout))
    }

    /// Bytes were read or written.
    mutating func activity() {
        lastActivity = clock.now
    }

    /// A scheduled check came due: close if idle for the whole timeout, else check again when it would be.
    mutating func checkDue() -> Action {
        guard isActive else { return .none }
        let deadline = lastActivity.advanced(by: timeout)
        guard clock.now >= deadline else { return .schedule(deadline: deadline) }
        isActive = false
        return .close
    }

    mutating func deactivated() {
        isActive = false
    }
}
