/// What a request may touch besides the serving snapshot: the ledger it records into, who is asking, and the
/// daemon's reactions to a change of state.
public struct RequestContext: Sendable {
    /// Where records, assignment counts, disabled treatments and events live.
    public var ledger: ExperimentLedger
    /// Who sent the request (from the socket's peer credentials).
    public var caller: Caller
    /// Called after the ledger disabled or enabled a treatment, on the thread that answered the request, so
    /// the daemon can swap the serving snapshot, persist the state and log the event before the answer goes out.
    public var treatmentsChanged: @Sendable (LedgerEvent) -> Void
    /// Asks the config source to poll now; false when the daemon cannot (no source that reloads).
    public var reload: @Sendable () -> Bool
    /// Writes the state file now if the state changed since its last write, and says why it could not (nil when
    /// the file holds the state, or the daemon keeps none): admin ops answer only once their change is on disk.
    public var persist: @Sendable () -> String?
    /// Told of records that were not recorded, with the code each was refused with and how many: a failed
    /// `record` (whatever its code), each rejected entry of a `batch`, every entry of a `batch` sent without a
    /// config (for the daemon's metrics).
    public var recordsRefused: @Sendable (ProtocolError.Code, Int) -> Void

    public init(
        ledger: ExperimentLedger, caller: Caller, treatmentsChanged: @escaping @Sendable (LedgerEvent) -> Void,
        reload: @escaping @Sendable () -> Bool, persist: @escaping @Sendable () -> String? = { nil },
        recordsRefused: @escaping @Sendable (ProtocolError.Code, Int) -> Void = { _, _ in }
    ) {
        self.ledger = ledger
        self.caller = caller
        self.treatmentsChanged = treatmentsChanged
        self.reload = reload
        self.persist = persist
        self.recordsRefused = recordsRefused
    }
}

/// The process at the other end of a connection, as the kernel reports it (`SO_PEERCRED`).
public struct Caller: Sendable, CustomStringConvertible {
    public var pid: Int32?
    public var uid: UInt32?
    public var gid: UInt32?
    /// Decides, when an admin op asks, whether this caller may run it; the daemon supplies it.
    private let authorize: @Sendable () -> Bool

    public init(pid: Int32?, uid: UInt32?, gid: UInt32?, mayAdminister: Bool) {
        self.init(pid: pid, uid: uid, gid: gid, authorize: { mayAdminister })
    }

    /// - Parameter authorize: called only when an admin op arrives, so a costly check (reading the caller's
    ///   supplementary groups) is not paid by every connection.
    public init(pid: Int32?, uid: UInt32?, gid: UInt32?, authorize: @escaping @Sendable () -> Bool) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.authorize = authorize
    }

    /// Whether admin ops (`disable`, `enable`, `reload`) are allowed: root, the daemon's own user, or a member
    /// of the admin group; the daemon decides.
    public var mayAdminister: Bool { authorize() }

    /// How events name the caller: `uid 1000 pid 4242`, or `unknown peer`.
    public var description: String {
        guard let uid else { return "unknown peer" }
        return pid.map { "uid \(uid) pid \($0)" } ?? "uid \(uid)"
    }
}

extension RequestContext {
    /// A context without a daemon around it, for tools and core tests: its own ledger (or the one given), a
    /// caller with the given rights, nobody told of treatment changes, and no config source to reload.
    public static func detached(ledger: ExperimentLedger = ExperimentLedger(), mayAdminister: Bool = false) -> RequestContext {
        RequestContext(
            ledger: ledger, caller: Caller(pid: nil, uid: nil, gid: nil, mayAdminister: mayAdminister),
            treatmentsChanged: { _ in }, reload: { false })
    }
}
