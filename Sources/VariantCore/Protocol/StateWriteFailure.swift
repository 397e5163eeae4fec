/// Why the daemon's state (statistics, disabled treatments, events) is not on disk as it is in memory: the last
/// write of the state file failed, and every one since. Shown by `health`, `config` and systemd's `STATUS=` until a
/// write succeeds (PROTOCOL.md, "State file").
public struct StateWriteFailure: Sendable, Equatable, JSONObjectWritable {
    /// The system's reason for the last failed write (`cannot rename …: Read-only file system`).
    public var message: String
    /// When the first write of this run of failures failed.
    public var since: Timestamp

    public init(message: String, since: Timestamp) {
        self.message = message
        self.since = since
    }

    /// `{"message":..,"since":..}`, the `state_error` of `health` and `config`.
    public func writeMembers(into object: inout JSONObjectWriter) {
        object.field("message", message)
        object.field("since", since.rfc3339)
    }
}

