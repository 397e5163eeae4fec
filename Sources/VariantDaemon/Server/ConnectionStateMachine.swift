import NIOCore

/// What one connection does next, given what happened to it: which lines are answered now and which wait for a
/// durable request, when it stops and resumes reading, when it closes, and when its timers are due. The clock is
/// passed in, so tests step time instead of sleeping (hummingbird's `HTTPConnectionStateHandler.StateMachine`);
/// `RequestLineHandler` performs the actions on the connection's event loop.
///
/// - Input: lines are answered in order as they are read; while a durable request (one whose answer waits for the
///   state file) is answered elsewhere, the lines read meanwhile are held, and reading pauses, so at most one read's
///   lines are held. A line longer than the limit ends the input: the rest is dropped, and the connection closes
///   after answering `line_too_long` (after the durable request's answer and the lines held before it, if one is in
///   flight).
/// - Back-pressure: while the channel is not writable (its unsent answers are above the high water mark) reading
///   pauses; it resumes when they drain below the low one. A client that writes without reading never makes the
///   daemon buffer answers without bound.
/// - Closing (graceful stop, half-closure, line too long, an error): reading stops and the connection closes once
///   every answer so far has been sent, or at the stop timeout if its client does not read them. Asked while a
///   durable request is in flight, it waits for that answer and those to the lines held first.
/// - Idle: with an idle timeout, a connection with nothing read or written for that long is closed
///   (`IdleTimeoutStateMachine`).
struct ConnectionStateMachine<C: Clock, Line> where C.Duration == Duration {
    let clock: C
    /// How long a closing connection waits for its client to read the last answers.
    let stopTimeout: Duration
    private var idle: IdleTimeoutStateMachine<C>?
    /// Set once a line was too long: the rest of the input is dropped.
    private var discardingInput = false
    /// Set while a durable request is answered elsewhere; the input read meanwhile waits in `held`, in order.
    private(set) var durableInFlight = false
    private var held = CircularBuffer<Held>()
    private var closing = Closing.open
    /// Set once the channel is inactive: an answer that comes later has nowhere to go.
    private(set) var ended = false
    private var isWritable = true
    /// Set when a read was asked for while reading is paused; it is made when reading resumes.
    private(set) var readDeferred = false

    /// Input read while a durable request is answered.
    enum Held {
        case line(Line)
        case tooLong
    }

    private enum Closing: Equatable {
        case open
        /// Asked to close while a durable request was in flight: closes after it and the lines held.
        case afterDurable
        /// Every answer so far is written: closes once the last write is done, or at `stopDeadline`.
        case draining(writesInFlight: Int, stopDeadline: C.Instant)
    }

    /// - Parameter idleTimeout: nil keeps an idle connection open.
    init(idleTimeout: Duration?, stopTimeout: Duration, clock: C) {
        self.clock = clock
        self.stopTimeout = stopTimeout
        self.idle = idleTimeout.map { IdleTimeoutStateMachine(timeout: $0, clock: clock) }
    }

    // MARK: Actions

    enum LineAction: Equatable {
        /// Answer it now.
        case answer
        /// It was held, to be answered after the durable request in flight (`nextHeld()`).
        case hold
    }

    enum CloseAction: Equatable {
        case none
        /// Stop reading; the connection closes once the durable request in flight and the lines held are answered.
        case stopReading
        /// Stop reading, write every answer so far (and an empty write, so there is one to wait for), close once
        /// the last write is done, and check at `stopDeadline` (`timerDue(.stop)`) whether the client read them.
        case drain(stopDeadline: C.Instant)
    }

    enum TooLongAction: Equatable {
        /// Answer `line_too_long` now, then close.
        case answer(then: CloseAction)
        /// It was held, to be answered after the durable request in flight; then close.
        case hold(then: CloseAction)
    }

    enum WriteAction: Equatable {
        /// Write and flush; nothing waits for the write.
        case write
        /// Write and flush, and report its completion (`writeCompleted()`): the connection closes after the last.
        case writeTracked
    }

    enum HeldAnsweredAction: Equatable {
        case none
        /// Reading was paused for the durable request and may resume: read.
        case read
        /// The connection was asked to close meanwhile.
        case close(CloseAction)
    }

    enum Timer: Equatable {
        case idle
        case stop
    }

    enum TimerAction: Equatable {
        case none
        case schedule(Timer, deadline: C.Instant)
        /// Nothing was read or written for the idle timeout.
        case closeIdle
        /// The client did not read its last answers within the stop timeout: `writesPending` are still unsent.
        case closeUnread(writesPending: Int)
    }

    // MARK: Events

