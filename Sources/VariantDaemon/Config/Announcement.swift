import Synchronization

/// The state last announced (logged and passed to the hooks), so that each change of state is announced once and
/// an outage is one log line, not one per attempt.
final class Announcement: Sendable {
    private let last = Mutex<String?>(nil)

    /// Records `key` as the state announced; returns whether it differs from the one announced before.
    func isNew(_ key: String) -> Bool {
        last.withLock { last in
            defer { last = key }
            return last != key
        }
    }

    /// Forgets the state announced; returns whether there was one (a recovery worth a line of its own).
    @discardableResult
    func clear() -> Bool {
        last.withLock { last in
            defer { last = nil }
            return last != nil
        }
    }
}
