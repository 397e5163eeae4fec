/// What one answered request line was and how it ended, for the daemon's request metrics: two bytes, returned by
/// `Responder.respond` so that counting costs the hot path no lookup and no allocation.
public struct RequestOutcome: Sendable, Hashable {
    public var op: Request.Op
    /// The code the request failed with; nil when it succeeded (a `batch` with some records refused succeeded).
    public var error: ProtocolError.Code?

    public init(op: Request.Op, error: ProtocolError.Code? = nil) {
        self.op = op
        self.error = error
    }

    /// The metric label of the outcome: `ok`, or the stable protocol error code.
    public var code: String { error?.rawValue ?? "ok" }
}

extension Request {
    /// A request's op, as named on the wire; `unknown` for a line whose op could not be read (not JSON, no `op`,
    /// an op that does not exist). A bounded set, usable as a metric label.
    public enum Op: UInt8, Sendable, Hashable, CaseIterable {
        case assign, prompt, render, config, health, record, batch, stats, events, disable, enable, newPhase, reload
        case unknown

        /// The op's name on the wire (`new_phase`), or `unknown`.
        public var name: String {
            switch self {
            case .assign: "assign"
            case .prompt: "prompt"
            case .render: "render"
            case .config: "config"
            case .health: "health"
            case .record: "record"
            case .batch: "batch"
            case .stats: "stats"
            case .events: "events"
            case .disable: "disable"
            case .enable: "enable"
            case .newPhase: "new_phase"
            case .reload: "reload"
            case .unknown: "unknown"
            }
        }

        /// The op named exactly `name` (byte for byte: no string canonically equivalent to a name is that op) on
        /// the wire; `unknown` for any other string.
        public init(name: String) {
            var name = name
            self = name.withUTF8 { Self(utf8: $0) }
        }

        /// The op spelled by exactly these bytes, read on every request: one comparison per op of the same length.
        init(utf8 name: UnsafeBufferPointer<UInt8>) {
            func spelled(_ spelling: StaticString) -> Bool {
                UnsafeBufferPointer.sameBytes(
                    name, UnsafeBufferPointer(start: spelling.utf8Start, count: spelling.utf8CodeUnitCount))
            }
            switch name.count {
            case 5: self = spelled("stats") ? .stats : spelled("batch") ? .batch : .unknown
            case 6:
                self =
                    spelled("assign") ? .assign : spelled("prompt") ? .prompt : spelled("render") ? .render
                    : spelled("config") ? .config : spelled("health") ? .health : spelled("record") ? .record
                    : spelled("events") ? .events : spelled("enable") ? .enable : spelled("reload") ? .reload
                    : .unknown
            case 7: self = spelled("disable") ? .disable : .unknown
            case 9: self = spelled("new_phase") ? .newPhase : .unknown
            default: self = .unknown
            }
        }
    }
}

extension Request.Operation {
    /// Whether answering writes the state file first (PROTOCOL.md: the change is on disk when the answer goes out),
    /// which may take a disk write's time.
    public var writesStateBeforeAnswer: Bool {
        switch self {
        case .disable, .enable, .newPhase: true
        default: false
        }
    }
}

extension Request.Operation {
    /// The op this operation answers.
    public var op: Request.Op {
        switch self {
        case .assign: .assign
        case .prompt: .prompt
        case .render: .render
        case .config: .config
        case .health: .health
        case .record: .record
        case .batch: .batch
        case .stats: .stats
        case .events: .events
        case .disable: .disable
        case .enable: .enable
        case .newPhase: .newPhase
        case .reload: .reload
        }
    }
}