    /// The channel became active: the idle timer starts.
    mutating func activated() -> TimerAction {
        guard var idle else { return .none }
        defer { self.idle = idle }
        switch idle.activated() {
        case .schedule(let deadline): return .schedule(.idle, deadline: deadline)
        case .close, .none: return .none
        }
    }

    /// The channel became inactive: nothing more is read or written.
    mutating func deactivated() {
        ended = true
        idle?.deactivated()
    }

    /// Bytes were read. - Returns: whether to cut them into lines (false once a line was too long).
    mutating func bytesRead() -> Bool {
        idle?.activity()
        return !discardingInput
    }

    /// A complete line was read.
    mutating func lineRead(_ line: Line) -> LineAction {
        guard durableInFlight else { return .answer }
        held.append(.line(line))
        return .hold
    }

    /// A line longer than the limit was read: the rest of the input is dropped and the connection closes.
    mutating func lineTooLong() -> TooLongAction {
        discardingInput = true
        guard durableInFlight else { return .answer(then: closeRequested()) }
        held.append(.tooLong)
        return .hold(then: closeRequested())
    }

    /// A line's answer waits for a durable request, answered elsewhere: the answers so far are to be flushed, and
    /// until `durableFinished()` the lines read are held and reading pauses.
    mutating func durableStarted() {
        durableInFlight = true
    }

    /// The durable request's answer is ready. - Returns: whether to write it (false once the channel is inactive);
    /// then answer each of `nextHeld()`, flush, and report `heldAnswered()`.
    mutating func durableFinished() -> Bool {
        durableInFlight = false
        return !ended
    }

    /// The next input held during the durable request, until another one starts.
    mutating func nextHeld() -> Held? {
        guard !durableInFlight else { return nil }
        return held.popFirst()
    }

    /// The input held during a durable request was answered (and flushed).
    mutating func heldAnswered() -> HeldAnsweredAction {
        guard !durableInFlight else { return .none }
        if closing == .afterDurable {
            closing = .open
            return .close(closeRequested())
        }
        return resumeIfAllowed() ? .read : .none
    }

    /// The connection is to close once every answer so far is sent: a graceful stop, the client's half-closure,
    /// a line too long, an error.
    mutating func closeRequested() -> CloseAction {
        guard closing == .open else { return .none }
        if durableInFlight {
            closing = .afterDurable
            return .stopReading
        }
        let deadline = clock.now.advanced(by: stopTimeout)
        closing = .draining(writesInFlight: 0, stopDeadline: deadline)
        return .drain(stopDeadline: deadline)
    }

    /// Answers are about to be written.
    mutating func answersWritten() -> WriteAction {
        idle?.activity()
        guard case .draining(let writes, let deadline) = closing else { return .write }
        closing = .draining(writesInFlight: writes + 1, stopDeadline: deadline)
        return .writeTracked
    }

    /// A tracked write is done (sent or failed). - Returns: whether to close (it was the last).
    mutating func writeCompleted() -> Bool {
        guard case .draining(let writes, let deadline) = closing else { return false }
        closing = .draining(writesInFlight: writes - 1, stopDeadline: deadline)
        return writes == 1
    }

    /// The channel asks for the next read. - Returns: whether to read now; else it is made when reading resumes.
    mutating func readRequested() -> Bool {
        guard isWritable, !durableInFlight else {
            readDeferred = true
            return false
        }
        return true
    }

    /// The channel's writability changed (its unsent bytes crossed a water mark). - Returns: whether to read now.
    mutating func writabilityChanged(isWritable: Bool) -> Bool {
        self.isWritable = isWritable
        return resumeIfAllowed()
    }

    /// A timer is due.
    mutating func timerDue(_ timer: Timer) -> TimerAction {
        switch timer {
        case .idle:
            guard var idle else { return .none }
            defer { self.idle = idle }
            switch idle.checkDue() {
            case .schedule(let deadline): return .schedule(.idle, deadline: deadline)
            case .close: return .closeIdle
            case .none: return .none
            }
        case .stop:
            guard !ended, case .draining(let writes, let deadline) = closing, writes > 0 else { return .none }
            guard clock.now >= deadline else { return .schedule(.stop, deadline: deadline) }
            return .closeUnread(writesPending: writes)
        }
    }

    var idleTimeout: Duration? { idle?.timeout }

    /// Whether reading is paused with a read waiting (back-pressure or a durable request).
    var isReadingPaused: Bool { readDeferred }

    private mutating func resumeIfAllowed() -> Bool {
        // A closing connection reads no more: what was read is answered, what was not is not.
        guard readDeferred, isWritable, !durableInFlight, closing == .open else { return false }
        readDeferred = false
        return true
    }
}
